//! Input formats the transform pipeline must read, each checked by decoding
//! the output and comparing it with an independent decode of the source.

mod common;

use common::images::{self, mean_abs_diff, mean_rgb};
use common::{Server, corpus_bytes, decode};
use image::{DynamicImage, GenericImageView};
use reqwest::StatusCode;

async fn png_out(s: &Server, key: &str, q: &str) -> DynamicImage {
    let res = s.get(&format!("/{key}?{q}&fmt=png")).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{key}?{q}: {}",
        res.text().await.unwrap()
    );
    decode(&res.bytes().await.unwrap())
}

/// Output close to the source as the `image` crate decodes it.
async fn assert_faithful(s: &Server, key: &str, source: &[u8], w: u32, max_diff: f64) {
    let out = png_out(s, key, &format!("w={w}")).await;
    assert_eq!(out.width(), w, "{key}");
    let reference = decode(source);
    let diff = mean_abs_diff(&out, &reference);
    assert!(diff < max_diff, "{key}: mean difference {diff:.2}");
}

#[tokio::test]
async fn jpeg_baseline_progressive_grayscale() {
    let s = Server::start();
    for file in [
        "photo_4032x3024_orient1.jpg",
        "progressive_2560x1600.jpg",
        "gray_2560x1600.jpg",
    ] {
        s.put_corpus(file, file);
        assert_faithful(&s, file, &corpus_bytes(file), 320, 6.0).await;
    }
}

/// The CMYK file is YCCK with an inverted Adobe marker: a wrong conversion
/// gives a negative or a colour cast, far from what the reference decoder sees.
#[tokio::test]
async fn cmyk_jpeg_comes_out_as_srgb() {
    let s = Server::start();
    let file = "cmyk_2560x1600.jpg";
    s.put_corpus(file, file);
    let out = png_out(&s, file, "w=256").await;
    assert_eq!(out.color(), image::ColorType::Rgb8);
    let reference = decode(&corpus_bytes(file));
    let (ours, theirs) = (mean_rgb(&out), mean_rgb(&reference));
    for c in 0..3 {
        assert!(
            (ours[c] - theirs[c]).abs() < 12.0,
            "channel {c}: ours {ours:?} reference {theirs:?}"
        );
    }
    assert!(mean_abs_diff(&out, &reference) < 15.0);
}

#[tokio::test]
async fn icc_tagged_jpeg_is_converted_to_srgb() {
    let s = Server::start();
    let p3 = [40u8, 180, 90];
    s.put("p3.jpg", &images::p3_jpeg(64, 64, p3));
    let out = png_out(&s, "p3.jpg", "w=32").await;
    let got = out.get_pixel(16, 16).0;
    let want = images::p3_to_srgb(p3);
    for c in 0..3 {
        assert!(
            (got[c] as i32 - want[c] as i32).abs() <= 3,
            "got {got:?}, sRGB of P3 {p3:?} is {want:?}"
        );
    }
    assert!(
        (got[1] as i32 - p3[1] as i32).abs() > 5 || (got[0] as i32 - p3[0] as i32).abs() > 5,
        "profile ignored: {got:?}"
    );
}

#[tokio::test]
async fn png_8_and_16_bit_alpha_palette_interlaced() {
    let s = Server::start();
    s.put_corpus("rgb16_1600x1067.png", "rgb16.png");
    assert_faithful(
        &s,
        "rgb16.png",
        &corpus_bytes("rgb16_1600x1067.png"),
        400,
        4.0,
    )
    .await;

    s.put_corpus("rgba_1200x1200.png", "rgba.png");
    let out = png_out(&s, "rgba.png", "w=300").await;
    assert!(out.color().has_alpha());
    let reference = decode(&corpus_bytes("rgba_1200x1200.png")).resize_exact(
        300,
        300,
        image::imageops::FilterType::Triangle,
    );
    let alpha_diff: f64 = out
        .to_rgba8()
        .pixels()
        .zip(reference.to_rgba8().pixels())
        .map(|(a, b)| (a.0[3] as f64 - b.0[3] as f64).abs())
        .sum::<f64>()
        / (300.0 * 300.0);
    assert!(alpha_diff < 3.0, "alpha kept: {alpha_diff}");
    // Colours under partial transparency match a premultiplied 4x4 box
    // average of the source (a plain average would pull in the colour of the
    // invisible pixels and darken or tint the feathered edge).
    let src = decode(&corpus_bytes("rgba_1200x1200.png")).to_rgba8();
    let out = out.to_rgba8();
    let (mut diff, mut n) = (0.0, 0.0);
    for (x, y, px) in out.enumerate_pixels() {
        let (mut acc, mut alpha) = ([0f64; 3], 0f64);
        for dy in 0..4 {
            for dx in 0..4 {
                let p = src.get_pixel(x * 4 + dx, y * 4 + dy).0;
                let a = p[3] as f64;
                alpha += a;
                for (sum, v) in acc.iter_mut().zip(p) {
                    *sum += v as f64 * a;
                }
            }
        }
        if alpha / 16.0 > 40.0 && alpha / 16.0 < 215.0 && px.0[3] > 40 {
            for (sum, v) in acc.iter().zip(px.0) {
                diff += (sum / alpha - v as f64).abs();
            }
            n += 3.0;
        }
    }
    assert!(n > 300.0, "the corpus file has a feathered edge");
    assert!(
        diff / n < 10.0,
        "semi-transparent colours off by {:.1} on average",
        diff / n
    );

    let pattern = images::pattern(97, 61);
    s.put("interlaced.png", &images::interlaced_png(&pattern));
    let out = png_out(&s, "interlaced.png", "w=97").await;
    assert!(mean_abs_diff(&out, &DynamicImage::ImageRgb8(pattern)) < 1.0);

    s.put("palette.png", &images::palette_png(64, 64));
    let out = png_out(&s, "palette.png", "w=32").await;
    assert_eq!(out.get_pixel(4, 4).0[..3], [255, 0, 0]);
    assert_eq!(out.get_pixel(28, 28).0[..3], [255, 255, 0]);
}

#[tokio::test]
async fn webp_lossy_lossless_alpha() {
    let s = Server::start();
    s.put_corpus("photo_4272x2848.webp", "big.webp");
    assert_faithful(
        &s,
        "big.webp",
        &corpus_bytes("photo_4272x2848.webp"),
        427,
        6.0,
    )
    .await;

    let rgba = images::rgba_half_transparent(80, 40);
    for (key, bytes) in [
        ("lossless.webp", images::webp_lossless_rgba(&rgba)),
        ("lossy-alpha.webp", images::webp_lossy_rgba(&rgba)),
    ] {
        s.put(key, &bytes);
        let out = png_out(&s, key, "w=40").await.to_rgba8();
        assert_eq!(out.dimensions(), (40, 20), "{key}");
        assert!(out.get_pixel(2, 10).0[3] < 10, "{key}: left is transparent");
        assert!(out.get_pixel(37, 10).0[3] > 245, "{key}: right is opaque");
    }
}

/// GIF: the first frame (the corpus animation pans, so frames differ).
#[tokio::test]
async fn gif_first_frame() {
    let s = Server::start();
    let file = "anim_320x240_8f.gif";
    s.put_corpus(file, "anim.gif");
    let out = png_out(&s, "anim.gif", "w=320").await;
    let frames = image::AnimationDecoder::into_frames(
        image::codecs::gif::GifDecoder::new(std::io::Cursor::new(corpus_bytes(file))).unwrap(),
    )
    .collect_frames()
    .unwrap();
    let first = DynamicImage::ImageRgba8(frames[0].buffer().clone());
    let last = DynamicImage::ImageRgba8(frames[frames.len() - 1].buffer().clone());
    let (d_first, d_last) = (mean_abs_diff(&out, &first), mean_abs_diff(&out, &last));
    assert!(
        d_first < 2.0 && d_first < d_last,
        "first {d_first:.2}, last {d_last:.2}"
    );
}

#[tokio::test]
async fn animated_webp_first_frame() {
    let s = Server::start();
    let anim = images::animated_webp(48, 32);
    s.put("anim.webp", &anim);
    let out = png_out(&s, "anim.webp", "w=24").await;
    assert_eq!(out.dimensions(), (24, 16));
    let px = out.get_pixel(12, 8).0;
    assert!(px[0] > 200 && px[2] < 50, "first (red) frame, got {px:?}");
    // Untransformed, the animation is served intact.
    assert_eq!(s.get("/anim.webp").await.bytes().await.unwrap(), anim);
}

/// AVIF (here one the server made) transforms; an image type we do not
/// decode (BMP) is 415 and is still served as it is.
#[tokio::test]
async fn avif_transforms_and_unknown_image_types_are_415() {
    let s = Server::start();
    s.put_corpus("photo_4032x3024_orient1.jpg", "p.jpg");
    let avif = s.get("/p.jpg?w=64&fmt=avif").await.bytes().await.unwrap();
    s.put("a.avif", &avif);
    let res = s.get("/a.avif?w=32&fmt=png").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(decode(&res.bytes().await.unwrap()).width(), 32);
    let mut bmp = b"BM".to_vec();
    bmp.resize(64, 0);
    s.put("b.bmp", &bmp);
    let res = s.get("/b.bmp?w=32").await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(s.get("/b.bmp").await.headers()["content-type"], "image/bmp");
}
