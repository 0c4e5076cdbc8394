#!/usr/bin/env python3
"""Which global allocator the server ships with, measured:

    python3 bench/allocators.py [--rounds 5] [--wrk-secs 5]

Builds the release binary four times (split: the default, jemalloc below
256 KiB and glibc from it; system: glibc alone, --no-default-features;
mimalloc and jemalloc alone: --no-default-features --features X) into
target/bench-alloc/, then, in alternation (split, system, mimalloc,
jemalloc, split, …):

* cache hits: wrk at 16 connections on a ~16 KB WebP derivative;
* misses: median HTTP time of (a) photo → 500x700 cover WebP, distinct keys;
* peak RSS of the server during the 40-transform burst of bench/peers.py.

Prints a Markdown table for docs/BENCHMARKS.md.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import PHOTO, burst, ensure_peers, http_get, med  # noqa: E402
from run import BIN, ROOT, start_server, wrk  # noqa: E402

VARIANTS = [
    ("split", []),
    ("system", ["--no-default-features"]),
    ("mimalloc", ["--no-default-features", "--features", "mimalloc"]),
    ("jemalloc", ["--no-default-features", "--features", "jemalloc"]),
]
OUT = os.path.join(ROOT, "target", "bench-alloc")
HIT = "w=320&h=320&fit=cover&fmt=webp&q=80"
MISS = "w=500&h=700&fit=cover&fmt=webp&q=80"


def build():
    os.makedirs(OUT, exist_ok=True)
    for name, flags in VARIANTS:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "mediaedge", *flags], cwd=ROOT, check=True)
        shutil.copy(BIN, os.path.join(OUT, name))
    # Leave target/release with the default build.
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "mediaedge"], cwd=ROOT, check=True)


def one_round(binary, data, round_no, tmp):
    proc, addr = start_server(data, None, binary)
    try:
        http_get(addr, f"/p.jpg?{HIT}")
        rps = wrk(addr, f"/p.jpg?{HIT}", 16, ARGS.wrk_secs)[0]
        misses = [http_get(addr, f"/m{round_no}-{i}.jpg?{MISS}")[0] for i in range(4)]
    finally:
        proc.terminate()
        proc.wait()
    rss = burst(None, tempfile.mkdtemp(dir=tmp), binary)
    return rps, med(misses), rss


def main():
    ensure_peers()
    build()
    tmp = tempfile.mkdtemp(prefix="mediaedge-alloc-")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    shutil.copy(PHOTO, os.path.join(data, "p.jpg"))
    for r in range(ARGS.rounds):
        for i in range(4):
            shutil.copy(PHOTO, os.path.join(data, f"m{r}-{i}.jpg"))
    results = {name: [] for name, _ in VARIANTS}
    try:
        for r in range(ARGS.rounds):
            for name, _ in VARIANTS:
                results[name].append(one_round(os.path.join(OUT, name), data, r, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = med([x[0] for x in results["system"]])
    print(f"\n| allocator ({ARGS.rounds} alternating rounds) | hits req/s @16 (median) | × system | "
          "miss (a) HTTP ms (median) | burst peak RSS MB (max) |")
    print("|---|---|---|---|---|")
    for name, _ in VARIANTS:
        rows = results[name]
        rps = med([x[0] for x in rows])
        print(f"| {name} | {rps:,.0f} | {rps / base:.2f} | {med([x[1] for x in rows]):.1f} | "
              f"{max(x[2] for x in rows) / 2**20:.0f} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--wrk-secs", type=int, default=5)
    ARGS = ap.parse_args()
    main()
