#!/usr/bin/env python3
"""The speed guard: the default build on its default config, side by side
with its peers, in alternation — one command, about two minutes:

    python3 bench/guard.py [--rounds 5] [--batch 5] [--wrk-secs 3]

Installs what is missing (nginx and wrk from Debian, sharp from npm into
target/bench-peers) and builds the release binary, then, for --rounds
rounds:

* misses (a) photo JPEG → 500x700 cover WebP q80 and (c) → 500x700 cover
  JPEG q80: sharp in-process (one node process of --batch + 1 iterations,
  the first dropped as warm-up), then --batch requests to the server, each
  on a distinct key (a full miss: metadata, store read, transform) over one
  keep-alive connection;
* hits: wrk -t2 -c16 for --wrk-secs on one warm ~16 KB derivative, nginx
  (2 workers, sendfile, open_file_cache) serving the same bytes, then the
  server.

The server runs as a user starts it: `mediaedge serve --listen … --data …`,
no config file, with `RUST_LOG=warn` (no per-request log line, as nginx
runs with `access_log off`). Prints the ratios (medians over all rounds) and PASS/FAIL
against the targets of issue 15; exits 1 if any target is missed. Run it
after any change to the request path, the pipeline, the allocator or the
connection layer, and quote its table in the commit message.
"""

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import NGINX_CONF, PEERS, SHARP_JS, http_get, run_child  # noqa: E402
from run import BIN, PHOTO, ROOT, start_server, wrk  # noqa: E402

# (name, what, query, target: mediaedge miss ms / sharp ms at most)
MISSES = [
    ("a", "photo JPEG → 500x700 cover WebP q80", (500, 700, "cover", "webp", 80), 0.70),
    ("c", "photo JPEG → 500x700 cover JPEG q80", (500, 700, "cover", "jpeg", 80), 0.60),
]
HIT_QUERY = "w=320&h=320&fit=cover&fmt=webp&q=80"
HIT_CONNS = 16
HIT_TARGET = 1.2  # mediaedge req/s / nginx req/s at least


def ensure():
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    missing = [pkg for pkg in ("nginx", "wrk") if shutil.which(pkg) is None and not os.path.exists(f"/usr/sbin/{pkg}")]
    if missing:
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", *missing], check=True)
    if not os.path.exists(os.path.join(PEERS, "node_modules", "sharp")):
        os.makedirs(PEERS, exist_ok=True)
        subprocess.run(["npm", "init", "-y"], cwd=PEERS, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["npm", "install", "--silent", "sharp"], cwd=PEERS, check=True)
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "mediaedge"], cwd=ROOT, check=True)


def nginx_serving_the_hit(addr, tmp):
    """nginx (2 workers) serving, as the file /d, the very bytes of the
    warm derivative the server at `addr` answers for /hit.jpg?HIT_QUERY.
    Returns (process, port, bytes)."""
    conn = http.client.HTTPConnection(addr)
    conn.request("GET", f"/hit.jpg?{HIT_QUERY}")
    body = conn.getresponse().read()
    root = os.path.join(tmp, "nginx-root")
    os.makedirs(root)
    with open(os.path.join(root, "d"), "wb") as f:
        f.write(body)
    os.chmod(os.path.join(root, "d"), 0o644)
    port = 20000 + os.getpid() % 20000
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(workers=2, tmp=tmp, port=port, root=root))
    nginx = subprocess.Popen(["nginx", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf"), "-g", "daemon off;"])
    time.sleep(0.5)
    return nginx, port, len(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--wrk-secs", type=int, default=3)
    args = ap.parse_args()
    ensure()
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="mediaedge-guard-")
    os.chmod(tmp, 0o755)  # nginx's workers run as an unprivileged user
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    per_op = args.rounds * args.batch
    for name, *_ in MISSES:
        for i in range(per_op):
            shutil.copy(PHOTO, os.path.join(data, f"{name}{i}.jpg"))
    shutil.copy(PHOTO, os.path.join(data, "hit.jpg"))
    proc, addr = start_server(data)
    nginx = None
    try:
        http_get(addr, "/hit.jpg?w=16")  # the first request pays for start-up
        nginx, port, size = nginx_serving_the_hit(addr, tmp)

        sharp = {name: [] for name, *_ in MISSES}
        ours = {name: [] for name, *_ in MISSES}
        hits = {"nginx": [], "mediaedge": []}
        keys = {name: 0 for name, *_ in MISSES}
        for _ in range(args.rounds):
            for name, _, (w, h, fit, fmt, q), _ in MISSES:
                lines, _ = run_child(["node", SHARP_JS, PHOTO, str(w), str(h), fit, fmt, str(q), str(args.batch + 1)])
                sharp[name] += [line["ms"] for line in lines[1:]]
                for _ in range(args.batch):
                    ms, _ = http_get(addr, f"/{name}{keys[name]}.jpg?w={w}&h={h}&fit={fit}&fmt={fmt}&q={q}")
                    keys[name] += 1
                    ours[name].append(ms)
            hits["nginx"].append(wrk(f"127.0.0.1:{port}", "/d", HIT_CONNS, args.wrk_secs)[0])
            hits["mediaedge"].append(wrk(addr, f"/hit.jpg?{HIT_QUERY}", HIT_CONNS, args.wrk_secs)[0])
    finally:
        if nginx:
            nginx.terminate()
            nginx.wait()
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    med = statistics.median
    failed = False
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "?"
    print(f"\nspeed guard: default build, default config (RUST_LOG=warn), commit {commit}; {args.rounds} "
          f"alternating rounds ({os.cpu_count()} cores, {time.monotonic() - started:.0f} s)\n")
    print("| check | mediaedge | peer | ratio | target | |")
    print("|---|---|---|---|---|---|")
    for name, what, _, target in MISSES:
        o, s = med(ours[name]), med(sharp[name])
        ok = o / s <= target
        failed |= not ok
        print(f"| ({name}) {what}, miss | {o:.1f} ms | sharp {s:.1f} ms | {o / s:.2f} | ≤ {target} | "
              f"{'PASS' if ok else 'FAIL'} |")
    o, n = med(hits["mediaedge"]), med(hits["nginx"])
    ok = o / n >= HIT_TARGET
    failed |= not ok
    print(f"| hits, {size:,} B, wrk -c{HIT_CONNS} | {o:,.0f} req/s | nginx {n:,.0f} req/s | {o / n:.2f} | "
          f"≥ {HIT_TARGET} | {'PASS' if ok else 'FAIL'} |")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
