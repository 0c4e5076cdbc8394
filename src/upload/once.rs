//! Single-use upload URLs: the record of grants that have published.
//!
//! A presigned URL is a write capability until it expires; leaked (a log, a
//! proxy, a shared screen), it could overwrite its object again and again.
//! So a grant publishes once, unless it was made `reusable`. Only a
//! successful publish uses it up: an attempt refused for its content, or
//! cut off by a bad network, leaves the URL good for a retry.
//!
//! The record is a small object under the reserved prefix,
//! `_/grants/<exp>-<id>`, where `id` is a hash of the signed terms, written
//! create-only (`If-None-Match: *` on S3), so two nodes racing with the same
//! URL cannot both publish: the record is claimed just before publishing and
//! released if publishing fails. Records are deleted once their grant has
//! expired (by any node's sweep; the expiry is in the name), so the record
//! holds at most one small object per upload of the last `upload` lifetime
//! (at most 7 days).

use std::time::Duration;

use bytes::Bytes;

use super::UploadError;
use super::grant::Grant;
use crate::store::Store;

/// Where used grants are recorded.
const PREFIX: &str = "_/grants/";

/// How often expired records are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(600);

fn record(grant: &Grant) -> String {
    let id = blake3::hash(grant.canonical().as_bytes()).to_hex();
    format!("{PREFIX}{}-{}", grant.exp, &id[..32])
}

/// A grant's claim on its one publish; [`Claim::release`] gives it back.
pub struct Claim {
    record: Option<String>,
}

impl Claim {
    /// After a failed publish: the URL may be used again.
    pub async fn release(self, store: &Store) {
        if let Some(record) = self.record
            && let Err(e) = store.delete_record(&record).await
        {
            tracing::warn!(error = %e, record, "could not release a used-upload record");
        }
    }
}

/// `Used` if the grant is single-use and has published already: checked
/// before the body is read, so a replay costs no upload.
pub async fn check_unused(store: &Store, grant: &Grant) -> Result<(), UploadError> {
    if grant.reusable {
        return Ok(());
    }
    match store.has_record(&record(grant)).await {
        Ok(false) => Ok(()),
        Ok(true) => Err(UploadError::Used),
        Err(e) => Err(e.into()),
    }
}

/// Takes the grant's one publish (no-op for reusable grants), just before
/// publishing: a second attempt that got this far at the same time, on
/// this node or another, is refused here.
pub async fn claim(store: &Store, grant: &Grant, now: u64) -> Result<Claim, UploadError> {
    if grant.reusable {
        return Ok(Claim { record: None });
    }
    let record = record(grant);
    let body = Bytes::from(format!(
        "{{\"key\":{},\"used_at\":{now},\"expires_at\":{}}}",
        serde_json::Value::String(grant.key.as_str().to_owned()),
        grant.exp
    ));
    match store.create_record(&record, body).await {
        Ok(true) => Ok(Claim {
            record: Some(record),
        }),
        Ok(false) => Err(UploadError::Used),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the records of grants that expired before `now`; how many.
pub async fn sweep(store: &Store, now: u64) -> u64 {
    store
        .sweep_records(PREFIX, |name| {
            name.split_once('-')
                .and_then(|(exp, _)| exp.parse::<u64>().ok())
                .is_some_and(|exp| exp < now)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ObjectKey;
    use crate::upload::UploadClass;

    fn grant(exp: u64, reusable: bool) -> Grant {
        Grant {
            key: ObjectKey::parse("a.jpg").unwrap(),
            exp,
            max_bytes: 10,
            class: UploadClass::Any,
            reusable,
            if_absent: false,
            nonce: "n1".into(),
        }
    }

    #[tokio::test]
    async fn one_publish_per_grant_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path(), Duration::from_secs(5)).unwrap();
        let g = grant(1000, false);
        check_unused(&store, &g).await.unwrap();
        let first = claim(&store, &g, 5).await.unwrap();
        assert!(matches!(
            check_unused(&store, &g).await,
            Err(UploadError::Used)
        ));
        assert!(matches!(claim(&store, &g, 6).await, Err(UploadError::Used)));
        // Another grant for the same key is its own.
        claim(&store, &grant(1001, false), 6).await.unwrap();
        // A failed publish gives the URL back.
        first.release(&store).await;
        check_unused(&store, &g).await.unwrap();
        claim(&store, &g, 7).await.unwrap();
        // Reusable grants leave no record.
        let r = grant(1000, true);
        for _ in 0..3 {
            check_unused(&store, &r).await.unwrap();
            claim(&store, &r, 8).await.unwrap();
        }
        // Records of expired grants are swept, the others kept.
        assert_eq!(sweep(&store, 1001).await, 1);
        assert!(matches!(
            check_unused(&store, &grant(1001, false)).await,
            Err(UploadError::Used)
        ));
    }
}
