//! The admin API: `DELETE /_/objects/{key}` and `POST /_/purge`, behind the
//! admin key (missing → 401, wrong → 403), answering JSON with counts.

mod common;

use common::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "admin-key-for-tests-0123456789";
const PHOTO: &str = "photo_4032x3024_orient1.jpg";

fn server() -> Server {
    Server::builder()
        .env("MEDIAEDGE_ADMIN_KEY", ADMIN)
        .config("[cache]\ndisk_path = \"cache\"\n")
        .start()
}

async fn warm(s: &Server, key: &str) {
    for q in ["w=100", "w=150&h=150", "w=300&fmt=png"] {
        let res = s.get(&format!("/{key}?{q}")).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(s.get(&format!("/{key}")).await.status(), StatusCode::OK);
}

async fn disk_writes_settle(s: &Server, expected: f64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s
        .metric("mediaedge_cache_entries", &[("tier", "disk")])
        .await
        < expected
    {
        assert!(
            std::time::Instant::now() < deadline,
            "disk cache never reached {expected}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn delete_removes_the_original_and_everything_cached() {
    let s = server();
    s.put_corpus(PHOTO, "a/photo.jpg");
    warm(&s, "a/photo.jpg").await;
    disk_writes_settle(&s, 3.0).await;
    let res = s.delete_object("a/photo.jpg").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["key"], "a/photo.jpg");
    assert_eq!(body["deleted"], 1);
    // 3 derivatives and the original's bytes in memory, 3 derivatives on disk.
    assert_eq!(body["purged"], json!({"memory": 4, "disk": 3}));
    assert!(!s.data().join("a/photo.jpg").exists());
    assert_eq!(s.get("/a/photo.jpg").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        s.get("/a/photo.jpg?w=100").await.status(),
        StatusCode::NOT_FOUND
    );
    // Deleting again: nothing there.
    let res = s.delete_object("a/photo.jpg").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["deleted"], 0);
    // A bad key is a 400, as everywhere.
    let (status, _) = common::raw_request(
        &s.base,
        &format!("DELETE /_/objects/a/%2e%2e/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn purge_by_keys_and_prefix() {
    let s = server();
    for key in ["p/one.jpg", "p/two.jpg", "q/three.jpg"] {
        s.put_corpus(PHOTO, key);
        warm(&s, key).await;
    }
    disk_writes_settle(&s, 9.0).await;
    // A whole variant family of one original in one call.
    let res = s.purge(json!({"keys": ["p/one.jpg"]})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["purged"], json!({"memory": 4, "disk": 3}));
    assert_eq!(s.get("/p/one.jpg?w=100").await.headers()["x-cache"], "MISS");
    assert_eq!(s.get("/p/two.jpg?w=100").await.headers()["x-cache"], "HIT");
    // A prefix (with or without the leading slash).
    let res = s.purge(json!({"prefix": "/p/"})).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["purged"]["memory"], 6,
        "p/one's new derivative and original bytes, and p/two's four"
    );
    assert_eq!(
        s.get("/q/three.jpg?w=100").await.headers()["x-cache"],
        "HIT"
    );
    assert_eq!(s.get("/p/two.jpg?w=100").await.headers()["x-cache"], "MISS");
    // The originals themselves are untouched.
    assert_eq!(s.get("/p/two.jpg").await.status(), StatusCode::OK);
    for bad in [
        json!({}),
        json!({"prefix": "p/", "keys": ["p/one.jpg"]}),
        json!({"keys": ["../x"]}),
        json!({"keys": "p/one.jpg"}),
        json!({"prefx": "p/"}),
    ] {
        assert_eq!(
            s.purge(bad.clone()).await.status(),
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    assert!(
        s.metric(
            "mediaedge_http_requests_total",
            &[("route", "purge"), ("status", "200")]
        )
        .await
            >= 2.0
    );
}

#[tokio::test]
async fn admin_key_is_required() {
    let s = server();
    s.put_corpus(PHOTO, "keep.jpg");
    let del = s.client.delete(s.url("/_/objects/keep.jpg"));
    let res = del.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_eq!(res.text().await.unwrap(), "Missing admin key.");
    for wrong in [
        "nope",
        "admin-key-for-tests-012345678",
        "admin-key-for-tests-01234567890",
    ] {
        let res = s
            .client
            .delete(s.url("/_/objects/keep.jpg"))
            .bearer_auth(wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{wrong}");
        let res = s
            .client
            .post(s.url("/_/purge"))
            .bearer_auth(wrong)
            .json(&json!({"prefix": ""}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{wrong}");
    }
    let res = s
        .client
        .post(s.url("/_/purge"))
        .json(&json!({"prefix": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Basic auth with the right key is not the bearer scheme.
    let res = s
        .client
        .delete(s.url("/_/objects/keep.jpg"))
        .basic_auth(ADMIN, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(s.data().join("keep.jpg").exists());
}
