#!/usr/bin/env bash
# Set up and run mediaedge on its embedded default: serves ./data (created if
# missing) on http://127.0.0.1:8080 with resizing and a memory cache.
# Extra arguments go to `mediaedge serve` (e.g. --config mediaedge.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --release --locked
exec ./target/release/mediaedge serve "$@"
