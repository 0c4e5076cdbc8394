//! Publishing: uploads are staged beside the data (local) or in a private
//! temporary directory (S3), then made the object in one step — a rename,
//! a single `PUT` or a completed multipart upload — so readers see the old
//! object or the new one, never a part.

use std::path::{Path, PathBuf};

use object_store::{ObjectStoreExt, PutMode, WriteMultipart};

use super::{STAGING_DIR, Staging, Store, StoreError};
use crate::key::ObjectKey;
use crate::metrics;

/// Uploads to S3 go in parts of this size (S3's minimum is 5 MiB), two in
/// flight, so a 25 MB upload holds at most ~10 MB in memory.
const PART_SIZE: usize = 5 << 20;

impl Store {
    /// A directory for files being uploaded.
    pub fn staging_dir(&self) -> PathBuf {
        match &self.staging {
            Staging::Local { root } => root.join(STAGING_DIR),
            Staging::Remote { dir } => dir.path().to_path_buf(),
        }
    }

    /// Makes a complete, validated staged file the object `key`, atomically:
    /// readers see the old object or the new one, never a part. With
    /// `create_only`, an existing object is left as it is (`Exists`).
    pub async fn publish(
        &self,
        key: &ObjectKey,
        staged: tempfile::TempPath,
        create_only: bool,
    ) -> Result<(), StoreError> {
        let result = match &self.staging {
            Staging::Local { root } => {
                publish_local(root.join(key.as_str()), staged, create_only).await
            }
            Staging::Remote { .. } => self.publish_remote(key, &staged, create_only).await,
        };
        let outcome = match &result {
            Ok(()) => "ok",
            Err(StoreError::Exists) => "exists",
            Err(_) => "error",
        };
        metrics::store_request("put", outcome);
        result
    }

    /// One `PUT` (create-only: `If-None-Match: *`, which AWS S3, MinIO, R2
    /// and Ceph honour), or a multipart upload for large files. A multipart
    /// upload cannot be made create-only through object_store, so there a
    /// `HEAD` just before is the check: two create-only uploads of the same
    /// large file racing each other could both pass it.
    async fn publish_remote(
        &self,
        key: &ObjectKey,
        staged: &Path,
        create_only: bool,
    ) -> Result<(), StoreError> {
        use tokio::io::AsyncReadExt as _;
        let io = |e: std::io::Error| StoreError::Unavailable(e.to_string());
        let mut file = tokio::fs::File::open(staged).await.map_err(io)?;
        let len = file.metadata().await.map_err(io)?.len();
        if len <= PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            file.read_to_end(&mut buf).await.map_err(io)?;
            let mode = if create_only {
                PutMode::Create
            } else {
                PutMode::Overwrite
            };
            let put = self
                .inner
                .put_opts(key.store_path(), buf.into(), mode.into());
            return self.timed("put", put).await.map(|_| ());
        }
        if create_only {
            self.absent(key).await?;
        }
        let upload = self
            .timed("put", self.inner.put_multipart(key.store_path()))
            .await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(io(e));
                }
            };
            if let Err(e) = self.timed("put", writer.wait_for_capacity(2)).await {
                let _ = writer.abort().await;
                return Err(e);
            }
            writer.write(&buf[..n]);
        }
        self.timed("put", writer.finish()).await.map(|_| ())
    }

    /// `Exists` if `key` is there: the check before a create-only write
    /// where the write itself cannot be conditional.
    pub async fn absent(&self, key: &ObjectKey) -> Result<(), StoreError> {
        match self.head(key).await {
            Ok(_) => Err(StoreError::Exists),
            Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// fsync the staged file, rename it over the destination (create-only: a
/// link, which fails if the name exists), fsync the directory.
async fn publish_local(
    dest: PathBuf,
    staged: tempfile::TempPath,
    create_only: bool,
) -> Result<(), StoreError> {
    let published = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::File::open(&staged)?.sync_all()?;
        let parent = dest.parent().unwrap_or(Path::new(".")).to_path_buf();
        std::fs::create_dir_all(&parent)?;
        // On failure the TempPath is dropped, which deletes the staged file.
        if create_only {
            staged.persist_noclobber(&dest).map_err(|e| e.error)?;
        } else {
            staged.persist(&dest).map_err(|e| e.error)?;
        }
        std::fs::File::open(&parent)?.sync_all()
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))
    .and_then(|r| r);
    if let Err(e) = &published
        && e.kind() == std::io::ErrorKind::AlreadyExists
    {
        return Err(StoreError::Exists);
    }
    published.map_err(|e| e.to_string()).map_err(|e| {
        // The answer says only "storage unavailable"; the operator needs why
        // (a full disk, a missing directory).
        tracing::warn!(error = %e, "publishing an upload failed");
        StoreError::Unavailable(e)
    })
}
