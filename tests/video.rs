//! Video as the SPEC has it: transform parameters on a video answer the
//! frame at `t` as an image (compared with the frame the `ffmpeg` program
//! extracts), cached and access-checked like any derivative; `fmt=json`
//! and the upload's 201 carry duration, codec, audio and the poster's
//! placeholders; `upload.max_video_secs` / `video_codecs` and files that
//! only look like MP4 are refused with 422 and nothing stored; uploads lose
//! their location (`exiftool -ee`) and get their index first, with streams
//! untouched (`ffmpeg -f framemd5`).

mod common;

use common::auth::{claims, mint, rsa_keys};
use common::images::mean_abs_diff;
use common::metadata::{exiftool_ee, tags_like};
use common::video::{av1_mp4, ffmpeg_frame, framemd5, top_level_boxes};
use common::{Server, corpus, corpus_bytes, decode};
use reqwest::StatusCode;
use serde_json::{Value, json};

const H264: &str = "video_1280x720_5s.mp4";
const HEVC: &str = "video_1280x720_rot90_hevc_3s.mov";
const VP9: &str = "video_1280x720_vp9_3s.webm";
const MOOV_LAST: &str = "video_1280x720_moovlast_3s.mp4";

async fn json_of(s: &Server, path: &str) -> Value {
    serde_json::from_slice(&s.get_ok(path).await.1).unwrap()
}

/// A file that sniffs as MP4 (an `ftyp` box) and is nothing after it.
fn fake_mp4() -> Vec<u8> {
    let mut v = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2".to_vec();
    v.extend((0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    v
}

#[tokio::test]
async fn posters_of_every_codec_are_the_frame_ffmpeg_shows() {
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let av1 = av1_mp4(tmp.path());
    s.put("av1.mp4", &std::fs::read(&av1).unwrap());
    // (file, key, upright size)
    let cases = [
        (corpus(H264), "clip.mp4", (1280, 720)),
        (corpus(HEVC), "phone.mov", (720, 1280)),
        (corpus(VP9), "clip.webm", (1280, 720)),
        (corpus(MOOV_LAST), "last.mp4", (1280, 720)),
        (av1, "av1.mp4", (640, 360)),
    ];
    for (file, key, _) in &cases[..4] {
        s.put(key, &std::fs::read(file).unwrap());
    }
    for (file, key, (w, h)) in cases {
        for t in [0.0, 1.5] {
            let (headers, body) = s.get_ok(&format!("/{key}?w=320&t={t}&fmt=png")).await;
            assert_eq!(headers["content-type"], "image/png", "{key}");
            let poster = decode(&body);
            // Portrait stays portrait: the display matrix is applied.
            let expect_h = (320.0 * h as f64 / w as f64).round() as u32;
            assert_eq!(
                (poster.width(), poster.height()),
                (320, expect_h),
                "{key} at {t}"
            );
            let reference = ffmpeg_frame(&file, t, 320);
            let diff = mean_abs_diff(&poster, &reference);
            assert!(
                diff < 4.0,
                "{key} at {t}: differs from ffmpeg's frame by {diff:.2}"
            );
        }
        // As an image derivative: the box, the fit, the encoder.
        let (headers, body) = s.get_ok(&format!("/{key}?w=320&h=180&fmt=webp&q=70")).await;
        assert_eq!(headers["content-type"], "image/webp");
        let cover = decode(&body);
        assert_eq!((cover.width(), cover.height()), (320, 180), "{key}");
    }
}

#[tokio::test]
async fn t_defaults_to_zero_clamps_to_the_last_frame_and_is_checked() {
    let s = Server::start();
    s.put_corpus(H264, "clip.mp4");
    s.put_corpus("photo_4032x3024_orient1.jpg", "photo.jpg");
    let (_, first) = s.get_ok("/clip.mp4?w=160&fmt=png").await;
    // t=0 is the default: one cache entry.
    let (h, zero) = s.get_ok("/clip.mp4?w=160&fmt=png&t=0.000").await;
    assert_eq!((h["x-cache"].to_str().unwrap(), &zero), ("HIT", &first));
    let (_, later) = s.get_ok("/clip.mp4?w=160&fmt=png&t=4").await;
    assert_ne!(later, first, "the clip pans");
    // Past the end: the last frame, whatever the time.
    let (_, end) = s.get_ok("/clip.mp4?w=160&fmt=png&t=86400").await;
    let (_, end2) = s.get_ok("/clip.mp4?w=160&fmt=png&t=9.5").await;
    assert_eq!(end, end2);
    let last = ffmpeg_frame(&corpus(H264), 4.95, 160);
    assert!(mean_abs_diff(&decode(&end), &last) < 4.0);
    for bad in [
        "abc", "-1", "86400.5", "1e3", "", "1.", ".5", "NaN", "1.2.3", "0x10",
    ] {
        let res = s.get(&format!("/clip.mp4?w=160&t={bad}")).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "t={bad}");
        assert_eq!(
            res.text().await.unwrap(),
            "invalid parameter t: must be a time in seconds from 0 to 86400, e.g. 1.5"
        );
    }
    // On an image `t` changes nothing: the same cache entry.
    s.get_ok("/photo.jpg?w=100").await;
    let (h, _) = s.get_ok("/photo.jpg?w=100&t=3").await;
    assert_eq!(h["x-cache"], "HIT");
}

#[tokio::test]
async fn posters_are_cached_coalesced_and_private_like_any_derivative() {
    let dir = tempfile::tempdir().unwrap();
    let keys = rsa_keys(dir.path(), "idp");
    let config = format!(
        "[jwt]\npublic_key_file = \"{}\"\n[[route]]\nprefix = \"/private/\"\naccess = \"jwt\"\n",
        keys.public.display()
    );
    let s = Server::builder().dir(dir).config(&config).start();
    s.put_corpus(HEVC, "private/v.mov");
    let path = "/private/v.mov?w=320&h=180&t=1";
    let res = s.get(path).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.text().await.unwrap(), "Not Found Token.");
    let auth = format!("Bearer {}", mint(&keys, &claims("alice")));
    // Eight at once: one decode.
    let header = [("authorization", auth.as_str())];
    let gets = (0..8).map(|_| s.get_with(path, &header));
    let answers = futures_util::future::join_all(gets).await;
    let mut bodies = Vec::new();
    for res in answers {
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["cache-control"], "private, max-age=3600");
        bodies.push(res.bytes().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    let made = s
        .metric("mediaedge_transforms_total", &[("outcome", "ok")])
        .await;
    assert_eq!(made, 1.0, "coalesced into one decode");
    let res = s.get_with(path, &[("authorization", auth.as_str())]).await;
    assert_eq!(res.headers()["x-cache"], "HIT");
    // Missing, after access only.
    let res = s
        .get_with(
            "/private/none.mov?w=10",
            &[("authorization", auth.as_str())],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn fmt_json_of_videos() {
    let s = Server::start();
    for (file, key) in [(H264, "a.mp4"), (HEVC, "b.mov"), (VP9, "c.webm")] {
        s.put_corpus(file, key);
    }
    let a = json_of(&s, "/a.mp4?fmt=json").await;
    assert_eq!(a["content_type"], "video/mp4");
    assert_eq!(
        (a["width"].as_u64(), a["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert_eq!(
        (a["video_codec"].as_str(), a["audio"].as_bool()),
        (Some("h264"), Some(false))
    );
    assert!(
        (a["duration_ms"].as_u64().unwrap() as i64 - 5000).abs() <= 50,
        "{a}"
    );
    let b = json_of(&s, "/b.mov?fmt=json").await;
    assert_eq!(b["content_type"], "video/quicktime");
    assert_eq!(
        (b["width"].as_u64(), b["height"].as_u64()),
        (Some(720), Some(1280)),
        "display size"
    );
    assert_eq!(
        (b["video_codec"].as_str(), b["audio"].as_bool()),
        (Some("hevc"), Some(true))
    );
    assert!(
        (b["duration_ms"].as_u64().unwrap() as i64 - 3000).abs() <= 50,
        "{b}"
    );
    let c = json_of(&s, "/c.webm?fmt=json").await;
    assert_eq!(
        (c["video_codec"].as_str(), c["audio"].as_bool()),
        (Some("vp9"), Some(false))
    );
    for v in [&a, &b, &c] {
        assert!(
            v["thumbhash"].as_str().is_some_and(|t| !t.is_empty()),
            "{v}"
        );
        assert!(v["blurhash"].as_str().is_some_and(|t| t.len() >= 6), "{v}");
        assert!(v["color"].as_str().is_some_and(|c| c.len() == 7), "{v}");
        assert!(v.get("frames").is_none());
    }
    // The placeholders follow `t` (the clip pans from dark to light).
    let later = json_of(&s, "/a.mp4?fmt=json&t=4").await;
    assert_ne!(later["thumbhash"], a["thumbhash"]);
    assert_eq!(later["duration_ms"], a["duration_ms"]);
    // A bad `t` counts only where it is read.
    let res = s.get("/a.mp4?fmt=json&t=soon").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    s.put_corpus("gray_2560x1600.jpg", "g.jpg");
    assert_eq!(
        s.get("/g.jpg?fmt=json&t=soon").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn undecodable_videos_answer_422() {
    let s = Server::start();
    s.put("fake.mp4", &fake_mp4());
    let mut cut = corpus_bytes(H264);
    cut.truncate(3000);
    s.put("cut.mp4", &cut);
    for path in ["/fake.mp4?w=100", "/fake.mp4?fmt=json", "/cut.mp4?w=100"] {
        let res = s.get(path).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
    }
    // Served as they are without parameters.
    assert_eq!(s.get("/fake.mp4").await.status(), StatusCode::OK);
}

fn upload_server(config: &str) -> Server {
    Server::builder().uploads().config(config).start()
}

async fn upload(s: &Server, bytes: Vec<u8>, content_type: &str) -> (StatusCode, String, String) {
    let p = s.presign(json!({"content_type": content_type})).await;
    let key = p.key().to_owned();
    let (status, body) = p.put(bytes).await;
    (status, body, key)
}

#[tokio::test]
async fn a_phone_video_upload_answers_its_facts_and_poster_placeholders() {
    let s = upload_server("[[preset]]\nname = \"poster\"\nsize = \"320x180\"\nformat = \"webp\"\n");
    let (status, body, key) = upload(&s, corpus_bytes(HEVC), "video/quicktime").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["key"], key.as_str());
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(720), Some(1280))
    );
    assert_eq!(
        (v["video_codec"].as_str(), v["audio"].as_bool()),
        (Some("hevc"), Some(true))
    );
    assert!((v["duration_ms"].as_u64().unwrap() as i64 - 3000).abs() <= 50);
    assert!(v["thumbhash"].is_string() && v["blurhash"].is_string() && v["color"].is_string());
    // The 201's facts are the object's fmt=json, already cached.
    let res = s.get(&format!("/{key}?fmt=json")).await;
    assert_eq!(res.headers()["x-cache"], "HIT");
    let again: Value = res.json().await.unwrap();
    assert_eq!(again, v);
    // The preset's poster was made in the background: the first viewer hits.
    let poster = format!("/{key}?w=320&h=180&fmt=webp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let made = s
            .metric("mediaedge_presets_total", &[("outcome", "ok")])
            .await;
        if made >= 1.0 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (h, body) = s.get_ok(&poster).await;
    assert_eq!(h["x-cache"], "HIT");
    let img = decode(&body);
    assert_eq!((img.width(), img.height()), (320, 180));
}

#[tokio::test]
async fn video_uploads_over_the_limits_or_only_looking_like_mp4_are_422() {
    let s = upload_server("[upload]\nmax_video_secs = 4\nvideo_codecs = [\"h264\", \"vp9\"]\n");
    let cases = [
        (
            corpus_bytes(H264),
            "video/mp4",
            "video is 5.0 s long; upload.max_video_secs is 4",
        ),
        (
            corpus_bytes(HEVC),
            "video/quicktime",
            "video codec hevc is not in upload.video_codecs (h264, vp9)",
        ),
    ];
    for (bytes, ct, why) in cases {
        let (status, body, key) = upload(&s, bytes, ct).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body, why);
        assert_eq!(
            s.get(&format!("/{key}")).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    let (status, body, key) = upload(&s, fake_mp4(), "video/mp4").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        s.get(&format!("/{key}")).await.status(),
        StatusCode::NOT_FOUND
    );
    // Within the limits: stored.
    let (status, body, _) = upload(&s, corpus_bytes(VP9), "video/webm").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn stored(s: &Server, key: &str) -> Vec<u8> {
    s.get_ok(&format!("/{key}")).await.1
}

#[tokio::test]
async fn uploaded_videos_lose_their_location_and_keep_their_streams() {
    let s = upload_server("");
    let phone = corpus_bytes(HEVC);
    let before = exiftool_ee(&phone);
    assert!(
        !tags_like(&before, "GPS").is_empty(),
        "the corpus file has a location"
    );
    let (status, body, key) = upload(&s, phone.clone(), "video/quicktime").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let out = stored(&s, &key).await;
    assert_eq!(out.len(), phone.len(), "metadata is freed in place");
    let tags = exiftool_ee(&out);
    for pat in ["GPS", "Location", "Make", "Model", "UserData:", "Keys:"] {
        assert!(
            tags_like(&tags, pat).is_empty(),
            "{pat} left: {:?}",
            tags_like(&tags, pat)
        );
    }
    assert!(tags.get("ExifTool:Warning").is_none(), "{tags:?}");
    // The display matrix stays: the video still shows upright.
    assert_eq!(tags["Composite:Rotation"], before["Composite:Rotation"]);
    assert_eq!(framemd5(&out), framemd5(&phone), "streams untouched");
    // The poster of the stored file is still portrait.
    let poster = decode(&s.get_ok(&format!("/{key}?w=90&fmt=png")).await.1);
    assert_eq!((poster.width(), poster.height()), (90, 160));
}

#[tokio::test]
async fn a_moov_last_upload_is_stored_index_first() {
    for config in ["", "[upload]\nkeep_metadata = true\n"] {
        let s = upload_server(config);
        let src = corpus_bytes(MOOV_LAST);
        let boxes = top_level_boxes(&src);
        let (moov, mdat) = (
            boxes.iter().position(|b| b == "moov").unwrap(),
            boxes.iter().position(|b| b == "mdat").unwrap(),
        );
        assert!(moov > mdat, "the corpus file has its index last: {boxes:?}");
        let (status, body, key) = upload(&s, src.clone(), "video/mp4").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let out = stored(&s, &key).await;
        let boxes = top_level_boxes(&out);
        let (moov, mdat) = (
            boxes.iter().position(|b| b == "moov").unwrap(),
            boxes.iter().position(|b| b == "mdat").unwrap(),
        );
        assert!(moov < mdat && boxes[0] == "ftyp", "{config:?}: {boxes:?}");
        assert_eq!(out.len(), src.len());
        assert_eq!(
            framemd5(&out),
            framemd5(&src),
            "{config:?}: streams untouched"
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["bytes"], out.len() as u64);
    }
    // keep_metadata keeps the phone's location (but not its index last).
    let s = upload_server("[upload]\nkeep_metadata = true\n");
    let (status, _, key) = upload(&s, corpus_bytes(HEVC), "video/quicktime").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(stored(&s, &key).await, corpus_bytes(HEVC));
}
