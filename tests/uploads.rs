//! SPEC "Uploads (presigned)": presign, streamed upload, every refusal
//! (403/413/415/422/408), atomic publishing under readers, a client that
//! disconnects, a server killed mid-upload, presets, memory.

mod common;

use std::time::{Duration, Instant};

use common::requests::{Presigned, target};
use common::{Server, corpus_bytes, decode};
use mediaedge::media_type::{MediaType, SNIFF_LEN};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const ADMIN: &str = common::UPLOAD_ADMIN_KEY;
const SECRET: &str = common::UPLOAD_SIGNING_SECRET;
const PHOTO: &str = "photo_4032x3024_orient1.jpg";

fn server(config: &str) -> Server {
    Server::builder().uploads().config(config).start()
}

/// Sends `head` then `body` on a raw connection, without waiting for the
/// body to be accepted, and returns the status line's code and the body.
async fn raw(s: &Server, head: String, body: Vec<u8>) -> (u16, String) {
    let addr = s.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(head.as_bytes()).await;
        for chunk in body.chunks(64 << 10) {
            if wr.write_all(chunk).await.is_err() {
                break; // the server answered and closed: expected for refusals
            }
        }
        wr
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut buf)).await;
    drop(writer);
    common::parse_response(&buf)
}

fn staged_files(s: &Server) -> usize {
    std::fs::read_dir(s.data().join("_/uploads"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn presign_then_upload_a_photo() {
    let s = server("");
    let p = s.presign(json!({"content_type": "image/jpeg"})).await;
    let key = p.key();
    assert!(key.ends_with(".jpg") && key.len() == 22 + 4, "{key}");
    assert_eq!(p["method"], "PUT");
    assert_eq!(p["max_bytes"], 25 * 1024 * 1024);
    let expires = p["expires_at"].as_i64().unwrap();
    assert!((expires - common::auth::now() - 900).abs() <= 2, "{p}");
    let url = p.url();
    assert!(
        url.starts_with(&format!("{}/_/uploads/{key}?", s.base)),
        "{url}"
    );
    // Keys are unguessable: two presigns never share one.
    let other = s.presign(json!({"content_type": "image/jpeg"})).await;
    assert_ne!(other["key"], p["key"]);

    let photo = corpus_bytes("photo_4032x3024_orient6.jpg");
    let (status, body) = p.put(photo.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let up: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(up["key"], key);
    // What is stored: the photo without its EXIF block (thumbnail, camera).
    let stored = s.get(&format!("/{key}")).await.bytes().await.unwrap();
    assert_eq!(up["bytes"], stored.len());
    assert!(stored.len() < photo.len());
    assert_eq!(decode(&stored).to_rgb8(), decode(&photo).to_rgb8());
    assert_eq!(up["content_type"], "image/jpeg");
    // Displayed size: orientation 6 turns the 4032x3024 sensor image upright.
    assert_eq!(
        (up["width"].as_u64(), up["height"].as_u64()),
        (Some(3024), Some(4032))
    );
    let res = s.get(&format!("/{key}")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], up["etag"].as_str().unwrap());
    assert_eq!(res.bytes().await.unwrap(), stored);
    assert_eq!(staged_files(&s), 0);
    assert_eq!(
        s.metric(
            "mediaedge_uploads_total",
            &[("op", "put"), ("outcome", "ok")]
        )
        .await,
        1.0
    );
    assert_eq!(
        s.metric("mediaedge_upload_bytes_total", &[]).await,
        photo.len() as f64
    );
}

#[tokio::test]
async fn video_upload_and_classes() {
    let s = server("");
    let video = corpus_bytes("video_1280x720_5s.mp4");
    let p = s.presign(json!({"content_type": "video/mp4"})).await;
    assert!(p.key().ends_with(".mp4"));
    let (status, body) = p.put(video.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let up: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(up["content_type"], "video/mp4");
    // A video's facts (tests/video.rs has the rest).
    assert_eq!(
        (up["width"].as_u64(), up["video_codec"].as_str()),
        (Some(1280), Some("h264"))
    );
    // The class is bound: a photo cannot go to a video URL, nor a video to an image URL.
    let p = s.presign(json!({"content_type": "video/mp4"})).await;
    let (status, _) = p.put(corpus_bytes(PHOTO)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let img = s.presign(json!({"content_type": "image/*"})).await;
    let (status, _) = img.put(video.clone()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // No content type: images and video both pass.
    let any = s.presign(json!({})).await;
    let (status, _) = any.put(video).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn refused_content_leaves_nothing() {
    let s = server("");
    let p = s
        .presign(json!({"key": "u/avatar.jpg", "content_type": "image/jpeg"}))
        .await;
    assert_eq!(p["key"], "u/avatar.jpg");
    let svg = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    for (what, bytes, status) in [
        (
            "text",
            b"just some text\n".repeat(100),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "HTML named .jpg",
            b"<!doctype html><html><body><script>alert(1)</script></body></html>".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("SVG", svg.to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("empty", Vec::new(), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (
            "truncated JPEG",
            corpus_bytes("truncated_2560x1600.jpg"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "bomb PNG",
            corpus_bytes("bomb_20000x20000_1bit.png"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "JPEG magic, garbage after",
            [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[0x55; 4000]].concat(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (got, body) = p.put(bytes).await;
        assert_eq!(got, status, "{what}: {body}");
        assert!(!body.is_empty() && !body.contains('\n'), "{what}: {body:?}");
        assert_eq!(
            s.get("/u/avatar.jpg").await.status(),
            StatusCode::NOT_FOUND,
            "{what}"
        );
    }
    assert!(!s.data().join("u/avatar.jpg").exists());
    assert_eq!(staged_files(&s), 0);
    assert_eq!(
        s.metric("mediaedge_uploads_total", &[("outcome", "unsupported")])
            .await,
        4.0
    );
    assert_eq!(
        s.metric("mediaedge_uploads_total", &[("outcome", "undecodable")])
            .await,
        3.0
    );
}

#[tokio::test]
async fn other_allowed_formats_pass() {
    let s = server("");
    for (file, ct, w, h) in [
        ("rgba_1200x1200.png", "image/png", 1200, 1200),
        ("photo_4272x2848.webp", "image/webp", 4272, 2848),
        ("anim_320x240_8f.gif", "image/gif", 320, 240),
        ("progressive_2560x1600.jpg", "image/jpeg", 2560, 1600),
        ("cmyk_2560x1600.jpg", "image/jpeg", 2560, 1600),
    ] {
        let p = s.presign(json!({"content_type": ct})).await;
        let (status, body) = p.put(corpus_bytes(file)).await;
        assert_eq!(status, StatusCode::CREATED, "{file}");
        let up: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (up["width"].as_u64(), up["height"].as_u64()),
            (Some(w), Some(h)),
            "{file}"
        );
        assert_eq!(up["content_type"], ct);
    }
}

/// An ISO BMFF box: 32-bit size, type, payload.
fn bmff_box(ty: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    [&(payload.len() as u32 + 8).to_be_bytes()[..], ty, payload].concat()
}

/// Issue 14, item 16: magic bytes are not enough. An `ftyp` box (or an EBML
/// header) followed by HTML sniffs as video, and an AVIF with a good `ispe`
/// but anything after it gave a size; the container's top-level structure
/// must hold up to its end. Refused as media that does not decode (422),
/// like a JPEG whose magic is followed by garbage; nothing is stored.
#[tokio::test]
async fn fake_containers_are_refused() {
    let s = server("");
    let html =
        b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>\n"
            .repeat(20);
    let mp4_ftyp = bmff_box(b"ftyp", b"isom\0\0\x02\0isomiso2avc1mp41");
    let mov_ftyp = bmff_box(b"ftyp", b"qt  \0\0\x02\0qt  ");
    let avif_ftyp = bmff_box(b"ftyp", b"avif\0\0\0\0avifmif1miaf");
    // A `meta` (full box) whose item properties give a 64x48 `ispe`.
    let ispe = bmff_box(b"ispe", &[0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 48]);
    let meta = bmff_box(
        b"meta",
        &[
            &[0, 0, 0, 0][..],
            &bmff_box(b"iprp", &bmff_box(b"ipco", &ispe)),
        ]
        .concat(),
    );
    // EBML header: EBMLVersion 1, EBMLReadVersion 1, DocType "webm",
    // DocTypeVersion 2, DocTypeReadVersion 2.
    let ebml = [
        &[0x1A, 0x45, 0xDF, 0xA3, 0x97][..],
        &[0x42, 0x86, 0x81, 0x01, 0x42, 0xF7, 0x81, 0x01],
        &[0x42, 0x82, 0x84],
        b"webm",
        &[0x42, 0x87, 0x81, 0x02, 0x42, 0x85, 0x81, 0x02],
    ]
    .concat();
    // A Segment of unknown size, then HTML where its elements should be.
    let segment = [
        0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ];
    let cases: [(&str, &str, Vec<u8>); 6] = [
        ("ftyp + HTML", "video/mp4", [&mp4_ftyp[..], &html].concat()),
        (
            "ftyp + free + HTML",
            "video/mp4",
            [&mp4_ftyp[..], &bmff_box(b"free", &[]), &html].concat(),
        ),
        (
            "QuickTime ftyp + HTML",
            "video/quicktime",
            [&mov_ftyp[..], &html].concat(),
        ),
        (
            "AVIF ftyp + meta with ispe + HTML",
            "image/avif",
            [&avif_ftyp[..], &meta, &html].concat(),
        ),
        (
            "EBML header + HTML",
            "video/webm",
            [&ebml[..], &html].concat(),
        ),
        (
            "EBML header + Segment + HTML",
            "video/webm",
            [&ebml[..], &segment, &html].concat(),
        ),
    ];
    for (i, (what, sniffed, bytes)) in cases.into_iter().enumerate() {
        assert_eq!(
            MediaType::sniff(&bytes[..SNIFF_LEN]).mime(),
            sniffed,
            "{what}: the case must get past the magic-byte sniff"
        );
        let key = format!("fake/{i}");
        let (status, body) = s.upload(&key, bytes).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {body}");
        assert_eq!(
            s.get(&format!("/{key}")).await.status(),
            StatusCode::NOT_FOUND,
            "{what}"
        );
        assert!(!s.data().join(&key).exists(), "{what}: stored");
    }
    assert!(!s.data().join("fake").exists());
    assert_eq!(staged_files(&s), 0);
    assert_eq!(
        s.metric("mediaedge_uploads_total", &[("outcome", "undecodable")])
            .await,
        6.0
    );
}

/// The real containers of the corpus pass the structure check: MP4 with
/// `moov` first and last, QuickTime (HEVC, `ftyp qt`), WebM (VP9) and AVIF.
#[tokio::test]
async fn real_containers_still_upload() {
    let s = server("");
    for (file, ct) in [
        ("video_1280x720_5s.mp4", "video/mp4"),
        ("video_1280x720_moovlast_3s.mp4", "video/mp4"),
        ("video_1280x720_rot90_hevc_3s.mov", "video/quicktime"),
        ("video_1280x720_vp9_3s.webm", "video/webm"),
        ("avif_4032x3024_orient8.avif", "image/avif"),
        ("heic_4032x3024_orient6_gps.heic", "image/heic"),
    ] {
        let key = format!("real/{file}");
        let (status, up) = s.upload(&key, corpus_bytes(file)).await;
        assert_eq!(status, StatusCode::CREATED, "{file}: {up}");
        assert_eq!(up["content_type"], ct, "{file}");
        assert!(s.data().join(&key).is_file(), "{file}");
        assert_eq!(
            s.get(&format!("/{key}")).await.status(),
            StatusCode::OK,
            "{file}"
        );
    }
    assert_eq!(staged_files(&s), 0);
}

#[tokio::test]
async fn bad_presign_requests() {
    let s = server("[upload]\nmax_bytes = 1000000\n");
    for body in [
        json!({"key": "../etc/passwd"}),
        json!({"key": "_/uploads/x"}),
        json!({"key": "a//b.jpg"}),
        json!({"max_bytes": 1000001}),
        json!({"max_bytes": 0}),
        json!({"content_type": "image/svg+xml"}),
        json!({"content_type": "text/html"}),
        json!({"unknown": 1}),
    ] {
        let req = s.admin_request(Method::POST, "/_/uploads");
        let res = req.json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let req = s.admin_request(Method::POST, "/_/uploads");
    let res = req.body("{not json").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // An empty body is all defaults.
    let req = s.admin_request(Method::POST, "/_/uploads");
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn presign_needs_the_admin_key() {
    let s = server("");
    let res = s
        .client
        .post(s.url("/_/uploads"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let res = s
        .client
        .post(s.url("/_/uploads"))
        .bearer_auth("wrong-key-0123456789")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = s
        .client
        .post(s.url("/_/uploads"))
        .bearer_auth(&ADMIN[..ADMIN.len() - 1])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "a prefix of the key is not the key"
    );
    // Without MEDIAEDGE_ADMIN_KEY there is no admin API at all.
    let bare = Server::builder()
        .env("MEDIAEDGE_SIGNING_SECRET", SECRET)
        .without_admin_key()
        .start();
    let res = bare
        .client
        .post(bare.url("/_/uploads"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn signature_is_checked_before_the_body() {
    let s = server("");
    let p = s
        .presign(json!({"key": "k.jpg", "content_type": "image/jpeg", "max_bytes": 5000000}))
        .await;
    let url = p.url();
    let sig = url.rsplit("sig=").next().unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    for bad in [
        url.replace("sig=", &format!("sig={flipped}")),
        url.replace("max_bytes=5000000", "max_bytes=26214400"),
        url.replace("type=image", "type=any"),
        url.replace("/k.jpg?", "/other.jpg?"),
        url.replace("&sig=", "&nosig="),
    ] {
        // Headers only, announcing a body that never comes: the answer must not wait for it.
        let head = format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n",
            target(&bad)
        );
        let started = Instant::now();
        let (status, _) = raw(&s, head, Vec::new()).await;
        assert_eq!(status, 403, "{bad}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    assert!(!s.data().join("k.jpg").exists());
}

#[tokio::test]
async fn expired_url_is_403() {
    let s = server("[upload]\nexpiry_secs = 1\n");
    let p = s.presign(json!({"content_type": "image/jpeg"})).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = p.put(corpus_bytes(PHOTO)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        s.metric("mediaedge_uploads_total", &[("outcome", "forbidden")])
            .await
            >= 1.0
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_at_once() {
    let s = server("");
    let p = s.presign(json!({"key": "big.mp4"})).await;
    // 25 MiB + 1 byte, announced: refused before a byte of it is read.
    let over = 25 * 1024 * 1024 + 1;
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: {over}\r\nConnection: close\r\n\r\n",
        p.target()
    );
    let started = Instant::now();
    let (status, body) = raw(&s, head.clone(), Vec::new()).await;
    assert_eq!(status, 413, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // And with the whole body actually sent.
    let mut big = corpus_bytes("video_1280x720_5s.mp4");
    big.resize(over, 0);
    let (status, _) = raw(&s, head, big.clone()).await;
    assert_eq!(status, 413);
    // Chunked, no length: refused as soon as it crosses the limit.
    let small = s
        .presign(json!({"key": "chunked.mp4", "max_bytes": 1_000_000}))
        .await;
    let mut chunked = Vec::new();
    for piece in big[..2_000_000].chunks(100_000) {
        chunked.extend(format!("{:x}\r\n", piece.len()).bytes());
        chunked.extend_from_slice(piece);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        small.target()
    );
    let (status, _) = raw(&s, head, chunked).await;
    assert_eq!(status, 413);
    for key in ["big.mp4", "chunked.mp4"] {
        assert_eq!(
            s.get(&format!("/{key}")).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(staged_files(&s), 0);
    // The HTTP layer refuses any request announcing more than upload.max_bytes.
    let head = format!(
        "POST /_/purge HTTP/1.1\r\nHost: x\r\nContent-Length: {over}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw(&s, head, Vec::new()).await.0, 413);
}

#[tokio::test]
async fn client_that_disconnects_halfway_leaves_nothing() {
    let s = server("");
    let p = s.presign(json!({"key": "half.jpg"})).await;
    let photo = corpus_bytes(PHOTO);
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        p.target(),
        photo.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&photo[..photo.len() / 2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s
        .metric("mediaedge_uploads_total", &[("outcome", "incomplete")])
        .await
        < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the server never noticed the disconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.get("/half.jpg").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(staged_files(&s), 0);
}

#[tokio::test]
async fn stalled_body_times_out() {
    let s = server("[upload]\nbody_timeout_secs = 1\n");
    let p = s.presign(json!({"key": "slow.jpg"})).await;
    let photo = corpus_bytes(PHOTO);
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        p.target(),
        photo.len()
    );
    // Half the body, then silence: 408 after about a second.
    let started = Instant::now();
    let (status, _) = raw(&s, head, photo[..photo.len() / 2].to_vec()).await;
    assert_eq!(status, 408);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(s.get("/slow.jpg").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(staged_files(&s), 0);
}

/// Sends `head`, then `body` in `piece`-byte pieces every `every`, and
/// returns the answer's status (0 if none came within 20 s) and when it came.
async fn trickle(
    s: &Server,
    head: String,
    body: Vec<u8>,
    piece: usize,
    every: Duration,
) -> (u16, Duration) {
    let addr = s.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(head.as_bytes()).await;
        for chunk in body.chunks(piece) {
            if wr.write_all(chunk).await.is_err() {
                break;
            }
            tokio::time::sleep(every).await;
        }
        wr
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut buf)).await;
    let elapsed = started.elapsed();
    writer.abort();
    if buf.is_empty() {
        return (0, elapsed);
    }
    (common::parse_response(&buf).0, elapsed)
}

/// Issue 14, item 16: a per-piece timeout alone lets a client that sends a
/// little now and then hold an upload open for hours. After a first
/// `body_timeout_secs` of grace the body must average
/// `upload.min_rate_bytes_per_sec`: a trickle under it is 408 though every
/// piece comes in time, and nothing is stored; an upload at a slow rate
/// above it goes through.
#[tokio::test]
async fn a_trickling_upload_is_cut_off_at_the_minimum_rate() {
    let s = server("[upload]\nbody_timeout_secs = 2\nmin_rate_bytes_per_sec = 8192\n");
    let photo = corpus_bytes(PHOTO);
    let head = |p: &Presigned, len: usize| {
        format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
            p.target(),
        )
    };
    // 1 KB every 250 ms (4 KB/s): each piece well within the 2 s timeout,
    // the whole under 8 KB/s. Due after 2 s + 1 s per 8 KB: about 4 s.
    let p = s.presign(json!({"key": "trickle.jpg"})).await;
    let (status, took) = trickle(
        &s,
        head(&p, photo.len()),
        photo.clone(),
        1024,
        Duration::from_millis(250),
    )
    .await;
    assert_eq!(status, 408, "after {took:?}");
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert_eq!(s.get("/trickle.jpg").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(staged_files(&s), 0);
    assert_eq!(
        s.metric("mediaedge_uploads_total", &[("outcome", "timeout")])
            .await,
        1.0
    );

    // A small photo at 32 KB/s: slow, but above the rate.
    let mut small = Vec::new();
    let img = image::RgbImage::from_fn(160, 120, |x, y| {
        image::Rgb([((x * 7) ^ (y * 13)) as u8, (x * y) as u8, (x + y * 3) as u8])
    });
    img.write_to(
        &mut std::io::Cursor::new(&mut small),
        image::ImageFormat::Png,
    )
    .unwrap();
    let p = s.presign(json!({"key": "steady.png"})).await;
    let (status, took) = trickle(
        &s,
        head(&p, small.len()),
        small.clone(),
        8192,
        Duration::from_millis(250),
    )
    .await;
    assert_eq!(status, 201, "after {took:?}");
    assert_eq!(s.get("/steady.png").await.bytes().await.unwrap(), small);
}

/// Eight readers during repeated overwrites only ever see the whole old or
/// the whole new bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_see_a_partial_overwrite() {
    let s = std::sync::Arc::new(server(""));
    let (sent_a, sent_b) = (
        corpus_bytes(PHOTO),
        corpus_bytes("progressive_2560x1600.jpg"),
    );
    // One reusable URL for every overwrite.
    let p = s
        .presign(json!({"key": "flip.jpg", "reusable": true}))
        .await;
    // Each version as stored (its metadata removed), before the readers start.
    let mut stored = Vec::new();
    for v in [&sent_b, &sent_a] {
        assert_eq!(p.put(v.clone()).await.0, StatusCode::CREATED);
        stored.push(s.get("/flip.jpg").await.bytes().await.unwrap());
    }
    let (b, a) = (stored[0].clone(), stored[1].clone());

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..8 {
        let (s, stop, a, b) = (s.clone(), stop.clone(), a.clone(), b.clone());
        readers.push(tokio::spawn(async move {
            let mut seen = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let res = s.get("/flip.jpg").await;
                assert_eq!(res.status(), StatusCode::OK);
                let len: usize = res.headers()["content-length"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let body = res.bytes().await.unwrap();
                assert_eq!(body.len(), len);
                if body == a {
                    seen.0 += 1;
                } else if body == b {
                    seen.1 += 1;
                } else {
                    panic!("a reader saw {} bytes that are neither version", body.len());
                }
            }
            seen
        }));
    }
    for i in 0..10 {
        let next = if i % 2 == 0 {
            sent_b.clone()
        } else {
            sent_a.clone()
        };
        assert_eq!(p.put(next).await.0, StatusCode::CREATED);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut old, mut new) = (0, 0);
    for r in readers {
        let (x, y) = r.await.unwrap();
        old += x;
        new += y;
    }
    assert!(
        old > 0 && new > 0,
        "readers saw old {old} and new {new} times"
    );
}

#[tokio::test]
async fn killed_mid_upload_leaves_nothing_after_restart() {
    let s = server("");
    let p = s.presign(json!({"key": "killed.mp4"})).await;
    let video = corpus_bytes("video_1280x720_5s.mp4");
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        p.target(),
        video.len() * 10
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&video).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while staged_files(&s) == 0 {
        assert!(Instant::now() < deadline, "no staged file appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.signal(libc::SIGKILL);
    let dir = s.stop();
    drop(stream);
    assert!(
        std::fs::read_dir(dir.path().join("data/_/uploads"))
            .unwrap()
            .count()
            > 0,
        "the kill left a staged file"
    );

    let s = Server::builder().uploads().dir(dir).start();
    assert_eq!(s.get("/killed.mp4").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        staged_files(&s),
        0,
        "stray staged files are removed at start"
    );
    // The staging area is never readable as media.
    let staged_name = "/_/uploads/upload-x";
    assert_eq!(
        common::raw_get(&s.base, staged_name).await.0,
        405,
        "only PUT lives there"
    );
    assert_eq!(
        common::raw_get(&s.base, "/%5F/uploads/upload-x").await.0,
        400,
        "reserved key"
    );
}

#[tokio::test]
async fn overwrite_purges_cached_derivatives() {
    let s = server("");
    let p = s.presign(json!({"key": "o.jpg"})).await;
    assert_eq!(p.put(corpus_bytes(PHOTO)).await.0, StatusCode::CREATED);
    let first = s.get("/o.jpg?w=200&fmt=png").await;
    assert_eq!(first.headers()["x-cache"], "MISS");
    let img = common::decode(&first.bytes().await.unwrap());
    assert_eq!((img.width(), img.height()), (200, 150));
    assert_eq!(
        s.get("/o.jpg?w=200&fmt=png").await.headers()["x-cache"],
        "HIT"
    );
    // A square image replaces it (a new URL for the same key): the next
    // request is a miss with the new shape.
    let p = s.presign(json!({"key": "o.jpg"})).await;
    assert_eq!(
        p.put(corpus_bytes("rgba_1200x1200.png")).await.0,
        StatusCode::CREATED
    );
    let res = s.get("/o.jpg?w=200&fmt=png").await;
    assert_eq!(res.headers()["x-cache"], "MISS");
    let img = common::decode(&res.bytes().await.unwrap());
    assert_eq!((img.width(), img.height()), (200, 200));
}

#[tokio::test]
async fn presets_are_made_in_the_background() {
    let s = server(
        "[[preset]]\nname = \"thumb\"\nsize = \"150x150\"\nfit = \"cover\"\nformat = \"webp\"\n\
         [[preset]]\nname = \"detail\"\nsize = \"500x700\"\nfit = \"inside\"\nformat = \"auto\"\n",
    );
    let p = s.presign(json!({"content_type": "image/jpeg"})).await;
    let key = p["key"].as_str().unwrap().to_owned();
    assert_eq!(p.put(corpus_bytes(PHOTO)).await.0, StatusCode::CREATED);
    let deadline = Instant::now() + Duration::from_secs(20);
    while s
        .metric("mediaedge_presets_total", &[("outcome", "ok")])
        .await
        < 3.0
    {
        assert!(Instant::now() < deadline, "presets were not made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let transforms = s.metric("mediaedge_transforms_total", &[]).await;
    for (query, accept) in [
        ("w=150&h=150&fit=cover&fmt=webp", None),
        ("w=150&h=150", Some("image/webp")),
        ("w=500&h=700&fit=inside", Some("image/avif,image/webp,*/*")),
        ("w=500&h=700&fit=inside", None),
    ] {
        let path = format!("/{key}?{query}");
        let res = match accept {
            Some(a) => s.get_with(&path, &[("accept", a)]).await,
            None => s.get(&path).await,
        };
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["x-cache"], "HIT", "{path} {accept:?}");
    }
    assert_eq!(
        s.metric("mediaedge_transforms_total", &[]).await,
        transforms,
        "the viewers caused no transform"
    );
}

#[tokio::test]
async fn preset_failure_never_fails_the_upload() {
    // One worker, no queue, slow AVIF presets: presets may be refused or
    // still running, and every upload still succeeds.
    let s = server(
        "[transform]\nworkers = 1\nqueue = 0\n[[preset]]\nname = \"t\"\nsize = \"150x150\"\nformat = \"avif\"\n",
    );
    for _ in 0..3 {
        let p = s.presign(json!({"content_type": "image/png"})).await;
        let (status, body) = p.put(corpus_bytes("rgba_1200x1200.png")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// A 25 MB upload is streamed: the server's peak RSS grows by far less than the body.
#[tokio::test]
async fn a_25_mb_upload_is_streamed() {
    let s = server("");
    let video = common::padded_mp4("video_1280x720_5s.mp4", 25 * 1024 * 1024);
    // Warm up allocator and code paths first, then measure the growth.
    let warm = s.presign(json!({"key": "warm.mp4"})).await;
    assert_eq!(
        warm.put(corpus_bytes("video_1280x720_5s.mp4")).await.0,
        StatusCode::CREATED
    );
    let before = s.peak_rss();
    let p = s.presign(json!({"key": "big.mp4"})).await;
    let (status, body) = p.put(video.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let grew = s.peak_rss().saturating_sub(before);
    eprintln!(
        "peak RSS before {} MB, growth during a 25 MiB upload {:.1} MB",
        before >> 20,
        grew as f64 / 1048576.0
    );
    assert!(grew < 32 << 20, "RSS grew {grew} bytes");
    // As sent from the media data on (its `udta` was freed in place).
    let stored = std::fs::read(s.data().join("big.mp4")).unwrap();
    let mdat = video.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(stored.len() == video.len() && stored[mdat..] == video[mdat..]);

    // A 25 MB photo is checked by decoding it (at 1/8 scale) from memory: the
    // body is still streamed to disk, the check reads it back once.
    let mut photo = corpus_bytes(PHOTO);
    photo.resize(25 * 1024 * 1024, 0); // bytes after the JPEG's end marker
    let before = s.peak_rss();
    let p = s.presign(json!({"key": "big.jpg"})).await;
    let (status, body) = p.put(photo).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let grew = s.peak_rss().saturating_sub(before);
    eprintln!(
        "growth during a 25 MiB photo upload {:.1} MB",
        grew as f64 / 1048576.0
    );
    assert!(grew < 32 << 20, "RSS grew {grew} bytes");
}

#[tokio::test]
async fn cli_presign_prints_a_working_url() {
    let s = server("");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediaedge"))
        .args([
            "presign",
            "--key",
            "cli/a.png",
            "--content-type",
            "image/png",
            "--expires",
            "10m",
            "--base-url",
            &s.base,
        ])
        .env("MEDIAEDGE_SIGNING_SECRET", SECRET)
        .env_remove("MEDIAEDGE_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The CLI's answer is uploaded to like one the server gave.
    let p = Presigned::new(&s, serde_json::from_slice(&out.stdout).unwrap());
    assert_eq!(p["key"], "cli/a.png");
    assert_eq!(p["method"], "PUT");
    let (status, body) = p.put(corpus_bytes("rgba_1200x1200.png")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(s.get("/cli/a.png").await.status(), StatusCode::OK);
}

/// Issue 14, item 15: without `upload.base_url`, presigned URLs are built
/// from the request. `X-Forwarded-Proto` / `X-Forwarded-Host` are believed
/// only from `server.trusted_proxies` (from anyone else they would let a
/// caller choose where a phone sends its photo); the server warns at start
/// that the URLs come from request headers.
#[tokio::test]
async fn presigned_urls_follow_only_a_trusted_proxy() {
    let s = server("[server]\ntrusted_proxies = [\"127.0.0.3\"]\n");
    let presign_from = |source: &str| {
        let client = reqwest::Client::builder()
            .no_proxy()
            .local_address(source.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        client
            .post(s.url("/_/uploads"))
            .bearer_auth(ADMIN)
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "media.example.com")
            .json(&json!({"key": "a.jpg"}))
            .send()
    };
    let via_proxy: Value = presign_from("127.0.0.3")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        via_proxy["url"]
            .as_str()
            .unwrap()
            .starts_with("https://media.example.com/_/uploads/a.jpg?"),
        "{via_proxy}"
    );
    let direct: Value = presign_from("127.0.0.2")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let host = s.base.trim_start_matches("http://");
    assert!(
        direct["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{host}/_/uploads/a.jpg?")),
        "{direct}"
    );
    assert!(
        s.stderr_lines()
            .iter()
            .any(|l| l.contains("WARN") && l.contains("upload.base_url")),
        "{:?}",
        s.stderr_lines()
    );
    // With upload.base_url set there is nothing to warn about.
    let s = server("[upload]\nbase_url = \"https://media.example.com\"\n");
    s.presign(json!({})).await;
    assert!(
        !s.stderr_lines()
            .iter()
            .any(|l| l.contains("upload.base_url"))
    );
}

/// Issue 14, item 8: a presigned URL publishes once. A replay is 403 and
/// changes nothing; an attempt refused for its content does not use the URL
/// up (a phone on a bad network retries); `reusable` opts out; `if_absent`
/// makes a create-only grant (412 when the key exists).
#[tokio::test]
async fn presigned_urls_publish_once() {
    let s = server("");
    let photo = corpus_bytes(PHOTO);
    let p = s.presign(json!({"key": "once.jpg"})).await;
    // Refused content first: the URL is still good afterwards.
    let (status, _) = p.put(b"<!DOCTYPE html><html></html>".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, body) = p.put(photo.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let etag = s.get("/once.jpg").await.headers()["etag"].clone();
    let (status, body) = p.put(corpus_bytes("gray_2560x1600.jpg")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        "Forbidden: this upload URL has been used; ask for a new one."
    );
    assert_eq!(s.get("/once.jpg").await.headers()["etag"], etag);
    // A new presign for the same key is a new grant.
    let again = s.presign(json!({"key": "once.jpg"})).await;
    assert_ne!(again["url"], p["url"]);
    let (status, _) = again.put(photo.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    // Reusable: any number of publishes until it expires.
    let r = s
        .presign(json!({"key": "many.jpg", "reusable": true}))
        .await;
    for _ in 0..3 {
        let (status, _) = r.put(photo.clone()).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    // Create-only: refused while the key exists, before the body is read.
    let c = s
        .presign(json!({"key": "once.jpg", "if_absent": true}))
        .await;
    let (status, body) = c.put(photo.clone()).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(body, "Precondition Failed: the key already exists");
    let c = s
        .presign(json!({"key": "fresh.jpg", "if_absent": true}))
        .await;
    let (status, _) = c.put(photo.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        s.metric("mediaedge_uploads_total", &[("outcome", "used")])
            .await,
        1.0
    );
}
