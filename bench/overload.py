#!/usr/bin/env python3
"""Overload: a flood of distinct transforms, far more than the transform
pool and its queue hold, while a prober keeps asking for a cache hit.

    python3 bench/overload.py [--secs 30] [--flood 96] [--probe-rate 200]

The server runs with its defaults (one transform worker per core, a queue
of 32). --flood client threads each send distinct 12 MP transforms back to
back (a new width every time, so none is a hit). A separate prober process
asks for one warm 150x150 WebP derivative --probe-rate times a second, first
for 10 s alone (baseline), then during the flood, and reports latency
percentiles as it sees them (the prober runs at a higher CPU priority,
standing in for a client on another machine: on these 2 shared cores a
starved prober would measure itself). Counts the flood's answers: 200,
503 with Retry-After, anything else; and the server's peak RSS. Prints
Markdown for docs/RELIABILITY.md.
"""

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import PHOTO, ROOT, pct, proc_status_bytes, start_server  # noqa: E402

HIT = "/p.jpg?w=150&h=150&fmt=webp"


def probe(addr, rate, secs):
    """Paced hit requests on one keep-alive connection; latencies in ms, and non-200s."""
    try:
        os.nice(-5)
    except PermissionError:
        pass
    conn = http.client.HTTPConnection(addr, timeout=30)
    lat, bad = [], 0
    period, nxt, end = 1.0 / rate, time.monotonic(), time.monotonic() + secs
    while time.monotonic() < end:
        t = time.perf_counter()
        conn.request("GET", HIT)
        res = conn.getresponse()
        res.read()
        lat.append((time.perf_counter() - t) * 1000)
        if res.status != 200 or res.getheader("x-cache") != "HIT":
            bad += 1
        nxt += period
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return lat, bad


def summary(lat):
    return {"n": len(lat), "p50": statistics.median(lat), "p99": pct(lat, 99), "p999": pct(lat, 99.9),
            "max": max(lat)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=int, default=30)
    ap.add_argument("--flood", type=int, default=96)
    ap.add_argument("--probe-rate", type=int, default=200)
    ap.add_argument("--refusal-delay-ms", type=int, help="transform.refusal_delay_ms (default: the server's)")
    ap.add_argument("--probe", nargs=3, metavar=("ADDR", "RATE", "SECS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        lat, bad = probe(args.probe[0], int(args.probe[1]), float(args.probe[2]))
        print(json.dumps({**summary(lat), "bad": bad}))
        return
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)

    tmp = tempfile.mkdtemp(prefix="mediaedge-overload-")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    shutil.copy(PHOTO, os.path.join(data, "p.jpg"))
    for i in range(16):
        shutil.copy(PHOTO, os.path.join(data, f"f{i}.jpg"))
    config = None
    if args.refusal_delay_ms is not None:
        config = os.path.join(tmp, "mediaedge.toml")
        with open(config, "w") as f:
            f.write(f"[transform]\nrefusal_delay_ms = {args.refusal_delay_ms}\n")
    proc, addr = start_server(data, config)

    def run_probe(secs):
        out = subprocess.run([sys.executable, __file__, "--probe", addr, str(args.probe_rate), str(secs)],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    counts, lock, stop = {}, threading.Lock(), threading.Event()
    seq = iter(range(10**9))

    def flood():
        conn = http.client.HTTPConnection(addr, timeout=60)
        while not stop.is_set():
            with lock:
                n = next(seq)
            try:
                # (w, h) pairs never repeat within 15 M requests: every one is a miss
                conn.request("GET", f"/f{n % 16}.jpg?w={100 + n % 3900}&h={100 + n // 3900 % 3900}&fmt=webp")
                res = conn.getresponse()
                res.read()
                kind = str(res.status)
                if res.status == 200:
                    kind += " " + (res.getheader("x-cache") or "without X-Cache")
                if res.status == 503:
                    kind += " + Retry-After" if res.getheader("retry-after") else " without Retry-After"
            except (http.client.HTTPException, OSError) as e:
                kind = type(e).__name__
                conn.close()
                conn = http.client.HTTPConnection(addr, timeout=60)
            with lock:
                counts[kind] = counts.get(kind, 0) + 1

    try:
        warm = http.client.HTTPConnection(addr)
        for _ in range(2):
            warm.request("GET", HIT)
            warm.getresponse().read()
        baseline = run_probe(10)
        threads = [threading.Thread(target=flood, daemon=True) for _ in range(args.flood)]
        for t in threads:
            t.start()
        time.sleep(2)  # the pool and queue fill
        flooded = run_probe(args.secs)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        hwm = proc_status_bytes(proc.pid, "VmHWM")
        alive = proc.poll() is None
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"mediaedge overload — {platform.node()}, {os.cpu_count()} cores, flood of {args.flood} clients "
          f"sending distinct 12 MP transforms for {args.secs + 2} s; prober {args.probe_rate} hits/s\n")
    print("| cache hit (150x150 WebP) | requests | p50 ms | p99 ms | p99.9 ms | max ms | not a 200 HIT |")
    print("|---|---|---|---|---|---|---|")
    for name, s in (("alone", baseline), ("during the flood", flooded)):
        print(f"| {name} | {s['n']} | {s['p50']:.2f} | {s['p99']:.2f} | {s['p999']:.2f} | {s['max']:.2f} | {s['bad']} |")
    print("\n| flood answers | count |")
    print("|---|---|")
    for kind, n in sorted(counts.items()):
        print(f"| {kind} | {n} |")
    print(f"\nserver peak RSS (VmHWM): {hwm / 1e6:.0f} MB; still running after the flood: {alive}")
    bad = [k for k in counts if k not in ("200 MISS", "503 + Retry-After")]
    if bad or not alive or flooded["bad"] or baseline["bad"]:
        sys.exit(f"OVERLOAD FAILED: unexpected flood answers {bad}, alive {alive}, "
                 f"probe misses {baseline['bad']}/{flooded['bad']}")


if __name__ == "__main__":
    main()
