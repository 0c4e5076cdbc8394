//! Large originals (video) in aligned slices, as CloudFront and nginx's
//! `slice` module cache them: a byte range is served from the slices it
//! covers, each slice (`cache.slice_mb`, aligned on its size) filled once
//! by a ranged store read — one fill per slice however many requests want
//! it — and kept in the derivative tiers (memory, then disk: BLAKE3-checked,
//! within `cache.disk_mb`, purged with the object, kept across restarts).
//! Replaying or seeking a cached video makes no store read; when the store
//! fails, a stale original's cached slices are still served.
//!
//! A slice belongs to the original's ETag, so an overwritten object never
//! serves its old slices.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;

use crate::cache::{Cache, CacheStatus, Derivative, DerivativeKey, FillFailed};
use crate::key::ObjectKey;
use crate::metrics;
use crate::store::{OriginalMeta, Store, StoreError};

/// Why a slice could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SliceError {
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The fill's task ended without an answer.
    #[error("slice fill failed: {0}")]
    Failed(String),
}

impl From<FillFailed> for SliceError {
    fn from(f: FillFailed) -> Self {
        SliceError::Failed(f.0)
    }
}

/// A range's bytes: within one slice, or across several.
pub enum Parts {
    One(Bytes),
    Many(BoxStream<'static, std::io::Result<Bytes>>),
}

#[derive(Clone)]
pub struct Slices {
    cache: Cache,
    store: Store,
    /// Bytes per slice.
    size: u64,
}

/// The slices `range` covers, and where it starts in the first one.
fn covering(range: &Range<u64>, size: u64) -> Range<u64> {
    range.start / size..range.end.div_ceil(size)
}

impl Slices {
    pub fn new(cache: Cache, store: Store, size: u64) -> Self {
        Self {
            cache,
            store,
            size: size.max(1),
        }
    }

    /// `range` of the original (non-empty, within its size): one slice's
    /// part as it is (a player's seek usually asks for less than a slice),
    /// or a stream of slice parts. The first slice is had before this
    /// returns (so a store failure is an error status, not a cut body); the
    /// status is that slice's (HIT when it was cached).
    pub async fn read(
        &self,
        key: &ObjectKey,
        meta: &Arc<OriginalMeta>,
        range: Range<u64>,
    ) -> Result<(Parts, CacheStatus), SliceError> {
        let slices = covering(&range, self.size);
        let first = self.part(key, meta, slices.start, &range).await?;
        let status = first.1;
        if slices.end - slices.start == 1 {
            return Ok((Parts::One(first.0), status));
        }
        let (this, key, meta) = (self.clone(), key.clone(), meta.clone());
        let rest = futures_util::stream::unfold(slices.start + 1, move |i| {
            let (this, key, meta, range) = (this.clone(), key.clone(), meta.clone(), range.clone());
            async move {
                if i >= slices.end {
                    return None;
                }
                let part = this
                    .part(&key, &meta, i, &range)
                    .await
                    .map(|(b, _)| b)
                    .map_err(std::io::Error::other);
                Some((part, i + 1))
            }
        });
        let stream = futures_util::stream::once(async move { Ok(first.0) }).chain(rest);
        Ok((Parts::Many(stream.boxed()), status))
    }

    /// The part of slice `i` inside `range`.
    async fn part(
        &self,
        key: &ObjectKey,
        meta: &Arc<OriginalMeta>,
        i: u64,
        range: &Range<u64>,
    ) -> Result<(Bytes, CacheStatus), SliceError> {
        let (slice, status) = self.slice(key, meta, i).await?;
        let at = i * self.size;
        let from = range.start.saturating_sub(at) as usize;
        let to = ((range.end - at) as usize).min(slice.len());
        let part = slice.slice(from.min(to)..to);
        if status != CacheStatus::Miss {
            metrics::store_bytes_avoided(part.len() as u64);
        }
        Ok((part, status))
    }

    /// Slice `i` whole: memory, else one coalesced fill (disk, else a
    /// ranged store read, then written to disk).
    async fn slice(
        &self,
        key: &ObjectKey,
        meta: &Arc<OriginalMeta>,
        i: u64,
    ) -> Result<(Bytes, CacheStatus), SliceError> {
        let dkey = DerivativeKey {
            object: key.clone(),
            etag: meta.etag.as_str().into(),
            variant: format!("slice={}:{i}", self.size).into(),
        };
        let fill = || {
            let (this, dkey, meta) = (self.clone(), dkey.clone(), meta.clone());
            async move { this.fill(dkey, meta, i).await }
        };
        let (d, status) = self.cache.slice(&dkey, fill).await?;
        Ok((d.body, status))
    }

    async fn fill(
        &self,
        dkey: DerivativeKey,
        meta: Arc<OriginalMeta>,
        i: u64,
    ) -> Result<(Derivative, CacheStatus), SliceError> {
        let disk = self.cache.disk();
        if let Some(disk) = disk
            && let Some(d) = disk.get(&dkey).await
        {
            metrics::cache_hit("disk", "slice");
            return Ok((d, CacheStatus::Hit));
        }
        metrics::cache_miss("slice");
        let start = i * self.size;
        let end = (start + self.size).min(meta.size);
        let body = self
            .store
            .read_range(&dkey.object, &meta, start..end)
            .await?;
        if body.len() as u64 != end - start {
            return Err(StoreError::Changed.into());
        }
        let d = Derivative::new(body, meta.media, meta.last_modified, 0, 0);
        if let Some(disk) = disk {
            disk.put(&dkey, &d);
        }
        Ok((d, CacheStatus::Miss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_aligned_slices() {
        assert_eq!(covering(&(0..1), 10), 0..1);
        assert_eq!(covering(&(0..10), 10), 0..1);
        assert_eq!(covering(&(9..11), 10), 0..2);
        assert_eq!(covering(&(10..30), 10), 1..3);
        assert_eq!(covering(&(25..26), 10), 2..3);
    }
}
