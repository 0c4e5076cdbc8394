#!/usr/bin/env python3
"""Soak: a steady mix of traffic for --minutes against a release build on
loopback, watching the server's RSS and open file descriptors.

    python3 bench/soak.py [--minutes 5] [--warmup 90] [--screenshot docs/status.png] [--only CLASSES]

The mix, each at a steady rate on its own keep-alive connection:
  public hits    150/s  two warm derivatives (150x150 WebP, 500x700 JPEG)
  private hits    50/s  a derivative on a `jwt` route, bearer token
  range reads     30/s  64 KB windows of an MP4 on the `jwt` route
  originals        2/s  the whole 1.9 MB photo
  misses           2/s  a new variant each time (distinct width 600..2000), 20 originals
  uploads        1/3 s  presign (admin key) then PUT of a 1.2 MB phone photo;
                        a preset makes its thumbnail in the background
Caches are small (memory 8 MB, disk 8 MB) so they fill during warm-up and
evict for the rest of the run. Any 5xx fails the run; so does RSS or fd
growth of 10 % or more between the end of warm-up (median of the one-second
samples in the minute after it) and the end (median of the last minute). Prints Markdown for
docs/RELIABILITY.md; with --screenshot, Chromium photographs the status page
at the end.
"""

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BIN, CORPUS, PHOTO, ROOT, paced, proc_status_bytes, start_server  # noqa: E402

PHONE = os.path.join(CORPUS, "photo_4032x3024_orient6.jpg")
VIDEO = os.path.join(CORPUS, "video_1280x720_5s.mp4")
ADMIN = "soak-admin-key-0123456789"


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_class = {}

    def add(self, cls, status):
        with self.lock:
            d = self.by_class.setdefault(cls, {})
            d[status] = d.get(status, 0) + 1

    def fivexx(self):
        with self.lock:
            return sum(n for d in self.by_class.values() for s, n in d.items() if s >= 500)


class Client:
    def __init__(self, addr):
        self.addr = addr
        self.conn = http.client.HTTPConnection(addr, timeout=30)

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                res = self.conn.getresponse()
                data = res.read()
                return res.status, res.headers, data
            except (http.client.HTTPException, ConnectionError, OSError):
                # A keep-alive connection the server closed (idle deadline): reconnect once.
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.addr, timeout=30)
                if attempt:
                    return 0, {}, b""
        return 0, {}, b""


def proc_figures(pid):
    return proc_status_bytes(pid, "VmRSS"), len(os.listdir(f"/proc/{pid}/fd"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--warmup", type=int, default=90)
    ap.add_argument("--screenshot")
    ap.add_argument("--only", help="comma-separated classes to run (to find what grows)")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)

    tmp = tempfile.mkdtemp(prefix="mediaedge-soak-")
    data = os.path.join(tmp, "data")
    os.makedirs(os.path.join(data, "private"))
    shutil.copy(PHOTO, os.path.join(data, "p.jpg"))
    shutil.copy(PHOTO, os.path.join(data, "private", "p.jpg"))
    shutil.copy(VIDEO, os.path.join(data, "private", "clip.mp4"))
    for i in range(20):
        shutil.copy(PHOTO, os.path.join(data, f"m{i}.jpg"))
    subprocess.run([BIN, "keygen", "--out", tmp], check=True, capture_output=True)
    token = subprocess.run(
        [BIN, "token", "--key", os.path.join(tmp, "private.pem"), "--sub", "soak", "--ttl", "2h"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    config = os.path.join(tmp, "soak.toml")
    with open(config, "w") as f:
        f.write(f"""[server]
metrics_listen = "127.0.0.1:0"
[cache]
memory_mb = 8
disk_path = "{tmp}/cache"
disk_mb = 8
[jwt]
public_key_file = "{tmp}/public.pem"
[[route]]
prefix = "/private/"
access = "jwt"
[[preset]]
name = "thumb"
size = "150x150"
format = "webp"
""")
    env = {"MEDIAEDGE_ADMIN_KEY": ADMIN, "MEDIAEDGE_SIGNING_SECRET": "soak-signing-secret-0123456789"}
    server_log = open(os.path.join(tmp, "server.log"), "w+")
    proc, addr = start_server(data, config, env=env, stderr=server_log)
    # Printed after the listening line: the metrics URL, then the status page's.
    while "status page on" not in (line := proc.stdout.readline()):
        if not line:
            sys.exit("server printed no status page URL")
    status_url = line.strip().rsplit(" ", 1)[-1]
    bearer = {"Authorization": f"Bearer {token}"}
    phone = open(PHONE, "rb").read()
    video_len = os.path.getsize(VIDEO)
    tally, stop = Tally(), threading.Event()
    errors = []

    def check(cls, status, expected):
        tally.add(cls, status)
        if status not in expected and len(errors) < 20:
            errors.append(f"{cls}: HTTP {status}")

    def worker(cls, rate, make):
        client = Client(addr)
        state = {"n": 0}

        def one():
            state["n"] += 1
            make(client, state["n"])
        return threading.Thread(target=paced, args=(rate, stop, one), name=cls, daemon=True)

    def public_hit(c, n):
        q = "w=150&h=150&fmt=webp" if n % 2 else "w=500&h=700&fmt=jpeg"
        check("public hit", c.request("GET", f"/p.jpg?{q}")[0], {200})

    def private_hit(c, n):
        check("private hit", c.request("GET", "/private/p.jpg?w=300&fmt=webp", headers=bearer)[0], {200})

    def range_read(c, n):
        start = random.randrange(0, video_len - 65536)
        h = {**bearer, "Range": f"bytes={start}-{start + 65535}"}
        status, _, body = c.request("GET", "/private/clip.mp4", headers=h)
        check("range read", status, {206})
        if status == 206 and len(body) != 65536:
            errors.append(f"range read: {len(body)} bytes")

    def original(c, n):
        status, _, body = c.request("GET", "/p.jpg")
        check("original", status, {200})

    def miss(c, n):
        status, headers, _ = c.request("GET", f"/m{n % 20}.jpg?w={600 + n % 1400}&fmt=webp")
        check("miss", status, {200})

    def upload(c, n):
        status, _, body = c.request(
            "POST", "/_/uploads", body=json.dumps({"content_type": "image/jpeg"}),
            headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
        )
        check("presign", status, {201})
        if status != 201:
            return
        url = json.loads(body)["url"]
        path = url.split("://", 1)[1].split("/", 1)[1]
        status, _, _ = c.request("PUT", "/" + path, body=phone, headers={"Content-Type": "image/jpeg"})
        check("upload", status, {201})

    # Warm the hit paths first so the hit classes measure hits.
    warm = Client(addr)
    for path, h in (("/p.jpg?w=150&h=150&fmt=webp", {}), ("/p.jpg?w=500&h=700&fmt=jpeg", {}),
                    ("/private/p.jpg?w=300&fmt=webp", bearer)):
        warm.request("GET", path, headers=h)

    threads = [
        worker("public hit", 150, public_hit),
        worker("private hit", 50, private_hit),
        worker("range read", 30, range_read),
        worker("original", 2, original),
        worker("miss", 2, miss),
        worker("upload", 1 / 3, upload),
    ]
    if args.only:
        keep = args.only.split(",")
        threads = [t for t in threads if t.name in keep]
    samples = []  # (seconds, rss, fds)
    started = time.monotonic()
    for t in threads:
        t.start()
    total = args.minutes * 60
    try:
        while (elapsed := time.monotonic() - started) < total:
            rss, fds = proc_figures(proc.pid)
            samples.append((elapsed, rss, fds))
            if proc.poll() is not None:
                sys.exit("the server exited during the soak")
            time.sleep(1)
        stop.set()
        for t in threads:
            t.join(timeout=35)
        rss, fds = proc_figures(proc.pid)
        samples.append((time.monotonic() - started, rss, fds))
        if args.screenshot and shutil.which("chromium"):
            profile = tempfile.mkdtemp()
            subprocess.run(
                ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--window-size=1200,1500", f"--user-data-dir={profile}",
                 f"--screenshot={os.path.abspath(args.screenshot)}", status_url],
                check=True, capture_output=True,
            )
        metrics = http.client.HTTPConnection(addr)
        metrics.request("GET", "/_/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
        metrics_text = metrics.getresponse().read().decode()
    finally:
        stop.set()
        proc.terminate()
        proc.wait()
        server_log.seek(0)
        warnings = [l.rstrip() for l in server_log if " WARN " in l or " ERROR " in l]
        shutil.rmtree(tmp, ignore_errors=True)

    def window(lo, hi, i):
        return statistics.median(s[i] for s in samples if lo <= s[0] < hi)

    # Medians of one-second samples over a minute: a transform in flight
    # holds a decoded photo (~10 MB) for a fraction of a second, a trend
    # (a leak, a fragmenting heap) moves the median.
    base_rss, base_fds = window(args.warmup, args.warmup + 60, 1), window(args.warmup, args.warmup + 60, 2)
    end_rss, end_fds = window(total - 60, total + 60, 1), window(total - 60, total + 60, 2)
    rss_growth = end_rss / base_rss - 1
    fd_growth = end_fds / base_fds - 1
    requests = sum(n for d in tally.by_class.values() for n in d.values())

    print(f"mediaedge soak — {platform.node()}, {os.cpu_count()} cores, {args.minutes:g} min, "
          f"warm-up {args.warmup} s, {requests} requests ({requests / total:.0f}/s)\n")
    print("| class | requests | statuses |")
    print("|---|---|---|")
    for cls, d in tally.by_class.items():
        print(f"| {cls} | {sum(d.values())} | " + ", ".join(f"{s}: {n}" for s, n in sorted(d.items())) + " |")
    print(f"\n| figure | after warm-up | end | growth | max |")
    print("|---|---|---|---|---|")
    print(f"| RSS | {base_rss / 1e6:.1f} MB | {end_rss / 1e6:.1f} MB | {rss_growth * 100:+.1f} % | "
          f"{max(s[1] for s in samples) / 1e6:.1f} MB |")
    print(f"| open fds | {base_fds:.0f} | {end_fds:.0f} | {fd_growth * 100:+.1f} % | {max(s[2] for s in samples)} |")
    print("\nRSS and fds every 30 s: " + ", ".join(
        f"{s[0]:.0f}s {s[1] / 1e6:.0f}MB/{s[2]}" for s in samples if int(s[0]) % 30 == 0))
    for name in ("mediaedge_cache_size_bytes", "mediaedge_disk_cache_errors_total", "mediaedge_transforms_total",
                 "mediaedge_presets_total"):
        lines = [l for l in metrics_text.splitlines() if l.startswith(name)]
        print(f"\n{name}: " + "; ".join(lines))
    print(f"\nserver warnings and errors: {len(warnings)}")
    for line in warnings[:20]:
        print("    " + line)
    failures = []
    if tally.fivexx():
        failures.append(f"{tally.fivexx()} responses were 5xx")
    if errors:
        failures.append("unexpected answers: " + "; ".join(errors[:10]))
    if rss_growth >= 0.10:
        failures.append(f"RSS grew {rss_growth * 100:.1f} %")
    if fd_growth >= 0.10:
        failures.append(f"fds grew {fd_growth * 100:.1f} %")
    if failures:
        sys.exit("SOAK FAILED: " + "; ".join(failures))
    print("\nsoak passed: no 5xx, RSS and fds flat within 10 %")


if __name__ == "__main__":
    main()
