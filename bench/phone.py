#!/usr/bin/env python3
"""Phone photos (issue 17, item 6): HEIC and AVIF 4032x3024 → 500x700
cover WebP q80, an end-to-end miss of the default build (distinct keys,
one request at a time) in alternation with `vipsthumbnail` (libvips with
Debian's libheif) on the same file:

    python3 bench/phone.py [--rounds 5] [--batch 3]

Prints medians and the ratio against the target (HEIC ≤ 0.8× vipsthumbnail).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import ensure_peers, http_get, vips_once  # noqa: E402
from run import ROOT, start_server  # noqa: E402

CORPUS = os.path.join(ROOT, "..", "shared", "corpus")
# (name, file, target ratio or None)
PHONE = [
    ("HEIC", os.path.join(CORPUS, "heic_4032x3024_orient6_gps.heic"), 0.8),
    ("AVIF", os.path.join(CORPUS, "avif_4032x3024_orient8.avif"), None),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=3)
    args = ap.parse_args()
    ensure_peers()
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        n = args.rounds * args.batch + 1
        for name, src, _ in PHONE:
            for i in range(n):
                shutil.copy(src, os.path.join(data, f"{name}{i}{os.path.splitext(src)[1]}"))
        proc, addr = start_server(data)
        ours = {name: [] for name, _, _ in PHONE}
        vips = {name: [] for name, _, _ in PHONE}
        try:
            for name, src, _ in PHONE:
                ext = os.path.splitext(src)[1]
                http_get(addr, f"/{name}0{ext}?w=16")  # warm-up, not counted
            i = 1
            for _ in range(args.rounds):
                for name, src, _ in PHONE:
                    ext = os.path.splitext(src)[1]
                    op = (name, "", src, 500, 700, "cover", "webp", 80, None)
                    for b in range(args.batch):
                        vips[name].append(vips_once(op, tmp)[0])
                        ms, _ = http_get(addr, f"/{name}{i + b}{ext}?w=500&h=700&fit=cover&fmt=webp&q=80")
                        ours[name].append(ms)
                i += args.batch
        finally:
            proc.kill()
    print(f"\n{args.rounds} rounds × {args.batch}, alternating; medians\n")
    print("| input → 500x700 cover WebP q80 | mediaedge miss ms | vipsthumbnail ms | ratio | target |")
    print("|---|---|---|---|---|")
    for name, _, target in PHONE:
        o, v = statistics.median(ours[name]), statistics.median(vips[name])
        t = f"≤ {target}" if target else "—"
        print(f"| {name} 4032x3024 | {o:.0f} | {v:.0f} | {o / v:.2f} | {t} |")


if __name__ == "__main__":
    main()
