#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what the
# build and the tests need, then unit and end-to-end tests with nextest.
# The tests read the shared corpus from ../shared/corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
# Test-only tools: openssl makes the JWT keys exactly as the README does,
# python3 is an independent HMAC signer, exiftool reads metadata, the
# ffmpeg program is the reference for video frames and streams, chromium
# plays the private video (with its recommended packages, as a desktop
# install would have them).
apt_install openssl python3 python3-venv curl libimage-exiftool-perl ffmpeg
APT_RECOMMENDS=1 apt_install chromium

# Real S3-compatible servers the tests start: moto (behaviour) in a venv,
# s3s-fs 0.14.1 (verifies signatures) built from crates.io. Both under
# target/, reused when present.
if [ ! -x target/test-venv/bin/moto_server ]; then
    python3 -m venv target/test-venv
    target/test-venv/bin/pip install --quiet 'moto[server]'
fi
# Test tools are built at opt-level 1 without LTO: they serve a test
# suite, and a fresh machine builds them in about half the time.
quick_install() {
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo install --locked "$@"
}
if [ ! -x target/test-tools/bin/s3s-fs ]; then
    quick_install --quiet --root target/test-tools s3s-fs --version 0.14.1 --features binary
fi

# The placeholders' reference decoders (tests/media_info.rs): npm's
# thumbhash (by ThumbHash's author) and blurhash (Wolt's), MIT.
command -v npm >/dev/null || apt_install nodejs npm
if [ ! -d target/test-node/node_modules/blurhash ]; then
    npm install --silent --no-audit --no-fund --prefix target/test-node thumbhash@0.1.1 blurhash@2.0.5
fi

if [ ! -d ../shared/corpus ]; then
    echo "missing ../shared/corpus (the test images); see README" >&2
    exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    quick_install cargo-nextest
fi
cargo nextest run --locked --workspace --no-fail-fast "$@"
