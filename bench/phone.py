#!/usr/bin/env python3
"""Phone photos (issue 17, item 6): HEIC and AVIF 4032x3024 → 500x700
cover WebP q80, an end-to-end miss of the default build (distinct keys,
one request at a time) in alternation with `vipsthumbnail` (libvips with
Debian's libheif) on the same file; then the media information:
`fmt=json` on an original already in the cache (target ≤ 15 ms) and as a
cache hit, and — with `--before BINARY`, a build from before `fmt=json` —
what it adds to an upload, uploads to both servers alternating:

    python3 bench/phone.py [--rounds 5] [--batch 3] [--before BINARY]

Prints medians and the ratios against the targets.
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import ensure_peers, http_get, vips_once  # noqa: E402
from run import ADMIN_KEY, ROOT, start_server  # noqa: E402

CORPUS = os.path.join(ROOT, "..", "shared", "corpus")
# (name, file, target ratio or None)
PHONE = [
    ("HEIC", os.path.join(CORPUS, "heic_4032x3024_orient6_gps.heic"), 0.8),
    ("AVIF", os.path.join(CORPUS, "avif_4032x3024_orient8.avif"), None),
]
# fmt=json inputs: the benchmark JPEG, the phone files, a large PNG.
INFO = [
    ("JPEG 4032x3024", os.path.join(CORPUS, "photo_4032x3024_orient1.jpg")),
    ("HEIC 4032x3024", PHONE[0][1]),
    ("AVIF 4032x3024", PHONE[1][1]),
    ("PNG 1200x1200 RGBA", os.path.join(CORPUS, "rgba_1200x1200.png")),
]
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--before", help="a release build from before fmt=json, for the upload cost")
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
    media_info(args)
    if args.before:
        upload_cost(args)


def media_info(args):
    """fmt=json on an original the cache already holds (a plain GET first),
    then again (a hit); distinct keys, one request at a time."""
    n = args.rounds * args.batch
    miss = {name: [] for name, _ in INFO}
    hit = {name: [] for name, _ in INFO}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        for k, (_, src) in enumerate(INFO):
            for i in range(n + 1):
                shutil.copy(src, os.path.join(data, f"i{k}-{i}{os.path.splitext(src)[1]}"))
        proc, addr = start_server(data)
        try:
            http_get(addr, f"/i0-{n}.jpg?fmt=json")  # warm-up, not counted
            for i in range(n):
                for k, (name, src) in enumerate(INFO):
                    key = f"/i{k}-{i}{os.path.splitext(src)[1]}"
                    http_get(addr, key)  # the original, now in the cache
                    miss[name].append(http_get(addr, key + "?fmt=json")[0])
                    hit[name].append(http_get(addr, key + "?fmt=json")[0])
        finally:
            proc.kill()
    print(f"\nfmt=json, {n} distinct keys each; medians\n")
    print("| input | fmt=json, original cached (ms) | fmt=json hit (ms) | target |")
    print("|---|---|---|---|")
    for name, _ in INFO:
        print(f"| {name} | {statistics.median(miss[name]):.1f} | "
              f"{statistics.median(hit[name]):.2f} | ≤ 15 ms (cached original) |")


def put_upload(addr, key, body):
    conn = http.client.HTTPConnection(addr, timeout=120)
    conn.request("POST", "/_/uploads", body=json.dumps({"key": key}),
                 headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    res = conn.getresponse()
    url = json.loads(res.read())["url"]
    target = url.split(addr, 1)[1]
    conn = http.client.HTTPConnection(addr, timeout=120)
    t = time.perf_counter()
    conn.request("PUT", target, body=body)
    res = conn.getresponse()
    answer = res.read()
    ms = (time.perf_counter() - t) * 1000
    if res.status != 201:
        sys.exit(f"upload {key}: HTTP {res.status} {answer[:200]!r}")
    return ms


def upload_cost(args):
    """The whole PUT (stream, check, metadata removal, publish, 201) on the
    build before fmt=json and on this one, alternating."""
    n = args.rounds * args.batch
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = []
        for label, binary in (("before", args.before), ("now", None)):
            data = os.path.join(tmp, label)
            os.makedirs(data)
            servers.append((label, *start_server(
                data, binary=binary, env={"MEDIAEDGE_SIGNING_SECRET": SIGNING_SECRET})))
        try:
            for name, src in INFO[:2]:
                body = open(src, "rb").read()
                ext = os.path.splitext(src)[1]
                for label, _, addr in servers:
                    put_upload(addr, f"warm{ext}", body)  # warm-up, not counted
                for i in range(n):
                    for label, _, addr in servers:
                        times.setdefault((name, label), []).append(
                            put_upload(addr, f"u{i}{ext}", body))
        finally:
            for _, proc, _ in servers:
                proc.kill()
    print(f"\nUpload PUT, {n} each, alternating builds; medians\n")
    print("| input | before fmt=json (ms) | with the media information (ms) | added (ms) |")
    print("|---|---|---|---|")
    for name, _ in INFO[:2]:
        b = statistics.median(times[(name, "before")])
        w = statistics.median(times[(name, "now")])
        print(f"| {name} | {b:.0f} | {w:.0f} | {w - b:+.0f} |")


if __name__ == "__main__":
    main()
