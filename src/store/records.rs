//! Small records nodes share through the store (used single-use upload
//! URLs), under the reserved prefix: create-only writes are how several
//! nodes agree without anything but the store.

use bytes::Bytes;
use futures_util::{FutureExt as _, StreamExt as _};
use object_store::{GetOptions, ObjectStoreExt, PutMode};

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

    /// Writes (or overwrites) the record `path`.
    pub async fn put_record(&self, path: &str, body: Bytes) -> Result<(), StoreError> {
        let path = record_path(path)?;
        self.timed("put_record", self.inner.put(&path, body.into()))
            .await?;
        metrics::store_request("put_record", "ok");
        Ok(())
    }

    /// The record's body and the store's tag for it, or `None` while its
    /// tag is still `known`: a conditional `GET` (`If-None-Match`), which
    /// costs a 304 and no body when nothing changed. At most `max` bytes.
    pub async fn record_if_changed(
        &self,
        path: &str,
        known: Option<&str>,
        max: u64,
    ) -> Result<Option<(Bytes, Option<String>)>, StoreError> {
        let path = record_path(path)?;
        let options = GetOptions {
            if_none_match: known.map(str::to_owned),
            ..Default::default()
        };
        let got =
            match tokio::time::timeout(self.timeout, self.inner.get_opts(&path, options)).await {
                Err(_) => return Err(StoreError::Timeout),
                Ok(Err(object_store::Error::NotModified { .. })) => {
                    metrics::store_request("get_record", "not_modified");
                    return Ok(None);
                }
                Ok(Err(e)) => return Err(super::classify("get_record", e)),
                Ok(Ok(got)) => got,
            };
        if got.meta.size > max {
            return Err(StoreError::Unavailable(format!(
                "record {path} is {} bytes, more than {max}",
                got.meta.size
            )));
        }
        // Stores that ignore If-None-Match answer 200: the tag says no change.
        if known.is_some() && got.meta.e_tag.as_deref() == known {
            metrics::store_request("get_record", "unchanged");
            return Ok(None);
        }
        let tag = got.meta.e_tag.clone();
        let body = self.timed("get_record", got.bytes()).await?;
        metrics::store_request("get_record", "ok");
        Ok(Some((body, tag)))
    }

    /// The record `path`, at most `max` bytes.
    pub async fn read_record(&self, path: &str, max: u64) -> Result<Bytes, StoreError> {
        self.record_if_changed(path, None, max)
            .await?
            .map(|(body, _)| body)
            .ok_or(StoreError::NotFound)
    }

    /// The names (last segment) of the records under `prefix` that sort
    /// after `offset`, in name order, at most `max` of them.
    pub async fn records_after(
        &self,
        prefix: &str,
        offset: &str,
        max: usize,
    ) -> Result<Vec<String>, StoreError> {
        let (prefix, offset) = (record_path(prefix)?, record_path(offset)?);
        let mut listed = self.inner.list_with_offset(Some(&prefix), &offset);
        let mut names = Vec::new();
        while let Some(meta) = self
            .timed("list_records", listed.next().map(Option::transpose))
            .await?
        {
            if let Some(name) = meta.location.filename() {
                names.push(name.to_owned());
            }
            // Listing order is the store's (S3: by name; a directory: any);
            // past the bound, the newest are kept.
            if names.len() > max * 2 {
                names.sort_unstable();
                names.drain(..names.len() - max);
            }
        }
        names.sort_unstable();
        if names.len() > max {
            names.drain(..names.len() - max);
        }
        metrics::store_request("list_records", "ok");
        Ok(names)
    }

    /// Whether the store answers at all (readiness): a `HEAD` of a record
    /// no one writes — "not found" is an answer — within `within`; for a
    /// local directory, also that it is still there.
    pub async fn answers(&self, within: std::time::Duration) -> bool {
        if let super::Staging::Local { root } = &self.staging
            && !tokio::fs::metadata(root).await.is_ok_and(|m| m.is_dir())
        {
            return false;
        }
        let Ok(path) = record_path("_/ready") else {
            return false;
        };
        matches!(
            tokio::time::timeout(within, self.inner.head(&path)).await,
            Ok(Ok(_) | Err(object_store::Error::NotFound { .. }))
        )
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
