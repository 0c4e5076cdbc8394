//! SPEC `fmt=json` and the upload's 201: the object's media information —
//! key, type, size, ETag, upright width and height, frames of an
//! animation, ThumbHash, BlurHash, average colour and focus — under the
//! key's access rules and caching. Placeholders are checked by decoding
//! them with the formats' reference JavaScript implementations.

mod common;

use common::{Server, corpus_bytes, decode};
use image::GenericImageView;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `GET path` as JSON, with its `X-Cache`; asserts a 200 `application/json`.
async fn info(s: &Server, path: &str) -> (Value, String) {
    let res = s.get(path).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "application/json", "{path}");
    assert!(h.get("vary").is_none(), "{path}: not negotiated");
    let cache = h["x-cache"].to_str().unwrap().to_owned();
    (res.json().await.unwrap(), cache)
}

/// Decodes each `(thumbhash, blurhash)` with the reference decoders.
fn reference_decode(hashes: &[&Value]) -> Vec<Value> {
    let modules = concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-node/node_modules");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/placeholders.mjs");
    let input: Vec<Value> = hashes
        .iter()
        .map(|v| json!({"thumbhash": v["thumbhash"], "blurhash": v["blurhash"]}))
        .collect();
    let mut child = std::process::Command::new("node")
        .args([script, modules])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node (installed by scripts/test.sh)");
    let stdin = child.stdin.take().unwrap();
    serde_json::to_writer(stdin, &input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "reference decoders (npm install by scripts/test.sh)"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rgb_of(color: &Value) -> [f64; 3] {
    let hex = color.as_str().unwrap();
    assert!(hex.len() == 7 && hex.starts_with('#'), "{hex}");
    let v = u32::from_str_radix(&hex[1..], 16).unwrap();
    [16, 8, 0].map(|s| ((v >> s) & 255) as f64)
}

/// The mean RGB of a decoded image, 0..255.
fn mean_rgb(png: &[u8]) -> [f64; 3] {
    let img = decode(png).to_rgb8();
    let n = (img.width() * img.height()) as f64;
    let mut sum = [0f64; 3];
    for p in img.pixels() {
        for c in 0..3 {
            sum[c] += p[c] as f64;
        }
    }
    sum.map(|s| s / n)
}

/// (corpus file, upright size, frames)
const IMAGES: [(&str, (u64, u64), Option<u64>); 6] = [
    ("photo_4032x3024_orient6.jpg", (3024, 4032), None),
    ("heic_4032x3024_orient6_gps.heic", (3024, 4032), None),
    ("avif_4032x3024_orient8.avif", (3024, 4032), None),
    ("rgba_1200x1200.png", (1200, 1200), None),
    ("anim_320x240_8f.gif", (320, 240), Some(8)),
    ("anim_480x300_6f.webp", (480, 300), Some(6)),
];

#[tokio::test]
async fn fmt_json_describes_every_image_type() {
    let s = Server::start();
    let mut answers = Vec::new();
    for (file, (w, h), frames) in IMAGES {
        s.put_corpus(file, file);
        let original = s.get(&format!("/{file}")).await;
        let etag = original.headers()["etag"].to_str().unwrap().to_owned();
        let ct = original.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let (v, cache) = info(&s, &format!("/{file}?fmt=json")).await;
        assert_eq!(cache, "MISS", "{file}");
        assert_eq!(v["key"], file);
        assert_eq!(v["content_type"], ct.as_str(), "{file}");
        assert_eq!(v["bytes"], corpus_bytes(file).len() as u64, "{file}");
        assert_eq!(v["etag"], etag.as_str(), "{file}: the original's ETag");
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(w), Some(h)),
            "{file}"
        );
        assert_eq!(v["frames"].as_u64(), frames, "{file}");
        // Where g=auto centres (tests/crop.rs checks where): a point of the image.
        for axis in ["x", "y"] {
            let f = v["focus"][axis].as_f64().unwrap_or(-1.0);
            assert!((0.0..=1.0).contains(&f), "{file}: focus {}", v["focus"]);
        }
        let color = rgb_of(&v["color"]);
        // The colour is the picture's: its mean against a small PNG of it.
        let png = s
            .get(&format!("/{file}?w=64&fmt=png"))
            .await
            .bytes()
            .await
            .unwrap();
        let mean = mean_rgb(&png);
        if file.starts_with("rgba") {
            // Transparent pixels count for nothing in the average; the PNG
            // derivative keeps them (RGB under alpha), so only the range.
            assert!(color.iter().all(|c| (0.0..=255.0).contains(c)));
        } else {
            for c in 0..3 {
                assert!(
                    (color[c] - mean[c]).abs() < 6.0,
                    "{file}: {color:?} vs {mean:?}"
                );
            }
        }
        answers.push(v);
    }
    // The reference decoders read both placeholders back: ThumbHash's
    // aspect ratio and average colour, BlurHash's validity and colour.
    let refs = reference_decode(&answers.iter().collect::<Vec<_>>());
    for ((file, (w, h), _), (v, r)) in IMAGES.iter().zip(answers.iter().zip(&refs)) {
        let color = rgb_of(&v["color"]);
        let (tw, th) = (
            r["thumb"]["w"].as_f64().unwrap(),
            r["thumb"]["h"].as_f64().unwrap(),
        );
        let aspect = *w as f64 / *h as f64;
        assert!(
            ((tw / th) - aspect).abs() / aspect < 0.15,
            "{file}: {tw}x{th}"
        );
        assert!(
            r["blur"]["valid"].as_bool().unwrap(),
            "{file}: {}",
            v["blurhash"]
        );
        if file.starts_with("rgba") {
            assert!(
                r["thumb"]["avg"][3].as_f64().unwrap() < 0.95,
                "{file}: alpha kept"
            );
            continue;
        }
        for c in 0..3 {
            let thumb = r["thumb"]["avg"][c].as_f64().unwrap() * 255.0;
            let blur = r["blur"]["mean"][c].as_f64().unwrap();
            assert!(
                (thumb - color[c]).abs() < 12.0,
                "{file} thumbhash: {thumb} vs {color:?}"
            );
            assert!(
                (blur - color[c]).abs() < 24.0,
                "{file} blurhash: {blur} vs {color:?}"
            );
        }
    }
}

#[tokio::test]
async fn fmt_json_is_cached_and_ignores_other_parameters() {
    let s = Server::builder()
        .config("[cache]\nrevalidate_secs = 0\n")
        .start();
    s.put_corpus("photo_4032x3024_orient1.jpg", "a.jpg");
    let (first, cache) = info(&s, "/a.jpg?fmt=json").await;
    assert_eq!(cache, "MISS");
    // Other transform parameters, even invalid ones, neither split the
    // entry nor answer 400; the format name is case-insensitive.
    for q in ["fmt=json", "w=100&h=50&fmt=json", "fmt=JSON&q=abc&dpr=9"] {
        let (v, cache) = info(&s, &format!("/a.jpg?{q}")).await;
        assert_eq!(cache, "HIT", "{q}");
        assert_eq!(v, first, "{q}");
    }
    // Conditional requests work on it as on any derivative.
    let res = s.get("/a.jpg?fmt=json").await;
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let res = s
        .get_with("/a.jpg?fmt=json", &[("if-none-match", &etag)])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    // A replaced original is described anew (its ETag is in the entry's key).
    s.put_corpus("gray_2560x1600.jpg", "a.jpg");
    let (fresh, cache) = info(&s, "/a.jpg?fmt=json").await;
    assert_eq!(cache, "MISS");
    assert_eq!(
        (fresh["width"].as_u64(), fresh["height"].as_u64()),
        (Some(2560), Some(1600))
    );
}

#[tokio::test]
async fn fmt_json_on_other_objects_and_broken_images() {
    let s = Server::start();
    s.put("notes.txt", b"hello");
    // (Videos are described from a frame: tests/video.rs.)
    for (key, ct, len) in [("notes.txt", "application/octet-stream", 5)] {
        let (v, _) = info(&s, &format!("/{key}?fmt=json")).await;
        let obj = v.as_object().unwrap();
        assert_eq!(v["key"], key);
        assert_eq!(v["content_type"], ct);
        assert_eq!(v["bytes"], len as u64);
        assert!(v["etag"].as_str().unwrap().starts_with('"'));
        assert!(!obj.contains_key("thumbhash"), "{key}: nothing decoded");
    }
    s.put_corpus("bomb_20000x20000_1bit.png", "bomb.png");
    let res = s.get("/bomb.png?fmt=json").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let mut broken = corpus_bytes("photo_4032x3024_orient1.jpg");
    broken.truncate(2000);
    s.put("broken.jpg", &broken);
    let res = s.get("/broken.jpg?fmt=json").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        s.get("/missing.jpg?fmt=json").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn fmt_json_is_behind_the_routes_access_rules() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::auth::rsa_keys(dir.path(), "idp");
    let config = format!(
        "[jwt]\npublic_key_file = \"{}\"\n[[route]]\nprefix = \"/private/\"\naccess = \"jwt\"\n",
        keys.public.display()
    );
    let s = Server::builder().dir(dir).config(&config).start();
    s.put_corpus("photo_4032x3024_orient1.jpg", "private/p.jpg");
    for path in ["/private/p.jpg?fmt=json", "/private/missing.jpg?fmt=json"] {
        let res = s.get(path).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(res.headers().get("x-cache").is_none());
        assert_eq!(res.text().await.unwrap(), "Not Found Token.");
    }
    let token = common::auth::mint(&keys, &common::auth::claims("user-1"));
    let auth = format!("Bearer {token}");
    let res = s
        .get_with("/private/p.jpg?fmt=json", &[("authorization", &auth)])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .split(',')
            .next(),
        Some("private")
    );
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["width"], 4032);
}

/// The upload's 201 carries what `fmt=json` answers (one decode: the
/// upload check's), and the first `fmt=json` after it is a cache hit.
#[tokio::test]
async fn the_upload_answers_the_media_information() {
    let s = Server::builder().uploads().start();
    for (file, key) in [
        ("heic_4032x3024_orient6_gps.heic", "u/phone.heic"),
        ("anim_480x300_6f.webp", "u/anim.webp"),
        ("png_gps_1200x750.png", "u/place.png"),
    ] {
        let (status, up) = s.upload(key, corpus_bytes(file)).await;
        assert_eq!(status, StatusCode::CREATED, "{file}: {up}");
        let (v, cache) = info(&s, &format!("/{key}?fmt=json")).await;
        assert_eq!(cache, "HIT", "{file}: kept from the upload");
        assert_eq!(up, v, "{file}");
        for field in [
            "thumbhash",
            "blurhash",
            "color",
            "focus",
            "width",
            "height",
            "etag",
        ] {
            assert!(up.get(field).is_some(), "{file}: {field}");
        }
    }
    let (_, up) = s
        .upload(
            "u/phone2.heic",
            corpus_bytes("heic_4032x3024_orient6_gps.heic"),
        )
        .await;
    assert_eq!(
        (up["width"].as_u64(), up["height"].as_u64()),
        (Some(3024), Some(4032))
    );
    // The placeholder looks like the photo: its reference decode against a
    // small upright derivative of the stored image.
    let r = &reference_decode(&[&up])[0];
    assert!(
        r["thumb"]["h"].as_f64() > r["thumb"]["w"].as_f64(),
        "portrait: {r}"
    );
    let png = s
        .get("/u/phone2.heic?w=48&fmt=png")
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(decode(&png).dimensions(), (48, 64));
    let mean = mean_rgb(&png);
    for c in 0..3 {
        let thumb = r["thumb"]["avg"][c].as_f64().unwrap() * 255.0;
        assert!((thumb - mean[c]).abs() < 12.0, "{thumb} vs {mean:?}");
    }
}
