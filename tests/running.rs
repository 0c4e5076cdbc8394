//! SPEC "Running": the embedded default, config files, flags, secrets.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::Server;

fn mediaedge() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mediaedge"));
    c.env_remove("MEDIAEDGE_CONFIG")
        .env_remove("MEDIAEDGE_ADMIN_KEY")
        .env_remove("MEDIAEDGE_SIGNING_SECRET");
    c
}

/// Runs `serve` with `config` and returns (exit code, stderr) — for configs
/// that must be refused before the server starts. A server that starts
/// anyway is killed after a few seconds and reported as exit code -1.
fn refused(config: &str) -> (i32, String) {
    refused_in(tempfile::tempdir().unwrap().path(), config)
}

/// [`refused`] with `dir` as the working directory.
fn refused_in(dir: &std::path::Path, config: &str) -> (i32, String) {
    std::fs::write(dir.join("m.toml"), config).unwrap();
    let child = mediaedge()
        .args(["serve", "--config", "m.toml", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_or_kill(child, Duration::from_secs(10))
}

/// `mediaedge serve` with no config and no flags: ./data (created) on 127.0.0.1:8080.
#[tokio::test]
async fn embedded_default_serves_dot_data_on_8080() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = mediaedge()
        .arg("serve")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let result = async {
        assert_eq!(line.trim(), "mediaedge listening on http://127.0.0.1:8080");
        assert!(dir.path().join("data").is_dir(), "./data created");
        std::fs::copy(
            common::corpus("photo_4032x3024_orient1.jpg"),
            dir.path().join("data/photo.jpg"),
        )
        .unwrap();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        for want in ["MISS", "HIT"] {
            let res = client
                .get("http://127.0.0.1:8080/photo.jpg?w=150&h=150")
                .header("accept", "image/webp")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["content-type"], "image/webp");
            assert_eq!(res.headers()["x-cache"], want);
        }
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

#[test]
fn unknown_keys_are_refused_naming_the_key() {
    for (config, key) in [
        ("[cache]\nmemroy_mb = 10\n", "memroy_mb"),
        ("[transfrom]\nmax_dimension = 10\n", "transfrom"),
        ("listen = \"127.0.0.1:1\"\n", "listen"),
        ("[server]\nlisten = \"127.0.0.1:0\"\nport = 1\n", "port"),
    ] {
        let (code, stderr) = refused(config);
        assert_eq!(code, 2, "{config}");
        assert!(stderr.contains(key), "{config}: {stderr}");
    }
}

#[test]
fn bad_values_are_refused_naming_the_key() {
    for (config, key) in [
        ("[cache]\nmemory_mb = 0\n", "cache.memory_mb"),
        ("[cache]\nmemory_mb = \"lots\"\n", "cache.memory_mb"),
        ("[server]\nlisten = \"localhost\"\n", "server.listen"),
        ("[storage]\nkind = \"ftp\"\n", "storage.kind"),
        (
            "[transform]\ndefault_quality = 0\n",
            "transform.default_quality",
        ),
        (
            "[transform]\nallowed_sizes = [\"big\"]\n",
            "transform.allowed_sizes",
        ),
        ("[upload]\nmax_bytes = 0\n", "upload.max_bytes"),
        ("not toml at all [", "TOML"),
    ] {
        let (code, stderr) = refused(config);
        assert_eq!(code, 2, "{config}");
        assert!(stderr.contains(key), "{config}: {stderr}");
    }
    let (code, stderr) = refused_with_env("MEDIAEDGE_ADMIN_KEY", "short");
    assert_eq!(code, 2);
    assert!(stderr.contains("MEDIAEDGE_ADMIN_KEY"), "{stderr}");
}

fn refused_with_env(k: &str, v: &str) -> (i32, String) {
    let out = mediaedge()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            "/tmp/mediaedge-never-created",
        ])
        .env(k, v)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_config_file_is_an_error() {
    let out = mediaedge()
        .args(["serve", "--config", "/nonexistent/m.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/m.toml"));
}

#[tokio::test]
async fn flags_override_the_file() {
    // The file names a data dir and port that the flags replace.
    let s = Server::builder()
        .config("[server]\nlisten = \"127.0.0.1:1\"\n[storage]\nkind = \"local\"\npath = \"/nonexistent/elsewhere\"\n")
        .start();
    assert!(s.base.starts_with("http://127.0.0.1:") && !s.base.ends_with(":1"));
    s.put("x.txt", b"from --data");
    assert_eq!(s.get("/x.txt").await.text().await.unwrap(), "from --data");
}

#[tokio::test]
async fn secrets_come_from_env_or_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("signing");
    std::fs::write(&secret, "0123456789abcdef0123\n").unwrap();
    let s = Server::builder()
        .env("MEDIAEDGE_ADMIN_KEY", "admin-key-0123456789")
        .env("MEDIAEDGE_SIGNING_SECRET_FILE", secret.to_str().unwrap())
        .start();
    assert_eq!(s.get("/_/health").await.status(), 200);
    // The config text itself has no place for them.
    let (code, stderr) = refused("[server]\nadmin_key = \"x\"\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("admin_key"));
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Issue 14, item 12: the disk cache deletes what it does not recognise,
/// so it must have a directory of its own. Pointed at the data directory
/// (or `.` around it, or a directory inside it) the config is refused;
/// pointed at any populated directory the server will not start. Either
/// way not one original is touched.
#[test]
fn the_disk_cache_never_deletes_files_it_does_not_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("ab/cd")).unwrap();
    std::fs::write(data.join("photo.jpg"), b"original").unwrap();
    std::fs::write(data.join("ab/cd/deep.jpg"), b"original").unwrap();
    let other = dir.path().join("shared-tmp");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"someone else's").unwrap();
    for (disk_path, expect) in [
        ("./data", "cache.disk_path"),
        (".", "cache.disk_path"),
        ("./data/cache", "cache.disk_path"),
        ("./shared-tmp", "did not write"),
    ] {
        let out = refused_in(
            dir.path(),
            &format!("[cache]\ndisk_path = \"{disk_path}\"\n"),
        );
        assert_eq!(out.0, 2, "{disk_path}: {}", out.1);
        assert!(out.1.contains(expect), "{disk_path}: {}", out.1);
        assert_eq!(std::fs::read(data.join("photo.jpg")).unwrap(), b"original");
        assert_eq!(
            std::fs::read(data.join("ab/cd/deep.jpg")).unwrap(),
            b"original"
        );
        assert!(other.join("notes.txt").exists());
    }
}

/// Exit code and stderr of `child`, killed (code -1) if it is still running after `limit`.
fn wait_or_kill(mut child: std::process::Child, limit: Duration) -> (i32, String) {
    let deadline = std::time::Instant::now() + limit;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (code, stderr)
}
