//! SPEC "Scale-out": a delete, purge or upload through any node takes
//! effect on every node within 2 seconds, whatever `revalidate_secs` is,
//! through the store alone (the invalidation journal under `_/journal/`).
//! Three nodes, over moto and over s3s-fs.

mod common;

use std::time::{Duration, Instant};

use common::s3::{Kind, S3Server};
use common::{Server, corpus_bytes};
use reqwest::StatusCode;
use serde_json::json;

/// Metadata trusted for an hour: only the journal can tell a node sooner.
const CONFIG: &str = "[cache]\nrevalidate_secs = 3600\nnegative_secs = 3600\n";
const WITHIN: Duration = Duration::from_secs(2);

fn node(s3: &S3Server) -> Server {
    Server::builder().s3(s3).uploads().config(CONFIG).start()
}

/// Polls `path` on `s` until `done(status, body)`; fails after [`WITHIN`]
/// counted from `since` (when the change was answered by its node).
async fn until(
    s: &Server,
    path: &str,
    since: Instant,
    done: impl Fn(StatusCode, &[u8]) -> bool,
) -> Duration {
    loop {
        let res = s.get(path).await;
        let status = res.status();
        let body = res.bytes().await.unwrap();
        if done(status, &body) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < WITHIN,
            "{path} did not change within {WITHIN:?} (last {status})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn store_requests(s: &Server, op: &str) -> f64 {
    let text = s.metrics_text().await;
    [
        "ok",
        "not_modified",
        "unchanged",
        "error",
        "not_found",
        "timeout",
    ]
    .iter()
    .map(|r| {
        common::parse_metric(
            &text,
            "mediaedge_store_requests_total",
            &[("op", op), ("result", r)],
        )
    })
    .sum()
}

async fn three_nodes_agree(kind: Kind) {
    let s3 = S3Server::start(kind);
    let nodes = [node(&s3), node(&s3), node(&s3)];
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let photo = corpus_bytes("photo_4032x3024_orient1.jpg");
    let png = corpus_bytes("rgba_1200x1200.png");
    let gray = corpus_bytes("gray_2560x1600.jpg");

    // A key asked for before it exists is remembered as missing (an hour).
    for n in &nodes {
        assert_eq!(n.get("/f/p.jpg").await.status(), StatusCode::NOT_FOUND);
    }
    // Uploaded through A: B and C stop answering 404.
    let (status, body) = a.upload("f/p.jpg", photo.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let done = Instant::now();
    for n in [b, c] {
        until(n, "/f/p.jpg", done, |s, _| s == StatusCode::OK).await;
    }
    // Every node has the original and a derivative cached.
    for n in &nodes {
        assert_eq!(n.get("/f/p.jpg?w=150&h=150").await.status(), StatusCode::OK);
        let res = n.get("/f/p.jpg?w=150&h=150").await;
        assert_eq!(res.headers()["x-cache"], "HIT");
    }

    // Overwritten through B: A and C serve the new bytes.
    let (status, body) = b.upload("f/p.jpg", png.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let done = Instant::now();
    // As stored (uploads are stored with their metadata removed).
    let png = b.get("/f/p.jpg").await.bytes().await.unwrap().to_vec();
    for n in [a, c] {
        until(n, "/f/p.jpg", done, |_, body| body == png.as_slice()).await;
        until(n, "/f/p.jpg?w=150&h=150&fmt=png", done, |s, body| {
            s == StatusCode::OK && common::decode(body).color().has_alpha()
        })
        .await;
    }

    // Replaced behind the fleet's back: every node keeps serving what it
    // trusts for an hour, until a purge through C (by prefix) reaches all.
    s3.put("f/p.jpg", gray.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for n in &nodes {
        let body = n.get("/f/p.jpg").await.bytes().await.unwrap();
        assert_eq!(body.as_ref(), png.as_slice(), "no purge yet");
    }
    let res = c.purge(json!({"prefix": "f/"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let done = Instant::now();
    for n in [a, b] {
        until(n, "/f/p.jpg", done, |_, body| body == gray.as_slice()).await;
    }

    // Deleted through A: B and C answer 404, for the derivative too.
    for n in &nodes {
        assert_eq!(n.get("/f/p.jpg?w=100").await.status(), StatusCode::OK);
    }
    let res = a.delete_object("f/p.jpg").await;
    assert_eq!(res.status(), StatusCode::OK);
    let done = Instant::now();
    for n in [b, c] {
        until(n, "/f/p.jpg?w=100", done, |s, _| s == StatusCode::NOT_FOUND).await;
        assert_eq!(n.get("/f/p.jpg").await.status(), StatusCode::NOT_FOUND);
    }

    // Idle, a node reads the journal's head about once a second and lists
    // nothing: one small conditional request per interval.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (heads, lists) = (
        store_requests(b, "get_record").await,
        store_requests(b, "list_records").await,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let polled = store_requests(b, "get_record").await - heads;
    assert!((2.0..=4.0).contains(&polled), "{polled} head reads in 3 s");
    assert_eq!(
        store_requests(b, "list_records").await,
        lists,
        "nothing listed while idle"
    );
    // Each change was applied once by each other node (upload, upload,
    // purge, delete: four entries; A and B and C wrote some of them).
    let mut total = 0.0;
    for n in &nodes {
        total += n
            .metric("mediaedge_invalidations_total", &[("event", "applied")])
            .await;
    }
    assert_eq!(total, 8.0, "four entries, each applied by two other nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_moto_agree_within_two_seconds() {
    three_nodes_agree(Kind::Moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_s3s_fs_agree_within_two_seconds() {
    three_nodes_agree(Kind::S3sFs).await;
}

/// `cache.journal_poll_ms = 0`: the journal is off; nothing is written to
/// `_/journal/` and another node sees a change only after revalidating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_can_be_turned_off() {
    let s3 = S3Server::start(Kind::Moto);
    let config = "[cache]\nrevalidate_secs = 3600\njournal_poll_ms = 0\n";
    let a = Server::builder().s3(&s3).uploads().config(config).start();
    let b = Server::builder().s3(&s3).uploads().config(config).start();
    let (status, _) = a.upload("g.jpg", corpus_bytes("gray_2560x1600.jpg")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(b.get("/g.jpg").await.status(), StatusCode::OK);
    assert_eq!(a.delete_object("g.jpg").await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        b.get("/g.jpg").await.status(),
        StatusCode::OK,
        "B trusts its hour"
    );
    assert!(!s3.exists("_/journal/head").await);
}
