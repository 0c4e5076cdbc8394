//! Real S3-compatible servers for the tests: moto (behaviour; from PyPI,
//! installed by scripts/test.sh into target/test-venv) and s3s-fs 0.14.1
//! (verifies SigV4 signatures; installed into target/test-tools). Each test
//! starts its own on a free loopback port and stops it on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};

pub const BUCKET: &str = "media";
pub const ACCESS_KEY: &str = "mediaedgetestkey";
pub const SECRET_KEY: &str = "mediaedge-test-secret-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Moto,
    S3sFs,
}

pub struct S3Server {
    pub kind: Kind,
    pub endpoint: String,
    pub port: u16,
    child: Option<Child>,
    _root: Option<tempfile::TempDir>,
}

fn tool(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(default))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl S3Server {
    pub fn start(kind: Kind) -> Self {
        Self::start_on(kind, free_port(), None)
    }

    /// Starts (again) on a given port; `root` keeps s3s-fs's data across restarts.
    pub fn start_on(kind: Kind, port: u16, root: Option<tempfile::TempDir>) -> Self {
        let (child, root) = match kind {
            Kind::Moto => {
                let bin = tool("MEDIAEDGE_TEST_MOTO", "target/test-venv/bin/moto_server");
                let child = Command::new(&bin)
                    .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| {
                        panic!("start {} (scripts/test.sh installs it): {e}", bin.display())
                    });
                (child, None)
            }
            Kind::S3sFs => {
                let bin = tool("MEDIAEDGE_TEST_S3S", "target/test-tools/bin/s3s-fs");
                let root = root.unwrap_or_else(|| tempfile::tempdir().unwrap());
                std::fs::create_dir_all(root.path().join(BUCKET)).unwrap();
                let child = Command::new(&bin)
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                    .arg(root.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| {
                        panic!("start {} (scripts/test.sh installs it): {e}", bin.display())
                    });
                (child, Some(root))
            }
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{kind:?} did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let server = Self {
            kind,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            child: Some(child),
            _root: root,
        };
        if kind == Kind::Moto {
            // moto keeps buckets in memory: make ours (unsigned requests are fine there).
            let status = std::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
                .arg(format!("{}/{BUCKET}", server.endpoint))
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            assert_eq!(status.ok().as_deref(), Some("200"), "create bucket in moto");
        }
        server
    }

    /// Stops the server, keeping s3s-fs's files for a restart on the same port.
    pub fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self._root.take()
    }

    /// `[storage]` for mediaedge, and the environment it needs.
    pub fn storage_config(&self) -> String {
        format!(
            "[storage]\nkind = \"s3\"\nbucket = \"{BUCKET}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\npath_style = true\ntimeout_secs = 2.0\nretries = 1\n",
            self.endpoint
        )
    }

    pub fn env(&self) -> [(&'static str, &'static str); 2] {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ]
    }

    /// A client of our own, to put objects behind the server's back.
    pub fn client(&self) -> impl ObjectStore {
        AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(&self.endpoint)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .unwrap()
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) {
        self.client()
            .put(&object_store::path::Path::from(key), bytes.into())
            .await
            .unwrap();
    }

    pub async fn exists(&self, key: &str) -> bool {
        self.client()
            .head(&object_store::path::Path::from(key))
            .await
            .is_ok()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
