// Decodes placeholders with the formats' reference JavaScript
// implementations (npm `thumbhash` by its author, `blurhash` by Wolt),
// installed by scripts/test.sh under target/test-node.
// Usage: node placeholders.mjs NODE_MODULES_DIR < [{thumbhash, blurhash}]
// Prints, per input: the ThumbHash's decoded size and average RGBA (0..1),
// and the BlurHash's validity and the mean RGB of a 32x32 decode (0..255).
const dir = process.argv[2];
const th = await import(`file://${dir}/thumbhash/thumbhash.js`);
const bh = await import(`file://${dir}/blurhash/dist/index.mjs`);
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map(({ thumbhash, blurhash }) => {
  const hash = Uint8Array.from(Buffer.from(thumbhash, "base64"));
  const image = th.thumbHashToRGBA(hash);
  const avg = th.thumbHashToAverageRGBA(hash);
  const valid = bh.isBlurhashValid(blurhash).result;
  const px = bh.decode(blurhash, 32, 32);
  const mean = [0, 1, 2].map((c) => {
    let s = 0;
    for (let i = c; i < px.length; i += 4) s += px[i];
    return s / (px.length / 4);
  });
  return { thumb: { w: image.w, h: image.h, avg: [avg.r, avg.g, avg.b, avg.a] }, blur: { valid, mean } };
});
console.log(JSON.stringify(out));
