//! Cross-node invalidation through the store alone: a delete, purge or
//! upload through one node is written as a small entry under
//! `_/journal/entries/` (named by time, node and sequence, so names sort by
//! time), and `_/journal/head` is overwritten to say "something new". Every
//! node polls the head with a conditional `GET` (`If-None-Match`) each
//! `cache.journal_poll_ms`: an idle fleet costs one 304 per node per
//! interval. When the head changed, the node lists the entries from a
//! window before the newest it has seen (so an entry written late or by a
//! node whose clock lags is still found), applies those it has not applied
//! — the same purge as on the node that wrote it — and remembers them.
//!
//! Bounded: entries older than [`RETENTION`] are deleted by any node
//! (compaction, every few minutes); a node that could not read the journal
//! for longer than the entries live, or that finds more new entries than
//! it may list, cannot know what it missed and drops every original's
//! metadata instead (derivatives are keyed by the original's tag, so a
//! revalidation is all that is needed to see deletes and new versions).
//! No Redis, no peer list: nodes need only the store they already share.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cache::{Cache, Purge};
use crate::key::ObjectKey;
use crate::metrics;
use crate::store::Store;

const HEAD: &str = "_/journal/head";
const ENTRIES: &str = "_/journal/entries/";
/// How far before the newest entry seen a node lists again: writes that
/// land late, or come from a node whose clock is behind, within this.
const WINDOW: Duration = Duration::from_secs(30);
/// How long entries stay before compaction deletes them.
const RETENTION: Duration = Duration::from_secs(600);
/// How often a node compacts (each node; deleting twice is harmless).
const COMPACT_EVERY: Duration = Duration::from_secs(300);
/// Entries listed in one poll at most; more means the node lost track.
const MAX_LISTED: usize = 10_000;
/// An entry's body at most (10,000 keys of up to 1 KiB, with quotes).
const MAX_ENTRY_BYTES: u64 = 12 << 20;

/// What one delete, purge or upload changed.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
}

impl Entry {
    fn of(changes: &[Purge]) -> Self {
        let mut e = Entry::default();
        for c in changes {
            match c {
                Purge::Key(k) => e.keys.push(k.as_str().to_owned()),
                Purge::Prefix(p) => e.prefixes.push(p.clone()),
            }
        }
        e
    }

    /// The purges it asks for; keys that do not parse are skipped (no node
    /// writes one; the store is shared with whoever else writes to it).
    fn purges(self) -> Vec<Purge> {
        let keys = self
            .keys
            .iter()
            .filter_map(|k| ObjectKey::parse(k).ok().map(Purge::Key));
        keys.chain(self.prefixes.into_iter().map(Purge::Prefix))
            .collect()
    }
}

/// This node's side of the journal.
pub struct Journal {
    store: Store,
    /// Random per process: a node skips its own entries.
    node: String,
    seq: AtomicU64,
    interval: Duration,
}

impl Journal {
    /// `None` when `interval` is zero (`cache.journal_poll_ms = 0`: off).
    pub fn new(store: Store, interval: Duration) -> Option<Arc<Self>> {
        if interval.is_zero() {
            return None;
        }
        Some(Arc::new(Self {
            store,
            node: format!("{:016x}", uuid::Uuid::new_v4().as_u64_pair().0),
            seq: AtomicU64::new(0),
            interval,
        }))
    }

    /// Tells the other nodes to purge `changes`: the entry, then the head.
    /// A failure is logged and counted, not returned: the change itself is
    /// done, and other nodes still revalidate within `revalidate_secs`.
    pub async fn record(&self, changes: &[Purge]) {
        if changes.is_empty() {
            return;
        }
        let name = entry_name(
            now_ms(),
            &self.node,
            self.seq.fetch_add(1, Ordering::Relaxed),
        );
        let body = match serde_json::to_vec(&Entry::of(changes)) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::warn!(error = %e, "journal entry not written");
                return;
            }
        };
        let written = async {
            self.store
                .put_record(&format!("{ENTRIES}{name}"), body)
                .await?;
            self.store.put_record(HEAD, Bytes::from(name.clone())).await
        };
        match written.await {
            Ok(()) => metrics::invalidation("sent"),
            Err(e) => {
                metrics::invalidation("error");
                tracing::warn!(error = %e, entry = name, "journal entry not written: other nodes see the change within cache.revalidate_secs");
            }
        }
    }

    /// Polls the journal for ever (until the runtime ends), applying other
    /// nodes' entries to `cache`.
    pub fn start(self: &Arc<Self>, cache: Cache) {
        let journal = self.clone();
        tokio::spawn(async move {
            let mut reader = Reader::new(now_ms());
            let mut ticks = tokio::time::interval(journal.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Nodes started together compact at different times.
            let mut compacted = Instant::now()
                - Duration::from_millis(
                    uuid::Uuid::new_v4().as_u64_pair().1 % COMPACT_EVERY.as_millis() as u64,
                );
            loop {
                ticks.tick().await;
                journal.poll(&mut reader, &cache).await;
                if compacted.elapsed() >= COMPACT_EVERY {
                    compacted = Instant::now();
                    journal.compact().await;
                }
            }
        });
    }

    /// One poll: the head, and when it changed, the new entries.
    async fn poll(&self, reader: &mut Reader, cache: &Cache) {
        if reader.lost_track(Instant::now()) {
            // Entries may have been compacted while we could not read them.
            cache.forget_all_metadata().await;
            metrics::invalidation("dropped_all");
            reader.found_again(now_ms());
        }
        let head = self
            .store
            .record_if_changed(HEAD, reader.head_tag.as_deref(), 4096)
            .await;
        let tag = match head {
            Ok(None) => {
                reader.last_read = Instant::now();
                return;
            }
            Ok(Some((_, tag))) => tag,
            Err(crate::store::StoreError::NotFound) => {
                // No node has written yet.
                reader.last_read = Instant::now();
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "journal head not read");
                return;
            }
        };
        let offset = format!("{ENTRIES}{}", reader.list_from());
        let names = match self.store.records_after(ENTRIES, &offset, MAX_LISTED).await {
            Ok(names) => names,
            Err(e) => {
                tracing::debug!(error = %e, "journal not listed");
                return;
            }
        };
        if names.len() >= MAX_LISTED {
            // More changes than we may list: start again from the newest.
            cache.forget_all_metadata().await;
            metrics::invalidation("dropped_all");
        }
        for name in names {
            let Some(at) = entry_ms(&name) else { continue };
            if reader.seen(&name) {
                continue;
            }
            if !name.contains(&self.node) {
                let path = format!("{ENTRIES}{name}");
                let entry = match self.store.read_record(&path, MAX_ENTRY_BYTES).await {
                    Ok(body) => serde_json::from_slice::<Entry>(&body).unwrap_or_default(),
                    // Compacted since it was listed: older than anyone needs.
                    Err(crate::store::StoreError::NotFound) => Entry::default(),
                    Err(e) => {
                        tracing::debug!(error = %e, entry = name, "journal entry not read");
                        return; // the head tag is kept: the next poll tries again
                    }
                };
                for purge in entry.purges() {
                    cache.purge(&purge).await;
                }
                metrics::invalidation("applied");
            }
            reader.applied(name, at);
        }
        reader.head_tag = tag;
        reader.last_read = Instant::now();
    }

    /// Deletes entries older than [`RETENTION`].
    async fn compact(&self) {
        let before = now_ms().saturating_sub(RETENTION.as_millis() as u64);
        let deleted = self
            .store
            .sweep_records(ENTRIES, |name| entry_ms(name).is_none_or(|at| at < before))
            .await;
        if deleted > 0 {
            tracing::debug!(deleted, "journal compacted");
        }
    }
}

/// What a node knows of the journal.
struct Reader {
    /// The head's tag at the last complete read.
    head_tag: Option<String>,
    /// Entries applied (or our own), by name, with their time.
    applied: HashMap<String, u64>,
    /// The newest entry time seen, or when reading started.
    newest_ms: u64,
    /// The last time the journal was read completely.
    last_read: Instant,
}

impl Reader {
    fn new(now_ms: u64) -> Self {
        Self {
            head_tag: None,
            applied: HashMap::new(),
            newest_ms: now_ms,
            last_read: Instant::now(),
        }
    }

    /// The name to list after: a window before the newest seen.
    fn list_from(&self) -> String {
        let from = self.newest_ms.saturating_sub(WINDOW.as_millis() as u64);
        format!("{from:013}")
    }

    fn seen(&self, name: &str) -> bool {
        self.applied.contains_key(name)
    }

    fn applied(&mut self, name: String, at: u64) {
        self.newest_ms = self.newest_ms.max(at);
        self.applied.insert(name, at);
        // What the next listing can still return, and no more.
        let keep_from = self.newest_ms.saturating_sub(2 * WINDOW.as_millis() as u64);
        if self.applied.len() > 64 {
            self.applied.retain(|_, at| *at >= keep_from);
        }
    }

    /// Unread for longer than half the entries live: some may be gone.
    fn lost_track(&self, now: Instant) -> bool {
        now.duration_since(self.last_read) > RETENTION / 2
    }

    /// Reading again after [`Reader::lost_track`]: from now on.
    fn found_again(&mut self, now_ms: u64) {
        *self = Self::new(now_ms);
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `<ms, 13 digits>-<node>-<seq>`: sorts by time.
fn entry_name(ms: u64, node: &str, seq: u64) -> String {
    format!("{ms:013}-{node}-{seq:010}")
}

fn entry_ms(name: &str) -> Option<u64> {
    name.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::CacheConfig;
    use crate::store::{OriginalMeta, StoreError};

    fn cache() -> Cache {
        Cache::new(
            &CacheConfig {
                memory_bytes: 1 << 20,
                shared: false,
                disk: None,
                revalidate: Duration::from_secs(3600),
                stale_if_error: Duration::ZERO,
                negative: Duration::from_secs(3600),
                slice_bytes: 1 << 20,
                journal_poll: Duration::from_secs(1),
            },
            None,
        )
    }

    /// Whether `cache` still remembers `key` as missing (no store asked).
    async fn remembered_missing(cache: &Cache, key: &ObjectKey) -> bool {
        let asked = std::sync::atomic::AtomicBool::new(false);
        let _ = cache
            .meta(
                key,
                async {
                    asked.store(true, Ordering::SeqCst);
                    Err::<OriginalMeta, _>(StoreError::NotFound)
                },
                |_| async { Ok(None) },
            )
            .await;
        !asked.load(Ordering::SeqCst)
    }

    /// Two nodes on one (local) store: what one records, the other applies
    /// at its next poll, once; its own entries it skips; an idle poll lists
    /// nothing; compaction deletes only what is older than the retention.
    #[tokio::test]
    async fn another_node_applies_an_entry_once_and_compaction_keeps_the_recent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path(), Duration::from_secs(5)).unwrap();
        let a = Journal::new(store.clone(), Duration::from_secs(1)).unwrap();
        let b = Journal::new(store.clone(), Duration::from_secs(1)).unwrap();
        let (cache_a, cache_b) = (cache(), cache());
        let (mut reader_a, mut reader_b) = (Reader::new(now_ms()), Reader::new(now_ms()));
        let key = ObjectKey::parse("x/y.jpg").unwrap();
        assert!(!remembered_missing(&cache_b, &key).await);
        assert!(remembered_missing(&cache_b, &key).await);
        assert!(!remembered_missing(&cache_a, &key).await);

        b.poll(&mut reader_b, &cache_b).await; // no head yet
        a.record(&[Purge::Key(key.clone())]).await;
        b.poll(&mut reader_b, &cache_b).await;
        assert!(
            !remembered_missing(&cache_b, &key).await,
            "B applied A's entry"
        );
        assert!(remembered_missing(&cache_b, &key).await);
        assert_eq!(reader_b.applied.len(), 1);
        // The head has not changed: nothing is listed or applied again.
        b.poll(&mut reader_b, &cache_b).await;
        assert!(remembered_missing(&cache_b, &key).await);
        // A skips its own entry.
        a.poll(&mut reader_a, &cache_a).await;
        assert!(remembered_missing(&cache_a, &key).await);
        assert_eq!(reader_a.applied.len(), 1);

        let old = entry_name(now_ms() - RETENTION.as_millis() as u64 - 1, "old", 0);
        store
            .put_record(&format!("{ENTRIES}{old}"), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        b.compact().await;
        let left = store
            .records_after(ENTRIES, &format!("{ENTRIES}0"), 100)
            .await
            .unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(!left.contains(&old));
    }

    #[test]
    fn names_sort_by_time_and_say_it() {
        let a = entry_name(999, "n", 5);
        let b = entry_name(1_000, "n", 1);
        assert!(a < b);
        assert_eq!(entry_ms(&b), Some(1_000));
        assert_eq!(entry_ms("junk"), None);
    }

    #[test]
    fn entries_carry_keys_and_prefixes() {
        let key = ObjectKey::parse("a/b.jpg").unwrap();
        let e = Entry::of(&[Purge::Key(key.clone()), Purge::Prefix("c/".into())]);
        let back: Entry = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        let purges = back.purges();
        assert!(matches!(&purges[0], Purge::Key(k) if *k == key));
        assert!(matches!(&purges[1], Purge::Prefix(p) if p == "c/"));
        // A key that no request could name is skipped.
        let bad = Entry {
            keys: vec!["../x".into()],
            prefixes: vec![],
        };
        assert!(bad.purges().is_empty());
    }

    #[test]
    fn the_reader_lists_a_window_back_and_forgets_what_it_cannot_see_again() {
        let mut r = Reader::new(100_000);
        assert_eq!(r.list_from(), format!("{:013}", 100_000 - 30_000));
        for i in 0..100u64 {
            r.applied(entry_name(100_000 + i * 1_000, "n", i), 100_000 + i * 1_000);
        }
        assert_eq!(r.newest_ms, 199_000);
        assert!(r.seen(&entry_name(199_000, "n", 99)));
        assert!(
            !r.seen(&entry_name(100_000, "n", 0)),
            "older than two windows"
        );
        assert!(r.applied.len() <= 64 + 1);
        assert!(!r.lost_track(Instant::now()));
        assert!(r.lost_track(Instant::now() + RETENTION));
    }
}
