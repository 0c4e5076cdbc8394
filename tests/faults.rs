//! Faults: the process killed in the middle of disk-cache writes, a disk
//! that is full or unwritable, SIGTERM during a long download.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Server;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PHOTO: &str = "photo_4032x3024_orient1.jpg";
const DISK: &str = "[cache]\ndisk_path = \"cache\"\ndisk_mb = 256\n";

/// Entry files of the disk tier (everything but the temporaries' folder).
fn entry_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        if e.file_name() == "tmp" || e.file_name() == ".mediaedge-cache" {
            continue;
        }
        if e.path().is_dir() {
            out.extend(entry_files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn temporaries(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("tmp")).map_or(0, |d| d.count())
}

/// Large PNG derivatives (a few MB each) so the writes take a while.
fn variant(i: u32) -> String {
    format!("/p.jpg?w={}&fmt=png", 1400 + i)
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGKILL while derivatives are being written to disk (the moment a
/// temporary appears in the cache's `tmp/`, after 0, 1, then 2 complete
/// entries), plus an
/// entry torn as a crash on a filesystem without atomic rename would leave
/// it: after the restart the index matches the files, no temporaries are
/// left, and every variant served is byte for byte what a server without a
/// disk tier makes.
#[tokio::test]
async fn sigkill_during_disk_writes_never_serves_a_torn_entry() {
    const VARIANTS: u32 = 6;
    let mut dir = None;
    let mut killed_mid_write = 0;
    for round in 0..3 {
        let mut b = Server::builder().config(DISK);
        if let Some(d) = dir.take() {
            b = b.dir(d);
        }
        let s = b.start();
        if round == 0 {
            s.put_corpus(PHOTO, "p.jpg"); // once: its ETag keys the entries
        }
        let requests: Vec<_> = (0..VARIANTS)
            .map(|i| {
                let (client, url) = (s.client.clone(), s.url(&variant(i)));
                tokio::spawn(async move { client.get(url).send().await?.bytes().await })
            })
            .collect();
        let cache = s.dir.path().join("cache");
        let deadline = Instant::now() + Duration::from_secs(60);
        // Round r: once r entries are complete, at the next write.
        loop {
            let writing = temporaries(&cache) > 0 && entry_files(&cache).len() >= round;
            let over = requests.iter().all(|r| r.is_finished()) || Instant::now() > deadline;
            if writing || over {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mid_write = temporaries(&cache) > 0;
        dir = Some(s.stop()); // SIGKILL
        killed_mid_write += usize::from(mid_write && temporaries(&cache) > 0);
        for r in requests {
            let _ = r.await; // cut off mid-way: errors expected
        }
        eprintln!(
            "round {round}: killed with {} entries, {} temporaries",
            entry_files(&cache).len(),
            temporaries(&cache)
        );
    }
    assert!(killed_mid_write > 0, "never killed during a write");
    let dir = dir.unwrap();
    let cache = dir.path().join("cache");
    // A torn entry: a complete one cut short in place, plus a stray temporary.
    let entries = entry_files(&cache);
    assert!(!entries.is_empty(), "no entry written in three rounds");
    let torn = &entries[0];
    let bytes = std::fs::read(torn).unwrap();
    std::fs::write(torn, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(cache.join("tmp").join("stray"), &bytes[..100]).unwrap();

    let s = Server::builder().config(DISK).dir(dir).start();
    assert_eq!(temporaries(&cache), 0, "temporaries left after start");
    assert!(!torn.exists(), "the torn entry was kept");
    let files = entry_files(&cache).len() as f64;
    assert_eq!(
        s.metric("mediaedge_cache_entries", &[("tier", "disk")])
            .await,
        files,
        "index and files disagree"
    );
    let reference = Server::start();
    reference.put_corpus(PHOTO, "p.jpg");
    let mut disk_hits = 0;
    for i in 0..VARIANTS {
        let res = s.get(&variant(i)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let cache_status = res.headers()["x-cache"].to_str().unwrap().to_owned();
        disk_hits += usize::from(cache_status == "HIT");
        let served = res.bytes().await.unwrap();
        let fresh = reference.get(&variant(i)).await.bytes().await.unwrap();
        assert!(served == fresh, "variant {i} ({cache_status}) differs");
    }
    assert_eq!(disk_hits as f64, files, "every indexed entry is a hit");
}

/// Writes past 4 KB fail (as on a full disk): every request is still
/// answered (from memory and the store), each failure is counted, and the
/// condition is logged once, not once per write; no partial file is left.
/// The line, written by the background write, carries the request's id.
#[tokio::test]
async fn full_disk_keeps_serving_and_logs_once() {
    let s = Server::builder()
        .config(DISK)
        .arg("--log-format")
        .arg("json")
        .file_size_limit(4096)
        .start();
    s.put_corpus(PHOTO, "p.jpg");
    for i in 0..5 {
        let url = format!("/p.jpg?w={}&fmt=jpeg", 600 + i);
        let id = format!("full-disk-{i}");
        let miss = s.get_with(&url, &[("x-request-id", id.as_str())]).await;
        assert_eq!(miss.status(), StatusCode::OK);
        assert_eq!(miss.headers()["x-cache"], "MISS");
        let hit = s.get(&url).await;
        assert_eq!(hit.status(), StatusCode::OK);
        assert_eq!(hit.headers()["x-cache"], "HIT");
    }
    wait_for("five counted write failures", async || {
        s.metric("mediaedge_disk_cache_errors_total", &[("op", "write")])
            .await
            == 5.0
    })
    .await;
    let logged: Vec<serde_json::Value> = s
        .stderr_lines()
        .iter()
        .filter(|l| l.contains("disk cache write failed"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(logged.len(), 1, "{:?}", s.stderr_lines());
    assert_eq!(logged[0]["span"]["request_id"], "full-disk-0", "{logged:?}");
    let cache = s.dir.path().join("cache");
    assert!(entry_files(&cache).is_empty());
    assert_eq!(temporaries(&cache), 0);
    assert_eq!(s.get("/_/health").await.status(), StatusCode::OK);
}

/// The temporaries' folder replaced by a file (as if the directory went
/// away or read-only): requests are answered, failures counted; when the
/// folder is back, writes succeed again and the log says so.
#[tokio::test]
async fn unwritable_cache_dir_keeps_serving_and_recovers() {
    let s = Server::builder().config(DISK).start();
    s.put_corpus(PHOTO, "p.jpg");
    let tmp = s.dir.path().join("cache").join("tmp");
    std::fs::remove_dir_all(&tmp).unwrap();
    std::fs::write(&tmp, b"not a directory").unwrap();
    for i in 0..3 {
        let res = s.get(&format!("/p.jpg?w={}", 200 + i)).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    wait_for("three counted write failures", async || {
        s.metric("mediaedge_disk_cache_errors_total", &[("op", "write")])
            .await
            == 3.0
    })
    .await;
    std::fs::remove_file(&tmp).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    assert_eq!(s.get("/p.jpg?w=300").await.status(), StatusCode::OK);
    let cache = s.dir.path().join("cache");
    wait_for("an entry written after recovery", async || {
        entry_files(&cache).len() == 1
    })
    .await;
    let lines = s.stderr_lines();
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("disk cache write failed"), 1, "{lines:?}");
    wait_for("the recovery line", async || {
        s.stderr_lines()
            .iter()
            .any(|l| l.contains("disk cache writes succeed again"))
    })
    .await;
}

/// SIGTERM while a client slowly downloads an 8 MB original: the download
/// completes byte for byte, new connections are refused, and the process
/// exits 0 within the grace period.
#[tokio::test]
async fn sigterm_during_a_long_download_completes_it_and_exits_zero() {
    const BIG: &str = "rgb16_1600x1067.png";
    let mut s = Server::builder()
        .config("[server]\nshutdown_grace_secs = 20\n")
        .start();
    s.put_corpus(BIG, "big.png");
    let expected = common::corpus_bytes(BIG);
    let mut stream = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(b"GET /big.png HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let mut signalled = None;
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
        if signalled.is_none() && received.len() > 256 * 1024 {
            s.signal(libc::SIGTERM);
            signalled = Some(Instant::now());
            tokio::time::sleep(Duration::from_millis(200)).await;
            let addr = s.base.trim_start_matches("http://").to_owned();
            assert!(
                tokio::net::TcpStream::connect(&addr).await.is_err(),
                "still accepting after SIGTERM"
            );
        }
        // About 2.5 MB/s: the download lasts a few seconds.
        tokio::time::sleep(Duration::from_millis(25)).await;
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "download stalled"
        );
    }
    let signalled = signalled.expect("SIGTERM was sent mid-download");
    let body_at = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head")
        + 4;
    assert!(received.starts_with(b"HTTP/1.1 200"));
    assert!(received[body_at..] == expected[..], "body differs");
    assert!(
        signalled.elapsed() > Duration::from_secs(1),
        "the download was not in flight long after SIGTERM"
    );
    let exit = s
        .wait_exit(Duration::from_secs(20))
        .expect("exited within the grace");
    assert!(exit.success(), "{exit:?}");
}
