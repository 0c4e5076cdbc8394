//! Below HTTP, above the parts: how an original or a derivative is found.
//!
//! Derivative: memory cache → (one coalesced fill per key:) disk cache →
//! original bytes (memory cache, else one store read) → transform on the
//! bounded pool → memory, and disk in the background. The media information
//! (`fmt=json`) is a derivative like any other: a small decode on the pool
//! instead of a transform, cached and coalesced the same way.
//! Original: small ones through the original-bytes cache, large ones (video)
//! from cached slices (`crate::slices`), never held whole.

use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::cache::{Cache, CacheStatus, Derivative, DerivativeKey, FillFailed, Purge, PurgeCounts};
use crate::client::MissRate;
use crate::config::TransformConfig;
use crate::journal::Journal;
use crate::key::ObjectKey;
use crate::media_info::MediaInfo;
use crate::media_type::MediaType;
use crate::metrics;
use crate::reencode::{Candidate, Derivatives, Reencoder};
use crate::slices::{Parts, SliceError, Slices};
use crate::store::{OriginalMeta, Store, StoreError};
use crate::transform::{self, TransformError, TransformSpec, Transformer};
use crate::variant::{Ask, InfoAt, VariantError};

/// Originals up to this size are read whole and kept in memory when served
/// as they are; larger ones always stream from the store.
const CACHEABLE_ORIGINAL: u64 = 8 << 20;

/// Why an original or a derivative could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Transform(#[from] TransformError),
    /// Transform parameters on something that is neither image nor video.
    #[error("transform parameters are only supported on images and videos")]
    NotAnImage,
    /// A parameter that only a video reads (`t` with `fmt=json`) is bad.
    #[error("{0}")]
    Variant(#[from] VariantError),
}

impl From<SliceError> for FetchError {
    fn from(e: SliceError) -> Self {
        match e {
            SliceError::Store(e) => FetchError::Store(e),
            SliceError::Failed(why) => FillFailed(why).into(),
        }
    }
}

/// A fill task that ended without an answer is an internal transform failure.
impl From<FillFailed> for FetchError {
    fn from(f: FillFailed) -> Self {
        FetchError::Transform(TransformError::Internal(format!(
            "fill task failed: {}",
            f.0
        )))
    }
}

pub enum OriginalBody {
    Bytes(Bytes),
    Stream(BoxStream<'static, std::io::Result<Bytes>>),
}

#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    cache: Cache,
    transformer: Transformer,
    cfg: TransformConfig,
    /// `cache.shared`: derivatives are read from and written to the store too.
    shared: bool,
    /// `transform.miss_rate_per_ip`, if set.
    miss_rate: Option<MissRate>,
    /// Large originals, in cached slices.
    slices: Slices,
    /// Misses' derivatives, made again with more effort when idle.
    reencoder: std::sync::OnceLock<Reencoder>,
    /// Deletes, purges and uploads told to the other nodes.
    journal: std::sync::OnceLock<Arc<Journal>>,
    /// The last readiness probe: when, and whether the store answered.
    /// One probe at a time; the answer is reused for [`READY_FOR`].
    ready: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

/// How long a readiness answer is reused (load balancers probe often).
const READY_FOR: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a readiness probe waits for the store.
const READY_PROBE: std::time::Duration = std::time::Duration::from_secs(2);

impl Pipeline {
    pub fn new(
        store: Store,
        cache: Cache,
        transformer: Transformer,
        cfg: TransformConfig,
        shared: bool,
        slice_bytes: u64,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                miss_rate: MissRate::new(cfg.miss_rate_per_ip, cfg.miss_burst_per_ip),
                slices: Slices::new(cache.clone(), store.clone(), slice_bytes),
                store,
                cache,
                transformer,
                cfg,
                shared,
                reencoder: std::sync::OnceLock::new(),
                journal: std::sync::OnceLock::new(),
                ready: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Starts the background re-encode of misses' derivatives
    /// (`transform.reencode_queue`; `reencode.rs`).
    pub fn start_reencoder(&self) {
        let r = Reencoder::start(
            self.inner.cfg.reencode_queue,
            self.inner.transformer.clone(),
            self.clone(),
        );
        let _ = self.inner.reencoder.set(r);
    }

    /// Starts reading the other nodes' changes every `interval` and telling
    /// them this node's (`journal.rs`); zero: neither.
    pub fn start_journal(&self, interval: std::time::Duration) {
        if let Some(j) = Journal::new(self.inner.store.clone(), interval) {
            j.start(self.inner.cache.clone());
            let _ = self.inner.journal.set(j);
        }
    }

    /// Whether the store answers (`/_/ready`): probed at most once a
    /// second, within two seconds; concurrent asks share one probe.
    pub async fn ready(&self) -> bool {
        let mut last = self.inner.ready.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < READY_FOR
        {
            return ok;
        }
        let ok = self.inner.store.answers(READY_PROBE).await;
        *last = Some((std::time::Instant::now(), ok));
        ok
    }

    /// Brings the cache-size gauges up to date (for `/_/metrics`).
    pub async fn record_cache_sizes(&self) {
        self.inner.cache.record_sizes().await;
    }

    /// The original's metadata, from cache while it is trusted, else the store.
    pub async fn meta(
        &self,
        key: &ObjectKey,
    ) -> Result<(Arc<OriginalMeta>, CacheStatus), StoreError> {
        let store = &self.inner.store;
        self.inner
            .cache
            .meta(key, store.head(key), |old| async move {
                store.revalidate(key, &old).await
            })
            .await
    }

    pub async fn forget(&self, key: &ObjectKey) {
        self.inner.cache.purge(&Purge::Key(key.clone())).await;
    }

    /// Drops what is cached of `which` here, and tells the other nodes to.
    pub async fn purge(&self, which: &[Purge]) -> PurgeCounts {
        let mut total = PurgeCounts::default();
        for w in which {
            let c = self.inner.cache.purge(w).await;
            total.memory += c.memory;
            total.disk += c.disk;
        }
        if let Some(j) = self.inner.journal.get() {
            j.record(which).await;
        }
        total
    }

    /// The original's bytes (or `range` of them).
    pub async fn original(
        &self,
        key: &ObjectKey,
        meta: &Arc<OriginalMeta>,
        range: Option<Range<u64>>,
    ) -> Result<(OriginalBody, CacheStatus), FetchError> {
        if meta.size > CACHEABLE_ORIGINAL {
            let range = range.unwrap_or(0..meta.size);
            let (parts, status) = self.inner.slices.read(key, meta, range).await?;
            let body = match parts {
                Parts::One(bytes) => OriginalBody::Bytes(bytes),
                Parts::Many(stream) => OriginalBody::Stream(stream),
            };
            return Ok((body, status));
        }
        let (bytes, status) = self.original_bytes(key, meta).await?;
        let body = match range {
            None => bytes,
            Some(r) if r.end <= bytes.len() as u64 => bytes.slice(r.start as usize..r.end as usize),
            Some(_) => return Err(StoreError::Changed.into()),
        };
        Ok((OriginalBody::Bytes(body), status))
    }

    /// What `ask` asks of `key` — a derivative image or the media
    /// information — made at most once however many ask. A decode it needs
    /// is charged to `client` (its address; `None` for the server's own
    /// work, such as presets).
    pub async fn derivative(
        &self,
        key: &ObjectKey,
        meta: &Arc<OriginalMeta>,
        ask: &Ask,
        client: Option<IpAddr>,
    ) -> Result<(Derivative, CacheStatus), FetchError> {
        let ask = &ask.for_video(meta.media.is_video())?;
        if let Ask::Image(_) = ask {
            if !meta.media.is_image() && !meta.media.is_video() {
                return Err(FetchError::NotAnImage);
            }
            if !meta.media.is_transformable() {
                return Err(TransformError::Unsupported(format!(
                    "cannot transform {}",
                    meta.media.mime()
                ))
                .into());
            }
        }
        let dkey = self.key_of(key, meta, ask);
        let fill = || {
            let (this, k, m, a) = (self.clone(), dkey.clone(), meta.clone(), ask.clone());
            async move { this.make_derivative(k, m, a, client).await }
        };
        self.inner.cache.derivative(&dkey, fill).await
    }

    /// Keeps the media information an upload's check computed, so the first
    /// `fmt=json` of the new object is a cache hit.
    pub async fn remember_info(&self, key: &ObjectKey, meta: &Arc<OriginalMeta>, info: &MediaInfo) {
        let d = info_derivative(info, meta);
        let dkey = self.key_of(key, meta, &Ask::Info(InfoAt::default()));
        if let Some(disk) = self.inner.cache.disk() {
            disk.put(&dkey, &d);
        }
        let fill = || async move { Ok::<_, FetchError>((d, CacheStatus::Miss)) };
        let _ = self.inner.cache.derivative(&dkey, fill).await;
    }

    fn key_of(&self, key: &ObjectKey, meta: &OriginalMeta, ask: &Ask) -> DerivativeKey {
        DerivativeKey {
            object: key.clone(),
            etag: meta.etag.as_str().into(),
            variant: ask.canonical().into(),
        }
    }

    async fn make_derivative(
        &self,
        dkey: DerivativeKey,
        meta: Arc<OriginalMeta>,
        ask: Ask,
        client: Option<IpAddr>,
    ) -> Result<(Derivative, CacheStatus), FetchError> {
        if matches!(ask, Ask::Info(_)) && !meta.media.is_transformable() {
            // Nothing to decode: what the store knows is the answer.
            let info = MediaInfo::new(&dkey.object, &meta, None);
            return Ok((info_derivative(&info, &meta), CacheStatus::Miss));
        }
        let disk = self.inner.cache.disk();
        if let Some(d) = match disk {
            Some(disk) => disk.get(&dkey).await,
            None => None,
        } {
            metrics::cache_hit("disk", "derivative");
            return Ok((d, CacheStatus::Hit));
        }
        if self.inner.shared
            && let Some(d) = self.shared_derivative(&dkey, &meta, &ask).await
        {
            if let Some(disk) = disk {
                disk.put(&dkey, &d);
            }
            return Ok((d, CacheStatus::Hit));
        }
        metrics::cache_miss("derivative");
        // One client may not take the pool from everyone else: a client over
        // its miss rate is refused (held back like a pool refusal, so a
        // client that ignores Retry-After gains nothing by asking at once).
        if let (Some(rate), Some(ip)) = (&self.inner.miss_rate, client)
            && let Err(wait) = rate.take(ip)
        {
            metrics::transform_finished("rate_limited", None);
            tokio::time::sleep(self.inner.cfg.refusal_delay).await;
            return Err(TransformError::RateLimited(wait.as_secs_f64().ceil() as u64).into());
        }
        // A place in the pool first: a refused transform never reads its source.
        let admission = self.inner.transformer.admit().await?;
        let (src, _) = self.original_bytes(&dkey.object, &meta).await?;
        let cfg = &self.inner.cfg;
        let media = meta.media;
        let d = match &ask {
            Ask::Image(variant) => {
                let spec = TransformSpec {
                    width: variant.width,
                    height: variant.height,
                    fit: variant.fit,
                    format: variant.format,
                    quality: variant.quality,
                    max_dimension: cfg.variants.max_dimension,
                    max_source_pixels: cfg.max_source_pixels,
                    at_ms: variant.at_ms,
                    gravity: variant.gravity,
                    anim: variant.anim,
                    max_frames: cfg.max_frames,
                };
                let reencode = self
                    .inner
                    .reencoder
                    .get()
                    .map(|r| (r.clone(), spec.clone()));
                let encoded = admission
                    .run(move |job| transform::process(&src, media, &spec, job))
                    .await?;
                let d = Derivative::new(
                    Bytes::from(encoded.bytes),
                    encoded.media,
                    meta.last_modified,
                    encoded.width,
                    encoded.height,
                );
                if let Some((r, spec)) = reencode {
                    r.offer(Candidate {
                        retried: false,
                        key: dkey.clone(),
                        meta: meta.clone(),
                        spec,
                        fast: d.clone(),
                    });
                }
                d
            }
            Ask::Info(at) => {
                let (max, at_ms) = (cfg.max_source_pixels, at.at_ms);
                let described = admission
                    .run(move |job| transform::describe(&src, media, max, job, false, at_ms))
                    .await?;
                info_derivative(&MediaInfo::new(&dkey.object, &meta, Some(described)), &meta)
            }
        };
        if let Some(disk) = disk {
            disk.put(&dkey, &d);
        }
        if self.inner.shared {
            let (store, body) = (self.inner.store.clone(), d.body.clone());
            tokio::spawn(tracing::Instrument::in_current_span(async move {
                store
                    .put_shared(&dkey.object, &dkey.etag, &dkey.variant, body)
                    .await;
            }));
        }
        Ok((d, CacheStatus::Miss))
    }

    /// The shared tier: a derivative another node made of this very original
    /// (same ETag) and variant, one store read instead of a transform.
    async fn shared_derivative(
        &self,
        dkey: &DerivativeKey,
        meta: &OriginalMeta,
        ask: &Ask,
    ) -> Option<Derivative> {
        let body = self
            .inner
            .store
            .get_shared(&dkey.object, &dkey.etag, &dkey.variant)
            .await?;
        let (media, width, height) = match ask {
            Ask::Image(_) => {
                let size = imagesize::blob_size(&body).ok()?;
                (
                    MediaType::sniff(&body),
                    size.width as u32,
                    size.height as u32,
                )
            }
            Ask::Info(_) => (MediaType::Json, 0, 0),
        };
        metrics::cache_hit("shared", "derivative");
        Some(Derivative::new(
            body,
            media,
            meta.last_modified,
            width,
            height,
        ))
    }

    /// Removes the original `key` from the store, with its shared derivatives
    /// and everything cached on this node. `(deleted, purged)`.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(bool, PurgeCounts), StoreError> {
        let deleted = self.inner.store.delete(key).await?;
        if self.inner.shared {
            self.inner.store.delete_shared(key).await;
        }
        Ok((deleted, self.purge(&[Purge::Key(key.clone())]).await))
    }

    /// Whole original in memory (cached), bounded by `max_source_bytes`.
    async fn original_bytes(
        &self,
        key: &ObjectKey,
        meta: &Arc<OriginalMeta>,
    ) -> Result<(Bytes, CacheStatus), FetchError> {
        let (store, k, m, max) = (
            self.inner.store.clone(),
            key.clone(),
            meta.clone(),
            self.inner.cfg.max_source_bytes,
        );
        self.inner
            .cache
            .original(key, &meta.etag, async move {
                store.read_all(&k, &m, max).await.map_err(FetchError::from)
            })
            .await
    }
}

impl Derivatives for Pipeline {
    async fn source(&self, key: &ObjectKey, meta: &Arc<OriginalMeta>) -> Option<Bytes> {
        self.original_bytes(key, meta).await.ok().map(|(b, _)| b)
    }

    async fn replace(&self, key: &DerivativeKey, fast_etag: &str, better: Derivative) -> bool {
        if !self
            .inner
            .cache
            .replace_derivative(key, fast_etag, better.clone())
            .await
        {
            return false;
        }
        if let Some(disk) = self.inner.cache.disk() {
            disk.put(key, &better);
        }
        if self.inner.shared {
            self.inner
                .store
                .put_shared(&key.object, &key.etag, &key.variant, better.body)
                .await;
        }
        true
    }
}

/// The media information as a cacheable answer.
fn info_derivative(info: &MediaInfo, meta: &OriginalMeta) -> Derivative {
    let size = info.image.as_ref().map_or((0, 0), |d| (d.width, d.height));
    Derivative::new(
        Bytes::from(info.to_json()),
        MediaType::Json,
        meta.last_modified,
        size.0,
        size.1,
    )
}
