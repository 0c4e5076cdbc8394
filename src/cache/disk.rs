//! Disk tier for derivatives: plain files under two levels of hex folders
//! (`ab/cd/abcd…`), written temp → fsync → rename → fsync(dir) so a crash
//! leaves either the whole entry or none, indexed in memory by a moka cache
//! weighed in bytes whose eviction deletes the file.
//!
//! Written by hand (~250 lines) because no maintained crate offers a
//! size-bounded, crash-safe, restart-surviving file cache with our purge.
//!
//! Entry file: `MEDGE001`, header length (u32 LE), JSON header, body. The
//! header holds the entry id (to reject hash collisions), the object key (to
//! purge by key or prefix after a restart), the body length and its BLAKE3
//! checksum. On start the index is rebuilt from the files (length checked);
//! on every read the checksum is verified, so a torn or corrupted file is
//! deleted, never served.
//!
//! Because it deletes what it finds incomplete, the cache only manages a
//! directory that is its own: empty when first used (then marked with
//! [`MARKER`]), or already marked, or holding nothing but its own layout (a
//! cache from before the marker, adopted). Pointed at a populated directory
//! it refuses to start; and only files named like entries are ever removed.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use moka::notification::RemovalCause;
use serde::{Deserialize, Serialize};

use super::{Derivative, DerivativeKey};
use crate::config::DiskCacheConfig;
use crate::header_values::HeaderValues;
use crate::media_type::MediaType;
use crate::metrics;
use crate::telemetry::LogEvery;

const MAGIC: &[u8; 8] = b"MEDGE001";
const TMP_DIR: &str = "tmp";
/// Written into a directory the cache has claimed.
pub const MARKER: &str = ".mediaedge-cache";
/// Headers are a few hundred bytes; anything bigger is corruption.
const MAX_HEADER: u32 = 64 * 1024;

type Hash = [u8; 32];

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    id: String,
    object: String,
    media: String,
    etag: String,
    last_modified: u64,
    width: u32,
    height: u32,
    body_len: u64,
    blake3: String,
}

struct IndexEntry {
    object: String,
    size: u64,
}

/// A failing disk (full, read-only, removed) is logged at most this often.
pub const WRITE_FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct DiskCache {
    root: Arc<PathBuf>,
    index: moka::sync::Cache<Hash, Arc<IndexEntry>>,
    health: Arc<WriteHealth>,
}

/// Write failures: logged once per interval, and a line when writes work again.
struct WriteHealth {
    log: LogEvery,
    failing: AtomicBool,
}

impl DiskCache {
    /// Opens (creating) the cache directory, removes stray temporaries and
    /// rebuilds the index from the entry files. Blocking.
    pub fn open(cfg: &DiskCacheConfig) -> io::Result<Self> {
        let root = Arc::new(cfg.path.clone());
        claim(&root)?;
        fs::create_dir_all(root.join(TMP_DIR))?;
        for stray in fs::read_dir(root.join(TMP_DIR))? {
            let _ = fs::remove_file(stray?.path());
        }
        let evict_root = root.clone();
        let index = moka::sync::Cache::builder()
            .max_capacity(cfg.max_bytes)
            .weigher(|_: &Hash, e: &Arc<IndexEntry>| u32::try_from(e.size).unwrap_or(u32::MAX))
            .eviction_listener(move |hash: Arc<Hash>, _, cause| {
                // A replaced entry was renamed over the same path: keep the file.
                if cause != RemovalCause::Replaced {
                    let _ = fs::remove_file(entry_path(&evict_root, &hash));
                }
            })
            .build();
        let health = Arc::new(WriteHealth {
            log: LogEvery::new(WRITE_FAILURE_LOG_INTERVAL),
            failing: AtomicBool::new(false),
        });
        let cache = Self {
            root,
            index,
            health,
        };
        cache.rebuild()?;
        Ok(cache)
    }

    pub fn entries(&self) -> u64 {
        self.index.run_pending_tasks();
        self.index.entry_count()
    }

    pub fn bytes(&self) -> u64 {
        self.index.run_pending_tasks();
        self.index.weighted_size()
    }

    /// Reads and verifies an entry; a bad one is removed and reported as absent.
    pub async fn get(&self, key: &DerivativeKey) -> Option<Derivative> {
        let id = key.id();
        let hash = hash_of(&id);
        self.index.get(&hash)?;
        let path = entry_path(&self.root, &hash);
        let result = tokio::task::spawn_blocking(move || read_entry(&path, &id))
            .await
            .ok()?;
        match result {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, "disk cache entry unreadable, dropped");
                metrics::disk_cache_error("read");
                self.index.invalidate(&hash);
                None
            }
        }
    }

    /// Writes an entry in the background; failures are counted, logged once
    /// per [`WRITE_FAILURE_LOG_INTERVAL`], never surfaced to the request that
    /// produced the derivative (it is served from memory; a failed write
    /// leaves no file: the temporary is removed when dropped).
    pub fn put(&self, key: &DerivativeKey, d: &Derivative) {
        let this = self.clone();
        let (id, object, d) = (key.id(), key.object.as_str().to_owned(), d.clone());
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _request = span.enter(); // log lines keep the request id
            let hash = hash_of(&id);
            match this.write_entry(&hash, &id, &object, &d) {
                Ok(size) => {
                    this.index
                        .insert(hash, Arc::new(IndexEntry { object, size }));
                    if this.health.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!("disk cache writes succeed again");
                    }
                }
                Err(e) => {
                    metrics::disk_cache_error("write");
                    this.health.failing.store(true, Ordering::Relaxed);
                    if let Some(unlogged) = this.health.log.due() {
                        tracing::warn!(
                            error = %e,
                            unlogged_failures = unlogged,
                            "disk cache write failed; serving from memory and the store (logged at most once a minute)"
                        );
                    }
                }
            }
        });
    }

    /// Removes every entry whose object key satisfies `matches`.
    pub fn purge(&self, matches: impl Fn(&str) -> bool) -> u64 {
        let mut n = 0;
        for (hash, entry) in self.index.iter() {
            if matches(&entry.object) {
                self.index.invalidate(&*hash);
                n += 1;
            }
        }
        self.index.run_pending_tasks();
        n
    }

    fn write_entry(&self, hash: &Hash, id: &str, object: &str, d: &Derivative) -> io::Result<u64> {
        let header = Header {
            id: id.to_owned(),
            object: object.to_owned(),
            media: d.media.mime().to_owned(),
            etag: d.etag.to_string(),
            last_modified: d
                .last_modified
                .duration_since(UNIX_EPOCH)
                .map(|t| t.as_secs())
                .unwrap_or(0),
            width: d.width,
            height: d.height,
            body_len: d.body.len() as u64,
            blake3: blake3::hash(&d.body).to_hex().to_string(),
        };
        let header = serde_json::to_vec(&header).map_err(io::Error::other)?;
        let final_path = entry_path(&self.root, hash);
        let dir = final_path
            .parent()
            .ok_or_else(|| io::Error::other("entry path has no parent"))?;
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join(TMP_DIR))?;
        tmp.write_all(MAGIC)?;
        tmp.write_all(&(header.len() as u32).to_le_bytes())?;
        tmp.write_all(&header)?;
        tmp.write_all(&d.body)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&final_path).map_err(|e| e.error)?;
        File::open(dir)?.sync_all()?;
        Ok((MAGIC.len() + 4 + header.len() + d.body.len()) as u64)
    }

    /// Indexes every complete entry file; deletes files that are not.
    fn rebuild(&self) -> io::Result<()> {
        for level1 in fs::read_dir(&*self.root)? {
            let level1 = level1?;
            if level1.file_name() == TMP_DIR || !level1.file_type()?.is_dir() {
                continue;
            }
            for level2 in fs::read_dir(level1.path())? {
                let level2 = level2?;
                if !level2.file_type()?.is_dir() {
                    continue;
                }
                for file in fs::read_dir(level2.path())? {
                    let path = file?.path();
                    // Only names an entry can have are ours to judge.
                    let named_like_entry = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
                    if !named_like_entry {
                        continue;
                    }
                    match index_entry(&path) {
                        Some((hash, entry)) => self.index.insert(hash, Arc::new(entry)),
                        None => {
                            tracing::warn!(path = %path.display(), "disk cache: removing incomplete entry");
                            let _ = fs::remove_file(&path);
                        }
                    }
                }
            }
        }
        self.index.run_pending_tasks();
        Ok(())
    }
}

/// Makes `root` the cache's own directory, or refuses (see the module doc).
fn claim(root: &Path) -> io::Result<()> {
    fs::create_dir_all(root)?;
    if root.join(MARKER).exists() {
        return Ok(());
    }
    let layout = |name: &str| {
        name == TMP_DIR || (name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(entry.file_type()?.is_dir() && layout(&name)) {
            return Err(io::Error::other(format!(
                "cache.disk_path {} holds files mediaedge did not write (such as '{name}'); \
                 give the disk cache an empty directory of its own",
                root.display()
            )));
        }
    }
    fs::write(
        root.join(MARKER),
        "This directory is mediaedge's disk cache: it deletes files here it does not recognise.\n",
    )
}

fn hash_of(id: &str) -> Hash {
    *blake3::hash(id.as_bytes()).as_bytes()
}

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn entry_path(root: &Path, hash: &Hash) -> PathBuf {
    let h = hex(hash);
    root.join(&h[0..2]).join(&h[2..4]).join(h)
}

fn read_header(file: &mut File) -> io::Result<(Header, u64)> {
    let mut fixed = [0u8; 12];
    file.read_exact(&mut fixed)?;
    if &fixed[..8] != MAGIC {
        return Err(io::Error::other("bad magic"));
    }
    let hlen = u32::from_le_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
    if hlen > MAX_HEADER {
        return Err(io::Error::other("header too large"));
    }
    let mut header = vec![0u8; hlen as usize];
    file.read_exact(&mut header)?;
    let header: Header = serde_json::from_slice(&header).map_err(io::Error::other)?;
    Ok((header, 12 + hlen as u64))
}

/// Hash and index entry of a complete file named after its id's hash.
fn index_entry(path: &Path) -> Option<(Hash, IndexEntry)> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let (header, header_len) = read_header(&mut file).ok()?;
    let hash = hash_of(&header.id);
    let named_right = path.file_name()?.to_str()? == hex(&hash);
    (named_right && header_len + header.body_len == len).then_some((
        hash,
        IndexEntry {
            object: header.object,
            size: len,
        },
    ))
}

fn read_entry(path: &Path, id: &str) -> io::Result<Derivative> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let (h, header_len) = read_header(&mut file)?;
    if h.id != id {
        return Err(io::Error::other("entry id mismatch"));
    }
    if header_len + h.body_len != len {
        return Err(io::Error::other("entry length mismatch"));
    }
    let mut body = Vec::with_capacity(h.body_len as usize);
    file.read_to_end(&mut body)?;
    if blake3::hash(&body).to_hex().as_str() != h.blake3 {
        return Err(io::Error::other("entry checksum mismatch"));
    }
    // Derivatives are images or JSON; slices of large originals any type.
    let media = MediaType::from_mime(&h.media)
        .ok_or_else(|| io::Error::other("entry has an unknown media type"))?;
    let last_modified = SystemTime::UNIX_EPOCH + Duration::from_secs(h.last_modified);
    Ok(Derivative {
        body: Bytes::from(body),
        media,
        headers: HeaderValues::new(&h.etag, last_modified),
        etag: h.etag.into(),
        last_modified,
        width: h.width,
        height: h.height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ObjectKey;

    fn cfg(dir: &Path, max_bytes: u64) -> DiskCacheConfig {
        DiskCacheConfig {
            path: dir.to_path_buf(),
            max_bytes,
        }
    }

    fn key(object: &str, variant: &str) -> DerivativeKey {
        DerivativeKey {
            object: ObjectKey::parse(object).unwrap(),
            etag: "\"e1\"".into(),
            variant: variant.into(),
        }
    }

    fn deriv(body: &'static [u8]) -> Derivative {
        Derivative::new(
            Bytes::from_static(body),
            MediaType::Webp,
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            3,
            4,
        )
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for l1 in fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != TMP_DIR && e.file_name() != MARKER)
        {
            for l2 in fs::read_dir(l1.path()).unwrap().flatten() {
                out.extend(fs::read_dir(l2.path()).unwrap().flatten().map(|e| e.path()));
            }
        }
        out
    }

    #[tokio::test]
    async fn survives_restart_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::open(&cfg(dir.path(), 1 << 20)).unwrap();
        c.put(&key("a.jpg", "w=1"), &deriv(b"hello"));
        settle().await;
        assert_eq!(c.get(&key("a.jpg", "w=1")).await, Some(deriv(b"hello")));
        assert_eq!(c.get(&key("a.jpg", "w=2")).await, None);
        drop(c);
        // A stray temporary from a crash mid-write is cleaned at start.
        fs::write(dir.path().join(TMP_DIR).join("partial"), b"MEDGE001junk").unwrap();
        let c = DiskCache::open(&cfg(dir.path(), 1 << 20)).unwrap();
        assert_eq!(c.entries(), 1);
        assert_eq!(c.get(&key("a.jpg", "w=1")).await, Some(deriv(b"hello")));
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn truncated_or_corrupt_entries_are_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::open(&cfg(dir.path(), 1 << 20)).unwrap();
        c.put(&key("a.jpg", "w=1"), &deriv(b"hello world"));
        c.put(&key("b.jpg", "w=1"), &deriv(b"second body"));
        settle().await;
        let paths = files(dir.path());
        assert_eq!(paths.len(), 2);
        // Flip a body byte in one, truncate the other.
        for (i, p) in paths.iter().enumerate() {
            let mut bytes = fs::read(p).unwrap();
            if i == 0 {
                let last = bytes.len() - 1;
                bytes[last] ^= 0xff;
            } else {
                bytes.truncate(bytes.len() - 3);
            }
            fs::write(p, bytes).unwrap();
        }
        assert_eq!(c.get(&key("a.jpg", "w=1")).await, None);
        assert_eq!(c.get(&key("b.jpg", "w=1")).await, None);
        drop(c);
        let c = DiskCache::open(&cfg(dir.path(), 1 << 20)).unwrap();
        assert_eq!(c.entries(), 0);
        assert!(files(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn bounded_by_bytes_and_purgeable() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::open(&cfg(dir.path(), 4000)).unwrap();
        static BODY: [u8; 1000] = [7u8; 1000];
        for i in 0..10 {
            c.put(&key(&format!("p/{i}.jpg"), "w=1"), &deriv(&BODY));
            settle().await;
        }
        assert!(c.bytes() <= 4000, "{}", c.bytes());
        settle().await;
        assert_eq!(files(dir.path()).len() as u64, c.entries());
        let before = c.entries();
        assert!(before >= 1);
        assert_eq!(c.purge(|o| o.starts_with("q/")), 0);
        assert_eq!(c.purge(|o| o.starts_with("p/")), before);
        settle().await;
        assert_eq!(c.entries(), 0);
        assert!(files(dir.path()).is_empty());
    }

    /// Issue 14, item 12: pointed at a directory with other files in it
    /// (the data directory, `.`, `/tmp`), the cache refuses to start and
    /// deletes nothing; an empty directory is claimed with the marker, and a
    /// cache directory from before the marker (only its own layout) is adopted.
    #[test]
    fn only_its_own_directory_is_managed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("original.jpg"), b"not ours").unwrap();
        std::fs::create_dir_all(dir.path().join("ab/cd")).unwrap();
        std::fs::write(dir.path().join("ab/cd/photo.jpg"), b"not ours").unwrap();
        let e = DiskCache::open(&cfg(dir.path(), 1 << 20)).err().unwrap();
        assert!(e.to_string().contains("did not write"), "{e}");
        assert!(dir.path().join("original.jpg").exists());
        assert!(dir.path().join("ab/cd/photo.jpg").exists());

        let empty = tempfile::tempdir().unwrap();
        DiskCache::open(&cfg(empty.path(), 1 << 20)).unwrap();
        assert!(empty.path().join(MARKER).exists());

        // An older cache: its own fan-out only. Adopted; a file in it that is
        // not named like an entry is left alone.
        let old = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(old.path().join("0f/1e")).unwrap();
        std::fs::write(old.path().join("0f/1e/notes.txt"), b"kept").unwrap();
        DiskCache::open(&cfg(old.path(), 1 << 20)).unwrap();
        assert!(old.path().join(MARKER).exists());
        assert!(old.path().join("0f/1e/notes.txt").exists());
    }
}
