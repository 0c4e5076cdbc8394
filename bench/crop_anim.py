#!/usr/bin/env python3
"""What `g=auto` and animations cost — three measurements, one command,
about a minute:

    python3 bench/crop_anim.py [--rounds 7] [--batch 5] [--anim-batch 8]
                               [--only gravity|anim|rss]
                               [--bin PATH] [--pipeline PATH] [--no-build]

Installs sharp (npm, into target/bench-peers) if missing and builds what
the parts need (`cargo build --release --locked --bin mediaedge --example
pipeline`; skipped for a binary given with --bin / --pipeline, or with
--no-build), then:

* gravity: (a) photo JPEG → 500x700 cover WebP q80 through the in-process
  pipeline (examples/pipeline), centre crop and content-aware crop
  (BENCH_GRAVITY=auto) in alternation, --rounds rounds of one process of
  --batch + 1 iterations each (the first dropped as warm-up; which goes
  first swaps every round); median ms per image, target auto / centre
  ≤ 1.15. Refuses a pipeline built before BENCH_GRAVITY existed (it would
  measure the centre crop twice).
* anim: the corpus' 8-frame 320x240 GIF → 160 px wide animated WebP q80.
  sharp in-process (`sharp(input, {animated: true}).resize(160).webp(…)`,
  bench/sharp.js with BENCH_ANIMATED=1: one node process of
  --anim-batch + 1 iterations, the first dropped) then --anim-batch
  requests to the server (`mediaedge serve --data …`, no config), each on
  a distinct key (a full miss), one at a time over one keep-alive
  connection, for --rounds rounds, as bench/peers.py compares misses;
  target ours / sharp ≤ 0.8. Before timing, both outputs are checked once:
  8 frames (ANMF chunks), each frame's duration and the loop count as the
  GIF has them.
* rss: a 300-frame 320x240 GIF (Pillow in target/test-venv, every frame
  different, loop 0) → 160 px animated WebP through the server on its
  default config: must answer 200 with 300 frames; the server's peak RSS
  (VmHWM), target ≤ 256 MB, and the transform's own growth (peak minus the
  idle server's RSS) against transform.memory_mb (default 512 MB).

Whole-time medians (ms), ratios and PASS/FAIL per target; exits 1 if any
target is missed.
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
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import PEERS, PIPELINE, SHARP_JS, ensure_sharp  # noqa: E402
from run import BIN, CORPUS, PHOTO, ROOT, proc_status_bytes, start_server  # noqa: E402

GIF = os.path.join(CORPUS, "anim_320x240_8f.gif")
GIF_FRAMES = 8
VENV = os.path.join(ROOT, "target", "test-venv")
VENV_PY = os.path.join(VENV, "bin", "python")
MIB = 1 << 20

# (a) of bench/peers.py: photo JPEG → 500x700 cover WebP q80.
GRAVITY_OP = [PHOTO, "500", "700", "cover", "webp", "80"]
GRAVITY_TARGET = 1.15  # auto / centre, median ms per image, at most
ANIM_W, ANIM_Q = 160, 80
ANIM_QUERY = f"w={ANIM_W}&fmt=webp&q={ANIM_Q}"
ANIM_TARGET = 0.8  # mediaedge HTTP miss / sharp in-process, at most
LONG_FRAMES, LONG_SIZE = 300, (320, 240)
RSS_TARGET = 256 * MIB
MEMORY_MB = 512  # transform.memory_mb's default (src/config/transform.rs)

# Run with the venv's Python: a 320x240 GIF of `n` frames, each a different
# window of the corpus photo (a pan) with its number on it, 40/50/60 ms, loop 0.
MAKE_GIF = r"""
import sys
from PIL import Image, ImageDraw
src, n, w, h, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
# One palette for all (quantizing each frame would take a minute): 254
# colours of the picture, then black and white for the label.
base = Image.open(src).convert("RGB").resize((3 * w, 3 * h)).quantize(254, dither=Image.Dither.NONE)
palette = base.getpalette()[:762]
base.putpalette(palette + [0] * (762 - len(palette)) + [0, 0, 0, 255, 255, 255])
frames = []
for i in range(n):
    x, y = (7 * i) % (2 * w), (3 * i) % (2 * h)
    f = base.crop((x, y, x + w, y + h))
    ImageDraw.Draw(f).rectangle((4, 4, 60, 20), fill=255)
    ImageDraw.Draw(f).text((8, 6), str(i), fill=254)
    frames.append(f)
frames[0].save(out, save_all=True, append_images=frames[1:], loop=0,
               duration=[40 + 10 * (i % 3) for i in range(n)])
"""


def shown(path):
    """A path as printed: relative to the repository when inside it."""
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith("..") else rel


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def verdict(ok):
    return "PASS" if ok else "FAIL"


def ensure(args, parts):
    if "anim" in parts:
        ensure_sharp()
    targets = []
    if "gravity" in parts and args.pipeline is None:
        targets += ["--example", "pipeline"]
    if {"anim", "rss"} & parts and args.bin is None:
        targets += ["--bin", "mediaedge"]
    if targets and not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", *targets], cwd=ROOT, check=True)


def json_lines(cmd, env):
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, **env})
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode})")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


# --- reading the files by hand (RIFF chunks, GIF blocks) ---------------------

def webp_animation(data):
    """(canvas (w, h), loop count, [frame durations ms]) of an animated WebP,
    from its top-level VP8X, ANIM and ANMF chunks."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError(f"not a WebP: {data[:16]!r}")
    pos, canvas, loop, durations = 12, None, None, []
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        body = data[pos + 8:pos + 8 + size]
        if tag == b"VP8X":
            canvas = (int.from_bytes(body[4:7], "little") + 1, int.from_bytes(body[7:10], "little") + 1)
        elif tag == b"ANIM":
            loop = int.from_bytes(body[4:6], "little")
        elif tag == b"ANMF":
            durations.append(int.from_bytes(body[12:15], "little"))
        pos += 8 + size + (size & 1)
    return canvas, loop, durations


def gif_animation(data):
    """(loop count as WebP counts it, [frame delays ms as the server plays
    them]) of a GIF: a delay under 20 ms plays as 100 ms; no NETSCAPE block
    plays once, a count N is N + 1 plays, 0 forever."""
    flags, pos = data[10], 13
    if flags & 0x80:
        pos += 3 << ((flags & 7) + 1)
    delays, delay, loop = [], 0, 1

    def sub_blocks(pos):
        blocks = []
        while data[pos]:
            blocks.append(data[pos + 1:pos + 1 + data[pos]])
            pos += 1 + data[pos]
        return blocks, pos + 1

    while pos < len(data) and data[pos] != 0x3B:
        if data[pos] == 0x21:
            label = data[pos + 1]
            blocks, pos = sub_blocks(pos + 2)
            if label == 0xF9:
                delay = int.from_bytes(blocks[0][1:3], "little") * 10
            elif label == 0xFF and blocks and blocks[0] == b"NETSCAPE2.0":
                n = int.from_bytes(blocks[1][1:3], "little")
                loop = 0 if n == 0 else min(n + 1, 65535)
        elif data[pos] == 0x2C:
            flags = data[pos + 9]
            pos += 10
            if flags & 0x80:
                pos += 3 << ((flags & 7) + 1)
            _, pos = sub_blocks(pos + 1)  # after the LZW minimum code size
            delays.append(delay if delay >= 20 else 100)
            delay = 0
        else:
            raise ValueError(f"GIF: unexpected block 0x{data[pos]:02x} at {pos}")
    return loop, delays


def check_animation(who, body, frames, loop, durations, width):
    """Problems with an animated WebP answer (an empty list: none)."""
    try:
        canvas, got_loop, got = webp_animation(body)
    except ValueError as e:
        return [f"{who}: {e}"]
    problems = []
    if len(got) != frames:
        problems.append(f"{who}: {len(got)} frames (ANMF), the source has {frames}")
    if got_loop != loop:
        problems.append(f"{who}: loop count {got_loop}, the source's is {loop}")
    if canvas is None or canvas[0] != width:
        problems.append(f"{who}: canvas {canvas}, asked for {width} px wide")
    if len(got) == len(durations) and got != durations:
        diff = [(i, g, d) for i, (g, d) in enumerate(zip(got, durations)) if g != d]
        problems.append(f"{who}: {len(diff)} frame durations differ from the source's, "
                        f"e.g. (frame, ms, source ms) {diff[:3]}")
    if sum(got) != sum(durations):
        problems.append(f"{who}: plays {sum(got)} ms, the source {sum(durations)} ms")
    return problems


# --- gravity ----------------------------------------------------------------

def gravity(args, tmp):
    pipeline = args.pipeline or PIPELINE
    with open(pipeline, "rb") as f:
        if b"BENCH_GRAVITY" not in f.read():
            sys.exit(f"{pipeline} does not read BENCH_GRAVITY (built before it existed?): it would time the "
                     "centre crop twice; rebuild it (cargo build --release --example pipeline)")
    env = {"centre": {"BENCH_GRAVITY": "centre"}, "auto": {"BENCH_GRAVITY": "auto"}}
    # One run each with the output written out (outside the timed runs: the
    # write is inside the example's clock): does auto place the crop elsewhere?
    outs = {}
    for g in env:
        path = os.path.join(tmp, f"gravity-{g}.webp")
        json_lines([pipeline, *GRAVITY_OP, "1"], {**env[g], "BENCH_OUT": path})
        with open(path, "rb") as f:
            outs[g] = f.read()
    lines = {g: [] for g in env}
    for r in range(args.rounds):
        for g in (("centre", "auto") if r % 2 == 0 else ("auto", "centre")):
            lines[g] += json_lines([pipeline, *GRAVITY_OP, str(args.batch + 1)], env[g])[1:]
    stages = ("ms", "probe", "decode", "resize", "post", "encode")
    m = {g: {s: med([line[s] for line in lines[g]]) for s in stages} for g in env}
    print(f"g=auto cost, in-process ({shown(pipeline)}), (a) photo JPEG 4032x3024 → 500x700 cover "
          f"WebP q80; medians of {len(lines['centre'])} images each, {args.rounds} alternating rounds\n")
    print("| crop | ms per image | probe | decode | resize (with auto's analysis) | post | encode | bytes |")
    print("|---|---|---|---|---|---|---|---|")
    for g in env:
        print(f"| {g} | {m[g]['ms']:.1f} | " + " | ".join(f"{m[g][s]:.1f}" for s in stages[1:]) +
              f" | {len(outs[g]):,} |")
    ratio = m["auto"]["ms"] / m["centre"]["ms"]
    ok = ratio <= GRAVITY_TARGET
    print(f"\ng=auto / centre: {ratio:.3f} ({m['auto']['ms'] - m['centre']['ms']:+.1f} ms per image), "
          f"target ≤ {GRAVITY_TARGET}: {verdict(ok)}")
    if outs["auto"] == outs["centre"]:
        print("note: the auto crop's output is byte-identical to the centre crop's (auto placed it in the centre)")
    return ok


# --- animated GIF → animated WebP vs sharp -------------------------------------

class Client:
    """One keep-alive connection; a 429 (the per-address miss rate) is
    waited out and asked again, outside the timed request."""

    def __init__(self, addr):
        self.addr, self.conn, self.throttled = addr, None, 0

    def get(self, path):
        while True:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.addr, timeout=120)
            t = time.perf_counter()
            try:
                self.conn.request("GET", path)
                res = self.conn.getresponse()
                body = res.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                raise
            ms = (time.perf_counter() - t) * 1000
            if res.status == 429:
                self.throttled += 1
                time.sleep(float(res.getheader("retry-after") or 1))
                continue
            return res.status, res.getheader("x-cache"), body, ms


def sharp_cmd(iters):
    return ["node", SHARP_JS, GIF, str(ANIM_W), "0", "cover", "webp", str(ANIM_Q), str(iters)]


def anim(args, tmp):
    with open(GIF, "rb") as f:
        loop, durations = gif_animation(f.read())
    assert len(durations) == GIF_FRAMES, durations
    data = os.path.join(tmp, "anim")
    os.makedirs(data)
    keys = args.rounds * args.anim_batch + 1
    for i in range(keys):
        shutil.copy(GIF, os.path.join(data, f"a{i}.gif"))
    proc, addr = start_server(data, binary=args.bin)
    sharp, ours, problems = [], [], []
    try:
        client = Client(addr)
        # The first request pays for start-up; it is also the one checked.
        status, cache, body, _ = client.get(f"/a0.gif?{ANIM_QUERY}")
        if status != 200:
            sys.exit(f"/a0.gif?{ANIM_QUERY}: HTTP {status} {body[:200]!r}")
        problems += check_animation("mediaedge", body, GIF_FRAMES, loop, durations, ANIM_W)
        ours_bytes = len(body)
        out = os.path.join(tmp, "sharp.webp")
        json_lines(sharp_cmd(1), {"BENCH_ANIMATED": "1", "BENCH_OUT": out})
        with open(out, "rb") as f:
            problems += check_animation("sharp", f.read(), GIF_FRAMES, loop, durations, ANIM_W)
        sharp_bytes = os.path.getsize(out)
        key = 1
        for _ in range(args.rounds):
            sharp += [line["ms"] for line in json_lines(sharp_cmd(args.anim_batch + 1), {"BENCH_ANIMATED": "1"})[1:]]
            for _ in range(args.anim_batch):
                status, cache, body, ms = client.get(f"/a{key}.gif?{ANIM_QUERY}")
                if status != 200 or cache != "MISS":
                    sys.exit(f"/a{key}.gif?{ANIM_QUERY}: HTTP {status}, x-cache {cache}: {body[:200]!r}")
                ours.append(ms)
                key += 1
    finally:
        proc.terminate()
        proc.wait()
    o, s = med(ours), med(sharp)
    ratio = o / s
    ok = ratio <= ANIM_TARGET and not problems
    print(f"\nanimated GIF 320x240, {GIF_FRAMES} frames → {ANIM_W} px wide animated WebP q{ANIM_Q}, server "
          f"{shown(args.bin)} (no config); medians of "
          f"{len(ours)} misses / {len(sharp)} sharp ops, {args.rounds} alternating rounds\n")
    print("| | ms per op | bytes |")
    print("|---|---|---|")
    print(f"| sharp in-process (animated: true) | {s:.1f} | {sharp_bytes:,} |")
    print(f"| mediaedge HTTP miss (distinct keys, keep-alive) | {o:.1f} | {ours_bytes:,} |")
    print(f"\nmediaedge / sharp: {ratio:.2f}, target ≤ {ANIM_TARGET}: {verdict(ok)}"
          + (" (the outputs are not the same animation: see below)" if problems else ""))
    if client.throttled:
        print(f"note: {client.throttled} requests answered 429 (transform.miss_rate_per_ip) and were asked again")
    print(f"output check ({GIF_FRAMES} frames, durations {durations} ms, loop {loop}): "
          + ("both as the source" if not problems else "PROBLEMS: " + "; ".join(problems)))
    return ok


# --- peak RSS on a 300-frame GIF ------------------------------------------------

def make_long_gif(path):
    if not os.path.exists(VENV_PY):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    if subprocess.run([VENV_PY, "-c", "import PIL"], capture_output=True).returncode != 0:
        subprocess.run([VENV_PY, "-m", "pip", "install", "-q", "pillow"], check=True)
    subprocess.run([VENV_PY, "-c", MAKE_GIF, PHOTO, str(LONG_FRAMES), *map(str, LONG_SIZE), path], check=True)


def rss(args, tmp):
    data = os.path.join(tmp, "rss")
    os.makedirs(data)
    src = os.path.join(data, "long.gif")
    t = time.perf_counter()
    make_long_gif(src)
    made_s = time.perf_counter() - t
    with open(src, "rb") as f:
        loop, durations = gif_animation(f.read())
    assert len(durations) == LONG_FRAMES, len(durations)
    proc, addr = start_server(data, binary=args.bin)
    try:
        time.sleep(0.3)
        idle = proc_status_bytes(proc.pid, "VmRSS")
        status, cache, body, ms = Client(addr).get(f"/long.gif?{ANIM_QUERY}")
        peak = proc_status_bytes(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait()
    problems = [f"HTTP {status}: {body[:200]!r}"] if status != 200 else \
        check_animation("mediaedge", body, LONG_FRAMES, loop, durations, ANIM_W)
    frames = len(webp_animation(body)[2]) if status == 200 else 0
    grew = peak - idle
    all_frames = LONG_FRAMES * LONG_SIZE[0] * LONG_SIZE[1] * 4
    rss_ok, budget_ok = peak <= RSS_TARGET, grew <= MEMORY_MB * MIB
    print(f"\n{LONG_FRAMES}-frame {LONG_SIZE[0]}x{LONG_SIZE[1]} GIF ({os.path.getsize(src) / MIB:.1f} MB, made in "
          f"{made_s:.0f} s) → {ANIM_W} px animated WebP, server {shown(args.bin)} (no config): HTTP {status} in {ms:.0f} ms, "
          f"{len(body):,} bytes, {frames} frames (ANMF)\n")
    print("| | MB | target | |")
    print("|---|---|---|---|")
    print(f"| server peak RSS (VmHWM) | {peak / MIB:.0f} | ≤ {RSS_TARGET // MIB} | {verdict(rss_ok)} |")
    print(f"| the transform's growth (peak − idle server's {idle / MIB:.0f} MB) | {grew / MIB:.0f} | "
          f"≤ transform.memory_mb {MEMORY_MB} | {verdict(budget_ok)} |")
    print(f"\n(all {LONG_FRAMES} frames decoded at once would be {all_frames / MIB:.0f} MB)")
    print("output check: " + ("200, all frames, durations and loop as the source" if not problems
                              else "PROBLEMS: " + "; ".join(problems)))
    return rss_ok and budget_ok and not problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds (gravity, anim)")
    ap.add_argument("--batch", type=int, default=5, help="timed images per pipeline process (gravity)")
    ap.add_argument("--anim-batch", type=int, default=8, help="sharp ops and server misses per round (anim)")
    ap.add_argument("--only", choices=["gravity", "anim", "rss"], help="run one part")
    ap.add_argument("--bin", help="the server binary (default: the release build; not built then)")
    ap.add_argument("--pipeline", help="the pipeline example (default: the release build; not built then)")
    ap.add_argument("--no-build", action="store_true", help="use the release builds as they are")
    args = ap.parse_args()
    parts = {args.only} if args.only else {"gravity", "anim", "rss"}
    ensure(args, parts)
    args.bin = os.path.abspath(args.bin or BIN)
    started = time.monotonic()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "?"
    sharp_version = "?"
    if os.path.exists(os.path.join(PEERS, "node_modules", "sharp", "package.json")):
        with open(os.path.join(PEERS, "node_modules", "sharp", "package.json")) as f:
            sharp_version = json.load(f)["version"]
    print(f"crop and animation costs — commit {commit}, {platform.node()}, {os.cpu_count()} cores, "
          f"{platform.machine()}, sharp {sharp_version}\n")
    ok = True
    with tempfile.TemporaryDirectory(prefix="mediaedge-crop-anim-") as tmp:
        if "gravity" in parts:
            ok &= gravity(args, tmp)
        if "anim" in parts:
            ok &= anim(args, tmp)
        if "rss" in parts:
            ok &= rss(args, tmp)
    print(f"\n{time.monotonic() - started:.0f} s: {'all targets met' if ok else 'a target is missed'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
