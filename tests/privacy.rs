//! Uploads stored safe to publish: GPS, EXIF (but the orientation), XMP,
//! IPTC and comments are gone from what is stored and served, checked with
//! `exiftool`; the pixels decode identically and the colour profile stays;
//! `upload.keep_metadata = true` stores the file as sent.

mod common;

use common::metadata::{exiftool, tags_like};
use common::{Server, corpus_bytes, decode};
use reqwest::StatusCode;
use serde_json::{Map, Value};

/// (file, upload key, whether the corpus file carries GPS; the orient6
/// photo is here for its orientation)
const PHOTOS: [(&str, &str, bool); 4] = [
    ("photo_4032x3024_orient1.jpg", "p/a.jpg", true),
    ("photo_4032x3024_orient6.jpg", "p/b.jpg", false),
    ("png_gps_1200x750.png", "p/c.png", true),
    ("webp_gps_1600x1067.webp", "p/d.webp", true),
];

#[tokio::test]
async fn uploads_lose_location_and_keep_pixels_orientation_and_profile() {
    let s = Server::builder().uploads().start();
    for (file, key, gps) in PHOTOS {
        let src = corpus_bytes(file);
        let before = exiftool(&src);
        assert_eq!(
            !tags_like(&before, "GPS").is_empty(),
            gps,
            "{file}: GPS to start with"
        );
        let (status, up) = s.upload(key, src.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{file}: {up}");
        let res = s.get(&format!("/{key}")).await;
        assert_eq!(res.status(), StatusCode::OK);
        let stored = res.bytes().await.unwrap().to_vec();
        assert_eq!(up["bytes"].as_u64(), Some(stored.len() as u64), "{file}");
        let after = exiftool(&stored);
        for gone in [
            "GPS",
            "XMP",
            "IPTC",
            "Comment",
            "EXIF:Make",
            "EXIF:Model",
            "EXIF:DateTimeOriginal",
            "ThumbnailImage",
        ] {
            assert!(
                tags_like(&after, gone).is_empty(),
                "{file}: {:?} left",
                tags_like(&after, gone)
            );
        }
        // The orientation stays (a viewer must still show it upright).
        let orientation = |t: &Map<String, Value>| {
            t.get("EXIF:Orientation")
                .and_then(Value::as_u64)
                .unwrap_or(1)
        };
        assert_eq!(orientation(&after), orientation(&before), "{file}");
        // The colour profile stays where there was one.
        assert_eq!(
            tags_like(&after, "ICC_Profile:ProfileDescription").len(),
            tags_like(&before, "ICC_Profile:ProfileDescription").len(),
            "{file}"
        );
        // Identical decoded pixels: the compressed data was not touched.
        assert_eq!(
            decode(&stored).to_rgba8(),
            decode(&src).to_rgba8(),
            "{file}"
        );
    }
}

/// HEIC and AVIF (image items in a HEIF container): the EXIF item keeps
/// only the orientation; the pixels are compared through the server's own
/// decoder against the file as sent, put straight into storage.
#[tokio::test]
async fn phone_heic_and_avif_lose_location_and_keep_pixels_and_rotation() {
    let s = Server::builder().uploads().start();
    for (file, key) in [
        ("heic_4032x3024_orient6_gps.heic", "p/e.heic"),
        ("avif_4032x3024_orient8.avif", "p/f.avif"),
    ] {
        let src = corpus_bytes(file);
        let before = exiftool(&src);
        assert!(
            !tags_like(&before, "GPS").is_empty(),
            "{file}: GPS to start with"
        );
        let (status, up) = s.upload(key, src.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{file}: {up}");
        assert_eq!(
            (up["width"].as_u64(), up["height"].as_u64()),
            (Some(3024), Some(4032)),
            "{file}"
        );
        let stored = s
            .get(&format!("/{key}"))
            .await
            .bytes()
            .await
            .unwrap()
            .to_vec();
        assert_eq!(stored.len(), src.len(), "{file}: rewritten in place");
        assert_eq!(up["bytes"].as_u64(), Some(stored.len() as u64), "{file}");
        let after = exiftool(&stored);
        for gone in [
            "GPS",
            "XMP",
            "EXIF:Make",
            "EXIF:Model",
            "EXIF:DateTimeOriginal",
        ] {
            assert!(
                tags_like(&after, gone).is_empty(),
                "{file}: {:?} left",
                tags_like(&after, gone)
            );
        }
        assert_eq!(
            after.get("ExifTool:Warning"),
            None,
            "{file}: a well-formed file"
        );
        // irot stays (the container's rotation), and so does the EXIF
        // orientation where the phone wrote one.
        assert_eq!(
            after.get("QuickTime:Rotation"),
            before.get("QuickTime:Rotation"),
            "{file}"
        );
        assert_eq!(
            after.get("EXIF:Orientation"),
            before.get("EXIF:Orientation"),
            "{file}"
        );
        // Identical decoded pixels, upright, through the same decoder.
        let raw = format!("raw/{}", key.trim_start_matches("p/"));
        s.put(&raw, &src);
        let mut upright = Vec::new();
        for k in [raw.as_str(), key] {
            let res = s.get(&format!("/{k}?w=600&h=800&fmt=png")).await;
            assert_eq!(res.status(), StatusCode::OK, "{k}");
            upright.push(decode(&res.bytes().await.unwrap()));
        }
        let (a, b) = (&upright[0], &upright[1]);
        assert_eq!((a.width(), a.height()), (600, 800), "{file}");
        assert_eq!(a.to_rgba8(), b.to_rgba8(), "{file}");
    }
}

#[tokio::test]
async fn keep_metadata_stores_the_file_as_sent() {
    let s = Server::builder()
        .uploads()
        .config("[upload]\nkeep_metadata = true\n")
        .start();
    let src = corpus_bytes("png_gps_1200x750.png");
    let (status, _) = s.upload("k.png", src.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let stored = s.get("/k.png").await.bytes().await.unwrap().to_vec();
    assert_eq!(stored, src);
}

#[tokio::test]
async fn objects_written_straight_to_storage_are_served_as_stored() {
    let s = Server::start();
    let src = corpus_bytes("photo_4032x3024_orient1.jpg");
    s.put("direct.jpg", &src);
    assert_eq!(
        s.get("/direct.jpg").await.bytes().await.unwrap().to_vec(),
        src
    );
}
