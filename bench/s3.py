#!/usr/bin/env python3
"""Miss and hit latency with originals on S3-compatible storage vs local
disk: the same release binary, the same photo, one node per backend.

    python3 bench/s3.py [--misses 15] [--wrk-secs 10]

The S3 servers are the two the tests use (scripts/test.sh installs them):
s3s-fs 0.14.1 (Rust, checks signatures, files on disk) and moto (Python,
objects in memory), on loopback — no network, so the figures are our S3
path (SigV4, HTTP, XML) plus each server's own cost.
Prints Markdown tables for docs/BENCHMARKS.md.
"""

import argparse
import http.client
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import PHOTO, ROOT, ensure_tools, pct, start_server, timed_get, wrk  # noqa: E402

S3S = os.path.join(ROOT, "target", "test-tools", "bin", "s3s-fs")
MOTO = os.path.join(ROOT, "target", "test-venv", "bin", "moto_server")
AK, SK = "benchkey", "bench-secret-0123456789"
QUERY = "w=150&h=150&fit=cover&fmt=webp&q=80"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--misses", type=int, default=15)
    ap.add_argument("--wrk-secs", type=int, default=10)
    args = ap.parse_args()
    ensure_tools()
    if not os.path.exists(S3S):
        subprocess.run(["cargo", "install", "--locked", "--root", os.path.join(ROOT, "target", "test-tools"),
                        "s3s-fs", "--version", "0.14.1", "--features", "binary"], check=True)
    tmp = tempfile.mkdtemp(prefix="mediaedge-bench-s3-")
    local_data = os.path.join(tmp, "data")
    s3_root = os.path.join(tmp, "s3")
    os.makedirs(local_data)
    os.makedirs(os.path.join(s3_root, "media"))
    n = args.misses + 1
    for i in range(n):
        for prefix in ("p", "o"):
            shutil.copy(PHOTO, os.path.join(local_data, f"{prefix}{i}.jpg"))
            shutil.copy(PHOTO, os.path.join(s3_root, "media", f"{prefix}{i}.jpg"))
    port = free_port()
    s3 = subprocess.Popen([S3S, "--host", "127.0.0.1", "--port", str(port), "--access-key", AK, "--secret-key", SK, s3_root],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    moto_port = free_port()
    moto = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(moto_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.0)
    moto_fill(moto_port, n)
    configs = {}
    for name, p in (("s3s-fs", port), ("moto", moto_port)):
        configs[name] = os.path.join(tmp, f"{name}.toml")
        with open(configs[name], "w") as f:
            f.write(f'[storage]\nkind = "s3"\nbucket = "media"\nendpoint = "http://127.0.0.1:{p}"\npath_style = true\n')
    os.environ.update({"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK})
    results = {}
    try:
        for name, cfg in (("local", None), ("s3: s3s-fs", configs["s3s-fs"]), ("s3: moto", configs["moto"])):
            proc, addr = start_server(local_data if cfg is None else None, cfg)
            try:
                conn = http.client.HTTPConnection(addr)
                timed_get(conn, f"/p0.jpg?w=16")  # warm-up
                miss = [timed_get(conn, f"/p{i}.jpg?{QUERY}")[0] * 1000 for i in range(1, n)]
                orig = [timed_get(conn, f"/o{i}.jpg")[0] * 1000 for i in range(1, n)]
                hit1 = wrk(addr, f"/p1.jpg?{QUERY}", 1, args.wrk_secs)
                hit16 = wrk(addr, f"/p1.jpg?{QUERY}", 16, args.wrk_secs)
                results[name] = (miss, orig, hit1, hit16)
            finally:
                proc.terminate()
                proc.wait()
    finally:
        for p in (s3, moto):
            p.terminate()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"mediaedge storage bench — {platform.node()}, {os.cpu_count()} cores, photo 4032x3024 JPEG 1.9 MB, loopback\n")
    print("| backend | miss 150x150 WebP median ms | p90 ms | cold original 1.9 MB median ms | hit req/s @1 | hit p50 @1 | hit req/s @16 |")
    print("|---|---|---|---|---|---|---|")
    for name, (miss, orig, hit1, hit16) in results.items():
        print(f"| {name} | {statistics.median(miss):.1f} | {pct(miss, 90):.1f} | {statistics.median(orig):.1f} | {hit1[0]:,.0f} | {hit1[1]} | {hit16[0]:,.0f} |")


def moto_fill(port, n):
    """moto keeps objects in memory: create the bucket and the photos over HTTP
    (moto does not check signatures)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("PUT", "/media")
    conn.getresponse().read()
    data = open(PHOTO, "rb").read()
    for i in range(n):
        for prefix in ("p", "o"):
            conn.request("PUT", f"/media/{prefix}{i}.jpg", body=data)
            conn.getresponse().read()


if __name__ == "__main__":
    main()
