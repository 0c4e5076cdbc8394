//! SPEC "Delivery", the `p` row of the parameter table: "the name of a
//! configured preset (`[[preset]]`): its size, fit and format, as if written
//! out; other transform parameters beside `p` answer 400", "With
//! `transform.presets_only = true`, any transform request other than
//! `?p=<preset>` answers 400", and the config's `[[preset]]` ("named
//! variants: made after each upload, and ?p=thumb").

mod common;

use std::time::{Duration, Instant};

use common::{Server, corpus_bytes, decode, format_of};
use image::{GenericImageView, ImageFormat};
use reqwest::StatusCode;

const PHOTO: &str = "offcentre_subject_2400x1200.jpg";

const PRESETS: &str = "[[preset]]\nname = \"thumb\"\nsize = \"150x150\"\nformat = \"webp\"\n\
    [[preset]]\nname = \"detail\"\nsize = \"500x700\"\nfit = \"inside\"\n\
    [[preset]]\nname = \"small\"\nsize = \"300x200\"\nfit = \"fill\"\nformat = \"jpeg\"\nquality = 40\n";

fn server(extra: &str) -> Server {
    let s = Server::builder()
        .config(&format!("{extra}{PRESETS}"))
        .start();
    s.put_corpus(PHOTO, "photo.jpg");
    s
}

async fn get(
    s: &Server,
    q: &str,
    headers: &[(&str, &str)],
) -> (reqwest::header::HeaderMap, Vec<u8>) {
    s.get_ok_with(q, headers).await
}

async fn assert_400_p(s: &Server, q: &str) {
    let res = s.get(q).await;
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
    assert!(body.starts_with("invalid parameter p:"), "{q}: {body}");
    assert!(!body.trim_end().contains('\n'), "{q}: one line");
}

/// `?p=thumb` is `?w=150&h=150&fmt=webp`: the same bytes from one cache
/// entry, whichever is asked first.
#[tokio::test]
async fn a_preset_is_its_parameters_written_out() {
    let s = server("");
    s.put_corpus(PHOTO, "other.jpg");
    for (key, first, second) in [
        ("photo.jpg", "p=thumb", "w=150&h=150&fmt=webp"),
        ("other.jpg", "w=150&h=150&fmt=webp", "p=thumb"),
    ] {
        let (h1, a) = get(&s, &format!("/{key}?{first}"), &[]).await;
        assert_eq!(h1["x-cache"], "MISS", "{key}?{first}");
        assert_eq!(h1["content-type"], "image/webp");
        assert_eq!(format_of(&a), ImageFormat::WebP);
        assert_eq!(decode(&a).dimensions(), (150, 150));
        let (h2, b) = get(&s, &format!("/{key}?{second}"), &[]).await;
        assert_eq!(h2["x-cache"], "HIT", "{key}?{second} after {first}");
        assert_eq!(a, b, "{key}: same bytes");
        assert_eq!(h1["etag"], h2["etag"]);
    }
    // Parameters that are not transform parameters are still ignored.
    let (h, _) = get(&s, "/photo.jpg?p=thumb&utm_source=x", &[]).await;
    assert_eq!(h["x-cache"], "HIT");
}

/// `fit` and `quality` come with the preset; `format = "auto"` (the
/// default) is negotiated as `fmt=auto` would be.
#[tokio::test]
async fn a_preset_carries_fit_quality_and_negotiation() {
    let s = server("");
    let (h, a) = get(&s, "/photo.jpg?p=small", &[]).await;
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(decode(&a).dimensions(), (300, 200), "fit = fill");
    let (h, b) = get(&s, "/photo.jpg?w=300&h=200&fit=fill&fmt=jpeg&q=40", &[]).await;
    assert_eq!(h["x-cache"], "HIT");
    assert_eq!(a, b);
    let (_, q80) = get(&s, "/photo.jpg?w=300&h=200&fit=fill&fmt=jpeg&q=80", &[]).await;
    assert!(a.len() < q80.len(), "quality 40 is smaller than 80");

    for (accept, mime) in [
        ("image/avif,image/webp,*/*", "image/webp"),
        ("image/jpeg,*/*;q=0.5", "image/jpeg"),
    ] {
        let headers = [("accept", accept)];
        let (h, a) = get(&s, "/photo.jpg?p=detail", &headers).await;
        assert_eq!(h["content-type"], mime, "{accept}");
        assert_eq!(h["vary"], "Accept");
        assert_eq!(decode(&a).dimensions(), (500, 250), "fit = inside");
        let (h, b) = get(&s, "/photo.jpg?w=500&h=700&fit=inside", &headers).await;
        assert_eq!(h["x-cache"], "HIT", "{accept}");
        assert_eq!(a, b, "{accept}");
    }
}

#[tokio::test]
async fn unknown_presets_and_parameters_beside_p_are_400() {
    let s = server("");
    for q in ["p=nope", "p=", "p=THUMB2", "p=thumb&p=thumb"] {
        assert_400_p(&s, &format!("/photo.jpg?{q}")).await;
    }
    for extra in [
        "w=10",
        "h=10",
        "fit=cover",
        "fmt=webp",
        "fmt=jpeg",
        "q=50",
        "dpr=2",
        "g=n",
        "fx=0.5",
        "fy=0.5",
        "anim=false",
        "t=1",
    ] {
        assert_400_p(&s, &format!("/photo.jpg?p=thumb&{extra}")).await;
        assert_400_p(&s, &format!("/photo.jpg?{extra}&p=thumb")).await;
    }
    // Refused before any I/O, as every bad parameter.
    assert_400_p(&s, "/missing.jpg?p=nope").await;
}

/// `presets_only`: presets, originals and media information are served;
/// every other transform is 400, even one that spells out a preset.
#[tokio::test]
async fn presets_only_serves_presets_originals_and_media_information() {
    let s = server("[transform]\npresets_only = true\n");
    for q in [
        "w=150&h=150",
        "w=150&h=150&fmt=webp",
        "w=100",
        "fmt=webp",
        "q=50",
        "dpr=2",
        "g=auto",
        "fx=0.2",
    ] {
        assert_400_p(&s, &format!("/photo.jpg?{q}")).await;
    }
    let (_, body) = get(&s, "/photo.jpg?p=thumb", &[]).await;
    assert_eq!(decode(&body).dimensions(), (150, 150));
    let (h, body) = get(&s, "/photo.jpg", &[]).await;
    assert_eq!(body, corpus_bytes(PHOTO), "the original, byte for byte");
    assert_eq!(h["content-type"], "image/jpeg");
    let (_, body) = get(&s, "/photo.jpg?utm_source=x", &[]).await;
    assert_eq!(
        body,
        corpus_bytes(PHOTO),
        "unknown parameters are not transforms"
    );
    let (h, body) = get(&s, "/photo.jpg?fmt=json", &[]).await;
    assert_eq!(h["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(2400), Some(1200))
    );
}

/// Presets are made in the background after an upload: once made, the
/// first `?p=thumb` is a hit and costs no transform. (The wait watches the
/// preset counter: asking for `?p=thumb` while waiting would make it.)
#[tokio::test]
async fn after_an_upload_p_is_a_hit() {
    let s = Server::builder()
        .uploads()
        .config("[[preset]]\nname = \"thumb\"\nsize = \"150x150\"\nformat = \"webp\"\n")
        .start();
    let (status, up) = s.upload("u/photo.jpg", corpus_bytes(PHOTO)).await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s
        .metric("mediaedge_presets_total", &[("outcome", "ok")])
        .await
        < 1.0
    {
        assert!(Instant::now() < deadline, "the preset was not made in 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let transforms = s.metric("mediaedge_transforms_total", &[]).await;
    let (h, body) = get(&s, "/u/photo.jpg?p=thumb", &[]).await;
    assert_eq!(h["x-cache"], "HIT");
    assert_eq!(h["content-type"], "image/webp");
    assert_eq!(decode(&body).dimensions(), (150, 150));
    let (h, again) = get(&s, "/u/photo.jpg?w=150&h=150&fmt=webp", &[]).await;
    assert_eq!(h["x-cache"], "HIT");
    assert_eq!(again, body);
    assert_eq!(
        s.metric("mediaedge_transforms_total", &[]).await,
        transforms,
        "the viewer caused no transform"
    );
}
