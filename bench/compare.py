#!/usr/bin/env python3
"""Several builds of the server side by side, in alternation, each on its
default config — how the cause analysis of issue 15 was measured:

    python3 bench/compare.py LABEL=BINARY [LABEL=BINARY ...] [--rounds 5] [--batch 4] [--wrk-secs 3]

For each round, every build in turn (the order rotates each round):
misses (a) photo JPEG → 500x700 cover WebP q80 and (c) → 500x700 cover JPEG
q80, --batch requests each on a distinct key over one keep-alive
connection; then hits, `wrk -t2 -c16` for --wrk-secs on one warm ~20 KB
derivative. sharp in-process (a, c) and nginx (the same bytes) run in the
same rotation, so every ratio comes from one run. Prints medians, and each
build's ratios to sharp and nginx.

Binaries are built by the caller (e.g. `git worktree add` at a commit and
`cargo build --release --locked`); each is started as a user starts it:
`BINARY serve --listen 127.0.0.1:0 --data DIR`.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guard import HIT_QUERY, MISSES, nginx_serving_the_hit  # noqa: E402
from peers import SHARP_JS, http_get, run_child  # noqa: E402
from run import PHOTO, start_server, wrk  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("builds", nargs="+", help="LABEL=BINARY")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--wrk-secs", type=int, default=3)
    ap.add_argument("--conns", type=int, default=16)
    args = ap.parse_args()
    builds = [b.split("=", 1) for b in args.builds]
    tmp = tempfile.mkdtemp(prefix="mediaedge-compare-")
    os.chmod(tmp, 0o755)
    servers = {}
    nginx = None
    try:
        for label, binary in builds:
            data = os.path.join(tmp, label)
            os.makedirs(data)
            for name, *_ in MISSES:
                for i in range(args.rounds * (args.batch + 1)):
                    shutil.copy(PHOTO, os.path.join(data, f"{name}{i}.jpg"))
            shutil.copy(PHOTO, os.path.join(data, "hit.jpg"))
            proc, addr = start_server(data, binary=binary)
            servers[label] = (proc, addr)
            http_get(addr, f"/hit.jpg?{HIT_QUERY}")
        nginx, port, size = nginx_serving_the_hit(servers[builds[0][0]][1], tmp)

        peers = ["sharp/nginx"] + [label for label, _ in builds]
        miss = {(p, name): [] for p in peers for name, *_ in MISSES}
        hits = {p: [] for p in peers}
        keys = {(label, name): 0 for label, _ in builds for name, *_ in MISSES}
        for r in range(args.rounds):
            order = peers[r % len(peers):] + peers[:r % len(peers)]
            for p in order:
                for name, _, (w, h, fit, fmt, q), _ in MISSES:
                    if p == "sharp/nginx":
                        lines, _ = run_child(["node", SHARP_JS, PHOTO, str(w), str(h), fit, fmt, str(q),
                                              str(args.batch + 1)])
                        miss[(p, name)] += [line["ms"] for line in lines[1:]]
                        continue
                    addr = servers[p][1]
                    for i in range(args.batch + 1):
                        ms, _ = http_get(addr, f"/{name}{keys[(p, name)]}.jpg?w={w}&h={h}&fit={fit}&fmt={fmt}&q={q}")
                        keys[(p, name)] += 1
                        if i:  # the first of a batch is dropped, like sharp's first iteration
                            miss[(p, name)].append(ms)
                if p == "sharp/nginx":
                    hits[p].append(wrk(f"127.0.0.1:{port}", "/d", args.conns, args.wrk_secs)[0])
                else:
                    hits[p].append(wrk(servers[p][1], f"/hit.jpg?{HIT_QUERY}", args.conns, args.wrk_secs)[0])
    finally:
        if nginx:
            nginx.terminate()
            nginx.wait()
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    med = statistics.median
    print(f"\n{args.rounds} rotating rounds, {os.cpu_count()} cores; misses: median ms of "
          f"{args.rounds * args.batch}; hits: median req/s, wrk -c{args.conns} {args.wrk_secs} s, {size:,} B\n")
    print("| build | (a) ms | (a) / sharp | (c) ms | (c) / sharp | hits req/s | hits / nginx |")
    print("|---|---|---|---|---|---|---|")
    sa, sc, n = med(miss[("sharp/nginx", "a")]), med(miss[("sharp/nginx", "c")]), med(hits["sharp/nginx"])
    print(f"| sharp / nginx | {sa:.1f} | | {sc:.1f} | | {n:,.0f} | |")
    for label, _ in builds:
        a, c, h = med(miss[(label, "a")]), med(miss[(label, "c")]), med(hits[label])
        print(f"| {label} | {a:.1f} | {a / sa:.2f} | {c:.1f} | {c / sc:.2f} | {h:,.0f} | {h / n:.2f} |")


if __name__ == "__main__":
    main()
