#!/usr/bin/env python3
"""Output quality next to sharp: SSIM of mediaedge's (the miss's and the
background re-encode's) and sharp's outputs
against a reference made from the full-size source (Pillow, Lanczos, the
same centre crop), at the same size and quality setting, so speed is not
bought with quality.

    python3 bench/quality.py

Needs the peers of bench/peers.py (it installs them) and Pillow, NumPy and
scikit-image (installed here into target/test-venv if missing).
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import OPS, PIPELINE, ROOT, SHARP_JS, ensure_peers, op_args  # noqa: E402

VENV_PY = os.path.join(ROOT, "target", "test-venv", "bin", "python")


def in_venv():
    """Re-runs this script with the venv's Python (which has the image libraries)."""
    if os.path.realpath(sys.prefix) == os.path.realpath(os.path.dirname(os.path.dirname(VENV_PY))):
        return
    if not os.path.exists(VENV_PY):
        subprocess.run([sys.executable, "-m", "venv", os.path.join(ROOT, "target", "test-venv")], check=True)
    subprocess.run([VENV_PY, "-m", "pip", "install", "-q", "pillow", "numpy", "scikit-image"], check=True)
    os.execv(VENV_PY, [VENV_PY, *sys.argv])


def main():
    in_venv()
    import numpy as np
    from PIL import Image, ImageOps
    from skimage.metrics import structural_similarity

    ensure_peers()
    tmp = tempfile.mkdtemp(prefix="mediaedge-quality-")
    print("| op | SSIM sharp | SSIM mediaedge | SSIM re-encoded | bytes sharp | bytes mediaedge | bytes re-encoded | re-encoded vs sharp |")
    print("|---|---|---|---|---|---|---|---|")
    for op in OPS:
        name, label, src, w, h, fit, fmt, q, _ = op
        outs = {}
        for who, cmd in (("sharp", ["node", SHARP_JS]), ("ours", [PIPELINE])):
            path = os.path.join(tmp, f"{name}-{who}.{fmt}")
            env = {**os.environ, "BENCH_OUT": path}
            if who == "ours":
                # The background re-encode of the same miss (transform/polish.rs).
                outs["polished"] = os.path.join(tmp, f"{name}-polished.{fmt}")
                env["BENCH_POLISHED_OUT"] = outs["polished"]
            subprocess.run([*cmd, *op_args(op), "1"], check=True, stdout=subprocess.DEVNULL, env=env)
            outs[who] = path
        try:
            source = ImageOps.exif_transpose(Image.open(src)).convert("RGB")
            reference = np.asarray(ImageOps.fit(source, (w, h), Image.LANCZOS, centering=(0.5, 0.5)))
            scores = {}
            for who, path in outs.items():
                img = np.asarray(Image.open(path).convert("RGB"))
                scores[who] = structural_similarity(reference, img, channel_axis=2, data_range=255)
        except Exception as e:  # e.g. a Pillow without AVIF
            print(f"| ({name}) {label} | – | – | – | {os.path.getsize(outs['sharp']):,} | {os.path.getsize(outs['ours']):,} | {os.path.getsize(outs['polished']):,} | ({e})")
            continue
        size = {who: os.path.getsize(path) for who, path in outs.items()}
        print(f"| ({name}) {label} | {scores['sharp']:.4f} | {scores['ours']:.4f} | {scores['polished']:.4f} | "
              f"{size['sharp']:,} | {size['ours']:,} | {size['polished']:,} | "
              f"{size['polished'] / size['sharp'] - 1:+.1%} |")


if __name__ == "__main__":
    main()
