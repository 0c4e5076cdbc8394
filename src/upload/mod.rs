//! Presigned uploads: the backend asks for a URL (`presign`), the client
//! `PUT`s the bytes to it (`receive`).
//!
//! A body is streamed into a staged file (never held in memory), refused as
//! soon as it crosses its byte limit or sniffs as something we do not
//! accept, then — for images — decoded once at the smallest scale to prove
//! it is an image we can serve and stripped of its metadata ([`scrub`]),
//! and only then published with one atomic rename. Anything that goes
//! wrong before that leaves nothing: the staged
//! file is deleted on drop, and what a killed process leaves behind is
//! deleted at the next start (`Store::local`). After a publish the key's
//! cached derivatives are purged and the `[[preset]]` variants are made in
//! the background.

pub mod container;
mod error;
pub mod grant;
pub mod movie;
pub mod once;
pub mod scrub;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

use crate::auth::signed::UrlSigner;
use crate::auth::unix_now;
use crate::cache::Purge;
use crate::config::{PresetConfig, TransformConfig, UploadConfig};
use crate::key::ObjectKey;
use crate::media_info::MediaInfo;
use crate::media_type::{MediaType, SNIFF_LEN};
use crate::metrics;
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::store::StoreError;
use crate::transform::{self, Described, TransformError, Transformer, UploadLimits};
use crate::variant::Ask;
pub use error::UploadError;
pub use grant::{Grant, UploadClass};

/// `POST /_/uploads` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresignRequest {
    pub key: Option<String>,
    pub content_type: Option<String>,
    pub max_bytes: Option<u64>,
    /// Seconds the URL stays valid (default `upload.expiry_secs`).
    pub expires_in: Option<u64>,
    /// The URL may publish any number of times until it expires (default:
    /// once; a refused or cut-off attempt does not count).
    pub reusable: Option<bool>,
    /// Publish only if the key does not exist yet (412 otherwise).
    pub if_absent: Option<bool>,
}

/// `POST /_/uploads` answer (201).
#[derive(Debug, Serialize)]
pub struct Presigned {
    pub key: String,
    pub url: String,
    pub method: &'static str,
    /// Unix seconds.
    pub expires_at: u64,
    pub max_bytes: u64,
}

/// `PUT` answer (201): the stored object's media information, from the
/// upload check's decode.
pub type Uploaded = MediaInfo;

pub struct Uploads {
    /// Readers' view (purge, metadata) and the presets' derivative path.
    pipeline: Pipeline,
    /// Where uploads are staged and published.
    store: Store,
    /// The pool whose admission every check of the staged bytes runs under.
    transformer: Transformer,
    signer: Option<UrlSigner>,
    cfg: UploadConfig,
    transform: TransformConfig,
    presets: Arc<Vec<PresetConfig>>,
}

impl Uploads {
    pub fn new(
        pipeline: Pipeline,
        store: Store,
        transformer: Transformer,
        signing_secret: Option<&str>,
        cfg: UploadConfig,
        transform: TransformConfig,
        presets: Vec<PresetConfig>,
    ) -> Self {
        Self {
            pipeline,
            store,
            transformer,
            signer: signing_secret.map(UrlSigner::new),
            cfg,
            transform,
            presets: Arc::new(presets),
        }
    }

    /// Where presigned URLs point: `upload.base_url`, else the scheme and
    /// host the request came to (from a trusted proxy's X-Forwarded-Proto and
    /// X-Forwarded-Host, else `Host` over plain HTTP), else `fallback`.
    pub fn base_url(&self, scheme: &str, host: Option<&str>, fallback: &str) -> String {
        match (&self.cfg.base_url, host) {
            (Some(base), _) => base.clone(),
            (None, Some(h)) => format!("{scheme}://{h}"),
            (None, None) => format!("http://{fallback}"),
        }
    }

    pub fn presign(&self, req: PresignRequest, base_url: &str) -> Result<Presigned, UploadError> {
        let signer = self.signer.as_ref().ok_or(UploadError::Disabled)?;
        presign(signer, &self.cfg, req, base_url, unix_now())
    }

    /// Checks the signature of a `PUT` (before any of its body is read).
    pub fn authorize(&self, key: ObjectKey, query: Option<&str>) -> Result<Grant, UploadError> {
        let signer = self.signer.as_ref().ok_or(UploadError::Disabled)?;
        Grant::verify(key, query, signer, unix_now()).map_err(UploadError::Signature)
    }

    /// Streams, checks and publishes one upload.
    pub async fn receive(
        &self,
        grant: &Grant,
        content_length: Option<u64>,
        body: Body,
    ) -> Result<Uploaded, UploadError> {
        let limit = grant.max_bytes.min(self.cfg.max_bytes);
        if content_length.is_some_and(|n| n > limit) {
            return Err(UploadError::TooLarge(limit));
        }
        let store = &self.store;
        // Refused before a byte of the body is read: a used single-use URL,
        // a create-only URL whose key exists.
        once::check_unused(store, grant).await?;
        if grant.if_absent {
            store.absent(&grant.key).await?;
        }
        let staged = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(store.staging_dir())
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let (bytes, media) = self.stream_to(&staged, body, limit, grant.class).await?;
        let described = self.check_staged(&staged, media).await?;
        let claim = once::claim(store, grant, unix_now()).await?;
        if let Err(e) = store
            .publish(&grant.key, staged.into_temp_path(), grant.if_absent)
            .await
        {
            claim.release(store).await;
            return Err(e.into());
        }
        metrics::upload_bytes(bytes);

        // Readers on this node must see the new object at once; presets warm it.
        self.pipeline.purge(&[Purge::Key(grant.key.clone())]).await;
        let (meta, _) = self
            .pipeline
            .meta(&grant.key)
            .await
            .map_err(|e| UploadError::Store(StoreError::Unavailable(e.to_string())))?;
        if media.is_transformable() {
            self.make_presets(grant.key.clone(), meta.clone());
        }
        // What is stored (smaller than what was sent when metadata went).
        let info = MediaInfo::new(&grant.key, &meta, described);
        if info.image.is_some() {
            self.pipeline.remember_info(&grant.key, &meta, &info).await;
        }
        Ok(info)
    }

    /// Body → staged file, refusing as early as possible: over the limit, or
    /// (from the first bytes) not an allowed type.
    async fn stream_to(
        &self,
        staged: &tempfile::NamedTempFile,
        mut body: Body,
        limit: u64,
        class: UploadClass,
    ) -> Result<(u64, MediaType), UploadError> {
        let io = |e: std::io::Error| UploadError::Store(StoreError::Unavailable(e.to_string()));
        let file = staged.as_file().try_clone().map_err(io)?;
        let mut out =
            tokio::io::BufWriter::with_capacity(256 << 10, tokio::fs::File::from_std(file));
        let mut head: Vec<u8> = Vec::with_capacity(SNIFF_LEN);
        let mut media = None;
        let mut total = 0u64;
        let deadline = BodyDeadline::new(&self.cfg);
        loop {
            let wait = deadline.next_wait(total).ok_or(UploadError::Timeout)?;
            let frame = match tokio::time::timeout(wait, body.frame()).await {
                Err(_) => return Err(UploadError::Timeout),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(UploadError::Incomplete(e.to_string())),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            total += data.len() as u64;
            if total > limit {
                return Err(UploadError::TooLarge(limit));
            }
            if head.len() < SNIFF_LEN {
                let take = (SNIFF_LEN - head.len()).min(data.len());
                head.extend_from_slice(&data[..take]);
                if head.len() == SNIFF_LEN {
                    media = Some(allowed(&head, class)?);
                }
            }
            out.write_all(&data).await.map_err(io)?;
        }
        out.flush().await.map_err(io)?;
        let media = match media {
            Some(m) => m,
            None => allowed(&head, class)?,
        };
        Ok((total, media))
    }

    /// The staged bytes, checked where untrusted bytes are worked on: a
    /// video's or AVIF's container structure to the end of the file (the
    /// sniff saw only its first bytes), and for images the decode of
    /// `transform::verify`. One job on the transform pool, under its
    /// admission, deadline and memory budget: the slot is held until the
    /// check has really ended, even when the upload is answered 503 at the
    /// timeout. An upload waits (up to the timeout) for a place rather than
    /// being refused at once, so a phone's upload is not lost to a burst of
    /// thumbnails. An image's media information, from that decode.
    async fn check_staged(
        &self,
        staged: &tempfile::NamedTempFile,
        media: MediaType,
    ) -> Result<Option<Described>, UploadError> {
        if !container::applies(media) && !media.is_image() {
            return Ok(None);
        }
        let io = |e: std::io::Error| UploadError::Store(StoreError::Unavailable(e.to_string()));
        let file = staged.reopen().map_err(io)?;
        let path = staged.path().to_path_buf();
        let limits = UploadLimits {
            max_source_pixels: self.transform.max_source_pixels,
            max_source_bytes: self.transform.max_source_bytes,
        };
        let rules = Rules {
            limits,
            scrub: !self.cfg.keep_metadata,
            max_video_ms: self.cfg.max_video_secs.saturating_mul(1000),
            video_codecs: self.cfg.video_codecs.clone(),
        };
        let admission = self
            .transformer
            .admit_waiting(self.transform.timeout)
            .await?;
        admission
            .run(move |job| Ok(check_file(file, &path, media, &rules, job)))
            .await?
    }

    /// Deletes the records of expired single-use grants now and then, for
    /// as long as the server runs (every node does; deleting twice is harmless).
    pub fn sweep_used_grants(&self) {
        let store = self.store.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(once::SWEEP_EVERY).await;
                let swept = once::sweep(&store, unix_now()).await;
                if swept > 0 {
                    tracing::info!(swept, "expired upload-URL records deleted");
                }
            }
        });
    }

    /// Makes every preset variant of a new image, in the background, through
    /// the normal derivative path (so they land in the caches a viewer hits).
    fn make_presets(&self, key: ObjectKey, meta: Arc<crate::store::OriginalMeta>) {
        if self.presets.is_empty() {
            return;
        }
        let (pipeline, presets) = (self.pipeline.clone(), self.presets.clone());
        tokio::spawn(async move {
            for preset in presets.iter() {
                for variant in &preset.variants {
                    let ask = Ask::Image(variant.clone());
                    let outcome = match pipeline.derivative(&key, &meta, &ask, None).await {
                        Ok(_) => "ok",
                        Err(e) => {
                            tracing::warn!(key = key.as_str(), preset = preset.name, error = %e, "preset not made");
                            "error"
                        }
                    };
                    metrics::preset_made(outcome);
                }
            }
        });
    }
}

/// How long an upload body may take, as Apache's `mod_reqtimeout` does it
/// (`body=30,MinRate=8192`): each piece within `body_timeout` of the last,
/// and the whole at `min_rate` bytes a second on average after a first
/// `body_timeout` of grace — so a slow phone keeps going, a client that
/// trickles a byte now and then does not hold a connection for hours.
struct BodyDeadline {
    started: tokio::time::Instant,
    per_piece: Duration,
    min_rate: u64,
}

impl BodyDeadline {
    fn new(cfg: &UploadConfig) -> Self {
        Self {
            started: tokio::time::Instant::now(),
            per_piece: cfg.body_timeout,
            min_rate: cfg.min_rate_bytes_per_sec,
        }
    }

    /// The wait allowed for the next piece after `received` bytes; `None`
    /// when the body is already behind the minimum rate.
    fn next_wait(&self, received: u64) -> Option<Duration> {
        self.wait_after(received, self.started.elapsed())
    }

    fn wait_after(&self, received: u64, elapsed: Duration) -> Option<Duration> {
        if self.min_rate == 0 {
            return Some(self.per_piece);
        }
        let earned = Duration::from_secs_f64(received as f64 / self.min_rate as f64);
        let left = (self.per_piece + earned).checked_sub(elapsed)?;
        (!left.is_zero()).then(|| left.min(self.per_piece))
    }
}

/// What an upload's check holds it to.
struct Rules {
    limits: UploadLimits,
    /// Remove metadata (not `upload.keep_metadata`).
    scrub: bool,
    /// `upload.max_video_secs`, in milliseconds.
    max_video_ms: u64,
    /// `upload.video_codecs`.
    video_codecs: Vec<&'static str>,
}

/// The body of [`Uploads::check_staged`]'s pool job.
fn check_file(
    file: std::fs::File,
    path: &std::path::Path,
    media: MediaType,
    rules: &Rules,
    job: &transform::Job,
) -> Result<Option<Described>, UploadError> {
    let limits = rules.limits;
    if container::applies(media) {
        match container::check(file, media) {
            Ok(()) => {}
            Err(container::ContainerError::Invalid(why)) => {
                return Err(TransformError::Undecodable(why).into());
            }
            Err(container::ContainerError::Io(e)) => {
                return Err(UploadError::Store(StoreError::Unavailable(e.to_string())));
            }
        }
    }
    if media.is_video() {
        let described = check_video(path, media, rules, job)?;
        // Location gone and the index first, before the object is published
        // (MP4/QuickTime; a WebM's index is at its start by design).
        let iso = matches!(media, MediaType::Mp4 | MediaType::QuickTime);
        iso.then(|| movie::clean(path, media, rules.scrub))
            .transpose()
            .map_err(|e| match e {
                movie::MovieError::Invalid(why) => {
                    UploadError::Image(TransformError::Undecodable(format!("video {why}")))
                }
                movie::MovieError::Io(e) => {
                    UploadError::Store(StoreError::Unavailable(e.to_string()))
                }
            })?;
        return Ok(Some(described));
    }
    if !media.is_image() {
        return Ok(None);
    }
    let src = transform::read_staged(path, limits)?;
    let described = transform::verify(&src, media, limits.max_source_pixels, job)?;
    if rules.scrub {
        // Metadata goes before the object is published (safe to publish).
        let io = |e: std::io::Error| UploadError::Store(StoreError::Unavailable(e.to_string()));
        if let Some(clean) = scrub::scrub(&src, media)? {
            std::fs::write(path, clean).map_err(io)?;
        }
    }
    Ok(Some(described))
}

/// A staged video: its container to the end, its first frame decodes (the
/// 201's placeholders come from it), within `upload.max_video_secs` and
/// `upload.video_codecs`. Read through a map of the file, not into memory.
fn check_video(
    path: &std::path::Path,
    media: MediaType,
    rules: &Rules,
    job: &transform::Job,
) -> Result<Described, UploadError> {
    let io = |e: std::io::Error| UploadError::Store(StoreError::Unavailable(e.to_string()));
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > rules.limits.max_source_bytes {
        return Err(TransformError::Undecodable(format!(
            "video is larger than transform.max_source_bytes ({})",
            rules.limits.max_source_bytes
        ))
        .into());
    }
    // SAFETY: the staged file is this upload's own temporary file; nothing
    // writes or truncates it while the map lives (the metadata removal
    // runs after this returns and the map is dropped).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let described = transform::describe(&map, media, rules.limits.max_source_pixels, job, true, 0)?;
    let codec = described.video_codec.as_deref().unwrap_or("");
    if !rules.video_codecs.contains(&codec) {
        return Err(UploadError::VideoRefused(format!(
            "video codec {codec} is not in upload.video_codecs ({})",
            rules.video_codecs.join(", ")
        )));
    }
    let duration = described.duration_ms.unwrap_or(0);
    if duration > rules.max_video_ms {
        return Err(UploadError::VideoRefused(format!(
            "video is {:.1} s long; upload.max_video_secs is {}",
            duration as f64 / 1000.0,
            rules.max_video_ms / 1000
        )));
    }
    Ok(described)
}

/// The sniffed type, if this class of upload may store it (public for the
/// `upload_sniff` fuzz target).
pub fn allowed(head: &[u8], class: UploadClass) -> Result<MediaType, UploadError> {
    let media = MediaType::sniff(head);
    if class.allows(media) {
        Ok(media)
    } else {
        Err(UploadError::Unsupported(format!(
            "content sniffs as {}; this upload accepts {}",
            media.mime(),
            match class {
                UploadClass::Image => "JPEG, PNG, WebP, GIF, AVIF or HEIC/HEIF images",
                UploadClass::Video => "MP4, WebM or QuickTime video",
                UploadClass::Any =>
                    "JPEG, PNG, WebP, GIF, AVIF or HEIC/HEIF images, or MP4, WebM or QuickTime video",
            }
        )))
    }
}

/// The presign decision, pure (the CLI's `presign` uses it too).
pub fn presign(
    signer: &UrlSigner,
    cfg: &UploadConfig,
    req: PresignRequest,
    base_url: &str,
    now: u64,
) -> Result<Presigned, UploadError> {
    let bad = UploadError::BadRequest;
    let (class, ext) = UploadClass::from_content_type(req.content_type.as_deref()).map_err(bad)?;
    let key = match req.key.as_deref() {
        Some(k) => ObjectKey::parse(k.strip_prefix('/').unwrap_or(k))
            .map_err(|e| bad(format!("key: {e}")))?,
        None => grant::random_key(ext).map_err(bad)?,
    };
    let max_bytes = match req.max_bytes {
        None => cfg.max_bytes,
        Some(n) if (1..=cfg.max_bytes).contains(&n) => n,
        Some(n) => {
            return Err(bad(format!(
                "max_bytes {n} is not between 1 and upload.max_bytes ({})",
                cfg.max_bytes
            )));
        }
    };
    let ttl = match req.expires_in {
        None => cfg.expiry,
        Some(s) if (1..=7 * 86400).contains(&s) => Duration::from_secs(s),
        Some(s) => return Err(bad(format!("expires_in {s} is not between 1 and 604800"))),
    };
    let grant = Grant {
        key,
        exp: now + ttl.as_secs(),
        max_bytes,
        class,
        reusable: req.reusable.unwrap_or(false),
        if_absent: req.if_absent.unwrap_or(false),
        nonce: grant::random_token().map_err(bad)?,
    };
    Ok(Presigned {
        key: grant.key.as_str().to_owned(),
        url: format!(
            "{}{}",
            base_url.trim_end_matches('/'),
            grant.path_and_query(signer)
        ),
        method: "PUT",
        expires_at: grant.exp,
        max_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline(per_piece: u64, min_rate: u64) -> BodyDeadline {
        BodyDeadline {
            started: tokio::time::Instant::now(),
            per_piece: Duration::from_secs(per_piece),
            min_rate,
        }
    }

    #[test]
    fn a_body_must_keep_the_minimum_rate_after_the_grace() {
        let d = deadline(30, 1000);
        let s = Duration::from_secs;
        // Within the grace: the per-piece timeout.
        assert_eq!(d.wait_after(0, s(0)), Some(s(30)));
        // 10 s in with nothing: 20 s left of the grace.
        assert_eq!(d.wait_after(0, s(10)), Some(s(20)));
        // Nothing by the end of the grace: over.
        assert_eq!(d.wait_after(0, s(30)), None);
        // Each 1000 bytes buys a second: 100 s in with 80 000 bytes leaves 10 s.
        assert_eq!(d.wait_after(80_000, s(100)), Some(s(10)));
        // Never more than the per-piece timeout.
        assert_eq!(d.wait_after(1_000_000, s(100)), Some(s(30)));
        // Behind the rate: over, however steadily pieces come.
        assert_eq!(d.wait_after(60_000, s(100)), None);
        // 0: only the per-piece timeout.
        assert_eq!(deadline(30, 0).wait_after(0, s(1_000_000)), Some(s(30)));
    }
}
