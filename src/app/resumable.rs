//! Resumable (tus) uploads as use cases: create, find, append, commit, terminate. The state
//! is `tus` (SQLite), the bytes are a staged upload in storage under a key, and a completed
//! upload is committed exactly like a PUT and indexed as its creator's.
//!
//! An upload belongs to the user who created it: anyone else is told it does not exist.

use std::sync::Arc;
use std::time::Duration;

use super::files::{Files, FilesError};
use crate::auth::{now_secs, User};
use crate::blocking;
use crate::metrics::Metrics;
use crate::storage::{ByteSource, MediaPath, Storage, StorageError, UploadOptions};
use crate::tus::{self, AppendError, Checksum, Span, Tus, TusError, Upload};

#[derive(Debug, thiserror::Error)]
pub enum ResumableError {
    #[error("no such upload")]
    NotFound,
    #[error("this upload expired; its data was (or is being) deleted — start a new one")]
    Expired,
    #[error("another request is writing this upload; retry when it has finished")]
    Busy,
    #[error("the body does not match Upload-Checksum; it was discarded, resend it")]
    ChecksumMismatch,
    #[error("the body goes past Upload-Length ({length} bytes); it was discarded")]
    PastLength { length: u64 },
    #[error("this upload is complete")]
    Complete,
    #[error("the body ended early; resume at offset {offset}")]
    Interrupted { offset: u64 },
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error(transparent)]
    State(#[from] TusError),
}

impl From<StorageError> for ResumableError {
    fn from(e: StorageError) -> Self {
        ResumableError::Files(FilesError::Storage(e))
    }
}

impl From<crate::db::DbError> for ResumableError {
    fn from(e: crate::db::DbError) -> Self {
        ResumableError::State(TusError::Db(e))
    }
}

impl From<blocking::BlockingError> for ResumableError {
    fn from(e: blocking::BlockingError) -> Self {
        ResumableError::State(TusError::Blocking(e))
    }
}

/// A new upload as the client described it.
pub struct NewUpload {
    /// Where it goes (already `for_create`).
    pub dest: MediaPath,
    pub overwrite: bool,
    pub length: u64,
    /// The `Upload-Metadata` header as sent (echoed on HEAD).
    pub metadata: String,
}

/// Cheap handle (one `Arc`, like [`Files`]).
#[derive(Clone)]
pub struct Resumable(Arc<ResumableParts>);

/// What a [`Resumable`] shares.
pub struct ResumableParts {
    tus: Arc<Tus>,
    files: Files,
    storage: Arc<dyn Storage>,
    metrics: Arc<Metrics>,
    timeout: Duration,
}

impl std::ops::Deref for Resumable {
    type Target = ResumableParts;
    fn deref(&self) -> &ResumableParts {
        &self.0
    }
}

impl Resumable {
    pub fn new(
        tus: Arc<Tus>,
        files: Files,
        storage: Arc<dyn Storage>,
        metrics: Arc<Metrics>,
        timeout: Duration,
    ) -> Self {
        Resumable(Arc::new(ResumableParts {
            tus,
            files,
            storage,
            metrics,
            timeout,
        }))
    }

    /// When an upload last written now expires.
    pub fn expires_after_now(&self) -> i64 {
        self.tus.store.expires_after(now_secs())
    }

    pub fn max_bytes(&self) -> u64 {
        self.files.max_bytes()
    }

    /// `who`'s upload `id`: `NotFound` (unknown, or someone else's) or `Expired`.
    pub async fn find(&self, who: &User, id: &str) -> Result<Upload, ResumableError> {
        let (store, key) = (self.tus.store.clone(), id.to_string());
        let found = blocking::run_unbounded("tus get", move || store.get(&key)).await?;
        let upload = found
            .filter(|u| u.owner == who.id)
            .ok_or(ResumableError::NotFound)?;
        if upload.is_expired(now_secs()) {
            return Err(ResumableError::Expired);
        }
        Ok(upload)
    }

    /// Creates an upload (its data staged empty) and records it.
    pub async fn create(&self, who: &User, req: NewUpload) -> Result<Upload, ResumableError> {
        let limit = self.files.max_bytes();
        if req.length > limit {
            return Err(StorageError::TooLarge { limit }.into());
        }
        let target = self
            .files
            .write_target(who, &req.dest, req.overwrite)
            .await?;
        // Held until the row is written: parallel creations are counted one after another.
        let quotas = self.files.quotas.clone();
        let _gate = quotas.tus_gate().await;
        let admitted = quotas
            .admit(who, Some(req.length), true)
            .await
            .map_err(FilesError::from)?;
        let opts = UploadOptions {
            overwrite: req.overwrite,
            expected: Some(req.length),
            reserve: admitted.reserve,
            resumable: true,
            on_durable: None,
        };
        let staged = self.storage.begin_upload(&target, opts).await?;
        let key = staged.key().to_string();
        staged.close().await;
        let now = now_secs();
        let upload = Upload {
            id: crate::secret::random_token(),
            owner: who.id,
            dest: req.dest.to_string(),
            overwrite: req.overwrite,
            length: req.length,
            offset: 0,
            metadata: req.metadata,
            staged: key,
            created_at: now,
            expires_at: self.tus.store.expires_after(now),
            completed_at: None,
        };
        let (store, u) = (self.tus.store.clone(), upload.clone());
        if let Err(e) = blocking::run_unbounded("tus insert", move || store.insert(&u)).await {
            let _ = self.storage.discard_upload(&upload.staged).await;
            return Err(e.into());
        }
        tracing::info!(path = %upload.dest.escape_debug(), length = upload.length,
            "resumable upload created");
        Ok(upload)
    }

    /// Writes one body at the upload's offset; commits the file when it is complete.
    /// Returns the new offset.
    pub async fn write(
        &self,
        who: &User,
        upload: &Upload,
        body: ByteSource,
        checksum: Option<Checksum>,
    ) -> Result<u64, ResumableError> {
        if upload.is_complete() {
            return Err(ResumableError::Complete);
        }
        let Some(_busy) = self.tus.claim(&upload.id) else {
            return Err(ResumableError::Busy);
        };
        let (store, id) = (self.tus.store.clone(), upload.id.clone());
        let progress = Arc::new(move |offset: u64| {
            if let Err(e) = store.set_offset(&id, offset, now_secs()) {
                tracing::error!(upload = %id, error = %e, "cannot record upload progress");
            }
        });
        let span = Span {
            key: upload.staged.clone(),
            start: upload.offset,
            length: upload.length,
        };
        let appended = tus::append(
            &*self.storage,
            &span,
            body,
            checksum,
            self.timeout,
            progress,
        )
        .await;
        let offset = match appended {
            Ok(o) => o,
            Err(AppendError::ChecksumMismatch) => return Err(ResumableError::ChecksumMismatch),
            Err(AppendError::TooLong) => {
                return Err(ResumableError::PastLength {
                    length: upload.length,
                })
            }
            Err(AppendError::ClientGone { offset }) => {
                return Err(ResumableError::Interrupted { offset })
            }
            Err(AppendError::Storage(e)) => {
                self.metrics.observe_upload(e.outcome(), 0);
                return Err(e.into());
            }
        };
        if offset == upload.length {
            self.commit(who, upload).await?;
        }
        Ok(offset)
    }

    /// Moves a complete upload into place and indexes it. Who may write where is judged
    /// again now, as the upload may have waited for hours: a name taken meanwhile that `who`
    /// may not replace ends the upload (its data is deleted) with 409 or 403.
    async fn commit(&self, who: &User, upload: &Upload) -> Result<(), ResumableError> {
        let dest = MediaPath::from_decoded(&upload.dest)
            .map_err(|e| StorageError::Invalid(e.to_string()))?;
        let (dest, created) = match self.files.commit_target(who, &dest, upload.overwrite).await {
            Ok(t) => t,
            Err(e) => {
                let settled = match &e {
                    FilesError::Forbidden(_) | FilesError::Path(_) => true,
                    FilesError::Storage(s) => ends_upload(s),
                    FilesError::Index(_)
                    | FilesError::DataDir(_)
                    | FilesError::Busy(_)
                    | FilesError::Quota(_) => false,
                };
                if settled {
                    self.tus.remove(upload).await?;
                }
                return Err(e.into());
            }
        };
        let staged = self
            .storage
            .resume_upload(&upload.staged, upload.length, None)
            .await;
        let result = match staged {
            Ok(s) => {
                // A record that cannot be written leaves the staged data and the upload as
                // they are: the last PATCH can be retried once the data dir is writable.
                self.files
                    .commit_recorded(
                        upload.owner,
                        s,
                        upload.length,
                        &dest,
                        &created,
                        upload.overwrite,
                    )
                    .await
            }
            Err(e) => Err(e.into()),
        };
        let meta = match result {
            Ok(meta) => meta,
            Err(FilesError::Storage(e)) => {
                self.metrics.observe_upload(e.outcome(), 0);
                if ends_upload(&e) {
                    // The name was taken meanwhile; the upload cannot complete anymore.
                    self.tus.remove(upload).await?;
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        let (store, id) = (self.tus.store.clone(), upload.id.clone());
        // The file is in place and indexed as its owner's: a completion mark that cannot be
        // written only leaves a row the expiry sweep removes (its data is gone already).
        if let Err(e) =
            blocking::run_unbounded("tus complete", move || store.mark_complete(&id, now_secs()))
                .await
        {
            tracing::warn!(upload = %upload.id, error = %e, "cannot mark the upload complete");
        }
        self.metrics.observe_upload("ok", meta.size);
        tracing::info!(path = %upload.dest.escape_debug(), size = meta.size, "uploaded (tus)");
        Ok(())
    }

    /// Ends an upload: its state and data are deleted.
    pub async fn terminate(&self, upload: &Upload) -> Result<(), ResumableError> {
        let Some(_busy) = self.tus.claim(&upload.id) else {
            return Err(ResumableError::Busy);
        };
        Ok(self.tus.remove(upload).await?)
    }

    /// Drops an upload whose first body was refused (the client never learnt its URL).
    pub async fn abandon(&self, upload: &Upload) -> Result<(), ResumableError> {
        Ok(self.tus.remove(upload).await?)
    }
}

/// A commit refused for good: the name is taken (or a link there leads out or nowhere), so
/// the upload can never complete and its data is deleted.
fn ends_upload(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::AlreadyExists
            | StorageError::IsDirectory
            | StorageError::OutsideRoot
            | StorageError::NotFound
    )
}
