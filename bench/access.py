#!/usr/bin/env python3
"""Cost of the JWT check on cache hits: the same warm 150x150 WebP served
from a public route and from a jwt route (RS256 token in the Authorization
header), with wrk in alternation (public, jwt, public, jwt), and the server's
own measure of the check (mediaedge_auth_duration_seconds) for remembered
tokens and for first-seen tokens (a full RSA verification each).

    python3 bench/access.py [--wrk-secs 10] [--rounds 2] [--fresh-tokens 200]

Prints Markdown tables for docs/BENCHMARKS.md.
"""

import argparse
import http.client
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ADMIN_KEY, BIN, PHOTO, ensure_tools, start_server, wrk  # noqa: E402

QUERY = "w=150&h=150&fmt=webp"


def auth_histogram(addr):
    conn = http.client.HTTPConnection(addr)
    conn.request("GET", "/_/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    text = conn.getresponse().read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith('mediaedge_auth_duration_seconds_sum{access="jwt"}'):
            total = float(line.split()[-1])
        if line.startswith('mediaedge_auth_duration_seconds_count{access="jwt"}'):
            count = float(line.split()[-1])
    return total, count


def mint(keydir, n):
    return subprocess.run(
        [BIN, "token", "--key", os.path.join(keydir, "private.pem"), "--sub", "bench", "--ttl", "1h", "--claim", f"n={n}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wrk-secs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--fresh-tokens", type=int, default=200)
    args = ap.parse_args()
    ensure_tools()

    tmp = tempfile.mkdtemp(prefix="mediaedge-bench-access-")
    data = os.path.join(tmp, "data")
    for d in ("public", "private"):
        os.makedirs(os.path.join(data, d))
        shutil.copy(PHOTO, os.path.join(data, d, "p.jpg"))
    subprocess.run([BIN, "keygen", "--out", tmp], check=True, capture_output=True)
    config = os.path.join(tmp, "mediaedge.toml")
    with open(config, "w") as f:
        f.write(f'[jwt]\npublic_key_file = "{tmp}/public.pem"\n[[route]]\nprefix = "/private/"\naccess = "jwt"\n')
    token = mint(tmp, 0)
    auth = f"Authorization: Bearer {token}"
    proc, addr = start_server(data, config)
    try:
        conn = http.client.HTTPConnection(addr)
        for path, hdrs in ((f"/public/p.jpg?{QUERY}", {}), (f"/private/p.jpg?{QUERY}", {"Authorization": f"Bearer {token}"})):
            for expect in ("MISS", "HIT"):
                conn.request("GET", path, headers=hdrs)
                res = conn.getresponse()
                res.read()
                assert res.status == 200 and res.getheader("x-cache") == expect, (path, res.status)

        print(f"mediaedge access bench — {platform.node()}, {os.cpu_count()} cores, 150x150 WebP hit, RS256 2048-bit token\n")
        print(f"| route | connections | requests/s (median of {args.rounds}) | p50 | p99 | jwt / public |")
        print("|---|---|---|---|---|---|")
        for conns in (1, 16):
            runs = {"public": [], "jwt": []}
            for _ in range(args.rounds):
                runs["public"].append(wrk(addr, f"/public/p.jpg?{QUERY}", conns, args.wrk_secs))
                runs["jwt"].append(wrk(addr, f"/private/p.jpg?{QUERY}", conns, args.wrk_secs, [auth]))
            med = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
            for k in ("public", "jwt"):
                _, p50, p99 = runs[k][-1]
                ratio = f"{med['jwt'] / med['public']:.2f}" if k == "jwt" else ""
                print(f"| {k} | {conns} | {med[k]:,.0f} | {p50} | {p99} | {ratio} |")

        s0, c0 = auth_histogram(addr)
        print(f"\nJWT check, remembered token (all jwt requests above): {s0 / c0 * 1e6:.1f} µs mean over {c0:,.0f} checks")
        tokens = [mint(tmp, i + 1) for i in range(args.fresh_tokens)]
        conn = http.client.HTTPConnection(addr)
        for t in tokens:
            conn.request("GET", f"/private/p.jpg?{QUERY}", headers={"Authorization": f"Bearer {t}"})
            res = conn.getresponse()
            res.read()
            assert res.status == 200, res.status
        s1, c1 = auth_histogram(addr)
        print(f"JWT check, first sight of a token (RSA-2048 verify): {(s1 - s0) / (c1 - c0) * 1e6:.1f} µs mean over {c1 - c0:,.0f} tokens")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
