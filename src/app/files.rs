//! Writing media: one-shot uploads (PUT and each multipart file), folders, moves and deletes,
//! each recorded in the library index as it happens and counted in the metrics.
//!
//! Who may change what: members add files and folders; a member may replace, move or delete
//! what they uploaded (the library index records the uploader; for a folder, everything in
//! it); admins may change anything. A path that does not exist is left to storage to report.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::User;
use crate::library::Library;
use crate::metrics::Metrics;
use crate::storage::{
    pump, ByteSource, MediaPath, ObjectMeta, Pumped, Storage, StorageError, UploadOptions,
};

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The user may not do this (the message says what and why).
    #[error("{0}")]
    Forbidden(String),
    /// The index could not answer a question of ownership.
    #[error("library index: {0}")]
    Index(String),
}

/// One upload as the client described it. `path` is already a name for something new
/// (`MediaPath::for_create`).
pub struct PutRequest {
    pub path: MediaPath,
    pub overwrite: bool,
    /// The announced size (Content-Length), if any.
    pub expected: Option<u64>,
}

/// Cheap handle for the media-writing use cases.
#[derive(Clone)]
pub struct Files {
    storage: Arc<dyn Storage>,
    library: Library,
    metrics: Arc<Metrics>,
    max_bytes: u64,
    timeout: Duration,
}

impl Files {
    pub fn new(
        storage: Arc<dyn Storage>,
        library: Library,
        metrics: Arc<Metrics>,
        max_bytes: u64,
        timeout: Duration,
    ) -> Self {
        Files {
            storage,
            library,
            metrics,
            max_bytes,
            timeout,
        }
    }

    /// The largest upload taken (`uploads.max_bytes`).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Where the entry `path` names really is: its folder with links followed, and its own
    /// name (an entry that is itself a link is the link — a delete or a move acts on it, not
    /// on its target). What the index records and ownership is checked on, so it follows
    /// the file, not the alias a client typed.
    pub async fn real(&self, path: &MediaPath) -> Result<MediaPath, FilesError> {
        let Some((parent, name)) = path.split_last() else {
            return Ok(MediaPath::root());
        };
        let Some(dir) = self.storage.real_path(&parent).await? else {
            // Outside the root (escapes allowed): the index has nothing there.
            return Ok(path.clone());
        };
        Ok(dir
            .join(name)
            .map_err(|e| StorageError::Invalid(e.to_string()))?)
    }

    /// A member may change (replace, move, delete) only what they uploaded — for a folder,
    /// also everything in it; an admin anything.
    pub async fn may_change(
        &self,
        who: &User,
        path: &MediaPath,
        what: &str,
    ) -> Result<(), FilesError> {
        if who.is_admin() {
            return Ok(());
        }
        let real = self.real(path).await?;
        let owns = self
            .library
            .owns_subtree(&real, who.id)
            .await
            .map_err(|e| FilesError::Index(e.to_string()))?;
        if owns {
            return Ok(());
        }
        Err(FilesError::Forbidden(format!(
            "only the member who uploaded it, or an admin, may {what} '{path}'"
        )))
    }

    /// Replacing an existing file is changing it; writing a new name is open to every member.
    pub async fn may_write(
        &self,
        who: &User,
        path: &MediaPath,
        overwrite: bool,
    ) -> Result<(), FilesError> {
        if overwrite && self.storage.stat(path).await?.is_some() {
            self.may_change(who, path, "replace").await?;
        }
        Ok(())
    }

    /// Counts a finished upload by its outcome.
    fn counted<T>(
        &self,
        r: Result<T, FilesError>,
        size: impl Fn(&T) -> u64,
    ) -> Result<T, FilesError> {
        match &r {
            Ok(v) => self.metrics.observe_upload("ok", size(v)),
            Err(FilesError::Storage(e)) => self.metrics.observe_upload(e.outcome(), 0),
            Err(_) => {}
        }
        r
    }

    /// Streams `body` into a new file: nothing is visible until it is complete and durable,
    /// and a failure leaves nothing behind. The file is indexed as `who`'s.
    pub async fn put(
        &self,
        who: &User,
        req: PutRequest,
        mut body: ByteSource,
    ) -> Result<ObjectMeta, FilesError> {
        self.may_write(who, &req.path, req.overwrite).await?;
        let limit = self.max_bytes;
        let result = async {
            if req.expected.is_some_and(|n| n > limit) {
                return Err(StorageError::TooLarge { limit }.into());
            }
            let opts = UploadOptions {
                overwrite: req.overwrite,
                expected: req.expected,
                ..Default::default()
            };
            let mut up = self.storage.begin_upload(&req.path, opts).await?;
            let pumped = pump(&mut body, up.as_mut(), limit, self.timeout, |_| {}).await;
            let failed = match pumped {
                Pumped::Complete => None,
                Pumped::TooLong => Some(StorageError::TooLarge { limit }),
                Pumped::ClientGone(e) => Some(StorageError::ClientGone(e)),
                Pumped::Failed(e) => Some(e),
            };
            if let Some(e) = failed {
                up.close().await;
                return Err(e.into());
            }
            Ok(up.commit(&req.path, req.overwrite).await?)
        }
        .await;
        let meta = self.counted(result, |m| m.size)?;
        tracing::info!(path = %req.path.to_string().escape_debug(), size = meta.size, "uploaded");
        let real = self.real(&req.path).await.unwrap_or(req.path);
        self.library.record_write(&real, &meta, Some(who.id)).await;
        Ok(meta)
    }

    /// A new folder (and missing parents), owned by `who`.
    pub async fn create_folder(&self, who: &User, path: &MediaPath) -> Result<(), FilesError> {
        self.storage.create_dir(path).await?;
        let real = self.real(path).await.unwrap_or_else(|_| path.clone());
        self.library.record_folder(&real, Some(who.id)).await;
        Ok(())
    }

    /// Moves a file or folder; replacing an existing target needs the right to change it.
    pub async fn move_entry(
        &self,
        who: &User,
        from: &MediaPath,
        to: &MediaPath,
        overwrite: bool,
    ) -> Result<(), FilesError> {
        if from.is_root() {
            return Err(FilesError::Forbidden(
                "the media root cannot be moved".into(),
            ));
        }
        self.may_change(who, from, "move").await?;
        if overwrite && self.storage.stat(to).await?.is_some() {
            self.may_change(who, to, "replace").await?;
        }
        let real_from = self.real(from).await?;
        self.storage.rename(from, to, overwrite).await?;
        let real_to = self.real(to).await.unwrap_or_else(|_| to.clone());
        self.library.record_move(&real_from, &real_to).await;
        Ok(())
    }

    /// Deletes a file or an empty folder.
    pub async fn delete(&self, who: &User, path: &MediaPath) -> Result<(), FilesError> {
        if path.is_root() {
            return Err(FilesError::Forbidden(
                "the media root cannot be deleted".into(),
            ));
        }
        self.may_change(who, path, "delete").await?;
        let real = self.real(path).await?;
        self.storage.delete(path).await?;
        tracing::info!(path = %path.to_string().escape_debug(), "deleted");
        self.library.record_delete(&real).await;
        Ok(())
    }
}
