//! SPEC "Delivery": "An animated GIF or WebP stays animated in a WebP
//! derivative (every frame resized, timing and looping kept) unless
//! `anim=false`; other output formats get the first frame. Frames times
//! pixels are bounded (`transform.max_frames`, ...): over the limit answers
//! 422", the `anim` row of the parameter table, and `fmt=json`'s `"frames"`.
//! Answers are read without the server's code: the RIFF chunks by hand
//! (`ANIM` loop count, `ANMF` count and durations), the composed frames by
//! the `image` crate, GIF inputs made here with the `gif` crate's encoder.

mod common;

use common::animation::{
    cell_mismatches, disposal_gif, gif_frames, resized, webp_animation, webp_frames,
};
use common::images::mean_abs_diff;
use common::{Server, corpus_bytes, decode, format_of};
use image::{DynamicImage, GenericImageView, ImageFormat};
use reqwest::StatusCode;

const GIF: &str = "anim_320x240_8f.gif";
const WEBP: &str = "anim_480x300_6f.webp";

async fn ok(
    s: &Server,
    q: &str,
    headers: &[(&str, &str)],
) -> (reqwest::header::HeaderMap, Vec<u8>) {
    s.get_ok_with(q, headers).await
}

/// Each answer frame is the matching source frame resized: closest to it,
/// not to its neighbours (both corpus animations pan, so frames differ).
fn assert_frames_follow_the_source(
    what: &str,
    out: &[(image::RgbaImage, u32)],
    source: &[(image::RgbaImage, u32)],
) {
    assert_eq!(out.len(), source.len(), "{what}: frame count");
    for (i, (frame, _)) in out.iter().enumerate() {
        let frame = DynamicImage::ImageRgba8(frame.clone());
        let (w, h) = frame.dimensions();
        let diff = |j: usize| mean_abs_diff(&frame, &resized(&source[j].0, w, h));
        let own = diff(i);
        assert!(
            own < 8.0,
            "{what}: frame {i} differs from its source by {own:.1}"
        );
        for j in [i.wrapping_sub(1), i + 1] {
            if j < source.len() {
                let other = diff(j);
                assert!(
                    own < other,
                    "{what}: frame {i} is closer to source frame {j} ({other:.1}) than to its own ({own:.1})"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_animated_webp_stays_animated_with_its_timing_and_loop() {
    let s = Server::start();
    s.put_corpus(WEBP, "a.webp");
    let source = webp_frames(&corpus_bytes(WEBP));
    let durations: Vec<u32> = source.iter().map(|f| f.1).collect();
    assert_eq!(durations, [100, 150, 200, 250, 300, 350], "corpus file");

    let (h, body) = ok(&s, "/a.webp?w=240&fmt=webp", &[]).await;
    assert_eq!(h["content-type"], "image/webp");
    assert_eq!(h["x-cache"], "MISS");
    let anim = webp_animation(&body).expect("an animated WebP");
    assert_eq!(anim.canvas, (240, 150));
    assert_eq!(anim.loop_count, 0, "loops forever, as the source");
    assert_eq!(anim.durations_ms, durations);
    let frames = webp_frames(&body);
    for (i, (f, delay)) in frames.iter().enumerate() {
        assert_eq!(f.dimensions(), (240, 150), "frame {i}");
        assert_eq!(*delay, durations[i], "frame {i}");
    }
    assert_frames_follow_the_source("w=240", &frames, &source);
    let (h, again) = ok(&s, "/a.webp?w=240&fmt=webp", &[]).await;
    assert_eq!(h["x-cache"], "HIT");
    assert_eq!(again, body);

    // A cover crop: every frame cropped to the box.
    let (_, body) = ok(&s, "/a.webp?w=150&h=150&fmt=webp", &[]).await;
    let anim = webp_animation(&body).expect("an animated WebP");
    assert_eq!((anim.canvas, anim.durations_ms.len()), ((150, 150), 6));
    assert!(
        webp_frames(&body)
            .iter()
            .all(|(f, _)| f.dimensions() == (150, 150))
    );

    // Negotiated WebP animates too.
    let (h, body) = ok(
        &s,
        "/a.webp?w=240",
        &[("accept", "image/avif,image/webp,*/*")],
    )
    .await;
    assert_eq!(h["content-type"], "image/webp");
    assert_eq!(h["vary"], "Accept");
    assert_eq!(
        webp_animation(&body).expect("animated").durations_ms,
        durations
    );
}

#[tokio::test]
async fn an_animated_gif_becomes_an_animated_webp() {
    let s = Server::start();
    s.put_corpus(GIF, "a.gif");
    let source = gif_frames(&corpus_bytes(GIF));
    assert_eq!(source.len(), 8, "corpus file");
    assert!(
        source.iter().all(|f| f.1 == 150),
        "corpus file: 150 ms frames"
    );

    let (h, body) = ok(&s, "/a.gif?w=160&fmt=webp", &[]).await;
    assert_eq!(h["content-type"], "image/webp");
    let anim = webp_animation(&body).expect("an animated WebP");
    assert_eq!(anim.canvas, (160, 120));
    assert_eq!(anim.loop_count, 0, "NETSCAPE2.0 loop 0 is forever");
    assert_eq!(anim.durations_ms, [150; 8]);
    let frames = webp_frames(&body);
    assert!(
        frames
            .iter()
            .all(|(f, d)| f.dimensions() == (160, 120) && *d == 150)
    );
    assert_frames_follow_the_source("gif w=160", &frames, &source);

    // fmt=auto: WebP (animated) for a browser that takes it, a still JPEG
    // (or PNG) for one that does not.
    let (h, body) = ok(&s, "/a.gif?w=160", &[("accept", "image/webp,*/*")]).await;
    assert_eq!(h["content-type"], "image/webp");
    assert_eq!(
        webp_animation(&body).expect("animated").durations_ms.len(),
        8
    );
    let (h, body) = ok(&s, "/a.gif?w=160", &[("accept", "image/jpeg,*/*;q=0.5")]).await;
    assert!(
        matches!(format_of(&body), ImageFormat::Jpeg | ImageFormat::Png),
        "{:?}",
        h["content-type"]
    );
    let first = resized(&source[0].0, 160, 120);
    let d = mean_abs_diff(&decode(&body), &first);
    assert!(d < 8.0, "the JPEG is the first frame: {d:.1}");
}

/// Disposal (Background, Previous, Keep), partial frame rectangles and
/// transparency are composed as a browser shows the GIF, frame by frame.
#[tokio::test]
async fn gif_disposal_partial_frames_and_transparency_are_composed() {
    let (gif, composed) = disposal_gif(40, Some(gif::Repeat::Infinite));
    // The fixture is what we think it is: `image` composes it the same way.
    let reference = gif_frames(&gif);
    assert_eq!(reference.len(), 4);
    for (i, (f, delay)) in reference.iter().enumerate() {
        assert_eq!(*delay, 100 * (i as u32 + 1), "fixture frame {i}");
        let bad = cell_mismatches(f, &composed[i], 0);
        assert!(bad.is_empty(), "fixture frame {i}: {bad:?}");
    }

    let s = Server::start();
    s.put("d.gif", &gif);
    let (_, body) = ok(&s, "/d.gif?w=80&fmt=webp", &[]).await;
    let anim = webp_animation(&body).expect("an animated WebP");
    assert_eq!(anim.canvas, (80, 60));
    assert_eq!(anim.loop_count, 0);
    assert_eq!(anim.durations_ms, [100, 200, 300, 400]);
    let frames = webp_frames(&body);
    assert_eq!(frames.len(), 4);
    let mut bad = Vec::new();
    for (i, (f, _)) in frames.iter().enumerate() {
        assert_eq!(f.dimensions(), (80, 60));
        bad.extend(
            cell_mismatches(f, &composed[i], 48)
                .into_iter()
                .map(|m| format!("frame {i}: {m}")),
        );
    }
    assert!(bad.is_empty(), "{bad:#?}");

    // The still formats get frame 0, transparency kept where it can be.
    let (_, body) = ok(&s, "/d.gif?w=80&fmt=png", &[]).await;
    let still = decode(&body).to_rgba8();
    assert_eq!(still.dimensions(), (80, 60));
    let bad = cell_mismatches(&still, &composed[0], 8);
    assert!(bad.is_empty(), "png: {bad:?}");

    // fmt=json counts the frames.
    let res = s.get("/d.gif?fmt=json").await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (
            v["frames"].as_u64(),
            v["width"].as_u64(),
            v["height"].as_u64()
        ),
        (Some(4), Some(160), Some(120)),
        "{v}"
    );
}

/// A GIF without a NETSCAPE2.0 extension plays once: a WebP loop count of
/// 1, not 0 (forever).
#[tokio::test]
async fn a_gif_without_a_loop_extension_plays_once() {
    let s = Server::start();
    let (once, _) = disposal_gif(16, None);
    assert!(
        !once.windows(11).any(|w| w == b"NETSCAPE2.0"),
        "fixture has no loop extension"
    );
    s.put("once.gif", &once);
    let (forever, _) = disposal_gif(16, Some(gif::Repeat::Infinite));
    s.put("forever.gif", &forever);
    for (key, loops) in [("once.gif", 1), ("forever.gif", 0)] {
        let (_, body) = ok(&s, &format!("/{key}?w=32&fmt=webp"), &[]).await;
        let anim = webp_animation(&body).expect("an animated WebP");
        assert_eq!(anim.loop_count, loops, "{key}");
        assert_eq!(anim.durations_ms, [100, 200, 300, 400], "{key}");
    }
}

/// `anim=false` and the formats that cannot animate give the first frame;
/// `anim=false` and `anim=true` are different answers (not one cache entry).
#[tokio::test]
async fn anim_false_and_still_formats_give_the_first_frame() {
    let s = Server::start();
    s.put_corpus(WEBP, "a.webp");
    s.put_corpus(GIF, "a.gif");
    for (key, file, w, h) in [("a.webp", WEBP, 240, 150), ("a.gif", GIF, 160, 120)] {
        let source = if file.ends_with(".gif") {
            gif_frames(&corpus_bytes(file))
        } else {
            webp_frames(&corpus_bytes(file))
        };
        let first = resized(&source[0].0, w, h);
        let second = resized(&source[1].0, w, h);
        // Animated first, so a cache that ignored `anim` would hand it back.
        let (_, animated) = ok(&s, &format!("/{key}?w={w}&fmt=webp"), &[]).await;
        assert!(webp_animation(&animated).is_some(), "{key}");
        for q in [
            "fmt=webp&anim=false",
            "fmt=png",
            "fmt=jpeg",
            "fmt=png&anim=true",
        ] {
            let (_, body) = ok(&s, &format!("/{key}?w={w}&{q}"), &[]).await;
            if q.contains("webp") {
                assert_eq!(format_of(&body), ImageFormat::WebP, "{key}?{q}");
                assert!(webp_animation(&body).is_none(), "{key}?{q}: a still WebP");
            }
            let out = decode(&body);
            assert_eq!(out.dimensions(), (w, h), "{key}?{q}");
            let (d0, d1) = (mean_abs_diff(&out, &first), mean_abs_diff(&out, &second));
            assert!(
                d0 < 8.0 && d0 < d1,
                "{key}?{q}: first frame {d0:.1}, second {d1:.1}"
            );
        }
        // AVIF: a still image (brand avif, not the image sequence's avis),
        // and it is the first frame (read back through the server).
        let (h_avif, avif) = ok(&s, &format!("/{key}?w={w}&fmt=avif"), &[]).await;
        assert_eq!(h_avif["content-type"], "image/avif");
        assert_eq!(&avif[4..12], b"ftypavif", "{key}");
        // (A key of its own: the server trusts an original's metadata for
        // revalidate_secs, so an overwritten key could answer from cache.)
        let back = format!("back-{key}.avif");
        s.put(&back, &avif);
        let (_, png) = ok(&s, &format!("/{back}?fmt=png"), &[]).await;
        let out = decode(&png);
        let (d0, d1) = (mean_abs_diff(&out, &first), mean_abs_diff(&out, &second));
        assert!(
            d0 < 10.0 && d0 < d1,
            "{key} avif: first {d0:.1}, second {d1:.1}"
        );
    }
}

#[tokio::test]
async fn a_bad_anim_value_is_400() {
    let s = Server::start();
    s.put_corpus(WEBP, "a.webp");
    for q in ["anim=maybe", "anim=", "anim=2"] {
        let res = s.get(&format!("/a.webp?w=100&fmt=webp&{q}")).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{q}");
        let body = res.text().await.unwrap();
        assert!(body.starts_with("invalid parameter anim:"), "{q}: {body}");
    }
}

/// `transform.max_frames`: an animation with more frames answers 422 as an
/// animated WebP, and its first frame (`anim=false`) is still served; one
/// at the limit animates.
#[tokio::test]
async fn max_frames_bounds_animated_answers() {
    let s = Server::builder()
        .config("[transform]\nmax_frames = 6\n")
        .start();
    s.put_corpus(GIF, "eight.gif");
    s.put_corpus(WEBP, "six.webp");
    let res = s.get("/eight.gif?w=100&fmt=webp").await;
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(!body.trim_end().contains('\n'), "one line: {body}");
    let (_, body) = ok(&s, "/eight.gif?w=100&fmt=webp&anim=false", &[]).await;
    assert!(webp_animation(&body).is_none(), "a still WebP");
    assert_eq!(decode(&body).dimensions(), (100, 75));
    let (_, body) = ok(&s, "/six.webp?w=100&fmt=webp", &[]).await;
    let anim = webp_animation(&body).expect("six frames are within max_frames = 6");
    assert_eq!(anim.durations_ms.len(), 6);
}

/// Sanity for the helpers: a WebP this test suite made with libwebp's
/// animation encoder reads back with its frames, and a still one as still.
#[test]
fn the_webp_readers_agree_with_libwebp() {
    let two = common::images::animated_webp(48, 32);
    let anim = webp_animation(&two).expect("animated");
    assert_eq!((anim.canvas, anim.durations_ms.len()), ((48, 32), 2));
    let frames = webp_frames(&two);
    assert_eq!(frames.len(), 2);
    assert!(frames[0].0.get_pixel(5, 5).0[0] > 200 && frames[1].0.get_pixel(5, 5).0[2] > 200);
    let still = common::images::webp_lossy_rgba(&common::images::rgba_half_transparent(8, 8));
    assert!(webp_animation(&still).is_none());
}
