#!/usr/bin/env bash
# Builds fuzz/corpus/<target>/ from the committed text seeds (fuzz/seeds/)
# and, for the image targets, from ../shared/corpus: each photo scaled to
# 2 % in its own format and colour space (EXIF orientation, ICC, CMYK, gray,
# 16-bit, progressive, interlaced, palette, lossless and alpha kept), the
# decompression bomb as it is, and the heads of the originals (what upload
# sniffing reads). Small seeds keep the executions fast; the originals are
# far over the fuzzers' -max_len. Needs `vips` (libvips-tools) and `ffmpeg` (installed if missing).
set -euo pipefail
cd "$(dirname "$0")"
src=../../shared/corpus
[ -d "$src" ] || { echo "missing $src (the test images)" >&2; exit 1; }
command -v vips >/dev/null || { apt-get update -qq && apt-get install -y -qq libvips-tools >/dev/null; }

for t in transform_query conditional object_key token container; do
    mkdir -p corpus/$t
    cp seeds/$t/* corpus/$t/
done

img=corpus/image_decode
mkdir -p $img corpus/upload_sniff
for f in "$src"/*.jpg "$src"/*.png "$src"/*.webp "$src"/*.gif; do
    b=$(basename "$f"); stem=${b%.*}; ext=${b##*.}
    vips resize "$f" "$img/$stem.$ext" 0.02 2>/dev/null || true
    head -c 4096 "$f" > corpus/upload_sniff/head-$b
done
cp "$src"/bomb_20000x20000_1bit.png $img/
# HEIC (HEVC grid as a phone writes it) and AVIF, small, through libheif.
vips resize "$src"/photo_4032x3024_orient6.jpg $img/small-phone.heic 0.05 2>/dev/null || true
vips resize "$src"/rgba_1200x1200.png $img/small-alpha.avif 0.05 2>/dev/null || true
head -c 4096 "$src"/heic_4032x3024_orient6_gps.heic > corpus/upload_sniff/head-phone.heic
head -c 65536 "$src"/truncated_2560x1600.jpg > $img/truncated-head.jpg
vips resize "$src"/progressive_2560x1600.jpg "$img/progressive.jpg[interlace]" 0.02
vips resize "$src"/rgba_1200x1200.png "$img/interlaced.png[interlace]" 0.05
vips resize "$src"/rgba_1200x1200.png "$img/palette.png[palette]" 0.05
vips resize "$src"/rgba_1200x1200.png "$img/lossless.webp[lossless]" 0.05
vips resize "$src"/rgba_1200x1200.png "$img/alpha.webp" 0.05
# Videos (posters and probes through libav): each codec small and short,
# made by ffmpeg from the corpus clip, plus the phone .mov as it is.
command -v ffmpeg >/dev/null || { apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null; }
clip="$src"/video_1280x720_5s.mp4
small() { ffmpeg -v error -y -t 0.4 -i "$clip" -vf scale=64:36 -an "$@"; }
small -c:v libx264 $img/small.mp4
small -c:v libx265 -tag:v hvc1 -x265-params log-level=error $img/small-hevc.mov
small -c:v libvpx-vp9 $img/small.webm
small -c:v libaom-av1 -cpu-used 8 $img/small-av1.mp4
cp "$src"/video_1280x720_rot90_hevc_3s.mov $img/
# The hostile shapes of tests/hostile_files.rs (EXIF pointer bombs in JPEG,
# PNG and WebP, an iCCP bomb, 16-bit gray+alpha, progressive scan bombs).
cp seeds/image_decode/* $img/
vips resize "$src"/rgba_1200x1200.png corpus/upload_sniff/small.avif 0.05 2>/dev/null || true
head -c 4096 "$src"/video_1280x720_5s.mp4 > corpus/upload_sniff/head-video.mp4
cp $img/* corpus/upload_sniff/
printf '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>' > corpus/upload_sniff/x.svg
printf '<!DOCTYPE html><html><script>alert(1)</script></html>' > corpus/upload_sniff/x.html
printf 'GIF89a<script>alert(1)</script>' > corpus/upload_sniff/polyglot.gif
# Container checks: the hand-made seeds (above), the corpus containers whole
# when under run.sh's -max_len (the check reads only headers), and the heads
# of all of them (cut off: refused).
for f in "$src"/*.mp4 "$src"/*.mov "$src"/*.webm "$src"/*.avif "$src"/*.heic; do
    b=$(basename "$f")
    [ "$(stat -c %s "$f")" -le 262144 ] && cp "$f" corpus/container/
    head -c 4096 "$f" > corpus/container/head-$b
done
# Metadata removal: files with EXIF/GPS/XMP/ICC, whole when small, else
# their heads (the metadata is at the front) plus the small derived images.
mkdir -p corpus/scrub
cp "$src"/webp_gps_1600x1067.webp corpus/scrub/
for f in "$src"/photo_4032x3024_orient6.jpg "$src"/photo_4032x3024_orient1.jpg "$src"/png_gps_1200x750.png; do
    head -c 65536 "$f" > corpus/scrub/head-$(basename "$f")
done
cp $img/*.jpg $img/*.png $img/*.webp $img/*.heic $img/*.avif corpus/scrub/ 2>/dev/null || true
cp seeds/scrub/* corpus/scrub/
# MP4/QuickTime rewriting: the corpus movies under -max_len (the phone
# .mov with its location, the moov-last file) and the small ones made above
# (ffmpeg writes those with the index last).
mkdir -p corpus/movie
for f in "$src"/*.mp4 "$src"/*.mov; do
    [ "$(stat -c %s "$f")" -le 262144 ] && cp "$f" corpus/movie/
done
cp $img/small.mp4 $img/small-hevc.mov $img/small-av1.mp4 corpus/movie/
cp seeds/movie/* corpus/movie/
echo "seeded: $(for t in corpus/*; do printf '%s=%s ' "${t#corpus/}" "$(ls "$t" | wc -l)"; done)"
