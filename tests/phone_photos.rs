//! Photos as phones write them: HEIC (an HEVC grid with `irot` and EXIF
//! orientation, GPS) and AVIF, as transform inputs in every output format
//! and as uploads, checked by decoding what comes back and comparing it
//! with the JPEG the corpus derived each file from.

mod common;

use common::images::mean_abs_diff;
use common::metadata::{exiftool, tags_like};
use common::{Server, corpus_bytes, decode};
use image::GenericImageView;
use reqwest::StatusCode;

/// (phone file, the JPEG its pixels came from, both upright at 3024x4032).
const PHONE: [(&str, &str); 2] = [
    (
        "heic_4032x3024_orient6_gps.heic",
        "photo_4032x3024_orient6.jpg",
    ),
    ("avif_4032x3024_orient8.avif", "photo_4032x3024_orient8.jpg"),
];

async fn ok_bytes(s: &Server, path: &str) -> (String, Vec<u8>) {
    let (headers, body) = s.get_ok(path).await;
    let ct = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (ct, body)
}

#[tokio::test]
async fn phone_photos_transform_upright_in_every_format() {
    let s = Server::start();
    for (phone, jpeg) in PHONE {
        s.put_corpus(phone, phone);
        s.put_corpus(jpeg, jpeg);
        // Portrait, as the phone showed it: irot applied once, EXIF not again.
        let (_, png) = ok_bytes(&s, &format!("/{phone}?w=300&fmt=png")).await;
        let out = decode(&png);
        assert_eq!(out.dimensions(), (300, 400), "{phone}");
        let (_, reference) = ok_bytes(&s, &format!("/{jpeg}?w=300&fmt=png")).await;
        let diff = mean_abs_diff(&out, &decode(&reference));
        assert!(diff < 8.0, "{phone} vs {jpeg}: mean difference {diff:.2}");
        // Small enough for the HEIC's embedded 240x320 thumbnail (made
        // from it, as libvips does): still the same picture, upright.
        let (_, png) = ok_bytes(&s, &format!("/{phone}?w=150&h=150&fmt=png")).await;
        let (_, reference) = ok_bytes(&s, &format!("/{jpeg}?w=150&h=150&fmt=png")).await;
        let diff = mean_abs_diff(&decode(&png), &decode(&reference));
        assert!(
            diff < 8.0,
            "{phone} 150x150 vs {jpeg}: mean difference {diff:.2}"
        );
        for (fmt, ct) in [
            ("webp", "image/webp"),
            ("jpeg", "image/jpeg"),
            ("png", "image/png"),
            ("avif", "image/avif"),
        ] {
            let (got, body) = ok_bytes(&s, &format!("/{phone}?w=500&h=700&fmt={fmt}")).await;
            assert_eq!(got, ct, "{phone} fmt={fmt}");
            if fmt != "avif" {
                assert_eq!(decode(&body).dimensions(), (500, 700), "{phone} fmt={fmt}");
            }
        }
    }
}

#[tokio::test]
async fn originals_keep_their_type() {
    let s = Server::start();
    for (phone, ct) in [
        ("heic_4032x3024_orient6_gps.heic", "image/heic"),
        ("avif_4032x3024_orient8.avif", "image/avif"),
    ] {
        s.put_corpus(phone, phone);
        let (got, body) = ok_bytes(&s, &format!("/{phone}")).await;
        assert_eq!(got, ct);
        assert_eq!(body, corpus_bytes(phone));
    }
}

/// The "done when": an iPhone-style HEIC (and an AVIF) goes in
/// through a presigned URL, comes back with its upright size and
/// placeholders in the 201, has no GPS when fetched, and transforms to
/// every output format.
#[tokio::test]
async fn phone_photos_upload_once_and_come_out_everywhere() {
    let s = Server::builder().uploads().start();
    for (phone, ct) in [
        ("heic_4032x3024_orient6_gps.heic", "image/heic"),
        ("avif_4032x3024_orient8.avif", "image/avif"),
    ] {
        let key = format!("up/{phone}");
        let (status, up) = s.upload(&key, corpus_bytes(phone)).await;
        assert_eq!(status, StatusCode::CREATED, "{phone}: {up}");
        assert_eq!(up["content_type"], ct, "{phone}");
        assert_eq!(
            (up["width"].as_u64(), up["height"].as_u64()),
            (Some(3024), Some(4032)),
            "{phone}"
        );
        for field in ["thumbhash", "blurhash", "color"] {
            assert!(
                up[field].as_str().is_some_and(|v| !v.is_empty()),
                "{phone}: {field}"
            );
        }
        let (_, stored) = ok_bytes(&s, &format!("/{key}")).await;
        assert!(!tags_like(&exiftool(&corpus_bytes(phone)), "GPS").is_empty());
        assert_eq!(
            tags_like(&exiftool(&stored), "GPS"),
            Vec::<String>::new(),
            "{phone}"
        );
        for (fmt, ct) in [
            ("webp", "image/webp"),
            ("jpeg", "image/jpeg"),
            ("png", "image/png"),
            ("avif", "image/avif"),
        ] {
            let (got, body) = ok_bytes(&s, &format!("/{key}?w=150&h=150&fmt={fmt}")).await;
            assert_eq!(got, ct, "{phone} fmt={fmt}");
            if fmt != "avif" {
                assert_eq!(decode(&body).dimensions(), (150, 150), "{phone} fmt={fmt}");
            }
        }
    }
}

/// A HEIC cut short or with its grid damaged is 422 at upload and at
/// transform time; one over `max_source_pixels` is 422 before decoding.
#[tokio::test]
async fn broken_and_oversized_phone_photos_are_422() {
    let s = Server::builder()
        .uploads()
        .config("[transform]\nmax_source_pixels = 10000000\n")
        .start();
    let heic = corpus_bytes("heic_4032x3024_orient6_gps.heic");
    s.put("big.heic", &heic);
    let res = s.get("/big.heic?w=100").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("too large"));
    let cut = heic[..heic.len() * 2 / 3].to_vec();
    s.put("cut.heic", &cut);
    assert_eq!(
        s.get("/cut.heic?w=100").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (status, up) = s.upload("up/cut.heic", cut).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{up}");
    assert!(!s.data().join("up/cut.heic").exists());
}
