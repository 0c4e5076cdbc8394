//! Caches, all bounded: originals' metadata (trusted for `revalidate_secs`,
//! then revalidated with a conditional request, and served stale for
//! `stale_if_error_secs` when the store fails),
//! original bytes and derivatives in memory (moka, weighed in bytes), and
//! derivatives on disk ([`disk::DiskCache`]).
//!
//! A fill runs once per key however many requests miss at the same time
//! (moka's entry API coalesces them), and it runs in its own task, so a
//! client that hangs up does not waste the work for the others.

pub mod disk;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use moka::future::Cache as Moka;
use moka::ops::compute::CompResult;

use crate::config::CacheConfig;
use crate::header_values::HeaderValues;
use crate::key::ObjectKey;
use crate::media_type::MediaType;
use crate::metrics;
use crate::store::{OriginalMeta, StoreError};

/// Per-entry bookkeeping counted on top of the body bytes.
const ENTRY_OVERHEAD: usize = 256;
/// Metadata entries kept (each a few hundred bytes).
const META_ENTRIES: u64 = 100_000;
/// Keys remembered as missing (each the key and a few words).
const MISSING_ENTRIES: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Stale,
}

impl CacheStatus {
    /// A hit served while the original's metadata could not be confirmed
    /// (the store is failing) is stale.
    pub fn or_stale(self, meta: CacheStatus) -> CacheStatus {
        match (self, meta) {
            (CacheStatus::Hit, CacheStatus::Stale) => CacheStatus::Stale,
            (s, _) => s,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
        }
    }
}

/// A derivative's identity: which original (by key *and* ETag, so an
/// overwritten original never matches its old variants) and which variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DerivativeKey {
    pub object: ObjectKey,
    pub etag: Arc<str>,
    pub variant: Arc<str>,
}

impl DerivativeKey {
    /// One string that names the entry, stored in disk entries to detect
    /// hash collisions and to purge by object key after a restart.
    pub fn id(&self) -> String {
        format!("{}\n{}\n{}", self.object, self.etag, self.variant)
    }
}

/// An encoded derivative, ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derivative {
    pub body: Bytes,
    pub media: MediaType,
    /// Strong, quoted, from the body's hash.
    pub etag: Arc<str>,
    pub last_modified: SystemTime,
    pub width: u32,
    pub height: u32,
    pub headers: HeaderValues,
}

impl Derivative {
    pub fn new(
        body: Bytes,
        media: MediaType,
        last_modified: SystemTime,
        width: u32,
        height: u32,
    ) -> Self {
        let hash = blake3::hash(&body).to_hex();
        let etag = format!("\"{}\"", &hash[..32]);
        Self {
            headers: HeaderValues::new(&etag, last_modified),
            etag: etag.into(),
            body,
            media,
            last_modified,
            width,
            height,
        }
    }
}

/// Which cached entries a purge removes.
#[derive(Debug, Clone)]
pub enum Purge {
    Key(ObjectKey),
    Prefix(String),
}

impl Purge {
    fn matches(&self, object: &str) -> bool {
        match self {
            Purge::Key(k) => k.as_str() == object,
            Purge::Prefix(p) => object.starts_with(p.as_str()),
        }
    }
}

/// How many entries a purge removed, per tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub memory: u64,
    pub disk: u64,
}

#[derive(Clone)]
pub struct Cache {
    meta: Moka<ObjectKey, MetaEntry>,
    originals: Moka<(ObjectKey, Arc<str>), Bytes>,
    derivatives: Moka<DerivativeKey, Derivative>,
    /// Recently used slices of large originals (`crate::slices`), apart
    /// from the derivatives so a long video cannot flush them.
    slices: Moka<DerivativeKey, Derivative>,
    disk: Option<disk::DiskCache>,
    /// Keys the store recently said do not exist (`cache.negative_secs`):
    /// anonymous clients choose keys, and on S3 every 404 is a billed
    /// request. Purged with the key, so an upload is seen at once.
    missing: Option<Moka<ObjectKey, ()>>,
    revalidate: Duration,
    stale_if_error: Duration,
}

/// An original's metadata and when the store last confirmed it.
#[derive(Clone)]
struct MetaEntry {
    meta: Arc<OriginalMeta>,
    checked: Instant,
}

impl MetaEntry {
    fn new(meta: Arc<OriginalMeta>) -> Self {
        Self {
            meta,
            checked: Instant::now(),
        }
    }
}

impl Cache {
    /// A quarter of `memory_mb` holds originals, an eighth slices, the rest derivatives.
    pub fn new(cfg: &CacheConfig, disk: Option<disk::DiskCache>) -> Self {
        let originals_bytes = cfg.memory_bytes / 4;
        let slices_bytes = cfg.memory_bytes / 8;
        let weigh = |len: usize| u32::try_from(len + ENTRY_OVERHEAD).unwrap_or(u32::MAX);
        Self {
            meta: Moka::builder()
                .max_capacity(META_ENTRIES)
                // Past this an entry is of no use, not even as stale.
                .time_to_live((cfg.revalidate + cfg.stale_if_error).max(Duration::from_millis(1)))
                .build(),
            originals: Moka::builder()
                .max_capacity(originals_bytes)
                .weigher(move |k: &(ObjectKey, Arc<str>), v: &Bytes| {
                    weigh(v.len() + k.0.as_str().len())
                })
                .build(),
            derivatives: Moka::builder()
                .max_capacity(cfg.memory_bytes - originals_bytes - slices_bytes)
                .weigher(move |k: &DerivativeKey, v: &Derivative| {
                    weigh(v.body.len() + k.object.as_str().len() + k.variant.len())
                })
                .build(),
            slices: Moka::builder()
                .max_capacity(slices_bytes)
                .weigher(move |k: &DerivativeKey, v: &Derivative| {
                    weigh(v.body.len() + k.object.as_str().len() + k.variant.len())
                })
                .build(),
            disk,
            missing: (!cfg.negative.is_zero()).then(|| {
                Moka::builder()
                    .max_capacity(MISSING_ENTRIES)
                    .time_to_live(cfg.negative)
                    .build()
            }),
            revalidate: cfg.revalidate,
            stale_if_error: cfg.stale_if_error,
        }
    }

    pub fn disk(&self) -> Option<&disk::DiskCache> {
        self.disk.as_ref()
    }

    /// Publishes each tier's size to the metrics (called at scrape time).
    pub async fn record_sizes(&self) {
        self.originals.run_pending_tasks().await;
        self.derivatives.run_pending_tasks().await;
        metrics::cache_size(
            "memory_originals",
            self.originals.weighted_size(),
            self.originals.entry_count(),
        );
        metrics::cache_size(
            "memory_derivatives",
            self.derivatives.weighted_size(),
            self.derivatives.entry_count(),
        );
        self.slices.run_pending_tasks().await;
        metrics::cache_size(
            "memory_slices",
            self.slices.weighted_size(),
            self.slices.entry_count(),
        );
        if let Some(disk) = &self.disk {
            metrics::cache_size("disk", disk.bytes(), disk.entries());
        }
    }

    /// Metadata of an original, fetched by `fill` at most once per key at a
    /// time; the status says whether it came from the cache.
    /// An original's metadata: from memory while younger than
    /// `revalidate_secs`; then `revalidate(old)` asks the store whether it
    /// changed (`Ok(None)`: no, the entry is trusted again); on a miss `fill`
    /// reads it. When the store fails, an entry younger than
    /// `revalidate_secs + stale_if_error_secs` is served as `Stale`.
    /// Fills and revalidations of one key run one at a time (moka's per-key
    /// compute lock): concurrent requests wait for the one store call.
    pub async fn meta<F, R, RF>(
        &self,
        key: &ObjectKey,
        fill: F,
        revalidate: R,
    ) -> Result<(Arc<OriginalMeta>, CacheStatus), StoreError>
    where
        F: Future<Output = Result<OriginalMeta, StoreError>>,
        R: FnOnce(Arc<OriginalMeta>) -> RF,
        RF: Future<Output = Result<Option<OriginalMeta>, StoreError>>,
    {
        if let Some(e) = self.meta.get(key).await
            && e.checked.elapsed() < self.revalidate
        {
            return Ok((e.meta, CacheStatus::Hit));
        }
        if let Some(missing) = &self.missing
            && missing.contains_key(key)
        {
            metrics::cache_hit("memory", "missing");
            return Err(StoreError::NotFound);
        }
        // Boxed: moka's compute future is large, and moving it inline would
        // make every hit's future (which axum boxes) that large too.
        let result = Box::pin(self.meta_from_store(key, fill, revalidate)).await;
        if let (Err(StoreError::NotFound), Some(missing)) = (&result, &self.missing) {
            missing.insert(key.clone(), ()).await;
        }
        result
    }

    async fn meta_from_store<F, R, RF>(
        &self,
        key: &ObjectKey,
        fill: F,
        revalidate: R,
    ) -> Result<(Arc<OriginalMeta>, CacheStatus), StoreError>
    where
        F: Future<Output = Result<OriginalMeta, StoreError>>,
        R: FnOnce(Arc<OriginalMeta>) -> RF,
        RF: Future<Output = Result<Option<OriginalMeta>, StoreError>>,
    {
        let (fresh_for, usable_for) = (self.revalidate, self.revalidate + self.stale_if_error);
        let mut status = CacheStatus::Miss;
        let mut gone = None;
        let result = self
            .meta
            .entry(key.clone())
            .and_try_compute_with(|existing| {
                let (status, gone) = (&mut status, &mut gone);
                async move {
                    use moka::ops::compute::Op;
                    let Some(existing) = existing.map(|e| e.into_value()) else {
                        *status = CacheStatus::Miss;
                        return fill.await.map(|m| Op::Put(MetaEntry::new(Arc::new(m))));
                    };
                    if existing.checked.elapsed() < fresh_for {
                        // Another request revalidated it while we waited.
                        *status = CacheStatus::Hit;
                        return Ok(Op::Nop);
                    }
                    match revalidate(existing.meta.clone()).await {
                        Ok(None) => {
                            *status = CacheStatus::Hit;
                            Ok(Op::Put(MetaEntry::new(existing.meta)))
                        }
                        Ok(Some(changed)) => {
                            *status = CacheStatus::Miss;
                            Ok(Op::Put(MetaEntry::new(Arc::new(changed))))
                        }
                        Err(e @ StoreError::NotFound) => {
                            *gone = Some(e);
                            Ok(Op::Remove)
                        }
                        Err(StoreError::Unavailable(_) | StoreError::Timeout)
                            if existing.checked.elapsed() < usable_for =>
                        {
                            *status = CacheStatus::Stale;
                            Ok(Op::Nop)
                        }
                        Err(e) => Err(e),
                    }
                }
            })
            .await;
        if let Some(e) = gone {
            return Err(e);
        }
        let entry = match result {
            Ok(
                CompResult::Inserted(e) | CompResult::ReplacedWith(e) | CompResult::Unchanged(e),
            ) => e,
            Ok(CompResult::Removed(_) | CompResult::StillNone(_)) => {
                return Err(StoreError::NotFound);
            }
            Err(e) => return Err(e),
        };
        if status == CacheStatus::Stale {
            metrics::stale_served();
        }
        Ok((entry.into_value().meta, status))
    }

    /// Original bytes by key and ETag; `fill` reads the store once per miss.
    pub async fn original<F, E>(
        &self,
        key: &ObjectKey,
        etag: &str,
        fill: F,
    ) -> Result<(Bytes, CacheStatus), E>
    where
        F: Future<Output = Result<Bytes, E>> + Send + 'static,
        E: FillError,
    {
        let ck = (key.clone(), Arc::<str>::from(etag));
        if let Some(b) = self.originals.get(&ck).await {
            metrics::cache_hit("memory", "original");
            return Ok((b, CacheStatus::Hit));
        }
        let entry = Box::pin(self.originals.entry(ck).or_try_insert_with(spawned(fill)))
            .await
            .map_err(|e: Arc<E>| (*e).clone())?;
        let status = if entry.is_fresh() {
            CacheStatus::Miss
        } else {
            CacheStatus::Hit
        };
        match status {
            CacheStatus::Miss => metrics::cache_miss("original"),
            _ => metrics::cache_hit("memory", "original"),
        }
        Ok((entry.into_value(), status))
    }

    /// A derivative from memory, else from one coalesced `fill` that may
    /// find it on disk (reported as a hit) or make it (a miss). `fill` is
    /// only called on a miss, so a hit pays for none of its captures.
    pub async fn derivative<F, E>(
        &self,
        key: &DerivativeKey,
        fill: impl FnOnce() -> F,
    ) -> Result<(Derivative, CacheStatus), E>
    where
        F: Future<Output = Result<(Derivative, CacheStatus), E>> + Send + 'static,
        E: FillError,
    {
        self.coalesced(&self.derivatives, "derivative", key, fill)
            .await
    }

    /// Puts `better` in the place of the derivative `key` held in memory, if
    /// that still is the one with `etag` (not purged, replaced or evicted
    /// since); whether it did.
    pub async fn replace_derivative(
        &self,
        key: &DerivativeKey,
        etag: &str,
        better: Derivative,
    ) -> bool {
        match self.derivatives.get(key).await {
            Some(d) if &*d.etag == etag => {
                self.derivatives.insert(key.clone(), better).await;
                true
            }
            _ => false,
        }
    }

    /// A slice of a large original (`crate::slices`): its own memory tier,
    /// the derivatives' disk tier, purged with its object.
    pub async fn slice<F, E>(
        &self,
        key: &DerivativeKey,
        fill: impl FnOnce() -> F,
    ) -> Result<(Derivative, CacheStatus), E>
    where
        F: Future<Output = Result<(Derivative, CacheStatus), E>> + Send + 'static,
        E: FillError,
    {
        self.coalesced(&self.slices, "slice", key, fill).await
    }

    async fn coalesced<F, E>(
        &self,
        tier: &Moka<DerivativeKey, Derivative>,
        kind: &'static str,
        key: &DerivativeKey,
        fill: impl FnOnce() -> F,
    ) -> Result<(Derivative, CacheStatus), E>
    where
        F: Future<Output = Result<(Derivative, CacheStatus), E>> + Send + 'static,
        E: FillError,
    {
        if let Some(d) = tier.get(key).await {
            metrics::cache_hit("memory", kind);
            return Ok((d, CacheStatus::Hit));
        }
        let filled_as = Arc::new(Mutex::new(CacheStatus::Hit));
        let record = filled_as.clone();
        let fill = fill();
        let entry = Box::pin(
            tier.entry(key.clone())
                .or_try_insert_with(spawned(async move {
                    let (d, status) = fill.await?;
                    if let Ok(mut s) = record.lock() {
                        *s = status;
                    }
                    Ok(d)
                })),
        )
        .await
        .map_err(|e: Arc<E>| (*e).clone())?;
        let status = if entry.is_fresh() {
            filled_as.lock().map(|s| *s).unwrap_or(CacheStatus::Miss)
        } else {
            metrics::cache_hit("memory", kind);
            CacheStatus::Hit
        };
        Ok((entry.into_value(), status))
    }

    /// Drops metadata, original bytes and derivatives of matching keys from
    /// memory and disk.
    /// Drops every original's metadata (and the missing keys), so each is
    /// revalidated at its next request: what a node does when it cannot
    /// know what changed (`journal.rs`). Derivatives are keyed by the
    /// original's tag and stay.
    pub async fn forget_all_metadata(&self) {
        self.meta.invalidate_all();
        if let Some(missing) = &self.missing {
            missing.invalidate_all();
        }
    }

    pub async fn purge(&self, which: &Purge) -> PurgeCounts {
        let mut counts = PurgeCounts::default();
        for (k, _) in self.meta.iter() {
            if which.matches(k.as_str()) {
                self.meta.invalidate(&*k).await;
            }
        }
        if let Some(missing) = &self.missing {
            for (k, _) in missing.iter() {
                if which.matches(k.as_str()) {
                    missing.invalidate(&*k).await;
                }
            }
        }
        for (k, _) in self.originals.iter() {
            if which.matches(k.0.as_str()) {
                self.originals.invalidate(&*k).await;
                counts.memory += 1;
            }
        }
        for tier in [&self.derivatives, &self.slices] {
            for (k, _) in tier.iter() {
                if which.matches(k.object.as_str()) {
                    tier.invalidate(&*k).await;
                    counts.memory += 1;
                }
            }
        }
        if let Some(disk) = &self.disk {
            counts.disk = disk.purge(|object| which.matches(object));
        }
        counts
    }
}

/// Runs a fill in its own task so it completes even if the request that
/// started it is dropped; the coalesced waiters still get the value.
async fn spawned<T: Send + 'static, E: FillError>(
    fill: impl Future<Output = Result<T, E>> + Send + 'static,
) -> Result<T, E> {
    // The fill's log lines carry the request id of the request that started it.
    tokio::spawn(tracing::Instrument::in_current_span(fill))
        .await
        .unwrap_or_else(|e| Err(E::from(FillFailed(e.to_string()))))
}

/// A fill's task ended without an answer (it panicked or was cancelled at
/// shutdown): the waiters get this instead of a value.
#[derive(Debug)]
pub struct FillFailed(pub String);

/// The error a coalesced fill may end in: shared by every waiter (so
/// `Clone`), and able to say that the fill itself failed.
pub trait FillError: Clone + Send + Sync + From<FillFailed> + 'static {}

impl<E: Clone + Send + Sync + From<FillFailed> + 'static> FillError for E {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What the pipeline's error is to the cache: cloneable, and able to
    /// say the fill failed.
    #[derive(Debug, Clone)]
    enum TestError {
        Refused,
        Fill,
    }

    impl From<FillFailed> for TestError {
        fn from(_: FillFailed) -> Self {
            TestError::Fill
        }
    }

    fn cfg() -> CacheConfig {
        CacheConfig {
            memory_bytes: 1 << 20,
            shared: false,
            disk: None,
            revalidate: Duration::from_secs(60),
            stale_if_error: Duration::from_secs(0),
            negative: Duration::from_secs(5),
            slice_bytes: 1 << 20,
            journal_poll: Duration::ZERO,
        }
    }

    fn dkey(object: &str, variant: &str) -> DerivativeKey {
        DerivativeKey {
            object: ObjectKey::parse(object).unwrap(),
            etag: "\"e\"".into(),
            variant: variant.into(),
        }
    }

    fn deriv() -> Derivative {
        Derivative::new(
            Bytes::from_static(b"img"),
            MediaType::Webp,
            SystemTime::UNIX_EPOCH,
            1,
            1,
        )
    }

    #[tokio::test]
    async fn concurrent_misses_fill_once() {
        let cache = Cache::new(&cfg(), None);
        let fills = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, fills) = (cache.clone(), fills.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .derivative(&dkey("a.jpg", "w=1"), || async move {
                        fills.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, TestError>((deriv(), CacheStatus::Miss))
                    })
                    .await
                    .unwrap()
                    .1
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        assert_eq!(fills.load(Ordering::SeqCst), 1);
        assert_eq!(
            statuses.iter().filter(|s| **s == CacheStatus::Miss).count(),
            1
        );
    }

    #[tokio::test]
    async fn purge_by_key_and_prefix() {
        let cache = Cache::new(&cfg(), None);
        for (o, v) in [
            ("a/1.jpg", "w=1"),
            ("a/1.jpg", "w=2"),
            ("a/2.jpg", "w=1"),
            ("b/1.jpg", "w=1"),
        ] {
            cache
                .derivative(&dkey(o, v), || async {
                    Ok::<_, TestError>((deriv(), CacheStatus::Miss))
                })
                .await
                .unwrap();
        }
        let n = cache
            .purge(&Purge::Key(ObjectKey::parse("a/1.jpg").unwrap()))
            .await;
        assert_eq!(n.memory, 2);
        let n = cache.purge(&Purge::Prefix("a/".into())).await;
        assert_eq!(n.memory, 1);
        let (_, s) = cache
            .derivative(&dkey("a/1.jpg", "w=1"), || async {
                Ok::<_, TestError>((deriv(), CacheStatus::Miss))
            })
            .await
            .unwrap();
        assert_eq!(s, CacheStatus::Miss);
        let (_, s) = cache
            .derivative(&dkey("b/1.jpg", "w=1"), || async {
                Ok::<_, TestError>((deriv(), CacheStatus::Miss))
            })
            .await
            .unwrap();
        assert_eq!(s, CacheStatus::Hit);
    }

    /// Issue 14, item 14: a 404 is remembered for `negative_secs`, so a
    /// client repeating a missing key costs one store request, not one each;
    /// a purge of the key (an upload does one) forgets it at once.
    #[tokio::test]
    async fn missing_keys_are_remembered_until_purged() {
        let cache = Cache::new(&cfg(), None);
        let key = ObjectKey::parse("nope.jpg").unwrap();
        let asked = Arc::new(AtomicUsize::new(0));
        let lookup = || {
            let asked = asked.clone();
            cache.meta(
                &key,
                async move {
                    asked.fetch_add(1, Ordering::SeqCst);
                    Err(StoreError::NotFound)
                },
                |_| async { Ok(None) },
            )
        };
        for _ in 0..5 {
            assert!(matches!(lookup().await, Err(StoreError::NotFound)));
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        cache.purge(&Purge::Key(key.clone())).await;
        assert!(lookup().await.is_err());
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        // Off with negative_secs = 0.
        let off = Cache::new(
            &CacheConfig {
                negative: Duration::ZERO,
                ..cfg()
            },
            None,
        );
        for _ in 0..3 {
            let asked = asked.clone();
            let r = off
                .meta(
                    &key,
                    async move {
                        asked.fetch_add(1, Ordering::SeqCst);
                        Err(StoreError::NotFound)
                    },
                    |_| async { Ok(None) },
                )
                .await;
            assert!(r.is_err());
        }
        assert_eq!(asked.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let cache = Cache::new(&cfg(), None);
        let r = cache
            .derivative(&dkey("x", "v"), || async { Err(TestError::Refused) })
            .await;
        assert!(r.is_err());
        let (_, s) = cache
            .derivative(&dkey("x", "v"), || async {
                Ok::<_, TestError>((deriv(), CacheStatus::Miss))
            })
            .await
            .unwrap();
        assert_eq!(s, CacheStatus::Miss);
    }

    #[tokio::test]
    async fn memory_is_bounded_in_bytes() {
        let cache = Cache::new(&cfg(), None); // 1 MiB: 768 KiB for derivatives
        for i in 0..100 {
            let body = Bytes::from(vec![i as u8; 50_000]);
            let d = Derivative::new(body, MediaType::Webp, SystemTime::UNIX_EPOCH, 1, 1);
            cache
                .derivative(&dkey(&format!("k{i}"), "w=1"), || async move {
                    Ok::<_, TestError>((d, CacheStatus::Miss))
                })
                .await
                .unwrap();
        }
        cache.derivatives.run_pending_tasks().await;
        let held = cache.derivatives.weighted_size();
        assert!(held <= 768 * 1024, "{held} bytes held");
        assert!(held >= 400 * 1024, "the cache is used: {held}");
    }

    #[test]
    fn derivative_etag_is_a_content_hash() {
        let a = Derivative::new(
            Bytes::from_static(b"a"),
            MediaType::Jpeg,
            SystemTime::UNIX_EPOCH,
            1,
            1,
        );
        let b = Derivative::new(
            Bytes::from_static(b"b"),
            MediaType::Jpeg,
            SystemTime::UNIX_EPOCH,
            1,
            1,
        );
        assert_ne!(a.etag, b.etag);
        assert!(a.etag.starts_with('"') && a.etag.ends_with('"') && a.etag.len() == 34);
    }
}
