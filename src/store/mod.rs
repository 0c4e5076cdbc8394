//! The storage boundary: originals live in an `object_store` (the local
//! filesystem, or an S3-compatible store behind the same trait). This file
//! reads; [`publish`] makes uploads objects, [`shared`] keeps the shared
//! derivative tier, [`records`] the small records nodes agree through.
//!
//! [`Store::head`] returns what delivery needs to know about an original —
//! size, validators and the media type sniffed from its first bytes — and
//! every body read carries `If-Match` on the ETag that metadata came with,
//! so a file replaced between the two calls is noticed (`Changed`) instead of
//! serving bytes that do not match the headers already decided.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::config::{Backend, StorageConfig};
use crate::header_values::HeaderValues;
use crate::key::ObjectKey;
use crate::media_type::{MediaType, SNIFF_LEN};
use crate::metrics;

mod publish;
mod records;
mod shared;

pub use records::RECORDS_PREFIX;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("Not Found")]
    NotFound,
    /// The original is bigger than a transform may read into memory (422).
    #[error("source image is larger than transform.max_source_bytes ({0} bytes)")]
    TooLarge(u64),
    /// The object changed between the metadata and the body read.
    #[error("object changed while being read, retry")]
    Changed,
    /// A create-only write found the object there already (412).
    #[error("Precondition Failed: the key already exists")]
    Exists,
    #[error("storage unavailable")]
    Unavailable(String),
    #[error("storage timed out")]
    Timeout,
}

/// What we know about an original without reading its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalMeta {
    pub size: u64,
    /// Strong validator, quoted (`"..."`), as sent in `ETag`.
    pub etag: String,
    /// The store's own tag, passed back as `If-Match` on reads.
    store_etag: Option<String>,
    /// Whole seconds.
    pub last_modified: SystemTime,
    pub media: MediaType,
    pub headers: HeaderValues,
}

/// Where uploads are written before they are published, on local storage:
/// inside the data directory (same filesystem, so publishing is one atomic
/// rename) under the reserved `_/` prefix, which no request can read (keys
/// starting with `_/` are refused).
const STAGING_DIR: &str = "_/uploads";

#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    staging: Staging,
    /// Longest one storage call may take, retries included.
    timeout: Duration,
}

#[derive(Clone)]
enum Staging {
    /// Staged files sit next to the data and are renamed into place.
    Local { root: PathBuf },
    /// Staged files sit in a private temporary directory and are sent to
    /// the store in one `PUT` or a multipart upload (invisible to readers
    /// until completed, so atomic as they see it).
    Remote { dir: Arc<tempfile::TempDir> },
}

impl Store {
    pub fn open(cfg: &StorageConfig) -> std::io::Result<Self> {
        match &cfg.backend {
            Backend::Local { path } => Self::local(path, cfg.timeout),
            Backend::S3 {
                bucket,
                endpoint,
                region,
                path_style,
            } => {
                // Credentials and anything else from the standard AWS_* environment.
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_virtual_hosted_style_request(!path_style)
                    .with_retry(RetryConfig {
                        max_retries: cfg.retries as usize,
                        retry_timeout: cfg.timeout,
                        ..Default::default()
                    })
                    .with_client_options(
                        ClientOptions::new()
                            .with_timeout(cfg.timeout)
                            .with_connect_timeout(cfg.timeout.min(Duration::from_secs(2))),
                    );
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
                }
                let s3 = b.build().map_err(std::io::Error::other)?;
                let dir = tempfile::Builder::new()
                    .prefix("mediaedge-uploads-")
                    .tempdir()?;
                Ok(Self {
                    inner: Arc::new(s3),
                    staging: Staging::Remote { dir: Arc::new(dir) },
                    // The retries and their backoff fit inside this.
                    timeout: cfg.timeout * (cfg.retries + 1) + Duration::from_secs(1),
                })
            }
        }
    }

    /// Local directory, created if missing. Uploads left half-written by a
    /// previous process are deleted here.
    pub fn local(path: &Path, timeout: Duration) -> std::io::Result<Self> {
        std::fs::create_dir_all(path)?;
        let fs = LocalFileSystem::new_with_prefix(path).map_err(std::io::Error::other)?;
        let store = Self {
            inner: Arc::new(fs),
            staging: Staging::Local {
                root: path.to_path_buf(),
            },
            timeout,
        };
        let staging = store.staging_dir();
        if staging.exists() {
            let stray = std::fs::read_dir(&staging)?.count();
            std::fs::remove_dir_all(&staging)?;
            if stray > 0 {
                tracing::info!(stray, "removed unfinished uploads from a previous run");
            }
        }
        std::fs::create_dir_all(&staging)?;
        Ok(store)
    }

    /// Runs one storage call under the storage timeout.
    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r.map_err(|e| classify(op, e)),
            Err(_) => {
                metrics::store_request(op, "timeout");
                tracing::warn!(
                    op,
                    timeout_ms = self.timeout.as_millis() as u64,
                    "storage request timed out"
                );
                Err(StoreError::Timeout)
            }
        }
    }

    /// Removes `key`; `Ok(false)` when there was nothing to remove.
    pub async fn delete(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        match self.head(key).await {
            Err(StoreError::NotFound) => return Ok(false),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        match self
            .timed("delete", self.inner.delete(key.store_path()))
            .await
        {
            Ok(()) => {
                metrics::store_request("delete", "ok");
                Ok(true)
            }
            Err(StoreError::NotFound) => Ok(false),
            Err(other) => Err(other),
        }
    }

    pub async fn head(&self, key: &ObjectKey) -> Result<OriginalMeta, StoreError> {
        let opts = GetOptions {
            head: true,
            ..Default::default()
        };
        let res = self
            .timed("head", self.inner.get_opts(key.store_path(), opts))
            .await?;
        metrics::store_request("head", "ok");
        let meta = res.meta;
        let store_etag = meta.e_tag.clone();
        let head = if meta.size == 0 {
            Bytes::new()
        } else {
            let range = 0..meta.size.min(SNIFF_LEN as u64);
            let opts = GetOptions {
                range: Some(GetRange::Bounded(range)),
                if_match: store_etag.clone(),
                ..Default::default()
            };
            let res = self
                .timed("sniff", self.inner.get_opts(key.store_path(), opts))
                .await?;
            let head = self.timed("sniff", res.bytes()).await?;
            metrics::store_request("sniff", "ok");
            head
        };
        let last_modified =
            UNIX_EPOCH + Duration::from_secs(meta.last_modified.timestamp().max(0) as u64);
        let etag = quoted_etag(
            store_etag.as_deref(),
            meta.size,
            meta.last_modified.timestamp_nanos_opt().unwrap_or(0),
        );
        Ok(OriginalMeta {
            size: meta.size,
            headers: HeaderValues::new(&etag, last_modified),
            etag,
            store_etag,
            last_modified,
            media: MediaType::sniff(&head),
        })
    }

    /// Whether `old` still describes `key`: a conditional `HEAD`
    /// (`If-None-Match`), `Ok(None)` when unchanged. A store that ignores the
    /// condition but answers with the same ETag counts as unchanged too.
    pub async fn revalidate(
        &self,
        key: &ObjectKey,
        old: &OriginalMeta,
    ) -> Result<Option<OriginalMeta>, StoreError> {
        let opts = GetOptions {
            head: true,
            if_none_match: old.store_etag.clone(),
            ..Default::default()
        };
        let call = self.inner.get_opts(key.store_path(), opts);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Err(object_store::Error::NotModified { .. })) => {
                metrics::store_request("revalidate", "not_modified");
                return Ok(None);
            }
            Ok(Ok(res)) if res.meta.e_tag.is_some() && res.meta.e_tag == old.store_etag => {
                metrics::store_request("revalidate", "not_modified");
                return Ok(None);
            }
            Ok(Ok(_)) => metrics::store_request("revalidate", "changed"),
            Ok(Err(e)) => return Err(classify("revalidate", e)),
            Err(_) => {
                metrics::store_request("revalidate", "timeout");
                return Err(StoreError::Timeout);
            }
        }
        self.head(key).await.map(Some)
    }

    /// The whole object in memory, refused above `max_bytes`.
    pub async fn read_all(
        &self,
        key: &ObjectKey,
        meta: &OriginalMeta,
        max_bytes: u64,
    ) -> Result<Bytes, StoreError> {
        if meta.size > max_bytes {
            return Err(StoreError::TooLarge(max_bytes));
        }
        self.read(key, meta, None).await
    }

    /// One byte range of the object, in memory (a slice of a large original).
    pub async fn read_range(
        &self,
        key: &ObjectKey,
        meta: &OriginalMeta,
        range: Range<u64>,
    ) -> Result<Bytes, StoreError> {
        self.read(key, meta, Some(range)).await
    }

    /// One `GET` (of `range`, else the whole object) into memory.
    async fn read(
        &self,
        key: &ObjectKey,
        meta: &OriginalMeta,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, StoreError> {
        let res = self
            .timed(
                "get",
                self.inner
                    .get_opts(key.store_path(), self.read_opts(meta, range)),
            )
            .await?;
        let bytes = self.timed("get", res.bytes()).await?;
        metrics::store_request("get", "ok");
        Ok(bytes)
    }

    fn read_opts(&self, meta: &OriginalMeta, range: Option<Range<u64>>) -> GetOptions {
        GetOptions {
            range: range.map(GetRange::Bounded),
            if_match: meta.store_etag.clone(),
            ..Default::default()
        }
    }
}

/// A strong ETag from the store's tag (unquoted, `W/` dropped), or from size
/// and modification time when the store has none.
fn quoted_etag(store_etag: Option<&str>, size: u64, mtime_nanos: i64) -> String {
    let inner = store_etag
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic() && b != b'"'))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{size:x}-{mtime_nanos:x}"));
    format!("\"{inner}\"")
}

fn classify(op: &'static str, e: object_store::Error) -> StoreError {
    let err = match e {
        object_store::Error::NotFound { .. } | object_store::Error::InvalidPath { .. } => {
            StoreError::NotFound
        }
        object_store::Error::Precondition { .. } => StoreError::Changed,
        object_store::Error::AlreadyExists { .. } => StoreError::Exists,
        // The HTTP client's own timeout (S3): a slow store, not a broken one.
        other if is_timeout(&other) => StoreError::Timeout,
        // A directory, or a name the filesystem cannot hold, is not an object.
        other
            if matches!(
                io_kind(&other),
                Some(
                    std::io::ErrorKind::IsADirectory
                        | std::io::ErrorKind::NotADirectory
                        | std::io::ErrorKind::InvalidFilename
                )
            ) =>
        {
            StoreError::NotFound
        }
        other => StoreError::Unavailable(other.to_string()),
    };
    let result = match &err {
        StoreError::NotFound => "not_found",
        StoreError::Changed => "changed",
        StoreError::Exists => "exists",
        StoreError::Timeout => "timeout",
        _ => "error",
    };
    metrics::store_request(op, result);
    if let StoreError::Unavailable(msg) = &err {
        tracing::warn!(op, error = %msg, "storage request failed");
    }
    err
}

/// Whether a storage error was a request timing out.
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(http) = err.downcast_ref::<object_store::client::HttpError>()
            && http.kind() == object_store::client::HttpErrorKind::Timeout
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        current = err.source();
    }
    false
}

/// The kind of the first `io::Error` in an error's source chain.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_strong_and_quoted() {
        assert_eq!(quoted_etag(Some("abc-12"), 1, 2), "\"abc-12\"");
        assert_eq!(quoted_etag(Some("\"d41d8\""), 1, 2), "\"d41d8\"");
        assert_eq!(quoted_etag(Some("W/\"x\""), 1, 2), "\"x\"");
        assert_eq!(quoted_etag(None, 255, 16), "\"ff-10\"");
        assert_eq!(quoted_etag(Some("bad\"tag"), 255, 16), "\"ff-10\"");
    }

    #[tokio::test]
    async fn head_sniffs_and_reads_detect_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(&dir.path().join("data"), Duration::from_secs(5)).unwrap();
        std::fs::write(
            dir.path().join("data/x.bin"),
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
        )
        .unwrap();
        let key = ObjectKey::parse("x.bin").unwrap();
        let meta = store.head(&key).await.unwrap();
        assert_eq!((meta.media, meta.size), (MediaType::Png, 16));
        assert_eq!(store.read_all(&key, &meta, 100).await.unwrap().len(), 16);
        assert_eq!(
            store.read_all(&key, &meta, 10).await,
            Err(StoreError::TooLarge(10))
        );

        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(dir.path().join("data/x.bin"), b"changed content").unwrap();
        assert_eq!(
            store.read_all(&key, &meta, 100).await,
            Err(StoreError::Changed)
        );

        let missing = ObjectKey::parse("nope").unwrap();
        assert_eq!(store.head(&missing).await, Err(StoreError::NotFound));
        std::fs::create_dir(dir.path().join("data/dir")).unwrap();
        assert_eq!(
            store.head(&ObjectKey::parse("dir").unwrap()).await,
            Err(StoreError::NotFound)
        );
        // A name no filesystem can hold never reaches the store: not a key.
        assert!(ObjectKey::parse(&"n".repeat(300)).is_err());
        std::fs::write(dir.path().join("data/empty"), b"").unwrap();
        assert_eq!(
            store
                .head(&ObjectKey::parse("empty").unwrap())
                .await
                .unwrap()
                .media,
            MediaType::Other
        );
    }
}
