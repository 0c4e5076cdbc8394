//! Crafted files of the shapes an outside review used against the server:
//! small on disk, expensive to decode. Built here (never stored), each the
//! smallest valid file of its kind around the trick.

use std::io::Write;

use super::images::png_chunk as chunk;

/// A TIFF (EXIF) block whose IFD0 holds Orientation = `orientation` and
/// `n` ExifIFDPointers all aimed at one Exif IFD of `n` InteropIFDPointers
/// all aimed at one Interop IFD of `n` entries: a reader that follows every
/// pointer does n × n × n work. `n = 500` is about 18 KB.
pub fn exif_pointer_bomb(n: u16, orientation: u16) -> Vec<u8> {
    let ifd_len = |entries: u32| 2 + 12 * entries + 4;
    let ifd0 = 8u32;
    let exif_ifd = ifd0 + ifd_len(n as u32 + 1);
    let interop_ifd = exif_ifd + ifd_len(n as u32);
    let mut t = b"II".to_vec();
    t.extend_from_slice(&42u16.to_le_bytes());
    t.extend_from_slice(&ifd0.to_le_bytes());
    let mut ifd = |entries: &[(u16, u16, u32, u32)]| {
        t.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, ty, count, value) in entries {
            t.extend_from_slice(&tag.to_le_bytes());
            t.extend_from_slice(&ty.to_le_bytes());
            t.extend_from_slice(&count.to_le_bytes());
            t.extend_from_slice(&value.to_le_bytes());
        }
        t.extend_from_slice(&0u32.to_le_bytes());
    };
    let mut first = vec![(0x0112u16, 3u16, 1u32, orientation as u32)];
    first.extend((0..n).map(|_| (0x8769, 4, 1, exif_ifd)));
    ifd(&first);
    ifd(&(0..n)
        .map(|_| (0xa005, 4, 1, interop_ifd))
        .collect::<Vec<_>>());
    ifd(&(0..n)
        .map(|_| (0x0001, 2, 4, 0x0030_3130))
        .collect::<Vec<_>>());
    t
}

/// A small baseline JPEG with `exif` as its APP1 segment.
pub fn jpeg_with_exif(w: u32, h: u32, exif: &[u8]) -> Vec<u8> {
    let plain = super::images::pattern(w, h);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
        .encode_image(&plain)
        .unwrap();
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(exif);
    assert!(
        app1.len() + 2 <= 0xFFFF,
        "EXIF larger than one APP1 segment"
    );
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Inserts `chunk` right after IHDR of `png`.
fn png_insert(png: &[u8], kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let ihdr_end = 8 + 8 + 13 + 4;
    let mut out = png[..ihdr_end].to_vec();
    chunk(&mut out, kind, data);
    out.extend_from_slice(&png[ihdr_end..]);
    out
}

fn small_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    super::images::pattern(w, h)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A small PNG with `exif` as its `eXIf` chunk.
pub fn png_with_exif(w: u32, h: u32, exif: &[u8]) -> Vec<u8> {
    png_insert(&small_png(w, h), b"eXIf", exif)
}

/// An 8x8 PNG whose `iCCP` profile is `inflated` bytes of zeros, deflated
/// (about a thousand to one: 256 MiB in ~255 KB).
pub fn png_iccp_bomb(inflated: usize) -> Vec<u8> {
    let mut data = b"bomb\0\0".to_vec(); // name, NUL, compression method 0
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    let mut left = inflated;
    while left > 0 {
        let n = left.min(zeros.len());
        z.write_all(&zeros[..n]).unwrap();
        left -= n;
    }
    data.extend_from_slice(&z.finish().unwrap());
    png_insert(&small_png(8, 8), b"iCCP", &data)
}

/// A `w`x`h` 16-bit gray+alpha PNG, every sample zero: ~4 bytes a pixel
/// decoded (8 widened to RGBA16), about a thousandth of that on disk.
pub fn png_gray_alpha16(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::GrayscaleAlpha);
        enc.set_depth(png::BitDepth::Sixteen);
        enc.set_compression(png::Compression::High);
        let mut header = enc.write_header().unwrap();
        let mut writer = header.stream_writer().unwrap();
        let row = vec![0u8; w as usize * 4];
        for _ in 0..h {
            writer.write_all(&row).unwrap();
        }
        writer.finish().unwrap();
        header.finish().unwrap();
    }
    out
}

/// A lossless WebP (VP8X) carrying `exif` as its `EXIF` chunk.
pub fn webp_with_exif(w: u32, h: u32, exif: &[u8]) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(w, h, image::Rgba([10, 200, 30, 255]));
    let simple = super::images::webp_lossless_rgba(&img);
    assert_eq!(&simple[12..16], b"VP8L");
    let image_chunk = &simple[12..];
    let mut vp8x = vec![0x08, 0, 0, 0]; // flags: EXIF
    vp8x.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
    let mut body = b"WEBP".to_vec();
    for (kind, data) in [(b"VP8X", &vp8x[..]), (b"EXIF", exif)] {
        body.extend_from_slice(kind);
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        if data.len() % 2 == 1 {
            body.push(0);
        }
    }
    // VP8X, then the image, then EXIF, as the container spec orders them.
    let exif_at = 4 + 8 + vp8x.len();
    let mut ordered = body[..exif_at].to_vec();
    ordered.extend_from_slice(image_chunk);
    ordered.extend_from_slice(&body[exif_at..]);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(ordered.len() as u32).to_le_bytes());
    out.extend_from_slice(&ordered);
    out
}

/// Writes JPEG entropy-coded bits, stuffing a zero after every 0xFF.
struct Bits {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl Bits {
    fn new() -> Self {
        Self {
            out: Vec::new(),
            acc: 0,
            n: 0,
        }
    }

    fn put(&mut self, value: u32, len: u32) {
        for i in (0..len).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1);
            self.n += 1;
            if self.n == 8 {
                self.byte(self.acc as u8);
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    fn byte(&mut self, b: u8) {
        self.out.push(b);
        if b == 0xFF {
            self.out.push(0);
        }
    }

    /// Pads the last byte with 1-bits.
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            let pad = 8 - self.n;
            self.put((1 << pad) - 1, pad);
        }
        self.out
    }
}

fn segment(out: &mut Vec<u8>, marker: u8, data: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((data.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// A `w`x`h` grayscale progressive JPEG (mid-grey): one DC scan, then
/// `ac_scans` identical AC scans that code nothing but end-of-band runs.
/// Each scan is a pass over every block for the decoder and a few dozen
/// bytes in the file: 8192x8192 with 300 scans is about 150 KB.
pub fn progressive_scan_bomb(w: u16, h: u16, ac_scans: u32) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    let mut dqt = vec![0u8];
    dqt.extend_from_slice(&[1u8; 64]);
    segment(&mut out, 0xDB, &dqt);
    let [wh, wl] = w.to_be_bytes();
    let [hh, hl] = h.to_be_bytes();
    segment(&mut out, 0xC2, &[8, hh, hl, wh, wl, 1, 1, 0x11, 0]);
    // DC table 0: one 1-bit code, category 0 (difference 0).
    let mut dht = vec![0x00, 1];
    dht.extend_from_slice(&[0u8; 15]);
    dht.push(0x00);
    segment(&mut out, 0xC4, &dht);
    // AC table 0: three 2-bit codes: EOB (00, one block), EOB5 (01, 32 +
    // 5 bits) and EOB14 (10, 16384 + 14 bits: up to 32767 blocks).
    let mut dht = vec![0x10, 0, 3];
    dht.extend_from_slice(&[0u8; 14]);
    dht.extend_from_slice(&[0x00, 0x50, 0xE0]);
    segment(&mut out, 0xC4, &dht);
    let blocks = (w as u32).div_ceil(8) * (h as u32).div_ceil(8);
    // DC scan: a zero difference for every block.
    segment(&mut out, 0xDA, &[1, 1, 0x00, 0, 0, 0x00]);
    let mut dc = Bits::new();
    for _ in 0..blocks {
        dc.put(0, 1);
    }
    out.extend_from_slice(&dc.finish());
    // AC scans: end-of-band runs over every block.
    let mut ac = Bits::new();
    let mut left = blocks;
    while left >= 32767 {
        ac.put(0b10, 2);
        ac.put(32767 - 16384, 14);
        left -= 32767;
    }
    while left >= 32 {
        ac.put(0b01, 2);
        ac.put(0, 5);
        left -= 32;
    }
    for _ in 0..left {
        ac.put(0b00, 2);
    }
    let ac = ac.finish();
    for _ in 0..ac_scans {
        segment(&mut out, 0xDA, &[1, 1, 0x00, 1, 63, 0x00]);
        out.extend_from_slice(&ac);
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// CPU time (user + system) the process `pid` has used, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}
