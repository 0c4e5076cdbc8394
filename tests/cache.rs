//! Caching: X-Cache, coalescing of identical misses, originals read once
//! for several sizes, disk tier surviving a restart.

mod common;

use common::Server;
use reqwest::StatusCode;

const PHOTO: &str = "photo_4032x3024_orient1.jpg";

#[tokio::test]
async fn miss_then_hit() {
    let s = Server::start();
    s.put_corpus(PHOTO, "p.jpg");
    let res = s.get("/p.jpg?w=150&h=150").await;
    assert_eq!(res.headers()["x-cache"], "MISS");
    let first = res.bytes().await.unwrap();
    let res = s.get("/p.jpg?w=150&h=150").await;
    assert_eq!(res.headers()["x-cache"], "HIT");
    assert_eq!(res.bytes().await.unwrap(), first);
    assert_eq!(
        s.metric("mediaedge_cache_hits_total", &[("kind", "derivative")])
            .await,
        1.0
    );
    assert_eq!(
        s.metric("mediaedge_cache_misses_total", &[("kind", "derivative")])
            .await,
        1.0
    );
}

#[tokio::test]
async fn twenty_concurrent_identical_misses_make_one_transform() {
    let s = Server::start();
    s.put_corpus(PHOTO, "p.jpg");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (client, url) = (s.client.clone(), s.url("/p.jpg?w=500&h=700&fmt=webp"));
        tasks.push(tokio::spawn(async move {
            let res = client.get(url).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let cache = res.headers()["x-cache"].to_str().unwrap().to_owned();
            (cache, res.bytes().await.unwrap())
        }));
    }
    let mut bodies = Vec::new();
    let mut misses = 0;
    for t in tasks {
        let (cache, body) = t.await.unwrap();
        misses += (cache == "MISS") as usize;
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(misses, 1);
    assert_eq!(s.metric("mediaedge_transforms_total", &[]).await, 1.0);
}

#[tokio::test]
async fn two_sizes_of_one_photo_cost_one_read_of_the_original() {
    let s = Server::start();
    s.put_corpus(PHOTO, "p.jpg");
    for q in ["w=150&h=150", "w=500&h=700", "w=300&fmt=jpeg"] {
        assert_eq!(s.get(&format!("/p.jpg?{q}")).await.status(), StatusCode::OK);
    }
    assert_eq!(
        s.metric("mediaedge_store_requests_total", &[("op", "get")])
            .await,
        1.0
    );
    assert_eq!(
        s.metric("mediaedge_transforms_total", &[("outcome", "ok")])
            .await,
        3.0
    );
    assert_eq!(
        s.metric("mediaedge_cache_hits_total", &[("kind", "original")])
            .await,
        2.0
    );
}

#[tokio::test]
async fn disk_cache_keeps_hits_across_a_restart() {
    let config = "[cache]\ndisk_path = \"cache\"\ndisk_mb = 64\n";
    let s = Server::builder().config(config).start();
    s.put_corpus(PHOTO, "p.jpg");
    let first = s.get("/p.jpg?w=150&h=150&fmt=webp").await;
    assert_eq!(first.headers()["x-cache"], "MISS");
    let first = first.bytes().await.unwrap();
    // The write is in the background; wait until the entry file exists.
    let cache_dir = s.dir.path().join("cache");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count_files(&cache_dir) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no disk entry written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let dir = s.stop();
    let s = Server::builder().config(config).dir(dir).start();
    let res = s.get("/p.jpg?w=150&h=150&fmt=webp").await;
    assert_eq!(res.headers()["x-cache"], "HIT");
    assert_eq!(res.bytes().await.unwrap(), first);
    assert_eq!(s.metric("mediaedge_transforms_total", &[]).await, 0.0);
    assert_eq!(
        s.metric("mediaedge_cache_hits_total", &[("tier", "disk")])
            .await,
        1.0
    );
}

/// Issue 14, item 14: anonymous clients choose keys, and on S3 every 404
/// is a billed store request. A missing key is remembered for
/// `cache.negative_secs`; an upload of that key is served at once anyway.
#[tokio::test]
async fn missing_keys_cost_one_store_request_until_uploaded() {
    let s = Server::builder().uploads().start();
    let heads = || s.metric("mediaedge_store_requests_total", &[("op", "head")]);
    for _ in 0..5 {
        assert_eq!(s.get("/soon.jpg").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            s.get("/soon.jpg?w=10").await.status(),
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(heads().await, 1.0);
    let (status, _) = s.upload("soon.jpg", common::corpus_bytes(PHOTO)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(s.get("/soon.jpg").await.status(), StatusCode::OK);
    // With negative_secs = 0 every request asks the store.
    let s = Server::builder()
        .config("[cache]\nnegative_secs = 0\n")
        .start();
    for _ in 0..3 {
        assert_eq!(s.get("/none.jpg").await.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(
        s.metric("mediaedge_store_requests_total", &[("op", "head")])
            .await,
        3.0
    );
}

fn count_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name() != "tmp" && e.file_name() != ".mediaedge-cache")
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test]
async fn an_overwritten_original_is_not_served_from_old_derivatives() {
    let s = Server::builder()
        .config("[cache]\nrevalidate_secs = 0\n")
        .start();
    s.put_corpus(PHOTO, "p.jpg");
    let a = s.get("/p.jpg?w=100&fmt=png").await.bytes().await.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    s.put_corpus("photo_4272x2848.webp", "p.jpg");
    let res = s.get("/p.jpg?w=100&fmt=png").await;
    assert_eq!(res.headers()["x-cache"], "MISS");
    assert_ne!(res.bytes().await.unwrap(), a);
}

#[tokio::test]
async fn originals_are_served_from_memory_after_the_first_read() {
    let s = Server::start();
    s.put_corpus(PHOTO, "p.jpg");
    assert_eq!(s.get("/p.jpg").await.headers()["x-cache"], "MISS");
    assert_eq!(s.get("/p.jpg").await.headers()["x-cache"], "HIT");
    // Video above the in-memory limit is never held whole: it is read in
    // slices (tests/slices.rs), the second read of one is a hit.
    let f = std::fs::File::create(s.data().join("big.bin")).unwrap();
    f.set_len(64 << 20).unwrap();
    for expect in ["MISS", "HIT"] {
        let res = s.get_with("/big.bin", &[("range", "bytes=0-99")]).await;
        assert_eq!(res.headers()["x-cache"], expect);
        assert_eq!(res.bytes().await.unwrap().len(), 100);
    }
}
