//! Small records nodes share through the store (used single-use upload
//! URLs), under the reserved prefix: create-only writes are how several
//! nodes agree without anything but the store.

use bytes::Bytes;
use futures_util::{FutureExt as _, StreamExt as _};
use object_store::{ObjectStoreExt, PutMode};

use super::{Store, StoreError};
use crate::metrics;

/// Small records nodes share through the store (used upload URLs…).
pub const RECORDS_PREFIX: &str = "_/";

impl Store {
    /// Writes a small record under the reserved prefix only if none is there
    /// (a create-only `PUT`; on S3 `If-None-Match: *`): `Ok(false)` when one
    /// was. Several nodes agree through this alone.
    pub async fn create_record(&self, path: &str, body: Bytes) -> Result<bool, StoreError> {
        let path = record_path(path)?;
        let put = self
            .inner
            .put_opts(&path, body.into(), PutMode::Create.into());
        match self.timed("put_record", put).await {
            Ok(_) => {
                metrics::store_request("put_record", "ok");
                Ok(true)
            }
            Err(StoreError::Exists) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the record `path` exists.
    pub async fn has_record(&self, path: &str) -> Result<bool, StoreError> {
        let path = record_path(path)?;
        match self.timed("head_record", self.inner.head(&path)).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn delete_record(&self, path: &str) -> Result<(), StoreError> {
        let path = record_path(path)?;
        match self.timed("delete_record", self.inner.delete(&path)).await {
            Ok(()) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the records under `prefix` whose name `expired` says are
    /// done with; how many.
    pub async fn sweep_records(&self, prefix: &str, expired: impl Fn(&str) -> bool) -> u64 {
        let Ok(prefix) = record_path(prefix) else {
            return 0;
        };
        // Streamed, not collected: a week of uploads can be many records.
        let mut listed = self.inner.list(Some(&prefix));
        let mut deleted = 0;
        while let Ok(Some(meta)) = self
            .timed("list_records", listed.next().map(Option::transpose))
            .await
        {
            if meta.location.filename().is_some_and(&expired)
                && self
                    .timed("delete_record", self.inner.delete(&meta.location))
                    .await
                    .is_ok()
            {
                deleted += 1;
            }
        }
        deleted
    }
}

/// A record's place in the store: always under the reserved prefix, which
/// no request can read as media.
fn record_path(path: &str) -> Result<object_store::path::Path, StoreError> {
    if !path.starts_with(RECORDS_PREFIX) {
        return Err(StoreError::Unavailable(format!(
            "not a record path: {path}"
        )));
    }
    object_store::path::Path::parse(path).map_err(|e| StoreError::Unavailable(e.to_string()))
}
