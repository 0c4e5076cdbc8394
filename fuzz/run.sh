#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 600) one after another and
# prints executions and findings per target (the figures in
# docs/FUZZING.md). Usage: fuzz/run.sh [SECONDS] [TARGET...]
# Stable Rust: cargo-fuzz needs nightly flags, allowed by RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(transform_query conditional object_key image_decode upload_sniff token container scrub movie)
export RUSTC_BOOTSTRAP=1
# As cargo fuzz run sets it: mozjpeg defines a static table (`aanscales`)
# in two files, which trips ASan's one-definition check; not a finding.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
./seed.sh
cargo fuzz build
bin=target/x86_64-unknown-linux-gnu/release
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "artifacts/$t"
    # The built binary itself (cargo fuzz run would rebuild on any source
    # change). 2 GB and 10 s per input: anything over is a finding.
    "$bin/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$secs" \
        -rss_limit_mb=2048 -timeout=10 -max_len=262144 -print_final_stats=1 \
        > "logs/$t.log" 2>&1 && rc=0 || rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "logs/$t.log" | tail -1 | grep -o '[0-9]*$' || echo '?')
    found=$(ls "artifacts/$t" | wc -l)
    printf '%-16s %4ss  execs %-10s cov %-6s exit %s  artifacts %s\n' "$t" "$secs" "$execs" "$cov" "$rc" "$found"
done
