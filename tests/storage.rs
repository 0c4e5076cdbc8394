//! One conformance suite over every storage backend (the object_store
//! integration-test idea): local disk, moto (S3 behaviour) and s3s-fs
//! (S3 with SigV4 signatures really verified). Each test below runs once
//! per backend.

mod common;

use common::s3::{Kind, S3Server};
use common::{Server, corpus_bytes};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PHOTO: &str = "photo_4032x3024_orient1.jpg";
const VIDEO: &str = "video_1280x720_5s.mp4";

#[derive(Debug, Clone, Copy)]
enum Backend {
    Local,
    S3(Kind),
}

struct Fixture {
    server: Server,
    s3: Option<S3Server>,
}

impl Fixture {
    fn start(backend: Backend, config: &str) -> Self {
        let s3 = match backend {
            Backend::Local => None,
            Backend::S3(kind) => Some(S3Server::start(kind)),
        };
        let mut b = Server::builder().uploads().config(config);
        if let Some(s3) = &s3 {
            b = b.s3(s3);
        }
        Self {
            server: b.start(),
            s3,
        }
    }

    /// Puts an object straight into the store, behind the server's back.
    async fn seed(&self, key: &str, bytes: Vec<u8>) {
        match &self.s3 {
            Some(s3) => s3.put(key, bytes).await,
            None => self.server.put(key, &bytes),
        }
    }

    async fn exists(&self, key: &str) -> bool {
        match &self.s3 {
            Some(s3) => s3.exists(key).await,
            None => self.server.data().join(key).exists(),
        }
    }

    async fn upload(&self, key: &str, bytes: Vec<u8>) -> Value {
        let (status, body) = self.server.upload(key, bytes).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Local).await })*
        }
        mod moto {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::S3(super::Kind::Moto)).await })*
        }
        mod s3s_fs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::S3(super::Kind::S3sFs)).await })*
        }
    };
}

conformance!(
    originals_and_head,
    ranges_and_conditionals,
    derivatives,
    uploads_small_and_multipart,
    delete_and_purge,
    missing_keys,
);

async fn originals_and_head(backend: Backend) {
    let f = Fixture::start(backend, "");
    let photo = corpus_bytes(PHOTO);
    f.seed("a/photo.jpg", photo.clone()).await;
    let res = f.server.get("/a/photo.jpg").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(res.bytes().await.unwrap(), photo);
    let res = f
        .server
        .client
        .head(f.server.url("/a/photo.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-length"],
        photo.len().to_string().as_str()
    );
    assert!(res.headers().contains_key("last-modified"));
}

async fn ranges_and_conditionals(backend: Backend) {
    let f = Fixture::start(backend, "");
    // Over 8 MB: streamed from the store, ranges as ranged reads.
    let mut big = corpus_bytes(VIDEO);
    big.resize(9 << 20, 7);
    big[(9 << 20) - 1] = 42;
    f.seed("v/big.mp4", big.clone()).await;
    f.seed("v/small.mp4", corpus_bytes(VIDEO)).await;
    for key in ["/v/big.mp4", "/v/small.mp4"] {
        let len = if key.contains("big") {
            big.len()
        } else {
            corpus_bytes(VIDEO).len()
        };
        let res = f.server.get_with(key, &[("range", "bytes=100-199")]).await;
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{key}");
        assert_eq!(
            res.headers()["content-range"],
            format!("bytes 100-199/{len}").as_str()
        );
        assert_eq!(res.bytes().await.unwrap(), corpus_bytes(VIDEO)[100..200]);
        let res = f.server.get_with(key, &[("range", "bytes=-1")]).await;
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
        let last = res.bytes().await.unwrap();
        if key.contains("big") {
            assert_eq!(&last[..], &[42]);
        }
        let res = f
            .server
            .get_with(key, &[("range", &format!("bytes={len}-"))])
            .await;
        assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        let etag = f.server.get(key).await.headers()["etag"]
            .to_str()
            .unwrap()
            .to_owned();
        let res = f.server.get_with(key, &[("if-none-match", &etag)]).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    }
    assert!(
        f.server
            .metric("mediaedge_cache_misses_total", &[("kind", "slice")])
            .await
            >= 2.0,
        "large originals are read in slices"
    );
}

async fn derivatives(backend: Backend) {
    let f = Fixture::start(backend, "");
    f.seed("p.jpg", corpus_bytes(PHOTO)).await;
    let res = f.server.get("/p.jpg?w=150&h=150&fmt=webp").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-cache"], "MISS");
    let img = common::decode(&res.bytes().await.unwrap());
    assert_eq!((img.width(), img.height()), (150, 150));
    // A second size of the same photo costs no second read of it.
    let reads = f
        .server
        .metric("mediaedge_store_requests_total", &[("op", "get")])
        .await;
    let res = f.server.get("/p.jpg?w=500&h=700&fmt=jpeg").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        f.server
            .metric("mediaedge_store_requests_total", &[("op", "get")])
            .await,
        reads
    );
    assert_eq!(
        f.server.get("/p.jpg?w=150&h=150&fmt=webp").await.headers()["x-cache"],
        "HIT"
    );
}

async fn uploads_small_and_multipart(backend: Backend) {
    let f = Fixture::start(backend, "");
    let photo = corpus_bytes(PHOTO);
    let up = f.upload("up/photo.jpg", photo.clone()).await;
    assert_eq!(up["width"], 4032);
    let res = f.server.get("/up/photo.jpg").await;
    assert_eq!(res.headers()["etag"], up["etag"].as_str().unwrap());
    // Stored whole (the size the upload reported), pixels as sent.
    let stored = res.bytes().await.unwrap();
    assert_eq!(up["bytes"], stored.len());
    assert_eq!(
        common::decode(&stored).to_rgb8(),
        common::decode(&photo).to_rgb8()
    );
    // 12 MB: more than two 5 MiB parts on S3.
    let big = common::padded_mp4(VIDEO, 12 << 20);
    f.upload("up/big.mp4", big.clone()).await;
    let stored = f.server.get("/up/big.mp4").await.bytes().await.unwrap();
    // As sent from the media data on (its `udta` before it was freed).
    let mdat = big.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(stored.len() == big.len() && stored[mdat..] == big[mdat..]);
    // An overwrite replaces it whole.
    f.upload("up/photo.jpg", corpus_bytes("rgba_1200x1200.png"))
        .await;
    let res = f.server.get("/up/photo.jpg").await;
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(
        res.bytes().await.unwrap(),
        corpus_bytes("rgba_1200x1200.png")
    );
}

async fn delete_and_purge(backend: Backend) {
    let f = Fixture::start(backend, "");
    f.seed("d/photo.jpg", corpus_bytes(PHOTO)).await;
    assert_eq!(
        f.server.get("/d/photo.jpg?w=100").await.status(),
        StatusCode::OK
    );
    let res = f.server.delete_object("d/photo.jpg").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["deleted"], 1);
    assert!(!f.exists("d/photo.jpg").await);
    assert_eq!(
        f.server.get("/d/photo.jpg?w=100").await.status(),
        StatusCode::NOT_FOUND
    );
    f.seed("d/again.jpg", corpus_bytes(PHOTO)).await;
    assert_eq!(
        f.server.get("/d/again.jpg?w=100").await.status(),
        StatusCode::OK
    );
    let res = f.server.purge(json!({"prefix": "d/"})).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["purged"]["memory"], 2);
    assert_eq!(
        f.server.get("/d/again.jpg?w=100").await.headers()["x-cache"],
        "MISS"
    );
}

async fn missing_keys(backend: Backend) {
    let f = Fixture::start(backend, "");
    for path in ["/nothing.jpg", "/no/such/dir/x.mp4", "/nothing.jpg?w=100"] {
        let res = f.server.get(path).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(res.text().await.unwrap(), "Not Found");
    }
}

/// s3s-fs checks SigV4 signatures: with a wrong secret every store call is
/// refused, which mediaedge answers 502 quickly rather than hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_really_checked() {
    let s3 = S3Server::start(Kind::S3sFs);
    s3.put("p.jpg", corpus_bytes(PHOTO)).await;
    let good = Server::builder().s3(&s3).start();
    assert_eq!(good.get("/p.jpg").await.status(), StatusCode::OK);
    let bad = Server::builder()
        .s3(&s3)
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789")
        .start();
    let started = std::time::Instant::now();
    let res = bad.get("/p.jpg").await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
