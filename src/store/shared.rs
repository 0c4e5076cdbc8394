//! The shared derivative tier (`cache.shared`): derivatives one node made,
//! kept in the store under the reserved prefix so every other node reads
//! them instead of transforming again. Best effort: a failure here is a
//! miss, never an error to the viewer.

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::{GetOptions, ObjectStoreExt};

use super::Store;
use crate::key::ObjectKey;
use crate::metrics;

/// Where `cache.shared` keeps derivatives in the store (reserved: unreadable as media).
const SHARED_PREFIX: &str = "_/derivatives/";

impl Store {
    /// Where the shared derivative tier keeps one derivative:
    /// `_/derivatives/<key>/<hash of ETag and canonical variant>` — under the
    /// reserved prefix (never served as media), grouped by original so a
    /// delete can remove the family.
    fn shared_path(key: &ObjectKey, etag: &str, variant: &str) -> Option<object_store::path::Path> {
        let id = blake3::hash(format!("{etag}\n{variant}").as_bytes()).to_hex();
        object_store::path::Path::parse(format!("{SHARED_PREFIX}{}/{}", key.as_str(), &id[..32]))
            .ok()
    }

    /// A derivative another node wrote, if there is one. Failures are not
    /// errors here: the caller transforms instead.
    pub async fn get_shared(&self, key: &ObjectKey, etag: &str, variant: &str) -> Option<Bytes> {
        let path = Self::shared_path(key, etag, variant)?;
        let res = self
            .timed(
                "get_shared",
                self.inner.get_opts(&path, GetOptions::default()),
            )
            .await
            .ok()?;
        let bytes = self.timed("get_shared", res.bytes()).await.ok()?;
        metrics::store_request("get_shared", "ok");
        Some(bytes)
    }

    /// Writes a derivative for other nodes (callers do it in the background).
    pub async fn put_shared(&self, key: &ObjectKey, etag: &str, variant: &str, body: Bytes) {
        let Some(path) = Self::shared_path(key, etag, variant) else {
            return;
        };
        if self
            .timed("put_shared", self.inner.put(&path, body.into()))
            .await
            .is_ok()
        {
            metrics::store_request("put_shared", "ok");
        }
    }

    /// Removes every shared derivative of `key` (any ETag); how many.
    pub async fn delete_shared(&self, key: &ObjectKey) -> u64 {
        let Ok(prefix) =
            object_store::path::Path::parse(format!("{SHARED_PREFIX}{}", key.as_str()))
        else {
            return 0;
        };
        let listed: Vec<_> = match self
            .timed(
                "list_shared",
                self.inner.list(Some(&prefix)).try_collect::<Vec<_>>(),
            )
            .await
        {
            Ok(l) => l,
            Err(_) => return 0,
        };
        let mut deleted = 0;
        for meta in listed {
            if self
                .timed("delete_shared", self.inner.delete(&meta.location))
                .await
                .is_ok()
            {
                deleted += 1;
            }
        }
        deleted
    }
}
