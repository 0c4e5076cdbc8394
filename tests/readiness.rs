//! SPEC "Operations": `GET /_/ready` answers 200 only while storage
//! answers, else 503; `mediaedge health [--ready] --url …` exits 0/1 for
//! container health checks; start-up errors name the config key and the
//! path or address.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use common::s3::{Kind, S3Server};
use reqwest::StatusCode;

/// `mediaedge health` with `args`: (exit code, stdout, stderr).
fn health(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mediaedge"))
        .arg("health")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `/_/ready` until it answers `want`, for at most 5 s.
async fn ready_becomes(s: &Server, want: StatusCode) -> String {
    let started = Instant::now();
    loop {
        let res = s.get("/_/ready").await;
        if res.status() == want {
            return res.text().await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "/_/ready stayed {} (wanted {want})",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_the_store_and_health_does_not() {
    let s3 = S3Server::start(Kind::S3sFs);
    let port = s3.port;
    let s = Server::builder().s3(&s3).start();
    let base = s.url("");
    assert_eq!(ready_becomes(&s, StatusCode::OK).await, "ok");
    let (code, out, _) = health(&["--ready", "--url", &base]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/_/ready: ok"), "{out}");

    // The store goes away: not ready (503), yet alive.
    let root = s3.stop();
    let body = ready_becomes(&s, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body, "storage unavailable");
    let res = s.get("/_/ready").await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(s.get("/_/health").await.status(), StatusCode::OK);
    let (code, _, err) = health(&["--ready", "--url", &base]);
    assert_eq!(code, 1);
    assert!(err.contains("503"), "{err}");
    assert_eq!(health(&["--url", &base]).0, 0, "the process still runs");

    // Back on the same port: ready again, by itself.
    let _s3 = S3Server::start_on(Kind::S3sFs, port, root);
    ready_becomes(&s, StatusCode::OK).await;
    assert_eq!(health(&["--ready", "--url", &base]).0, 0);
}

#[tokio::test]
async fn ready_on_local_storage_needs_the_data_directory() {
    let s = Server::start();
    ready_becomes(&s, StatusCode::OK).await;
    std::fs::remove_dir_all(s.data()).unwrap();
    ready_becomes(&s, StatusCode::SERVICE_UNAVAILABLE).await;
    std::fs::create_dir_all(s.data()).unwrap();
    ready_becomes(&s, StatusCode::OK).await;
}

#[test]
fn health_fails_where_nothing_listens() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let (code, _, err) = health(&["--url", &url, "--timeout", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{url}/_/health")), "{err}");
    let help = Command::new(env!("CARGO_BIN_EXE_mediaedge"))
        .args(["health", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--ready") && help.contains("Example:"),
        "{help}"
    );
}

/// `mediaedge serve` with `args`, expected to fail at start: its stderr.
fn failing_start(args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mediaedge"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(2));
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mediaedge serve {args:?} did not fail");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn start_up_errors_name_the_key_and_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = failing_start(&["--listen", &addr, "--data", data.to_str().unwrap()]);
    assert!(
        err.contains(&format!("server.listen = {addr}")) && err.contains("in use"),
        "{err}"
    );

    // A file where the data directory should be.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = failing_start(&["--listen", "127.0.0.1:0", "--data", file.to_str().unwrap()]);
    assert!(
        err.contains(&format!("storage.path = {}", file.display())),
        "{err}"
    );
}
