//! `[cache]`: the memory and disk caches, metadata revalidation and stale
//! serving, and the shared derivative tier.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, in_range, secs_in_range};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    pub memory_mb: u64,
    pub disk_path: Option<PathBuf>,
    pub disk_mb: u64,
    pub revalidate_secs: u64,
    pub stale_if_error_secs: u64,
    pub negative_secs: u64,
    pub shared: bool,
    pub slice_mb: u64,
    pub journal_poll_ms: u64,
}

impl Default for RawCache {
    fn default() -> Self {
        Self {
            memory_mb: 256,
            disk_path: None,
            disk_mb: 10240,
            revalidate_secs: 60,
            stale_if_error_secs: 86400,
            negative_secs: 5,
            shared: false,
            slice_mb: 1,
            journal_poll_ms: 1000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub memory_bytes: u64,
    /// Derivatives are also written to the store (under `_/derivatives/`),
    /// so a node's miss can be another node's earlier work.
    pub shared: bool,
    pub disk: Option<DiskCacheConfig>,
    pub revalidate: Duration,
    pub stale_if_error: Duration,
    /// How long a key the store does not have is remembered as missing (0: not).
    pub negative: Duration,
    /// Large originals are cached in slices of this many bytes (`crate::slices`).
    pub slice_bytes: u64,
    /// How often each node reads the invalidation journal (`journal.rs`);
    /// zero: not at all (one node alone, or changes seen only after
    /// `revalidate`).
    pub journal_poll: Duration,
}

#[derive(Debug, Clone)]
pub struct DiskCacheConfig {
    pub path: PathBuf,
    pub max_bytes: u64,
}

pub(super) fn validate_cache(raw: &RawCache) -> Result<CacheConfig, ConfigError> {
    let memory_mb = in_range("cache.memory_mb", raw.memory_mb, 1, 1 << 20)?;
    let disk = match &raw.disk_path {
        None => None,
        Some(p) if p.as_os_str().is_empty() => {
            return Err(ConfigError::key(
                "cache.disk_path",
                "must not be empty (omit it for memory only)",
            ));
        }
        Some(p) => Some(DiskCacheConfig {
            path: p.clone(),
            max_bytes: in_range("cache.disk_mb", raw.disk_mb, 1, 1 << 30)? * 1024 * 1024,
        }),
    };
    Ok(CacheConfig {
        memory_bytes: memory_mb * 1024 * 1024,
        shared: raw.shared,
        disk,
        revalidate: secs_in_range("cache.revalidate_secs", raw.revalidate_secs, 0, 365 * 86400)?,
        stale_if_error: secs_in_range(
            "cache.stale_if_error_secs",
            raw.stale_if_error_secs,
            0,
            365 * 86400,
        )?,
        negative: secs_in_range("cache.negative_secs", raw.negative_secs, 0, 3600)?,
        slice_bytes: in_range("cache.slice_mb", raw.slice_mb, 1, 64)? << 20,
        journal_poll: Duration::from_millis(in_range(
            "cache.journal_poll_ms",
            raw.journal_poll_ms,
            0,
            60_000,
        )?),
    })
}

/// The disk cache deletes what it does not recognise as a finished entry,
/// so it must never share a directory with the originals: not the same
/// directory, not one inside the other (`.`, the data directory or `/tmp`
/// as `cache.disk_path` once deleted originals at start). Compared both as
/// written (made absolute, `..` resolved) and, where they exist, with
/// symlinks resolved.
pub(super) fn check_apart(disk: &Path, storage: &Path) -> Result<(), ConfigError> {
    let lexical = |p: &Path| -> PathBuf {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut out = PathBuf::new();
        for c in abs.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    };
    let overlap = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
    let (d, s) = (lexical(disk), lexical(storage));
    let resolved = match (std::fs::canonicalize(disk), std::fs::canonicalize(storage)) {
        (Ok(d), Ok(s)) => overlap(&d, &s),
        _ => false,
    };
    if overlap(&d, &s) || resolved {
        return Err(ConfigError::key(
            "cache.disk_path",
            format!(
                "{} overlaps storage.path {}: the cache must have a directory of its own, neither the storage directory nor inside or around it",
                disk.display(),
                storage.display()
            ),
        ));
    }
    Ok(())
}
