//! Test harness: starts the real `mediaedge` binary on a loopback port with
//! its own data directory and config, and talks HTTP to it.
#![allow(dead_code)]

pub mod animation;
pub mod auth;
pub mod hostile;
pub mod images;
pub mod metadata;
pub mod requests;
pub mod s3;
pub mod video;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus")
        .join(name)
}

/// A corpus MP4 grown to `len` bytes by a trailing `free` box, so it is
/// still a well-formed file (uploads check the container's boxes).
pub fn padded_mp4(name: &str, len: usize) -> Vec<u8> {
    let mut video = corpus_bytes(name);
    let pad = len - video.len();
    assert!(pad >= 8, "{name} is already {} bytes", video.len());
    video.extend_from_slice(&(pad as u32).to_be_bytes());
    video.extend_from_slice(b"free");
    video.resize(len, 0);
    video
}

pub fn corpus_bytes(name: &str) -> Vec<u8> {
    std::fs::read(corpus(name)).unwrap_or_else(|e| panic!("corpus file {name}: {e}"))
}

/// The admin key a test server gets when its test sets none, so the
/// harness can read `/_/metrics` (which needs it on the public listener).
pub const HARNESS_ADMIN_KEY: &str = "harness-admin-key-0123456789";
/// The admin key and signing secret of tests that presign uploads.
pub const UPLOAD_ADMIN_KEY: &str = "admin-key-for-tests-0123456789";
pub const UPLOAD_SIGNING_SECRET: &str = "signing-secret-for-tests-0123456789";

pub struct Server {
    child: Child,
    /// The server's MEDIAEDGE_ADMIN_KEY, if it has one.
    pub admin_key: Option<String>,
    pub base: String,
    pub dir: tempfile::TempDir,
    stderr: Arc<Mutex<Vec<String>>>,
    /// stdout after the "listening on" line.
    stdout: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
}

pub struct Builder {
    config: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: Option<tempfile::TempDir>,
    /// `[storage]` for an S3 server (then no `--data` flag is passed).
    storage: Option<String>,
    /// RLIMIT_FSIZE for the server: writes past it fail as on a full disk.
    file_size_limit: Option<u64>,
    /// Start without any admin key (else [`HARNESS_ADMIN_KEY`] unless the test sets one).
    no_admin_key: bool,
}

impl Builder {
    /// Uploads on: [`UPLOAD_ADMIN_KEY`] and [`UPLOAD_SIGNING_SECRET`].
    pub fn uploads(self) -> Self {
        self.env("MEDIAEDGE_ADMIN_KEY", UPLOAD_ADMIN_KEY)
            .env("MEDIAEDGE_SIGNING_SECRET", UPLOAD_SIGNING_SECRET)
    }

    pub fn config(mut self, toml: &str) -> Self {
        self.config = toml.to_owned();
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_owned());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Originals in this S3 server instead of the local data directory.
    pub fn s3(mut self, server: &s3::S3Server) -> Self {
        self.storage = Some(server.storage_config());
        for (k, v) in server.env() {
            self.env.push((k.to_owned(), v.to_owned()));
        }
        self
    }

    /// The config has its own `[storage]`: no `--data` flag.
    pub fn own_storage(mut self) -> Self {
        self.storage = Some(String::new());
        self
    }

    /// Every file the server writes fails past `bytes` (EFBIG, as a full
    /// disk fails with ENOSPC); SIGXFSZ is ignored so the write returns the
    /// error instead of killing the process.
    pub fn file_size_limit(mut self, bytes: u64) -> Self {
        self.file_size_limit = Some(bytes);
        self
    }

    /// No `MEDIAEDGE_ADMIN_KEY` at all: the server has no admin API.
    pub fn without_admin_key(mut self) -> Self {
        self.no_admin_key = true;
        self
    }

    /// Reuse a directory (data, cache, config) from a previous server.
    pub fn dir(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    pub fn start(mut self) -> Server {
        let admin_key = match self.env.iter().find(|(k, _)| k == "MEDIAEDGE_ADMIN_KEY") {
            Some((_, v)) => Some(v.clone()),
            None if self.no_admin_key => None,
            None => {
                self.env
                    .push(("MEDIAEDGE_ADMIN_KEY".into(), HARNESS_ADMIN_KEY.into()));
                Some(HARNESS_ADMIN_KEY.into())
            }
        };
        let dir = self.dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let config = dir.path().join("mediaedge.toml");
        let text = match &self.storage {
            Some(storage) => format!("{storage}\n{}", self.config),
            None => self.config.clone(),
        };
        std::fs::write(&config, text).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediaedge"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg("127.0.0.1:0");
        if self.storage.is_none() {
            cmd.arg("--data").arg(dir.path().join("data"));
        }
        cmd.args(&self.args)
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .env_remove("MEDIAEDGE_ADMIN_KEY")
            .env_remove("MEDIAEDGE_SIGNING_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(limit) = self.file_size_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let rl = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("start mediaedge");
        let stderr = collect_lines(child.stderr.take().unwrap());
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let base = wait_for_listen_line(child.stdout.take().unwrap(), &stderr, stdout.clone());
        Server {
            child,
            admin_key,
            base,
            dir,
            stderr,
            stdout,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }
}

fn collect_lines(r: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// The base URL from the first stdout line; later lines go to `rest`.
fn wait_for_listen_line(
    stdout: impl std::io::Read + Send + 'static,
    stderr: &Arc<Mutex<Vec<String>>>,
    rest: Arc<Mutex<Vec<String>>>,
) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for line in lines.map_while(Result::ok) {
            rest.lock().unwrap().push(line);
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => line
            .strip_prefix("mediaedge listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned(),
        Err(_) => panic!("server did not start; stderr: {:?}", stderr.lock().unwrap()),
    }
}

impl Server {
    pub fn builder() -> Builder {
        Builder {
            config: String::new(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            storage: None,
            file_size_limit: None,
            no_admin_key: false,
        }
    }

    pub fn start() -> Server {
        Self::builder().start()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Copies a corpus file into the data directory under `key`.
    pub fn put_corpus(&self, name: &str, key: &str) {
        self.put(key, &corpus_bytes(name));
    }

    pub fn put(&self, key: &str, bytes: &[u8]) {
        let path = self.data().join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.client
            .get(self.url(path_and_query))
            .send()
            .await
            .unwrap()
    }

    /// A GET that must answer 200 (else the test fails with the body): its
    /// headers and body.
    pub async fn get_ok(&self, path_and_query: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
        self.get_ok_with(path_and_query, &[]).await
    }

    /// [`Server::get_ok`] with request headers.
    pub async fn get_ok_with(
        &self,
        path_and_query: &str,
        request_headers: &[(&str, &str)],
    ) -> (reqwest::header::HeaderMap, Vec<u8>) {
        let res = self.get_with(path_and_query, request_headers).await;
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.bytes().await.unwrap().to_vec();
        assert_eq!(
            status,
            reqwest::StatusCode::OK,
            "{path_and_query}: {}",
            String::from_utf8_lossy(&body)
        );
        (headers, body)
    }

    pub async fn get_with(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.client.get(self.url(path_and_query));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// `/_/metrics` as Prometheus reads it (with the admin key).
    pub async fn metrics_text(&self) -> String {
        let mut req = self.client.get(self.url("/_/metrics"));
        if let Some(key) = &self.admin_key {
            req = req.bearer_auth(key);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "/_/metrics");
        res.text().await.unwrap()
    }

    /// Sum of every sample of `name` whose labels include all of `labels`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        parse_metric(&self.metrics_text().await, name, labels)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the server process so far, in bytes.
    pub fn peak_rss(&self) -> u64 {
        proc_status_kb(self.pid(), "VmHWM:") * 1024
    }

    pub fn rss(&self) -> u64 {
        proc_status_kb(self.pid(), "VmRSS:") * 1024
    }

    /// The rest of the stdout line that starts with `prefix` (waits up to 10 s).
    pub fn stdout_after(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(rest) = self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.strip_prefix(prefix))
            {
                return rest.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no stdout line starting {prefix:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Stops the server and hands back its directory (data, cache) for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn parse_metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Decodes a response body with the `image` crate (independent of ours).
pub fn decode(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory(bytes)
        .unwrap_or_else(|e| panic!("response is not a decodable image: {e}"))
}

pub fn format_of(bytes: &[u8]) -> image::ImageFormat {
    image::guess_format(bytes).expect("known image format")
}

/// Sends `GET <target>` exactly as given (no URL normalisation) and returns
/// the status and body. HTTP/1.1 with `Connection: close`.
pub async fn raw_get(base: &str, target: &str) -> (u16, String) {
    raw_request(
        base,
        &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await
}

pub async fn raw_request(base: &str, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    parse_response(&buf)
}

/// Status code and body of a raw HTTP/1.1 response.
pub fn parse_response(buf: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
