//! Private video in a real browser: Debian's headless Chromium loads a page
//! from a stand-in web app that sets the JWT cookie (as the README tells a
//! web app to), plays an MP4 from a `jwt` route on mediaedge, seeks to the
//! middle and reports `readyState` and `currentTime` back to the test.
//! Without the cookie the same page gets no video. And a phone's video as
//! issue 18 has it: uploaded with its index last, it shows its private
//! poster, starts without fetching the end of the file, and a replay in a
//! fresh browser seeks from the slice cache with no store read.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use common::Server;
use common::auth::{claims, mint, rsa_keys};
use common::video::top_level_boxes;
use serde_json::Value;
use tokio::sync::mpsc;

const VIDEO: &str = "video_1280x720_5s.mp4";
const COOKIE: &str = "mediaedge_token";

/// The page: a `<video>` from mediaedge, seek to the middle once metadata is
/// in, report what the element says (or its error) to `/result`.
fn page(video_url: &str) -> String {
    format!(
        r#"<!doctype html><html><body>
<video id="v" src="{video_url}" preload="auto" muted playsinline></video>
<script>
const v = document.getElementById('v');
let sent = false;
const report = (o) => {{ if (sent) return; sent = true; fetch('/result', {{method: 'POST', body: JSON.stringify(o)}}); }};
v.addEventListener('error', () => report({{error: v.error ? v.error.code : -1, networkState: v.networkState}}));
v.addEventListener('loadedmetadata', () => {{ v.currentTime = v.duration / 2; }});
v.addEventListener('seeked', () => {{
  const check = () => v.readyState >= 2
    ? report({{readyState: v.readyState, currentTime: v.currentTime, duration: v.duration}})
    : setTimeout(check, 50);
  check();
}});
setTimeout(() => report({{timeout: true, readyState: v.readyState, networkState: v.networkState}}), 30000);
</script></body></html>"#
    )
}

/// Serves the page (with or without `Set-Cookie`) and returns what the page reports.
async fn run_browser(video_url: &str, set_cookie: Option<String>) -> Value {
    run_page(page(video_url), set_cookie).await
}

/// Serves `html` as the page (with or without `Set-Cookie`) to a fresh
/// Chromium profile and returns what the page reports.
async fn run_page(html: String, set_cookie: Option<String>) -> Value {
    let (tx, mut rx) = mpsc::channel::<String>(1);
    let app = axum::Router::new()
        .route(
            "/page",
            get(move || {
                let (html, cookie) = (html.clone(), set_cookie.clone());
                async move {
                    let mut res = Html(html).into_response();
                    if let Some(c) = cookie {
                        res.headers_mut().insert("set-cookie", c.parse().unwrap());
                    }
                    res
                }
            }),
        )
        .route(
            "/result",
            post(move |body: String| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(body).await;
                    "ok"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // By name, like the media URL: the page and the media are one site
    // (Chromium treats two ports of an IP address as two sites, and
    // protected media is `Cross-Origin-Resource-Policy: same-site`).
    let page_url = format!(
        "http://localhost:{}/page",
        listener.local_addr().unwrap().port()
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let profile = tempfile::tempdir().unwrap();
    let mut chromium = Command::new(chromium_path())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--mute-audio",
            "--autoplay-policy=no-user-gesture-required",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&page_url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium (scripts/deps.sh installs it)");
    let report = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await;
    let _ = chromium.kill();
    let _ = chromium.wait();
    server.abort();
    let body = report
        .expect("the page reported within 60 s")
        .expect("a report");
    serde_json::from_str(&body).unwrap()
}

fn chromium_path() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Debian chromium is installed (scripts/deps.sh installs it)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_video_plays_and_seeks_with_the_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let keys = rsa_keys(dir.path(), "idp");
    let config = format!(
        "[jwt]\npublic_key_file = \"{}\"\ncookie = \"{COOKIE}\"\n[[route]]\nprefix = \"/private/\"\naccess = \"jwt\"\n",
        keys.public.display()
    );
    let s = Server::builder().dir(dir).config(&config).start();
    s.put_corpus(VIDEO, "private/videos/clip.mp4");
    let video_url = s
        .url("/private/videos/clip.mp4")
        .replace("//127.0.0.1:", "//localhost:");

    // Without the cookie the browser gets 401s and no video.
    let refused = run_browser(&video_url, None).await;
    assert!(
        refused.get("error").is_some(),
        "played without a token: {refused}"
    );
    let denied = s
        .metric(
            "mediaedge_auth_failures_total",
            &[("reason", "missing_token")],
        )
        .await;
    assert!(denied >= 1.0);

    // The web app sets the cookie the way the README says; the video plays and seeks.
    let token = mint(&keys, &claims("alice"));
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax");
    let played = run_browser(&video_url, Some(cookie)).await;
    eprintln!("browser reported: {played}");
    assert!(
        played.get("error").is_none() && played.get("timeout").is_none(),
        "{played}"
    );
    let ready = played["readyState"].as_f64().unwrap();
    let duration = played["duration"].as_f64().unwrap();
    let current = played["currentTime"].as_f64().unwrap();
    assert!(ready >= 2.0, "{played}");
    assert!((duration - 5.0).abs() < 0.2, "{played}");
    assert!(
        (current - duration / 2.0).abs() < 0.5,
        "seeked to {current} of {duration}"
    );

    // The browser fetched with ranges, and the answers were 206 video/mp4.
    let partial = s
        .metric(
            "mediaedge_http_requests_total",
            &[("route", "original"), ("status", "206")],
        )
        .await;
    assert!(partial >= 1.0, "no 206 was served");
    let res = s
        .get_with(
            "/private/videos/clip.mp4",
            &[
                ("cookie", &format!("{COOKIE}={token}")),
                ("range", "bytes=100000-"),
            ],
        )
        .await;
    assert_eq!(res.status(), reqwest::StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()["content-type"], "video/mp4");
    assert_eq!(res.headers()["cache-control"], "private, max-age=3600");
}

/// A phone's video page: the poster (as the page's `<img>` would load it,
/// to read its size) and the `<video>` with it. `first`: play to the end;
/// otherwise seek to 2.5 s as soon as the index is in, then play.
fn phone_page(video_url: &str, poster_url: &str, first: bool) -> String {
    format!(
        r#"<!doctype html><html><body>
<video id="v" src="{video_url}" poster="{poster_url}" preload="metadata" muted playsinline></video>
<script>
const v = document.getElementById('v');
let sent = false, poster = null;
const report = (o) => {{ if (sent) return; sent = true; o.poster = poster; fetch('/result', {{method: 'POST', body: JSON.stringify(o)}}); }};
const img = new Image();
img.onload = () => {{ poster = [img.naturalWidth, img.naturalHeight]; }};
img.onerror = () => {{ poster = 'error'; }};
img.src = "{poster_url}";
v.addEventListener('error', () => report({{error: v.error ? v.error.code : -1}}));
if ({first}) {{
  v.addEventListener('loadedmetadata', () => v.play());
  v.addEventListener('ended', () => report({{ended: true, duration: v.duration}}));
}} else {{
  v.addEventListener('loadedmetadata', () => {{ v.currentTime = 2.5; }});
  v.addEventListener('seeked', () => v.play(), {{once: true}});
  v.addEventListener('playing', () => {{
    const check = () => v.readyState >= 3
      ? report({{currentTime: v.currentTime, readyState: v.readyState}})
      : setTimeout(check, 50);
    check();
  }});
}}
setTimeout(() => report({{timeout: true, readyState: v.readyState, networkState: v.networkState}}), 40000);
</script></body></html>"#
    )
}

/// A 5 s, ~12 MB H.264 MP4 with its index last (ffmpeg's default), as many
/// phones and tools write it.
fn big_moov_last_mp4(dir: &std::path::Path) -> Vec<u8> {
    let out = dir.join("phone.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(common::corpus(VIDEO))
        .args([
            // Film grain keeps the bitrate up (the clip itself is a slow pan).
            "-vf",
            "noise=alls=20:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "20M",
            "-maxrate",
            "20M",
            "-bufsize",
            "40M",
            "-an",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg is installed (scripts/test.sh installs it)");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// The ranges the server answered for `path` (start, status, cache) in its
/// request log lines.
fn served_ranges(s: &Server, path: &str) -> Vec<(u64, String)> {
    s.stderr_lines()
        .iter()
        .filter(|l| l.contains(&format!("path=\"{path}\"")) && l.contains("status=206"))
        .filter_map(|l| {
            let range = l.split("range=\"bytes ").nth(1)?;
            let start = range.split('-').next()?.parse().ok()?;
            let cache = l.split("cache=\"").nth(1)?.split('"').next()?.to_owned();
            Some((start, cache))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_video_uploads_shows_a_private_poster_starts_at_once_and_replays_from_the_slice_cache()
 {
    let dir = tempfile::tempdir().unwrap();
    let keys = rsa_keys(dir.path(), "idp");
    let cache = dir.path().join("cache");
    let config = format!(
        "[cache]\ndisk_path = \"{}\"\n[jwt]\npublic_key_file = \"{}\"\ncookie = \"{COOKIE}\"\n\
         [[route]]\nprefix = \"/private/\"\naccess = \"jwt\"\n",
        cache.display(),
        keys.public.display()
    );
    let video = big_moov_last_mp4(dir.path());
    let boxes = top_level_boxes(&video);
    assert!(boxes.iter().position(|b| b == "moov") > boxes.iter().position(|b| b == "mdat"));
    assert!(
        video.len() > 9 << 20,
        "{} bytes: over the in-memory limit",
        video.len()
    );
    let s = Server::builder().dir(dir).uploads().config(&config).start();

    // The phone uploads it; it is stored index first.
    let key = "private/videos/phone.mp4";
    let (status, up) = s.upload(key, video.clone()).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{up}");
    assert_eq!(
        (up["video_codec"].as_str(), up["width"].as_u64()),
        (Some("h264"), Some(1280))
    );
    let stored = std::fs::read(s.data().join(key)).unwrap();
    let boxes = top_level_boxes(&stored);
    assert!(
        boxes.iter().position(|b| b == "moov") < boxes.iter().position(|b| b == "mdat"),
        "{boxes:?}"
    );

    let base = s.url("").replace("//127.0.0.1:", "//localhost:");
    let (video_url, poster_url) = (format!("{base}/{key}"), format!("{base}/{key}?t=1&w=640"));
    let token = mint(&keys, &claims("alice"));
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax");

    // First viewer: the private poster shows, the video plays to its end.
    let first = run_page(
        phone_page(&video_url, &poster_url, true),
        Some(cookie.clone()),
    )
    .await;
    eprintln!("first play: {first}");
    assert_eq!(first["ended"], true, "{first}");
    assert_eq!(first["poster"], serde_json::json!([640, 360]), "{first}");
    // It started without fetching the end of the file (where a moov-last
    // file keeps its index).
    let size = stored.len() as u64;
    let ranges = served_ranges(&s, &format!("/{key}"));
    assert!(!ranges.is_empty());
    assert!(
        ranges.iter().all(|(start, _)| *start + (1 << 20) < size),
        "{ranges:?}"
    );

    // A replay, seeking to 2.5 s at once: no store read, the seek's range a
    // slice-cache hit.
    let reads = s
        .metric("mediaedge_store_requests_total", &[("op", "get")])
        .await;
    let seen = ranges.len();
    let replay = run_page(phone_page(&video_url, &poster_url, false), Some(cookie)).await;
    eprintln!("replay: {replay}");
    let at = replay["currentTime"].as_f64().unwrap_or(-1.0);
    assert!((2.4..4.0).contains(&at), "{replay}");
    assert_eq!(
        s.metric("mediaedge_store_requests_total", &[("op", "get")])
            .await,
        reads
    );
    let ranges = served_ranges(&s, &format!("/{key}"));
    let seeks: Vec<_> = ranges[seen..]
        .iter()
        .filter(|(start, _)| *start > 0)
        .collect();
    assert!(!seeks.is_empty(), "no seek request: {ranges:?}");
    assert!(seeks.iter().all(|(_, cache)| cache == "HIT"), "{seeks:?}");
    assert!(s.metric("mediaedge_store_bytes_avoided_total", &[]).await > 0.0);
}
