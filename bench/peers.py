#!/usr/bin/env python3
"""mediaedge side by side with its peers — one command:

    python3 bench/peers.py [--rounds 5] [--batch 4] [--wrk-secs 10] [--hit-rounds 3]
                            [--only misses|throughput|burst|hits]

Installs what is missing (Debian libvips-tools, nginx, wrk; npm sharp in
target/bench-peers), builds the release binary and examples/pipeline, then:

* misses, operations (a)–(f) on the corpus photos: sharp in-process,
  mediaedge in-process (examples/pipeline) and mediaedge end to end over
  HTTP (a distinct key per request: metadata, store read, transform), run
  in alternation (sharp, in-process, HTTP, sharp, …) for --rounds rounds of
  --batch iterations (the first of each batch is dropped as warm-up);
  vipsthumbnail (libvips' CLI, the engine under imgproxy) once per round,
  timed as a whole process;
* 2-worker throughput for (a) and (c), --rounds alternating rounds;
* peak RSS of the server during a burst of 40 concurrent distinct 12 MP
  transforms;
* cache hits: wrk at 1, 16 and 128 connections on a ~16 KB and a ~300 KB
  derivative, mediaedge (public and jwt route) vs nginx serving the same
  bytes from disk, alternating (nginx, public, jwt, nginx, …) for
  --hit-rounds rounds; medians of requests/s and of p99.

Prints Markdown tables for docs/BENCHMARKS.md.
"""

import argparse
import http.client
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BIN, CORPUS, PHOTO, ROOT, proc_status_bytes, start_server, wrk  # noqa: E402

PNG = os.path.join(CORPUS, "rgba_1200x1200.png")
WEBP = os.path.join(CORPUS, "photo_4272x2848.webp")
PIPELINE = os.path.join(ROOT, "target", "release", "examples", "pipeline")
PEERS = os.path.join(ROOT, "target", "bench-peers")
SHARP_JS = os.path.join(ROOT, "bench", "sharp.js")

# name, source, w, h, fit, fmt, q, target ratio (mediaedge HTTP / sharp in-process)
OPS = [
    ("a", "photo JPEG → 500x700 cover WebP q80", PHOTO, 500, 700, "cover", "webp", 80, 0.70),
    ("b", "photo JPEG → 150x150 cover WebP q80", PHOTO, 150, 150, "cover", "webp", 80, 0.85),
    ("c", "photo JPEG → 500x700 cover JPEG q80", PHOTO, 500, 700, "cover", "jpeg", 80, 0.60),
    ("d", "photo JPEG → 500x700 cover AVIF q60", PHOTO, 500, 700, "cover", "avif", 60, 0.5),
    ("e", "RGBA PNG → 500x700 cover WebP q80", PNG, 500, 700, "cover", "webp", 80, 0.90),
    ("f", "large WebP → 500x700 cover WebP q80", WEBP, 500, 700, "cover", "webp", 80, 0.90),
]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_peers():
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    missing = [p for p, b in (("libvips-tools", "vipsthumbnail"), ("nginx", "nginx"), ("wrk", "wrk")) if shutil.which(b) is None
               and not os.path.exists(f"/usr/sbin/{b}")]
    if missing:
        sh(sudo + ["apt-get", "update", "-qq"])
        sh(sudo + ["apt-get", "install", "-y", "-qq"] + missing)
    ensure_sharp()
    sh(["cargo", "build", "--release", "--locked", "--bin", "mediaedge", "--example", "pipeline"], cwd=ROOT)


def ensure_sharp():
    """npm's sharp in target/bench-peers (what bench/sharp.js loads), if missing."""
    if not os.path.exists(os.path.join(PEERS, "node_modules", "sharp")):
        os.makedirs(PEERS, exist_ok=True)
        sh(["npm", "init", "-y"], cwd=PEERS, stdout=subprocess.DEVNULL)
        sh(["npm", "install", "--silent", "sharp"], cwd=PEERS)


def run_child(cmd):
    """Runs a child to completion: its JSON lines and its peak RSS (bytes)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"{cmd[0]} failed")
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")], usage.ru_maxrss * 1024


def op_args(op):
    _, _, src, w, h, fit, fmt, q, _ = op
    return [src, str(w), str(h), fit, fmt, str(q)]


def http_get(addr, path, headers=None):
    conn = http.client.HTTPConnection(addr, timeout=120)
    t = time.perf_counter()
    conn.request("GET", path, headers=headers or {})
    res = conn.getresponse()
    body = res.read()
    ms = (time.perf_counter() - t) * 1000
    if res.status != 200:
        sys.exit(f"{path}: HTTP {res.status} {body[:200]!r}")
    return ms, len(body)


def vips_once(op, tmp):
    _, _, src, w, h, fit, fmt, q, _ = op
    ext = {"jpeg": "jpg"}.get(fmt, fmt)
    out = os.path.join(tmp, f"vips.{ext}[Q={q}]")
    cmd = ["vipsthumbnail", src, "--size", f"{w}x{h}", "-o", out]
    if fit == "cover":
        cmd += ["--smartcrop", "centre"]
    t = time.perf_counter()
    sh(cmd)
    return (time.perf_counter() - t) * 1000, os.path.getsize(out.split("[")[0])


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def misses(args, tmp):
    data = os.path.join(tmp, "data")
    os.makedirs(data, exist_ok=True)
    per_op = args.rounds * args.batch + 4
    for op in OPS:
        for i in range(per_op):
            shutil.copy(op[2], os.path.join(data, f"{op[0]}{i}{os.path.splitext(op[2])[1]}"))
    proc, addr = start_server(data)  # the default config: one request at a time needs no queue
    rows = []
    try:
        http_get(addr, f"/a0.jpg?w=16")  # warm-up
        for op in OPS:
            name = op[0]
            ext = os.path.splitext(op[2])[1]
            sharp_ms, ours_ms, http_ms, vips_ms = [], [], [], []
            sharp_bytes = ours_bytes = http_bytes = vips_bytes = 0
            sharp_rss = ours_rss = 0
            key = 1
            for _ in range(args.rounds):
                lines, rss = run_child(["node", SHARP_JS, *op_args(op), str(args.batch + 1)])
                sharp_ms += [l["ms"] for l in lines[1:]]
                sharp_bytes, sharp_rss = lines[-1]["bytes"], max(sharp_rss, rss)
                lines, rss = run_child([PIPELINE, *op_args(op), str(args.batch + 1)])
                ours_ms += [l["ms"] for l in lines[1:]]
                ours_bytes, ours_rss = lines[-1]["bytes"], max(ours_rss, rss)
                _, _, _, w, h, fit, fmt, q, _ = op
                for _ in range(args.batch):
                    key += 1
                    ms, n = http_get(addr, f"/{name}{key}{ext}?w={w}&h={h}&fit={fit}&fmt={fmt}&q={q}")
                    http_ms.append(ms)
                    http_bytes = n
                ms, n = vips_once(op, tmp)
                vips_ms.append(ms)
                vips_bytes = n
            rows.append((op, med(sharp_ms), med(ours_ms), med(http_ms), med(vips_ms), sharp_bytes, ours_bytes, http_bytes,
                         vips_bytes, sharp_rss, ours_rss))
    finally:
        proc.terminate()
        proc.wait()

    print("| op | sharp in-process ms | mediaedge in-process ms | mediaedge HTTP miss ms | HTTP / sharp (target) | vipsthumbnail CLI ms | bytes sharp / ours (Δ) | peak RSS sharp / in-process MB |")
    print("|---|---|---|---|---|---|---|---|")
    for op, s, o, h, v, sb, ob, hb, vb, sr, orss in rows:
        ratio = h / s
        mark = "met" if ratio <= op[8] else "NOT met"
        print(f"| ({op[0]}) {op[1]} | {s:.1f} | {o:.1f} | {h:.1f} | {ratio:.2f} (≤ {op[8]}: {mark}) | {v:.1f} | "
              f"{sb:,} / {hb:,} ({(hb - sb) / sb * 100:+.1f} %) | {sr / 2**20:.0f} / {orss / 2**20:.0f} |")


def throughput(args, tmp):
    """2 workers, each doing n operations; sharp, in-process and HTTP (distinct
    keys: every request a full miss) alternate for --rounds rounds; medians."""
    print(f"\n| 2-worker throughput (median of {args.rounds} alternating rounds) | sharp ops/s | "
          "mediaedge in-process ops/s | mediaedge HTTP ops/s (2 transform workers, 4 clients) | HTTP / sharp (target ≥ 1.4) |")
    print("|---|---|---|---|---|")
    data = os.path.join(tmp, "tput")
    os.makedirs(data, exist_ok=True)
    n = 12
    ops = (OPS[0], OPS[2])
    keys = iter(range(1, 2 * n * args.rounds * len(ops) + 1))
    for i in range(2 * n * args.rounds * len(ops) + 1):
        shutil.copy(PHOTO, os.path.join(data, f"t{i}.jpg"))
    # Two transform workers, fed by four clients so that a client's own gap
    # between requests (Python, on the same 2 cores) never idles a worker.
    config = os.path.join(tmp, "tput.toml")
    with open(config, "w") as f:
        f.write("[transform]\nworkers = 2\n")
    proc, addr = start_server(data, config)
    try:
        http_get(addr, "/t0.jpg?w=16")
        for op in ops:
            _, _, _, w, h, fit, fmt, q, _ = op
            runs = {"sharp": [], "ours": [], "http": []}
            for _ in range(args.rounds):
                runs["sharp"].append(run_child(["node", SHARP_JS, *op_args(op), str(n), "2"])[0][0]["throughput_per_s"])
                runs["ours"].append(run_child([PIPELINE, *op_args(op), str(n), "2"])[0][0]["throughput_per_s"])
                mine = [next(keys) for _ in range(2 * n)]
                t = time.perf_counter()
                workers = [threading.Thread(target=lambda ks: [http_get(addr, f"/t{k}.jpg?w={w}&h={h}&fit={fit}&fmt={fmt}&q={q}") for k in ks],
                                            args=(mine[i::4],)) for i in range(4)]
                for th in workers:
                    th.start()
                for th in workers:
                    th.join()
                runs["http"].append(2 * n / (time.perf_counter() - t))
            sharp_t, ours_t, http_t = (med(runs[k]) for k in ("sharp", "ours", "http"))
            print(f"| ({op[0]}) | {sharp_t:.1f} | {ours_t:.1f} | {http_t:.1f} | {http_t / sharp_t:.2f} |")
    finally:
        proc.terminate()
        proc.wait()


def to_ms(latency):
    """wrk's latency text (`312.00us`, `1.63ms`, `2.01s`) in milliseconds."""
    value, unit = re.match(r"([\d.]+)(\w+)", latency).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def burst(args, tmp, binary=None):
    """Peak RSS (bytes) of the server after 40 concurrent distinct 12 MP transforms."""
    data = os.path.join(tmp, "burst")
    os.makedirs(data, exist_ok=True)
    for i in range(41):
        shutil.copy(PHOTO, os.path.join(data, f"b{i}.jpg"))
    config = os.path.join(tmp, "burst.toml")
    with open(config, "w") as f:
        f.write("[transform]\nqueue = 64\n")
    proc, addr = start_server(data, config, binary)
    try:
        http_get(addr, "/b0.jpg?w=16")
        statuses = []
        threads = [threading.Thread(target=lambda i=i: statuses.append(http_get(addr, f"/b{i}.jpg?w=500&h=700&fmt=webp")))
                   for i in range(1, 41)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        hwm = proc_status_bytes(proc.pid, "VmHWM")
        if binary is None:
            print(f"\nBurst of 40 concurrent distinct 12 MP → 500x700 WebP transforms: {len(statuses)} answered 200, "
                  f"server peak RSS {hwm / 2**20:.0f} MB (target ≤ 256 MB).")
        return hwm
    finally:
        proc.terminate()
        proc.wait()


NGINX_CONF = """worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    open_file_cache max=1000;
    default_type application/octet-stream;
    server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""


def hits(args, tmp):
    data = os.path.join(tmp, "hits")
    os.makedirs(os.path.join(data, "private"), exist_ok=True)
    shutil.copy(PHOTO, os.path.join(data, "p.jpg"))
    shutil.copy(PHOTO, os.path.join(data, "private", "p.jpg"))
    sh([BIN, "keygen", "--out", tmp], stdout=subprocess.DEVNULL)
    config = os.path.join(tmp, "hits.toml")
    with open(config, "w") as f:
        # A jwt route, and room for wrk's 128 connections from one address
        # (the default caps one client address at 100; nginx has no cap).
        f.write(f'[server]\nmax_connections_per_ip = 1000\n[jwt]\npublic_key_file = "{tmp}/public.pem"\n'
                '[[route]]\nprefix = "/private/"\naccess = "jwt"\n')
    token = subprocess.run([BIN, "token", "--key", os.path.join(tmp, "private.pem"), "--sub", "bench"],
                           capture_output=True, text=True, check=True).stdout.strip()
    auth = f"Authorization: Bearer {token}"
    sizes = [("~16 KB", "w=320&h=320&fit=cover&fmt=webp&q=80"), ("~300 KB", "w=1600&h=1200&fit=cover&fmt=jpeg&q=85")]
    proc, addr = start_server(data, config)
    root = os.path.join(tmp, "nginx-root")
    os.makedirs(root, exist_ok=True)
    os.chmod(tmp, 0o755)  # nginx's workers run as an unprivileged user
    port = 20000 + os.getpid() % 20000
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(workers=os.cpu_count(), tmp=tmp, port=port, root=root))
    try:
        for label, q in sizes:
            for path in (f"/p.jpg?{q}", f"/private/p.jpg?{q}"):
                conn = http.client.HTTPConnection(addr)
                conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
                res = conn.getresponse()
                body = res.read()
                assert res.status == 200
            with open(os.path.join(root, f"d{len(body)}"), "wb") as f:
                f.write(body)
            os.chmod(os.path.join(root, f"d{len(body)}"), 0o644)
        nginx = subprocess.Popen(["nginx", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf"), "-g", "daemon off;"])
        time.sleep(0.5)
        print(f"\n| cache hit (wrk {args.wrk_secs} s, median of {args.hit_rounds} alternating rounds) | bytes | conns "
              f"| nginx req/s | mediaedge public req/s (×nginx) | mediaedge jwt req/s (×nginx) | p99 nginx / public / jwt |")
        print("|---|---|---|---|---|---|---|")
        files = sorted(os.listdir(root), key=lambda n: int(n[1:]))
        for (label, q), fname in zip(sizes, files):
            for conns in (1, 16, 128):
                runs = {"ng": [], "pub": [], "jwt": []}
                for _ in range(args.hit_rounds):
                    runs["ng"].append(wrk(f"127.0.0.1:{port}", f"/{fname}", conns, args.wrk_secs))
                    runs["pub"].append(wrk(addr, f"/p.jpg?{q}", conns, args.wrk_secs))
                    runs["jwt"].append(wrk(addr, f"/private/p.jpg?{q}", conns, args.wrk_secs, [auth]))
                ng, pub, jwt = (med([r[0] for r in runs[k]]) for k in ("ng", "pub", "jwt"))
                p99 = " / ".join(f"{med([to_ms(r[2]) for r in runs[k]]):.2f} ms" for k in ("ng", "pub", "jwt"))
                print(f"| {label} | {fname[1:]} | {conns} | {ng:,.0f} | {pub:,.0f} ({pub / ng:.2f}) | "
                      f"{jwt:,.0f} ({jwt / ng:.2f}) | {p99} |")
        nginx.terminate()
        nginx.wait()
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--wrk-secs", type=int, default=10)
    ap.add_argument("--hit-rounds", type=int, default=3)
    ap.add_argument("--only", choices=["misses", "throughput", "burst", "hits"])
    args = ap.parse_args()
    ensure_peers()
    tmp = tempfile.mkdtemp(prefix="mediaedge-peers-")
    print(f"mediaedge vs peers — {platform.node()}, {os.cpu_count()} cores, {platform.machine()}, "
          f"sharp {json.load(open(os.path.join(PEERS, 'node_modules', 'sharp', 'package.json')))['version']}, "
          f"{subprocess.run(['vips', '--version'], capture_output=True, text=True).stdout.strip()}, "
          f"{subprocess.run(['nginx', '-v'], capture_output=True, text=True).stderr.strip()}\n")
    try:
        if args.only in (None, "misses"):
            misses(args, tmp)
        if args.only in (None, "throughput"):
            throughput(args, tmp)
        if args.only in (None, "burst"):
            burst(args, tmp)
        if args.only in (None, "hits"):
            hits(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
