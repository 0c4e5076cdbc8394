// sharp (libvips) in-process, the peer of examples/pipeline.rs:
//   node bench/sharp.js FILE W H FIT FMT Q ITERS [WORKERS]
// One JSON line per iteration (ms, bytes), or one throughput line with
// WORKERS pipelines running at once (sharp.concurrency(1) each).
// BENCH_ANIMATED=1 opens FILE with {animated: true} (every frame of a GIF
// or WebP; FMT webp keeps it animated), for bench/crop_anim.py.
const path = require('path');
const sharp = require(process.env.SHARP_MODULE || path.join(__dirname, '..', 'target', 'bench-peers', 'node_modules', 'sharp'));
const fs = require('fs');

const [file, w, h, fit, fmt, q, iters, workers] = process.argv.slice(2);
sharp.cache(false);
sharp.concurrency(1);
const input = fs.readFileSync(file);
const open = process.env.BENCH_ANIMATED === '1' ? { animated: true } : {};

function op() {
  let p = sharp(input, open).resize(+w || null, +h || null, { fit: fit === 'inside' ? 'inside' : fit === 'fill' ? 'fill' : 'cover' });
  const quality = +q;
  if (fmt === 'webp') p = p.webp({ quality });
  else if (fmt === 'avif') p = p.avif({ quality });
  else if (fmt === 'png') p = p.png();
  else p = p.jpeg({ quality });
  return p.toBuffer();
}

(async () => {
  const n = +iters;
  const k = +(workers || 1);
  if (k === 1) {
    for (let i = 0; i < n; i++) {
      const t = process.hrtime.bigint();
      const out = await op();
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (process.env.BENCH_OUT) fs.writeFileSync(process.env.BENCH_OUT, out);
      console.log(JSON.stringify({ ms, bytes: out.length }));
    }
    return;
  }
  const t = process.hrtime.bigint();
  await Promise.all(Array.from({ length: k }, async () => { for (let i = 0; i < n; i++) await op(); }));
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  console.log(JSON.stringify({ throughput_per_s: (k * n) / s }));
})();
