//! The slice cache (SPEC "Scale-out"): originals over 8 MB are served from
//! aligned slices filled by ranged store reads — one fill per slice however
//! many ask — kept in memory and on disk, so replaying or seeking a cached
//! video reads nothing from the store (counted by
//! `mediaedge_store_bytes_avoided_total`), survives a restart, is served
//! stale while the store is down, and is purged with its object. Store
//! reads are counted on a real S3 server (s3s-fs).

mod common;

use std::time::Duration;

use common::s3::{Kind, S3Server};
use common::{Server, padded_mp4};
use reqwest::StatusCode;

const VIDEO: &str = "video_1280x720_5s.mp4";
const MIB: usize = 1 << 20;

fn node(s3: &S3Server, cache: &std::path::Path, extra: &str) -> Server {
    let config = format!(
        "[cache]\ndisk_path = \"{}\"\nslice_mb = 1\n{extra}",
        cache.display()
    );
    Server::builder().s3(s3).config(&config).start()
}

async fn store_gets(s: &Server) -> f64 {
    s.metric("mediaedge_store_requests_total", &[("op", "get")])
        .await
}

async fn range(s: &Server, key: &str, from: usize, to: usize) -> (StatusCode, String, Vec<u8>) {
    let res = s
        .get_with(
            &format!("/{key}"),
            &[("range", &format!("bytes={from}-{to}"))],
        )
        .await;
    let status = res.status();
    let cache = res
        .headers()
        .get("x-cache")
        .map_or("", |v| v.to_str().unwrap())
        .to_owned();
    (status, cache, res.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_and_seeks_read_nothing_from_the_store() {
    let s3 = S3Server::start(Kind::S3sFs);
    let video = padded_mp4(VIDEO, 20 * MIB);
    s3.put("clip.mp4", video.clone()).await;
    let cache = tempfile::tempdir().unwrap();
    let s = node(&s3, cache.path(), "");

    // First play: each slice is one ranged read.
    let (status, x, body) = range(&s, "clip.mp4", 0, MIB - 1).await;
    assert_eq!((status, x.as_str()), (StatusCode::PARTIAL_CONTENT, "MISS"));
    assert!(body == video[..MIB]);
    assert_eq!(store_gets(&s).await, 1.0);
    // A range across two slices, one of them cached.
    let (_, _, body) = range(&s, "clip.mp4", MIB - 10, 2 * MIB + 9).await;
    assert!(body == video[MIB - 10..2 * MIB + 10]);
    assert_eq!(store_gets(&s).await, 3.0);
    // The whole file: the other 17 slices.
    let res = s.get("/clip.mp4").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap() == video);
    assert_eq!(store_gets(&s).await, 20.0);

    // Replays and seeks: no store read at all.
    let avoided = s.metric("mediaedge_store_bytes_avoided_total", &[]).await;
    for (from, to) in [
        (0, MIB - 1),
        (7 * MIB + 5, 9 * MIB),
        (19 * MIB, 20 * MIB - 1),
    ] {
        let (status, x, body) = range(&s, "clip.mp4", from, to).await;
        assert_eq!((status, x.as_str()), (StatusCode::PARTIAL_CONTENT, "HIT"));
        assert!(body == video[from..=to]);
    }
    let res = s.get("/clip.mp4").await;
    assert_eq!(res.headers()["x-cache"], "HIT");
    assert!(res.bytes().await.unwrap() == video);
    assert_eq!(store_gets(&s).await, 20.0, "replays read nothing");
    let now = s.metric("mediaedge_store_bytes_avoided_total", &[]).await;
    let served = MIB + (2 * MIB - 4) + MIB + 20 * MIB;
    assert_eq!(
        now - avoided,
        served as f64,
        "every byte replayed was a store byte avoided"
    );

    // After a restart, the disk tier still has them (checked on read).
    drop(s);
    let s = node(&s3, cache.path(), "");
    let (_, x, body) = range(&s, "clip.mp4", 3 * MIB, 4 * MIB - 1).await;
    assert_eq!(x, "HIT", "{:?}", s.stderr_lines());
    assert!(body == video[3 * MIB..4 * MIB]);
    assert_eq!(store_gets(&s).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fill_per_slice_however_many_ask() {
    let s3 = S3Server::start(Kind::S3sFs);
    let video = padded_mp4(VIDEO, 9 * MIB);
    s3.put("clip.mp4", video.clone()).await;
    let cache = tempfile::tempdir().unwrap();
    let s = node(&s3, cache.path(), "");
    let asks = (0..12).map(|i| range(&s, "clip.mp4", 4 * MIB + i * 1000, 4 * MIB + i * 1000 + 99));
    for (i, (status, _, body)) in futures_util::future::join_all(asks)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert!(body == video[4 * MIB + i * 1000..4 * MIB + i * 1000 + 100]);
    }
    assert_eq!(
        store_gets(&s).await,
        1.0,
        "twelve requests, one slice, one read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_slices_are_served_stale_while_the_store_is_down() {
    let s3 = S3Server::start(Kind::S3sFs);
    let video = padded_mp4(VIDEO, 10 * MIB);
    s3.put("clip.mp4", video.clone()).await;
    let cache = tempfile::tempdir().unwrap();
    let s = node(
        &s3,
        cache.path(),
        "revalidate_secs = 1\nstale_if_error_secs = 60\n",
    );
    let (_, _, body) = range(&s, "clip.mp4", 2 * MIB, 3 * MIB - 1).await;
    assert!(body == video[2 * MIB..3 * MIB]);
    let _root = s3.stop();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, x, body) = range(&s, "clip.mp4", 2 * MIB + 5, 3 * MIB - 1).await;
    assert_eq!(
        (status, x.as_str()),
        (StatusCode::PARTIAL_CONTENT, "STALE"),
        "{:?}",
        s.stderr_lines()
    );
    assert!(body == video[2 * MIB + 5..3 * MIB]);
    // A slice never fetched cannot be served: a quick error status.
    let (status, _, _) = range(&s, "clip.mp4", 6 * MIB, 6 * MIB + 10).await;
    assert!(status.is_server_error(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_go_with_their_object() {
    let s3 = S3Server::start(Kind::S3sFs);
    let video = padded_mp4(VIDEO, 9 * MIB);
    s3.put("clip.mp4", video.clone()).await;
    let cache = tempfile::tempdir().unwrap();
    let s = node(&s3, cache.path(), "");
    let (_, _, body) = range(&s, "clip.mp4", 0, 99).await;
    assert!(body == video[..100]);
    // (Its disk copy is written in the background.)
    for _ in 0..200 {
        if s.metric("mediaedge_cache_entries", &[("tier", "disk")])
            .await
            >= 1.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // A purge drops them from memory and disk: the next read is the store's.
    let res = s.purge(serde_json::json!({"keys": ["clip.mp4"]})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (_, x, _) = range(&s, "clip.mp4", 0, 99).await;
    assert_eq!(x, "MISS");
    assert_eq!(store_gets(&s).await, 2.0);
    // A new object under the key never meets the old slices (another ETag).
    let mut other = video.clone();
    other[..4].copy_from_slice(b"\0\0\0\x20");
    other[MIB..MIB + 4].copy_from_slice(b"NEW!");
    s3.put("clip.mp4", other.clone()).await;
    s.purge(serde_json::json!({"keys": ["clip.mp4"]})).await;
    let (_, _, body) = range(&s, "clip.mp4", MIB, MIB + 3).await;
    assert_eq!(body, b"NEW!");
}
