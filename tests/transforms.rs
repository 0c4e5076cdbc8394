//! SPEC "Delivery" transform parameters: sizes, fits, formats, quality,
//! dpr, orientation, metadata, negotiation, errors.

mod common;

use common::images::{mean_abs_diff, mean_rgb};
use common::{Server, corpus_bytes, decode, format_of};
use image::{GenericImageView, ImageFormat};
use reqwest::StatusCode;

const PHOTO: &str = "photo_4032x3024_orient1.jpg";
const WEBP: &[(&str, &str)] = &[(
    "accept",
    "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
)];

async fn fetch(
    s: &Server,
    q: &str,
    headers: &[(&str, &str)],
) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let res = s.get_with(q, headers).await;
    assert_eq!(res.status(), StatusCode::OK, "{q}: {:?}", res.headers());
    let h = res.headers().clone();
    (h, res.bytes().await.unwrap().to_vec())
}

fn photo_server() -> Server {
    let s = Server::start();
    s.put_corpus(PHOTO, "photo.jpg");
    s
}

#[tokio::test]
async fn the_issue_example_150x150_webp_preview() {
    let s = photo_server();
    let (h, body) = fetch(&s, "/photo.jpg?w=150&h=150", WEBP).await;
    assert_eq!(h["content-type"], "image/webp");
    assert_eq!(format_of(&body), ImageFormat::WebP);
    assert_eq!(decode(&body).dimensions(), (150, 150));
    assert!(body.len() < 20_000, "{} bytes", body.len());
    assert_eq!(h["content-length"], body.len().to_string().as_str());
    assert_eq!(h["vary"], "Accept");
    assert_eq!(h["x-cache"], "MISS");
    assert!(h["etag"].to_str().unwrap().starts_with('"'));
    let (h, body2) = fetch(&s, "/photo.jpg?w=150&h=150", WEBP).await;
    assert_eq!(h["x-cache"], "HIT");
    assert_eq!(body, body2);
}

#[tokio::test]
async fn fmt_auto_negotiates_and_varies() {
    let s = photo_server();
    s.put_corpus("rgba_1200x1200.png", "alpha.png");
    // Clients that do not name WebP get JPEG, or PNG when alpha must survive.
    for accept in ["*/*", "image/jpeg", "image/webp;q=0"] {
        let (h, body) = fetch(&s, "/photo.jpg?w=100", &[("accept", accept)]).await;
        assert_eq!(
            (h["content-type"].to_str().unwrap(), format_of(&body)),
            ("image/jpeg", ImageFormat::Jpeg),
            "{accept}"
        );
        assert_eq!(h["vary"], "Accept");
        let (h, body) = fetch(&s, "/alpha.png?w=100", &[("accept", accept)]).await;
        assert_eq!(
            (h["content-type"].to_str().unwrap(), format_of(&body)),
            ("image/png", ImageFormat::Png),
            "{accept}"
        );
    }
    let (h, _) = fetch(&s, "/photo.jpg?w=100", &[]).await;
    assert_eq!(h["content-type"], "image/jpeg");
    let (h, body) = fetch(&s, "/alpha.png?w=100", WEBP).await;
    assert_eq!(h["content-type"], "image/webp");
    assert!(decode(&body).color().has_alpha());
    // An explicit format is not negotiated: no Vary.
    let (h, _) = fetch(&s, "/photo.jpg?w=100&fmt=webp", &[]).await;
    assert!(h.get("vary").is_none());
}

#[tokio::test]
async fn explicit_formats() {
    let s = photo_server();
    for (fmt, mime, format) in [
        ("webp", "image/webp", Some(ImageFormat::WebP)),
        ("jpeg", "image/jpeg", Some(ImageFormat::Jpeg)),
        ("jpg", "image/jpeg", Some(ImageFormat::Jpeg)),
        ("png", "image/png", Some(ImageFormat::Png)),
        ("avif", "image/avif", None),
    ] {
        let (h, body) = fetch(&s, &format!("/photo.jpg?w=120&h=90&fmt={fmt}"), &[]).await;
        assert_eq!(h["content-type"], mime, "{fmt}");
        match format {
            Some(f) => {
                assert_eq!(format_of(&body), f);
                assert_eq!(decode(&body).dimensions(), (120, 90));
            }
            // AVIF: ISO-BMFF `ftyp` box with the `avif` brand.
            None => assert_eq!(&body[4..12], b"ftypavif"),
        }
    }
}

#[tokio::test]
async fn fit_modes() {
    let s = photo_server();
    for (q, dims) in [
        ("w=500&h=700", (500, 700)),
        ("w=500&h=700&fit=cover", (500, 700)),
        ("w=500&h=700&fit=inside", (500, 375)),
        ("w=500&h=700&fit=fill", (500, 700)),
        ("w=400", (400, 300)),
        ("h=300", (400, 300)),
        ("w=4000", (4000, 3000)),
    ] {
        let (_, body) = fetch(&s, &format!("/photo.jpg?{q}&fmt=jpeg"), &[]).await;
        assert_eq!(decode(&body).dimensions(), dims, "{q}");
    }
}

#[tokio::test]
async fn cover_crops_the_centre_and_fill_stretches() {
    let s = Server::start();
    // Left third red, middle green, right third blue.
    let img = image::RgbImage::from_fn(300, 100, |x, _| match x / 100 {
        0 => image::Rgb([255, 0, 0]),
        1 => image::Rgb([0, 255, 0]),
        _ => image::Rgb([0, 0, 255]),
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
    s.put("bands.png", &png);
    let (_, body) = fetch(&s, "/bands.png?w=50&h=50&fmt=png", &[]).await;
    let m = mean_rgb(&decode(&body));
    assert!(
        m[1] > 200.0 && m[0] < 30.0 && m[2] < 30.0,
        "cover is the green centre: {m:?}"
    );
    let (_, body) = fetch(&s, "/bands.png?w=60&h=60&fit=fill&fmt=png", &[]).await;
    let out = decode(&body);
    assert_eq!(out.dimensions(), (60, 60));
    assert!(
        out.get_pixel(2, 30).0[0] > 200 && out.get_pixel(57, 30).0[2] > 200,
        "fill keeps all three bands"
    );
}

#[tokio::test]
async fn never_enlarges() {
    let s = Server::start();
    s.put_corpus("anim_320x240_8f.gif", "small.gif");
    for (q, dims) in [
        ("w=4000", (320, 240)),
        ("w=1000&h=1000&fit=inside", (320, 240)),
        ("w=1000&h=1000", (240, 240)),
        ("w=1000&h=500&fit=fill", (320, 160)),
        ("w=160&dpr=4", (320, 240)),
        ("q=50", (320, 240)),
    ] {
        let (_, body) = fetch(&s, &format!("/small.gif?{q}&fmt=png"), &[]).await;
        assert_eq!(decode(&body).dimensions(), dims, "{q}");
    }
}

#[tokio::test]
async fn dpr_multiplies_and_shares_the_cache_entry() {
    let s = photo_server();
    let (h, body) = fetch(&s, "/photo.jpg?w=150&h=100&dpr=2&fmt=jpeg", &[]).await;
    assert_eq!(decode(&body).dimensions(), (300, 200));
    assert_eq!(h["x-cache"], "MISS");
    let (h, _) = fetch(&s, "/photo.jpg?w=300&h=200&fmt=jpeg", &[]).await;
    assert_eq!(h["x-cache"], "HIT");
    let (_, body) = fetch(&s, "/photo.jpg?w=100&dpr=1.5&fmt=jpeg", &[]).await;
    assert_eq!(decode(&body).dimensions(), (150, 113));
}

#[tokio::test]
async fn quality_changes_size_and_png_ignores_it() {
    let s = photo_server();
    let (_, low) = fetch(&s, "/photo.jpg?w=500&fmt=jpeg&q=20", &[]).await;
    let (_, high) = fetch(&s, "/photo.jpg?w=500&fmt=jpeg&q=95", &[]).await;
    assert!(
        low.len() * 2 < high.len(),
        "q=20 {} vs q=95 {}",
        low.len(),
        high.len()
    );
    let (_, low) = fetch(&s, "/photo.jpg?w=500&fmt=webp&q=20", &[]).await;
    let (_, high) = fetch(&s, "/photo.jpg?w=500&fmt=webp&q=95", &[]).await;
    assert!(low.len() * 2 < high.len());
    fetch(&s, "/photo.jpg?w=64&fmt=png&q=10", &[]).await;
    let (h, _) = fetch(&s, "/photo.jpg?w=64&fmt=png&q=90", &[]).await;
    assert_eq!(h["x-cache"], "HIT", "q does not split PNG variants");
}

#[tokio::test]
async fn default_quality_comes_from_config() {
    let s = Server::builder()
        .config("[transform]\ndefault_quality = 30\n")
        .start();
    s.put_corpus(PHOTO, "photo.jpg");
    let (_, default) = fetch(&s, "/photo.jpg?w=500&fmt=jpeg", &[]).await;
    let (h, explicit) = fetch(&s, "/photo.jpg?w=500&fmt=jpeg&q=30", &[]).await;
    assert_eq!(default, explicit);
    assert_eq!(h["x-cache"], "HIT");
}

/// Portrait phone photos stored sideways come out upright: the output matches
/// the source rotated by the `image` crate, not the unrotated one.
#[tokio::test]
async fn exif_orientation_is_applied() {
    let s = Server::start();
    for (file, rotate) in [
        (
            "photo_4032x3024_orient6.jpg",
            image::DynamicImage::rotate90 as fn(&image::DynamicImage) -> image::DynamicImage,
        ),
        (
            "photo_4032x3024_orient8.jpg",
            image::DynamicImage::rotate270,
        ),
    ] {
        s.put_corpus(file, file);
        let (_, body) = fetch(&s, &format!("/{file}?w=300&fmt=png"), &[]).await;
        let out = decode(&body);
        assert_eq!(out.dimensions(), (300, 400), "{file}");
        let source = decode(&corpus_bytes(file)).thumbnail(400, 400);
        let upright = rotate(&source);
        let wrong = if file.contains("orient6") {
            source.rotate270()
        } else {
            source.rotate90()
        };
        let (good, bad) = (mean_abs_diff(&out, &upright), mean_abs_diff(&out, &wrong));
        assert!(
            good < 8.0 && good * 3.0 < bad,
            "{file}: upright diff {good:.1}, wrong way {bad:.1}"
        );
    }
}

#[tokio::test]
async fn metadata_is_stripped() {
    let s = photo_server();
    let src = corpus_bytes(PHOTO);
    assert!(
        contains(&src, b"GPS") || contains(&src, b"CorpusPhone"),
        "the corpus photo carries EXIF"
    );
    for fmt in ["jpeg", "webp", "png", "avif"] {
        let (_, body) = fetch(&s, &format!("/photo.jpg?w=200&fmt={fmt}"), &[]).await;
        for needle in [&b"Exif"[..], b"CorpusPhone", b"GPS", b"ICC_PROFILE"] {
            assert!(
                !contains(&body, needle),
                "{fmt} output contains {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn unknown_parameters_are_ignored_and_never_split_the_cache() {
    let s = photo_server();
    let (h, a) = fetch(&s, "/photo.jpg?w=120&utm_source=x", WEBP).await;
    assert_eq!(h["x-cache"], "MISS");
    let (h, b) = fetch(&s, "/photo.jpg?cb=123&w=120&W=9&utm_source=y", WEBP).await;
    assert_eq!(h["x-cache"], "HIT");
    assert_eq!(a, b);
    assert_eq!(
        s.metric("mediaedge_transforms_total", &[("outcome", "ok")])
            .await,
        1.0
    );
    // Only unknown parameters: the original.
    let (h, body) = fetch(&s, "/photo.jpg?v=2", &[]).await;
    assert_eq!(body.len(), corpus_bytes(PHOTO).len());
    assert!(h.get("vary").is_none());
}

#[tokio::test]
async fn bad_values_answer_400_naming_the_parameter() {
    let s = photo_server();
    for (q, param) in [
        ("w=0", "w"),
        ("w=4097", "w"),
        ("w=abc", "w"),
        ("w=", "w"),
        ("w=-1", "w"),
        ("h=1.5", "h"),
        ("fit=crop", "fit"),
        ("fmt=gif", "fmt"),
        ("q=0", "q"),
        ("q=101", "q"),
        ("dpr=0", "dpr"),
        ("dpr=4.5", "dpr"),
        ("dpr=x", "dpr"),
        ("w=100&w=200", "w"),
    ] {
        let res = s.get(&format!("/photo.jpg?{q}")).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
        let body = res.text().await.unwrap();
        assert!(
            body.starts_with(&format!("invalid parameter {param}:")),
            "{q}: {body}"
        );
        assert!(!body.contains('\n'));
    }
    // Bad parameters are refused before any I/O: even for a missing key.
    assert_eq!(
        s.get("/missing.jpg?w=0").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn allowed_sizes_are_enforced() {
    let s = Server::builder()
        .config("[transform]\nallowed_sizes = [\"150x150\", \"300x300\", \"500x700\"]\n")
        .start();
    s.put_corpus(PHOTO, "photo.jpg");
    assert_eq!(
        s.get("/photo.jpg?w=150&h=150").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        s.get("/photo.jpg?w=500&h=700&fit=inside").await.status(),
        StatusCode::OK
    );
    // dpr=2 lands on the listed 300x300.
    assert_eq!(
        s.get("/photo.jpg?w=150&h=150&dpr=2").await.status(),
        StatusCode::OK
    );
    for q in [
        "w=151&h=150",
        "w=150",
        "h=700",
        "w=700&h=500",
        "w=150&h=150&dpr=3",
        "w=150&h=150&dpr=1.5",
    ] {
        let res = s.get(&format!("/photo.jpg?{q}")).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{q}");
        let body = res.text().await.unwrap();
        assert!(
            body.starts_with("invalid parameter") && body.contains("allowed_sizes"),
            "{body}"
        );
    }
    // The original is still served.
    assert_eq!(s.get("/photo.jpg").await.status(), StatusCode::OK);
}

/// With the allow-lists set, a client cannot make more variants of an image
/// than sizes × fits × formats × qualities: every `dpr` that does not land
/// on a listed size, every other `q` and every other `fmt` is a 400, and
/// the ones that pass share cache entries (issue 14, item 6: with only
/// `150x150` listed, `dpr` and `q` once gave some 540,000 variants).
#[tokio::test]
async fn allow_lists_close_the_variant_space() {
    let s = Server::builder()
        .config(
            "[transform]\nallowed_sizes = [\"150x150\"]\nallowed_formats = [\"webp\", \"jpeg\"]\nallowed_qualities = [80]\n",
        )
        .start();
    s.put_corpus(PHOTO, "photo.jpg");
    let mut ok = 0;
    for dpr in ["1", "1.001", "1.002", "1.5", "2", "2.5", "3.99", "4"] {
        for q in ["", "&q=80", "&q=79", "&q=100"] {
            for fmt in ["", "&fmt=webp", "&fmt=jpeg", "&fmt=avif", "&fmt=png"] {
                let res = s
                    .get(&format!("/photo.jpg?w=150&h=150&dpr={dpr}{q}{fmt}"))
                    .await;
                match res.status() {
                    StatusCode::OK => ok += 1,
                    StatusCode::BAD_REQUEST => {
                        let body = res.text().await.unwrap();
                        assert!(body.starts_with("invalid parameter"), "{body}");
                    }
                    other => panic!("{other} for dpr={dpr}{q}{fmt}"),
                }
            }
        }
    }
    // 3 dprs land on 150x150; 2 q spellings; auto, webp, jpeg.
    assert_eq!(ok, 3 * 2 * 3);
    // ... and they are three cache entries: auto (JPEG, or PNG for alpha),
    // fmt=jpeg and fmt=webp.
    assert_eq!(
        s.metric("mediaedge_transforms_total", &[("outcome", "ok")])
            .await,
        3.0
    );
    let res = s.get("/photo.jpg?w=150&h=150&fmt=avif").await;
    assert_eq!(
        res.text().await.unwrap(),
        "invalid parameter fmt: avif is not in transform.allowed_formats"
    );
    let res = s.get("/photo.jpg?w=150&h=150&q=79").await;
    assert_eq!(
        res.text().await.unwrap(),
        "invalid parameter q: 79 is not in transform.allowed_qualities"
    );
}

#[tokio::test]
async fn transform_parameters_on_non_images_are_400() {
    let s = Server::start();
    s.put("notes.txt", b"plain text");
    s.put(
        "evil.svg",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
    );
    for key in ["notes.txt", "evil.svg"] {
        let res = s.get(&format!("/{key}?w=100")).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{key}");
        assert_eq!(
            res.text().await.unwrap(),
            "transform parameters are only supported on images and videos"
        );
    }
    // Without parameters they are served as they are.
    assert_eq!(s.get("/notes.txt").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn head_and_conditional_on_derivatives() {
    let s = photo_server();
    let (h, body) = fetch(&s, "/photo.jpg?w=200", WEBP).await;
    let etag = h["etag"].to_str().unwrap().to_owned();
    let head = s
        .client
        .head(s.url("/photo.jpg?w=200"))
        .header("accept", "image/webp")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["content-length"],
        body.len().to_string().as_str()
    );
    assert_eq!(head.headers()["etag"], etag.as_str());
    let res = s
        .get_with(
            "/photo.jpg?w=200",
            &[("accept", "image/webp"), ("if-none-match", &etag)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(res.headers()["vary"], "Accept");
    let res = s
        .get_with(
            "/photo.jpg?w=200",
            &[("accept", "image/webp"), ("range", "bytes=0-9")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.bytes().await.unwrap(), &body[..10]);
    // The JPEG negotiated for another client has its own validator.
    let res = s
        .get_with(
            "/photo.jpg?w=200",
            &[("accept", "image/jpeg"), ("if-none-match", &etag)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// Derivatives of public media carry the media sandbox and may be embedded
/// by any origin (`Cross-Origin-Resource-Policy: cross-origin`), on 200,
/// HEAD and 304; they are images, shown inline.
#[tokio::test]
async fn derivatives_are_sandboxed_and_embeddable() {
    let s = photo_server();
    let (h, _) = fetch(&s, "/photo.jpg?w=200", WEBP).await;
    assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
    assert_eq!(h["cross-origin-resource-policy"], "cross-origin");
    assert!(h.get("content-disposition").is_none());
    let etag = h["etag"].to_str().unwrap().to_owned();
    let head = s
        .client
        .head(s.url("/photo.jpg?w=200"))
        .header("accept", "image/webp")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.headers()["content-security-policy"],
        "default-src 'none'; sandbox"
    );
    let res = s
        .get_with(
            "/photo.jpg?w=200",
            &[("accept", "image/webp"), ("if-none-match", &etag)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        res.headers()["cross-origin-resource-policy"],
        "cross-origin"
    );
    assert_eq!(
        res.headers()["content-security-policy"],
        "default-src 'none'; sandbox"
    );
}
