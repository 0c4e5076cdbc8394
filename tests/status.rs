//! The status page: admin key on the public listener, open on
//! `server.status_listen`; rendered by Debian's headless Chromium, whose
//! DOM must show the numbers `/_/metrics` has.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use common::{Server, parse_metric};
use reqwest::StatusCode;

const PHOTO: &str = "photo_4032x3024_orient1.jpg";
const ADMIN_KEY: &str = "status-admin-key";

fn chromium_path() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Debian chromium is installed (scripts/test.sh installs it)")
}

/// Runs headless Chromium on `url` with `what` (`--dump-dom` or
/// `--screenshot=...`); its stdout.
fn chromium(url: &str, what: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium_path())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,1500",
            what,
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("start chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `data-metric` → `data-value` of every figure in the rendered DOM.
fn figures(dom: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for part in dom.split("data-metric=\"").skip(1) {
        let Some((name, rest)) = part.split_once('"') else {
            continue;
        };
        let Some(value) = rest
            .split_once("data-value=\"")
            .and_then(|(_, v)| v.split_once('"'))
            .and_then(|(v, _)| v.parse::<f64>().ok())
        else {
            continue;
        };
        out.insert(name.replace("&amp;", "&"), value);
    }
    out
}

async fn traffic(s: &Server) {
    s.put_corpus(PHOTO, "p.jpg");
    for _ in 0..3 {
        let res = s.get("/p.jpg?w=150&h=150&fmt=webp").await;
        assert_eq!(res.status(), StatusCode::OK);
        res.bytes().await.unwrap();
    }
    s.get("/p.jpg?w=300&fmt=jpeg").await.bytes().await.unwrap();
    s.get("/p.jpg").await.bytes().await.unwrap();
    assert_eq!(s.get("/missing.jpg").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn status_page_needs_the_admin_key_on_the_public_listener() {
    let s = Server::builder()
        .env("MEDIAEDGE_ADMIN_KEY", ADMIN_KEY)
        .start();
    let res = s.get("/_/status").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = s
        .get_with("/_/status", &[("authorization", "Bearer wrong")])
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = s.admin_get("/_/status").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    assert!(html.contains("<meta http-equiv=\"refresh\""));
    // Self-contained: no scripts, no external assets.
    assert!(!html.contains("<script"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_chromium_shows_the_metrics() {
    let config = "[server]\nstatus_listen = \"127.0.0.1:0\"\n\n[[preset]]\nname = \"thumb\"\nsize = \"150x150\"\nformat = \"webp\"\n";
    let s = Server::builder().config(config).start();
    let status_url = s.stdout_after("mediaedge status page on ");
    traffic(&s).await;
    // Only the status page, health and metrics are on the open listener.
    let status_base = status_url.trim_end_matches("/_/status");
    let other = s
        .client
        .get(format!("{status_base}/p.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);

    let dom = chromium(&status_url, "--dump-dom");
    assert!(dom.contains("<h1>mediaedge</h1>"), "not rendered: {dom}");
    let page = figures(&dom);
    let text = s.metrics_text().await;
    let metric = |name: &str, labels: &[(&str, &str)]| parse_metric(&text, name, labels);
    let shown = |name: &str| {
        *page
            .get(name)
            .unwrap_or_else(|| panic!("no figure {name} on the page: {page:?}"))
    };

    let hits = metric("mediaedge_cache_hits_total", &[]);
    let misses = metric("mediaedge_cache_misses_total", &[]);
    assert!(hits >= 2.0 && misses >= 2.0, "{hits} {misses}");
    assert_eq!(shown("hits"), hits);
    assert_eq!(shown("misses"), misses);
    assert!((shown("hit_ratio") - hits / (hits + misses)).abs() < 1e-9);
    let media = metric("mediaedge_http_requests_total", &[("route", "derivative")])
        + metric("mediaedge_http_requests_total", &[("route", "original")]);
    assert_eq!(shown("media_requests"), media);
    assert_eq!(media, 6.0);
    for size in ["150x150", "300x"] {
        let l = [("size", size)];
        let sent = metric("mediaedge_derivative_sent_bytes_total", &l);
        let original = metric("mediaedge_derivative_original_bytes_total", &l);
        assert!(
            sent > 0.0 && original > sent,
            "{size}: {sent} of {original}"
        );
        assert_eq!(shown(&format!("sent:{size}")), sent);
        assert_eq!(shown(&format!("original:{size}")), original);
        assert_eq!(
            shown(&format!("responses:{size}")),
            metric("mediaedge_derivatives_sent_total", &l)
        );
    }
    assert_eq!(shown("responses:150x150"), 3.0);
    assert_eq!(
        shown("original:150x150"),
        3.0 * common::corpus_bytes(PHOTO).len() as f64
    );
    assert_eq!(
        shown("error:HTTP 404"),
        metric("mediaedge_http_requests_total", &[("status", "404")])
    );
    assert_eq!(
        shown("transforms_ok"),
        metric("mediaedge_transforms_total", &[("outcome", "ok")])
    );
    assert_eq!(shown("transforms_in_flight"), 0.0);
    // The hits' p99 is the bucket bound the histogram puts it under.
    let p99 = shown("latency:HIT:p99");
    assert!(p99 > 0.0 && p99 <= 30.0, "{p99}");
    let answered = metric(
        "mediaedge_http_request_duration_seconds_count",
        &[("cache", "HIT")],
    );
    assert_eq!(shown("latency:HIT:count"), answered);
    let bucket = |le: &str| {
        metric(
            "mediaedge_http_request_duration_seconds_bucket",
            &[("cache", "HIT"), ("le", le)],
        )
    };
    assert!(bucket(&format!("{p99}")) >= 0.99 * answered, "p99 {p99}");
    // ... and no smaller bound would do.
    let bounds = [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    ];
    if let Some(lower) = bounds.iter().rev().find(|b| **b < p99) {
        assert!(bucket(&format!("{lower}")) < 0.99 * answered, "p99 {p99}");
    }
    // The preset's name is next to its size; the seed's sentence is there.
    assert!(dom.contains("<td>150x150</td><td>thumb</td>"), "{dom}");
    assert!(dom.contains("% saved"));

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&status_url, &format!("--screenshot={}", shot.display()));
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{}",
        png.len()
    );
}

#[tokio::test]
async fn status_listener_serves_no_media_and_needs_no_key() {
    let s = Server::builder()
        .config("[server]\nmetrics_listen = \"127.0.0.1:0\"\n")
        .start();
    let url = s.stdout_after("mediaedge status page on ");
    let base = url.trim_end_matches("/_/status");
    let res = s.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("<h1>mediaedge</h1>"));
    for (path, status) in [
        ("/_/health", StatusCode::OK),
        ("/_/metrics", StatusCode::OK),
        ("/_/purge", StatusCode::NOT_FOUND),
        ("/_/uploads", StatusCode::NOT_FOUND),
    ] {
        let res = s.client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), status, "{path}");
    }
}

/// Clients choose the sizes: the per-size savings keep at most 64 size
/// labels (and as many handles), the rest count as `other`.
#[tokio::test]
async fn savings_sizes_are_bounded() {
    let s = Server::start();
    s.put("t.png", &common::images::palette_png(64, 64));
    for w in 1..=70 {
        let res = s.get(&format!("/t.png?w={w}&fmt=png")).await;
        assert_eq!(res.status(), StatusCode::OK);
        res.bytes().await.unwrap();
    }
    let text = s.metrics_text().await;
    let sizes = text
        .lines()
        .filter(|l| l.starts_with("mediaedge_derivatives_sent_total{"))
        .count();
    assert_eq!(sizes, 65, "{text}");
    assert_eq!(
        parse_metric(
            &text,
            "mediaedge_derivatives_sent_total",
            &[("size", "other")]
        ),
        6.0
    );
    assert_eq!(
        parse_metric(&text, "mediaedge_derivatives_sent_total", &[]),
        70.0
    );
}
