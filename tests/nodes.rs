//! SPEC "Scale-out": stateless nodes on one S3-compatible store,
//! revalidation by conditional request, and store failures (stale-if-error,
//! quick 502/504, recovery by itself).

mod common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use object_store::ObjectStore;

use axum::response::IntoResponse;
use common::s3::{Kind, S3Server};
use common::{Server, corpus_bytes};
use reqwest::StatusCode;

const PHOTO: &str = "photo_4032x3024_orient1.jpg";

fn node(s3: &S3Server, config: &str) -> Server {
    Server::builder().s3(s3).uploads().config(config).start()
}

async fn upload(s: &Server, key: &str, bytes: Vec<u8>) {
    let (status, body) = s.upload(key, bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Polls `path` on `s` until `done(status, body)`, for at most `within`.
async fn until(
    s: &Server,
    path: &str,
    within: Duration,
    done: impl Fn(StatusCode, &[u8]) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let res = s.get(path).await;
        let status = res.status();
        let body = res.bytes().await.unwrap();
        if done(status, &body) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{path} did not change within {within:?} (last {status})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_store() {
    let s3 = S3Server::start(Kind::Moto);
    let config = "[cache]\nrevalidate_secs = 1\n";
    let a = node(&s3, config);
    let b = node(&s3, config);
    let photo = corpus_bytes(PHOTO);

    // Uploaded through A, served by B (original and derivative).
    upload(&a, "u/photo.jpg", photo.clone()).await;
    let from_a = a.get("/u/photo.jpg").await.bytes().await.unwrap();
    assert_eq!(b.get("/u/photo.jpg").await.bytes().await.unwrap(), from_a);
    assert_eq!(
        common::decode(&from_a).to_rgb8(),
        common::decode(&photo).to_rgb8()
    );
    let res = b.get("/u/photo.jpg?w=150&h=150").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        b.get("/u/photo.jpg?w=150&h=150").await.headers()["x-cache"],
        "HIT"
    );

    // Overwritten through A: B serves the new bytes within the revalidation interval.
    let png = corpus_bytes("rgba_1200x1200.png");
    upload(&a, "u/photo.jpg", png.clone()).await;
    let took = until(&b, "/u/photo.jpg", Duration::from_secs(3), |_, body| {
        body == png.as_slice()
    })
    .await;
    assert!(took <= Duration::from_millis(1500), "took {took:?}");
    let res = b.get("/u/photo.jpg?w=150&h=150&fmt=png").await;
    let img = common::decode(&res.bytes().await.unwrap());
    assert_eq!((img.width(), img.height()), (150, 150));

    // Deleted through A: gone from B within the interval too.
    let res = a.delete_object("u/photo.jpg").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        a.get("/u/photo.jpg?w=150&h=150").await.status(),
        StatusCode::NOT_FOUND,
        "A at once"
    );
    let took = until(
        &b,
        "/u/photo.jpg?w=150&h=150",
        Duration::from_secs(3),
        |s, _| s == StatusCode::NOT_FOUND,
    )
    .await;
    assert!(took <= Duration::from_millis(1500), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revalidation_is_a_conditional_request() {
    let s3 = S3Server::start(Kind::Moto);
    s3.put("r.jpg", corpus_bytes(PHOTO)).await;
    let s = node(&s3, "[cache]\nrevalidate_secs = 1\n");
    assert_eq!(s.get("/r.jpg?w=100").await.headers()["x-cache"], "MISS");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let res = s.get("/r.jpg?w=100").await;
    assert_eq!(res.headers()["x-cache"], "HIT");
    let not_modified = s
        .metric(
            "mediaedge_store_requests_total",
            &[("op", "revalidate"), ("result", "not_modified")],
        )
        .await;
    assert_eq!(not_modified, 1.0);
    assert_eq!(
        s.metric("mediaedge_store_requests_total", &[("op", "sniff")])
            .await,
        1.0,
        "no second sniff"
    );
    // Replaced behind the node's back: never served stale after the interval.
    s3.put("r.jpg", corpus_bytes("rgba_1200x1200.png")).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let res = s.get("/r.jpg?w=100&fmt=png").await;
    let img = common::decode(&res.bytes().await.unwrap());
    assert_eq!((img.width(), img.height()), (100, 100));
    assert_eq!(
        s.metric(
            "mediaedge_store_requests_total",
            &[("op", "revalidate"), ("result", "changed")]
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_serves_stale_then_recovers() {
    let s3 = S3Server::start(Kind::S3sFs);
    s3.put("p.jpg", corpus_bytes(PHOTO)).await;
    s3.put("cold.jpg", corpus_bytes(PHOTO)).await;
    let s = node(
        &s3,
        "[cache]\nrevalidate_secs = 1\nstale_if_error_secs = 60\n",
    );
    assert_eq!(s.get("/p.jpg?w=150&h=150").await.status(), StatusCode::OK);
    assert_eq!(s.get("/p.jpg").await.status(), StatusCode::OK);

    // The store goes away.
    let port = s3.port;
    let root = s3.stop();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for path in ["/p.jpg?w=150&h=150", "/p.jpg"] {
        let res = s.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["x-cache"], "STALE", "{path}");
    }
    // Not cached: a quick 502/504 with a one-line body, no hang.
    let started = Instant::now();
    let res = s.get("/cold.jpg").await;
    assert!(
        matches!(
            res.status(),
            StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT
        ),
        "{}",
        res.status()
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let body = res.text().await.unwrap();
    assert!(!body.is_empty() && !body.contains('\n'));
    assert!(s.metric("mediaedge_stale_served_total", &[]).await >= 2.0);

    // The store comes back: normal service resumes by itself.
    let s3 = S3Server::start_on(Kind::S3sFs, port, root);
    let took = until(&s, "/cold.jpg", Duration::from_secs(5), |st, _| {
        st == StatusCode::OK
    })
    .await;
    assert!(took < Duration::from_secs(5));
    let res = s.get("/p.jpg?w=150&h=150").await;
    assert_eq!(res.headers()["x-cache"], "HIT");
    drop(s3);
}

/// A store that accepts connections and never answers: the storage timeout
/// turns that into a 504 instead of a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_store_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let config = format!(
        "[storage]\nkind = \"s3\"\nbucket = \"media\"\nendpoint = \"http://127.0.0.1:{port}\"\npath_style = true\ntimeout_secs = 0.5\nretries = 1\n"
    );
    let s = Server::builder()
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .config(&config)
        .own_storage()
        .start();
    let started = Instant::now();
    let res = s.get("/x.jpg").await;
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// With `cache.shared`, a variant node A made costs node B one store read,
/// not a transform; deleting the original removes the shared copies too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_tier_saves_other_nodes_the_transform() {
    let s3 = S3Server::start(Kind::Moto);
    s3.put("s/photo.jpg", corpus_bytes(PHOTO)).await;
    let config = "[cache]\nshared = true\nrevalidate_secs = 1\n";
    let a = node(&s3, config);
    let b = node(&s3, config);
    let variants = ["w=150&h=150&fmt=webp", "w=500&h=700&fmt=jpeg"];
    let mut bodies = Vec::new();
    for v in variants {
        let res = a.get(&format!("/s/photo.jpg?{v}")).await;
        assert_eq!(res.headers()["x-cache"], "MISS");
        bodies.push((
            res.headers()["etag"].to_str().unwrap().to_owned(),
            res.bytes().await.unwrap(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while a
        .metric(
            "mediaedge_store_requests_total",
            &[("op", "put_shared"), ("result", "ok")],
        )
        .await
        < 2.0
    {
        assert!(
            Instant::now() < deadline,
            "A never wrote its derivatives back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (v, (etag, body)) in variants.iter().zip(&bodies) {
        let res = b.get(&format!("/s/photo.jpg?{v}")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()["etag"],
            etag.as_str(),
            "same bytes, same ETag on every node"
        );
        assert_eq!(&res.bytes().await.unwrap(), body);
    }
    assert_eq!(
        b.metric("mediaedge_transforms_total", &[]).await,
        0.0,
        "B transformed nothing"
    );
    assert_eq!(
        b.metric("mediaedge_cache_hits_total", &[("tier", "shared")])
            .await,
        2.0
    );
    assert_eq!(
        b.metric("mediaedge_store_requests_total", &[("op", "get")])
            .await,
        0.0,
        "B never read the original"
    );
    // The shared copies live under the reserved prefix: not media.
    assert_eq!(
        common::raw_get(&b.base, "/%5F/derivatives/s/photo.jpg")
            .await
            .0,
        400
    );

    let res = a.delete_object("s/photo.jpg").await;
    assert_eq!(res.status(), StatusCode::OK);
    let left = s3
        .client()
        .list(Some(&object_store::path::Path::from("_/derivatives")))
        .collect::<Vec<_>>()
        .await;
    assert!(
        left.is_empty(),
        "shared derivatives left after delete: {}",
        left.len()
    );
}

/// A store that fails each first attempt with 503 (S3's "slow down"): the
/// request is retried with backoff and succeeds; the retries are bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_store_errors_are_retried() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let s3 = S3Server::start(Kind::Moto);
    s3.put("t.jpg", corpus_bytes(PHOTO)).await;
    // A proxy in front of moto that answers every other request 503.
    let seen = Arc::new(AtomicUsize::new(0));
    let upstream = s3.endpoint.clone();
    let counter = seen.clone();
    let proxy = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (counter, upstream) = (counter.clone(), upstream.clone());
        async move {
            if counter.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                return (axum::http::StatusCode::SERVICE_UNAVAILABLE, body).into_response();
            }
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 64 << 20).await.unwrap();
            let url = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
            let mut forward = reqwest::Client::new().request(parts.method, url).body(body);
            for (k, v) in &parts.headers {
                if k != "host" {
                    forward = forward.header(k, v);
                }
            }
            let res = forward.send().await.unwrap();
            let mut out = axum::http::Response::builder().status(res.status());
            for (k, v) in res.headers() {
                out = out.header(k, v);
            }
            out.body(axum::body::Body::from(res.bytes().await.unwrap())).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, proxy).await });

    let config = format!(
        "[storage]\nkind = \"s3\"\nbucket = \"media\"\nendpoint = \"http://127.0.0.1:{port}\"\npath_style = true\ntimeout_secs = 2.0\nretries = 2\n\
         [cache]\njournal_poll_ms = 0\n" // only the request's own store calls are counted
    );
    let mut b = Server::builder().config(&config).own_storage();
    for (k, v) in s3.env() {
        b = b.env(k, v);
    }
    let s = b.start();
    let res = s.get("/t.jpg").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap(), corpus_bytes(PHOTO));
    // HEAD, sniff and GET each failed once and were retried.
    assert_eq!(seen.load(Ordering::SeqCst), 6);
}

/// Issue 14, item 8: the record of used upload URLs is in the store, so a
/// URL used through one node is refused by every other (a create-only
/// record: two nodes racing with one URL cannot both publish).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_upload_url_is_refused_by_every_node() {
    for kind in [Kind::Moto, Kind::S3sFs] {
        let s3 = S3Server::start(kind);
        let (a, b) = (node(&s3, ""), node(&s3, ""));
        let presigned = a
            .presign(serde_json::json!({"key": "shared/once.jpg"}))
            .await;
        // The same URL through A, then through B.
        let path = presigned.target();
        let photo = corpus_bytes(PHOTO);
        let res = a
            .client
            .put(a.url(&path))
            .body(photo.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{kind:?}");
        let res = b.client.put(b.url(&path)).body(photo).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{kind:?}");
    }
}
