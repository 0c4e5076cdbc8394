//! Test inputs the corpus does not have, built with independent encoders,
//! and pixel comparisons.

use std::io::Write;

use image::{DynamicImage, GenericImageView, RgbImage};

/// A w×h RGB test pattern: horizontal red ramp, vertical green ramp, blue 64.
pub fn pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w.max(2)) as u8, (y * 255 / h.max(2)) as u8, 64])
    })
}

/// An Adam7-interlaced 8-bit RGB PNG. Written by hand: the `png` crate only
/// writes non-interlaced files.
pub fn interlaced_png(img: &RgbImage) -> Vec<u8> {
    const PASSES: [(u32, u32, u32, u32); 7] = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];
    let (w, h) = img.dimensions();
    let mut raw = Vec::new();
    for (x0, y0, dx, dy) in PASSES {
        if x0 >= w || y0 >= h {
            continue;
        }
        for y in (y0..h).step_by(dy as usize) {
            raw.push(0); // filter: none
            for x in (x0..w).step_by(dx as usize) {
                raw.extend_from_slice(&img.get_pixel(x, y).0);
            }
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw).unwrap();
    let idat = z.finish().unwrap();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 1]); // 8-bit, RGB, deflate, adaptive, Adam7
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", &ihdr[..]),
        (b"IDAT", &idat[..]),
        (b"IEND", &[][..]),
    ] {
        png_chunk(&mut out, kind, data);
    }
    out
}

/// An 8-bit palette PNG with four colours in quadrants.
pub fn palette_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0]);
        let mut writer = enc.write_header().unwrap();
        let data: Vec<u8> = (0..h)
            .flat_map(|y| (0..w).map(move |x| ((x * 2 / w) + 2 * (y * 2 / h)) as u8))
            .collect();
        writer.write_image_data(&data).unwrap();
    }
    out
}

/// RGBA pattern whose left half is transparent.
pub fn rgba_half_transparent(w: u32, h: u32) -> image::RgbaImage {
    image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([
            200,
            (y * 255 / h) as u8,
            50,
            if x < w / 2 { 0 } else { 255 },
        ])
    })
}

pub fn webp_lossless_rgba(img: &image::RgbaImage) -> Vec<u8> {
    webp::Encoder::from_rgba(img.as_raw(), img.width(), img.height())
        .encode_lossless()
        .to_vec()
}

pub fn webp_lossy_rgba(img: &image::RgbaImage) -> Vec<u8> {
    webp::Encoder::from_rgba(img.as_raw(), img.width(), img.height())
        .encode(90.0)
        .to_vec()
}

/// A flat-colour JPEG tagged with the Display P3 ICC profile.
pub fn p3_jpeg(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let profile = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    c.set_size(w as usize, h as usize);
    c.set_quality(98.0);
    let mut started = c.start_compress(Vec::new()).unwrap();
    started.write_icc_profile(&profile);
    let data: Vec<u8> = (0..w * h).flat_map(|_| rgb).collect();
    started.write_scanlines(&data).unwrap();
    started.finish().unwrap()
}

/// Display-P3 (gamma-encoded) → sRGB (gamma-encoded), clipped, using the
/// published P3→sRGB matrix (both share the sRGB transfer curve).
pub fn p3_to_srgb(rgb: [u8; 3]) -> [u8; 3] {
    let lin = |v: u8| {
        let c = v as f64 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let enc = |l: f64| {
        let l = l.clamp(0.0, 1.0);
        let c = if l <= 0.0031308 {
            l * 12.92
        } else {
            1.055 * l.powf(1.0 / 2.4) - 0.055
        };
        (c * 255.0).round() as u8
    };
    let [r, g, b] = rgb.map(lin);
    [
        enc(1.224_940 * r - 0.224_940 * g),
        enc(-0.042_057 * r + 1.042_057 * g),
        enc(-0.019_638 * r - 0.078_636 * g + 1.098_274 * b),
    ]
}

/// Mean absolute difference per channel (0..255) after resizing `b` to `a`'s size.
pub fn mean_abs_diff(a: &DynamicImage, b: &DynamicImage) -> f64 {
    let a = a.to_rgb8();
    let b = b
        .resize_exact(a.width(), a.height(), image::imageops::FilterType::Triangle)
        .to_rgb8();
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as i32 - *y as i32).unsigned_abs() as u64)
        .sum();
    total as f64 / a.as_raw().len() as f64
}

/// Average colour of an image.
pub fn mean_rgb(img: &DynamicImage) -> [f64; 3] {
    let rgb = img.to_rgb8();
    let n = (rgb.width() * rgb.height()) as f64;
    let mut sum = [0f64; 3];
    for p in rgb.pixels() {
        for (s, v) in sum.iter_mut().zip(p.0) {
            *s += v as f64;
        }
    }
    sum.map(|s| s / n)
}

/// Centre pixel.
pub fn centre(img: &DynamicImage) -> [u8; 4] {
    img.get_pixel(img.width() / 2, img.height() / 2).0
}

/// A two-frame animated WebP: a red frame, then a blue one.
pub fn animated_webp(w: u32, h: u32) -> Vec<u8> {
    let red: Vec<u8> = (0..w * h).flat_map(|_| [255, 0, 0, 255]).collect();
    let blue: Vec<u8> = (0..w * h).flat_map(|_| [0, 0, 255, 255]).collect();
    let config = webp::WebPConfig::new().unwrap();
    let mut enc = webp::AnimEncoder::new(w, h, &config);
    enc.add_frame(webp::AnimFrame::from_rgba(&red, w, h, 0));
    enc.add_frame(webp::AnimFrame::from_rgba(&blue, w, h, 100));
    enc.encode().to_vec()
}

/// Appends one PNG chunk: length, type, data, CRC.
pub fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}
