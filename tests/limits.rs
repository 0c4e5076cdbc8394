//! Every limit on the transform path: pixels (from the header, before any
//! buffer), bytes, corrupt input, pool + queue (503), per-transform timeout.

mod common;

use common::{Server, corpus_bytes};
use reqwest::StatusCode;

const PHOTO: &str = "photo_4032x3024_orient1.jpg";

#[tokio::test]
async fn decompression_bomb_is_refused_from_its_header() {
    let s = Server::start();
    s.put_corpus("bomb_20000x20000_1bit.png", "bomb.png");
    let res = s.get("/bomb.png?w=100").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("20000x20000") && body.contains("max_source_pixels"),
        "{body}"
    );
    // 400 Mpx would need ≥ 400 MB decoded; nothing close was allocated.
    assert!(
        s.peak_rss() < 150 << 20,
        "peak RSS {} MiB",
        s.peak_rss() >> 20
    );
    // The original itself is still served as bytes.
    assert_eq!(s.get("/bomb.png").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn max_source_pixels_is_configurable() {
    let s = Server::builder()
        .config("[transform]\nmax_source_pixels = 1000000\n")
        .start();
    s.put_corpus(PHOTO, "p.jpg");
    s.put_corpus("anim_320x240_8f.gif", "small.gif");
    assert_eq!(
        s.get("/p.jpg?w=100").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(s.get("/small.gif?w=100").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn max_source_bytes_bounds_what_is_read_into_memory() {
    let s = Server::builder()
        .config("[transform]\nmax_source_bytes = 1000000\n")
        .start();
    s.put_corpus(PHOTO, "p.jpg");
    let res = s.get("/p.jpg?w=100").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("max_source_bytes"));
}

#[tokio::test]
async fn truncated_and_corrupt_images_are_422() {
    let s = Server::start();
    s.put_corpus("truncated_2560x1600.jpg", "cut.jpg");
    let mut garbage_jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    garbage_jpeg.extend((0..5000u32).map(|i| (i * 7919 % 251) as u8));
    s.put("garbage.jpg", &garbage_jpeg);
    let mut png = corpus_bytes("rgba_1200x1200.png");
    png.truncate(png.len() / 3);
    s.put("cut.png", &png);
    let mut webp = corpus_bytes("photo_4272x2848.webp");
    webp.truncate(webp.len() / 2);
    s.put("cut.webp", &webp);
    let mut gif = corpus_bytes("anim_320x240_8f.gif");
    gif.truncate(100);
    s.put("cut.gif", &gif);
    for key in ["cut.jpg", "garbage.jpg", "cut.png", "cut.webp", "cut.gif"] {
        let res = s.get(&format!("/{key}?w=100")).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{key}");
        let body = res.text().await.unwrap();
        assert!(body.starts_with("image cannot be decoded"), "{key}: {body}");
    }
    // The server is fine afterwards.
    assert_eq!(s.get("/_/health").await.status(), StatusCode::OK);
}

/// One worker, no queue: while one transform runs, others get 503 at once.
#[tokio::test]
async fn full_pool_answers_503_with_retry_after() {
    let s = Server::builder()
        .config("[transform]\nworkers = 1\nqueue = 0\n")
        .start();
    s.put_corpus(PHOTO, "p.jpg");
    let mut tasks = Vec::new();
    for w in 0..6 {
        let (client, url) = (
            s.client.clone(),
            s.url(&format!("/p.jpg?w={}&fmt=png", 4000 + w)),
        );
        tasks.push(tokio::spawn(async move {
            client.get(url).send().await.unwrap()
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let res = t.await.unwrap();
        match res.status() {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(res.headers()["retry-after"], "1");
                assert_eq!(
                    res.text().await.unwrap(),
                    "too many transforms in progress, retry shortly"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(ok >= 1 && refused >= 1, "ok {ok}, refused {refused}");
    assert_eq!(
        s.metric("mediaedge_transforms_total", &[("outcome", "rejected")])
            .await,
        refused as f64
    );
}

/// A refused transform's 503 is held back for `transform.refusal_delay_ms`,
/// so a client that ignores Retry-After and asks again at once cannot make
/// the server answer refusals as fast as it can (bench/overload.py).
#[tokio::test]
async fn refusals_are_held_back_for_the_refusal_delay() {
    let s = Server::builder()
        .config("[transform]\nworkers = 1\nqueue = 0\nrefusal_delay_ms = 600\n")
        .start();
    s.put_corpus(PHOTO, "p.jpg");
    let (client, url) = (s.client.clone(), s.url("/p.jpg?w=4000&fmt=png"));
    let running = tokio::spawn(async move { client.get(url).send().await.unwrap().status() });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.metric("mediaedge_transforms_in_flight", &[]).await < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the transform never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let asked = std::time::Instant::now();
    let res = s.get("/p.jpg?w=3999&fmt=png").await;
    let waited = asked.elapsed();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(
        s.metric("mediaedge_transforms_total", &[("outcome", "rejected")])
            .await,
        1.0
    );
    assert!(
        waited >= std::time::Duration::from_millis(600),
        "refused after {waited:?}"
    );
    assert_eq!(running.await.unwrap(), StatusCode::OK);
}

#[tokio::test]
async fn slow_transforms_time_out_with_503() {
    let s = Server::builder()
        .config("[transform]\ntimeout_secs = 0.02\n")
        .start();
    s.put_corpus(PHOTO, "p.jpg");
    let res = s.get("/p.jpg?w=4000&fmt=png").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        res.text().await.unwrap(),
        "transform timed out, retry shortly"
    );
    assert_eq!(
        s.metric("mediaedge_transforms_total", &[("outcome", "timeout")])
            .await,
        1.0
    );
}

/// Hits never queue behind transforms: with the one worker busy and the
/// queue full, a cached derivative is still answered (20 times over) before
/// the running transform is done; the excess transform gets 503.
#[tokio::test]
async fn hits_are_answered_while_the_pool_and_queue_are_full() {
    let s = Server::builder()
        .config("[transform]\nworkers = 1\nqueue = 1\n")
        .start();
    s.put_corpus(PHOTO, "p.jpg");
    let hit = "/p.jpg?w=150&h=150&fmt=webp";
    s.get(hit).await.bytes().await.unwrap();
    // Three slow transforms for two slots (one running, one waiting): the
    // third is refused, which shows both slots are taken.
    let slow: Vec<_> = (0..3)
        .map(|w| {
            let (client, url) = (
                s.client.clone(),
                s.url(&format!("/p.jpg?w={}&fmt=png", 4000 + w)),
            );
            tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s
        .metric("mediaedge_transforms_total", &[("outcome", "rejected")])
        .await
        < 1.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the pool never filled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for _ in 0..20 {
        let res = s.get(hit).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-cache"], "HIT");
    }
    assert!(
        slow.iter().any(|t| !t.is_finished()),
        "the transforms finished before the hits were answered"
    );
    let mut statuses = Vec::new();
    for t in slow {
        statuses.push(t.await.unwrap().as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 503]);
}

/// Issue 14, item 7: transforms cost CPU, and one client may start at most
/// `miss_rate_per_ip` a second (after a burst of `miss_burst_per_ip`); past
/// that it gets 429 with Retry-After while hits and other clients are
/// served. Behind `trusted_proxies` the client is the X-Forwarded-For
/// address; from anyone else that header is ignored.
#[tokio::test]
async fn one_address_cannot_take_every_transform() {
    let s = Server::builder()
        .config(
            "[server]\ntrusted_proxies = [\"127.0.0.3\"]\n[transform]\nmiss_rate_per_ip = 1\nmiss_burst_per_ip = 3\nrefusal_delay_ms = 0\n",
        )
        .start();
    s.put_corpus(PHOTO, "p.jpg");
    let from = |source: &str| {
        reqwest::Client::builder()
            .no_proxy()
            .local_address(source.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let get = |client: &reqwest::Client, w: u32, xff: Option<&str>| {
        let mut req = client.get(s.url(&format!("/p.jpg?w={w}")));
        if let Some(x) = xff {
            req = req.header("x-forwarded-for", x);
        }
        req.send()
    };
    let attacker = from("127.0.0.2");
    for w in 10..13 {
        assert_eq!(
            get(&attacker, w, None).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let res = get(&attacker, 13, None).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "1");
    assert!(res.text().await.unwrap().starts_with("Too Many Requests"));
    // Its hits are still served; so is another client's miss.
    assert_eq!(
        get(&attacker, 10, None).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&from("127.0.0.4"), 20, None).await.unwrap().status(),
        StatusCode::OK
    );
    // A forged X-Forwarded-For from a non-proxy changes nothing.
    let res = get(&attacker, 14, Some("198.51.100.99")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // Through the trusted proxy each forwarded address has its own budget.
    let proxy = from("127.0.0.3");
    for w in 30..33 {
        let res = get(&proxy, w, Some("198.51.100.7")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = get(&proxy, 33, Some("198.51.100.7")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = get(&proxy, 34, Some("198.51.100.8")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        s.metric("mediaedge_transforms_total", &[("outcome", "rate_limited")])
            .await,
        3.0
    );
}
