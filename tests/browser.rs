//! Private video in a real browser: Debian's headless Chromium loads a page
//! from a stand-in web app that sets the JWT cookie (as the README tells a
//! web app to), plays an MP4 from a `jwt` route on mediaedge, seeks to the
//! middle and reports `readyState` and `currentTime` back to the test.
//! Without the cookie the same page gets no video.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use common::Server;
use common::auth::{claims, mint, rsa_keys};
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
    let (tx, mut rx) = mpsc::channel::<String>(1);
    let html = page(video_url);
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
