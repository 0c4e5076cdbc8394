#!/usr/bin/env python3
"""First mediaedge benchmark: end-to-end HTTP miss latency and cache-hit
throughput on the corpus photo, against a release build on loopback.

    python3 bench/run.py [--misses 15] [--wrk-secs 10]

Misses: every request uses a distinct key (a copy of the photo under a new
name), so each pays the whole path: metadata, store read of the 1.9 MB
original, decode (shrink-on-load), resize, encode. Hits: wrk on one warm
derivative. Prints a Markdown table for docs/BENCHMARKS.md.
"""

import argparse
import http.client
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "..", "shared", "corpus")
PHOTO = os.path.join(CORPUS, "photo_4032x3024_orient1.jpg")
BIN = os.path.join(ROOT, "target", "release", "mediaedge")

MISS_OPS = [
    ("500x700 cover WebP q80", "w=500&h=700&fit=cover&fmt=webp&q=80"),
    ("150x150 cover WebP q80", "w=150&h=150&fit=cover&fmt=webp&q=80"),
    ("500x700 cover JPEG q80", "w=500&h=700&fit=cover&fmt=jpeg&q=80"),
]
HIT_OPS = [
    ("150x150 WebP", "w=150&h=150&fmt=webp"),
    ("500x700 JPEG", "w=500&h=700&fmt=jpeg"),
]


def ensure_tools():
    if shutil.which("wrk") is None:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)


# The admin key the benches give the server (/_/metrics needs it).
ADMIN_KEY = "bench-admin-key-0123456789"


def start_server(data, config=None, binary=None, env=None, stderr=None):
    """Starts the release binary (or `binary`) on a free port; `data` None: the config's own storage."""
    cmd = [binary or BIN, "serve", "--listen", "127.0.0.1:0"]
    if data:
        cmd += ["--data", data]
    if config:
        cmd += ["--config", config]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=stderr or subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn", "MEDIAEDGE_ADMIN_KEY": ADMIN_KEY, **(env or {})},
        text=True,
    )
    line = proc.stdout.readline().strip()
    m = re.match(r"mediaedge listening on http://(\S+)", line)
    if not m:
        proc.kill()
        sys.exit(f"server did not start: {line!r}")
    return proc, m.group(1)


def timed_get(conn, path):
    t = time.perf_counter()
    conn.request("GET", path)
    res = conn.getresponse()
    body = res.read()
    elapsed = time.perf_counter() - t
    if res.status != 200:
        sys.exit(f"{path}: HTTP {res.status} {body[:200]!r}")
    return elapsed, len(body), res.getheader("x-cache")


def proc_status_bytes(pid, field):
    """A size field of /proc/<pid>/status (VmRSS, VmHWM), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field + ":")) * 1024


def paced(rate, stop, fn):
    """Calls fn() `rate` times a second until the event `stop` is set (no catch-up bursts)."""
    period, nxt = 1.0 / rate, time.monotonic()
    while not stop.is_set():
        fn()
        nxt += period
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            nxt = time.monotonic()


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def wrk(addr, path, conns, secs, headers=()):
    extra = [arg for h in headers for arg in ("-H", h)]
    out = subprocess.run(
        ["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{secs}s", "--latency", *extra, f"http://{addr}{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+\w+)", out).group(1)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"wrk saw {errors.group(1)} errors on {path}")
    return rps, p50, p99


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--misses", type=int, default=15)
    ap.add_argument("--wrk-secs", type=int, default=10)
    args = ap.parse_args()
    ensure_tools()

    tmp = tempfile.mkdtemp(prefix="mediaedge-bench-")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    for i in range(args.misses * len(MISS_OPS) + 2):
        shutil.copy(PHOTO, os.path.join(data, f"p{i}.jpg"))
    proc, addr = start_server(data)
    try:
        conn = http.client.HTTPConnection(addr)
        timed_get(conn, "/p0.jpg?w=16")  # warm up: code paths, allocator
        print(f"mediaedge bench — {platform.node()}, {os.cpu_count()} cores, photo 4032x3024 JPEG 1.9 MB\n")
        print("| end-to-end miss (distinct keys) | median ms | p90 ms | min ms | bytes |")
        print("|---|---|---|---|---|")
        key = 1
        for name, query in MISS_OPS:
            times, size = [], 0
            for _ in range(args.misses):
                key += 1
                elapsed, size, cache = timed_get(conn, f"/p{key}.jpg?{query}")
                assert cache == "MISS", cache
                times.append(elapsed * 1000)
            print(f"| {name} | {statistics.median(times):.1f} | {pct(times, 90):.1f} | {min(times):.1f} | {size} |")

        print("\n| cache hit (wrk, %ds) | connections | requests/s | p50 | p99 | bytes |" % args.wrk_secs)
        print("|---|---|---|---|---|---|")
        for name, query in HIT_OPS:
            path = f"/p1.jpg?{query}"
            conn = http.client.HTTPConnection(addr)  # the last one idled out during wrk
            _, size, _ = timed_get(conn, path)
            _, _, cache = timed_get(conn, path)
            assert cache == "HIT", cache
            for conns in (1, 16):
                rps, p50, p99 = wrk(addr, path, conns, args.wrk_secs)
                print(f"| {name} | {conns} | {rps:,.0f} | {p50} | {p99} | {size} |")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
