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
    pump, ByteSource, EntryKind, Found, LinkEnd, MediaPath, ObjectMeta, Pumped, Storage,
    StorageError, Upload, UploadOptions,
};

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A path or new name the request gave is not acceptable.
    #[error(transparent)]
    Path(#[from] crate::storage::PathError),
    /// The user may not do this (the message says what and why).
    #[error("{0}")]
    Forbidden(String),
    /// The index could not answer a question of ownership.
    #[error("library index: {0}")]
    Index(String),
    /// The index could not be read or written because of the data dir's state: an upload
    /// whose owner cannot be recorded is refused.
    #[error("library index: the data dir: {0}")]
    DataDir(crate::db::DataDirFault),
    /// Another request is working on the same thing right now.
    #[error("{0}")]
    Busy(String),
    /// Over a quota, or the usage could not be counted.
    #[error(transparent)]
    Quota(#[from] super::quota::QuotaError),
}

impl From<crate::library::LibraryError> for FilesError {
    fn from(e: crate::library::LibraryError) -> Self {
        match e {
            crate::library::LibraryError::DataDir(fault) => FilesError::DataDir(fault),
            e => FilesError::Index(e.to_string()),
        }
    }
}

impl From<super::QuotaExceeded> for FilesError {
    fn from(e: super::QuotaExceeded) -> Self {
        FilesError::Quota(e.into())
    }
}

/// One upload as the client described it. `path` is already a name for something new
/// (`MediaPath::for_create`).
pub struct PutRequest {
    pub path: MediaPath,
    pub overwrite: bool,
    /// The announced size (Content-Length), if any.
    pub expected: Option<u64>,
}

/// Cheap handle for the media-writing use cases: one `Arc`, as the state every request
/// clones carries it (one atomic per clone, not one per part).
#[derive(Clone)]
pub struct Files(Arc<FilesParts>);

/// What a [`Files`] shares.
pub struct FilesParts {
    pub(super) storage: Arc<dyn Storage>,
    pub(super) library: Library,
    metrics: Arc<Metrics>,
    /// Per-user limits and the free-disk reserve every upload is judged by.
    pub(super) quotas: super::Quotas,
    max_bytes: u64,
    timeout: Duration,
    /// Days deleted entries stay in the trash; 0: deletes are permanent.
    pub(super) trash_days: u64,
    /// Trash entries a request is restoring or purging right now (one at a time each).
    pub(super) trash_busy: std::sync::Mutex<std::collections::HashSet<i64>>,
    /// Held from an upload's record to its commit (and the record's undo): another upload
    /// to the same name cannot record or commit in between, so an undo never takes back
    /// a record that is not its own.
    commit_gate: tokio::sync::Mutex<()>,
}

impl std::ops::Deref for Files {
    type Target = FilesParts;
    fn deref(&self) -> &FilesParts {
        &self.0
    }
}

impl Files {
    pub fn new(
        storage: Arc<dyn Storage>,
        library: Library,
        metrics: Arc<Metrics>,
        quotas: super::Quotas,
        max_bytes: u64,
        timeout: Duration,
        trash_days: u64,
    ) -> Self {
        Files(Arc::new(FilesParts {
            storage,
            library,
            metrics,
            quotas,
            max_bytes,
            timeout,
            trash_days,
            trash_busy: Default::default(),
            commit_gate: tokio::sync::Mutex::new(()),
        }))
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
    /// also everything really in it, indexed or not; an admin anything.
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
        if self.owns_all(who, &real).await? {
            return Ok(());
        }
        Err(FilesError::Forbidden(format!(
            "only the member who uploaded it, or an admin, may {what} '{path}'"
        )))
    }

    /// Whether the index records `who` as the owner of `real` and of everything in it, and
    /// everything really in it is in the index: a file copied in by hand and not scanned
    /// yet, a hidden name or a link placed by hand is nobody's, so a member cannot carry it
    /// away with their folder.
    async fn owns_all(&self, who: &User, real: &MediaPath) -> Result<bool, FilesError> {
        let Some(indexed) = self.library.owned_subtree(real, who.id).await? else {
            return Ok(false);
        };
        if !matches!(self.storage.lookup(real).await?, Found::Entry(e) if e.kind == EntryKind::Dir)
        {
            return Ok(true);
        }
        let mut todo = vec![real.clone()];
        let mut seen = 0usize;
        while let Some(dir) = todo.pop() {
            let listing = self.storage.list(&dir).await?;
            if listing.hidden {
                return Ok(false);
            }
            for e in listing.entries {
                seen += 1;
                let p = dir
                    .join(&e.name)
                    .map_err(|e| StorageError::Invalid(e.to_string()))?;
                if e.via_link || seen > indexed.len() || !indexed.contains(&p.to_string()) {
                    return Ok(false);
                }
                if e.kind == EntryKind::Dir {
                    todo.push(p);
                }
            }
        }
        Ok(true)
    }

    /// Where a new file for `path` lands, if `who` may write it: `path` itself, or — when
    /// `path` is a link placed by hand to a file inside the root and `overwrite` is set —
    /// the file it leads to (ownership is that file's). Asked when an upload starts and
    /// again just before it is committed, so a name taken meanwhile (by an admin's upload, a
    /// file copied in, a link) is judged as it is then.
    pub async fn write_target(
        &self,
        who: &User,
        path: &MediaPath,
        overwrite: bool,
    ) -> Result<MediaPath, FilesError> {
        let found = self.storage.lookup(path).await?;
        let target = match found {
            Found::Nothing => {
                self.folder_shown(path).await?;
                return Ok(path.clone());
            }
            Found::Entry(e) if e.kind == EntryKind::Dir => {
                return Err(StorageError::IsDirectory.into())
            }
            Found::Link(LinkEnd::Dir(_)) => return Err(StorageError::IsDirectory.into()),
            Found::Link(LinkEnd::Outside) => return Err(StorageError::OutsideRoot.into()),
            Found::Link(LinkEnd::Nowhere) => return Err(StorageError::NotFound.into()),
            _ if !overwrite => return Err(StorageError::AlreadyExists.into()),
            Found::Link(LinkEnd::File(real)) => real,
            Found::Entry(_) | Found::Other => path.clone(),
        };
        self.may_change(who, &target, "replace").await?;
        Ok(target)
    }

    /// A new file's folder must be one listings show: through a link placed by hand to a
    /// hidden folder (or out of the root) the file would land out of sight. The nearest
    /// folder on the way that exists decides. Asked when an upload starts, so a resumable
    /// one is refused before its bytes are sent, not at commit.
    async fn folder_shown(&self, path: &MediaPath) -> Result<(), FilesError> {
        // Only a root on a filesystem (local or a network mount) holds links placed by hand.
        if matches!(self.storage.kind(), "s3" | "memory") {
            return Ok(());
        }
        let mut at = path.split_last().map(|(p, _)| p);
        while let Some(dir) = at.filter(|d| !d.is_root()) {
            match self.storage.lookup(&dir).await? {
                Found::Nothing => at = dir.split_last().map(|(p, _)| p),
                Found::Link(LinkEnd::Nowhere) => return Err(StorageError::NotFound.into()),
                Found::Link(LinkEnd::Outside) => return Err(StorageError::OutsideRoot.into()),
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Whether `who` may delete or move what `path` names (a link is itself the entry: only
    /// an admin may change one, as nobody uploaded it, and one that leads out of the root or
    /// nowhere answers as reads do). Returns what is there.
    pub(super) async fn may_change_entry(
        &self,
        who: &User,
        path: &MediaPath,
        what: &str,
    ) -> Result<Found, FilesError> {
        let found = self.storage.lookup(path).await?;
        match &found {
            Found::Nothing | Found::Link(LinkEnd::Nowhere) => {
                return Err(StorageError::NotFound.into())
            }
            Found::Link(LinkEnd::Outside) => return Err(StorageError::OutsideRoot.into()),
            Found::Link(_) if who.is_admin() => {}
            Found::Link(_) => {
                return Err(FilesError::Forbidden(format!(
                    "'{path}' is a link placed by hand: only an admin may {what} it"
                )))
            }
            Found::Entry(_) | Found::Other => self.may_change(who, path, what).await?,
        }
        Ok(found)
    }

    /// Whether `who` may move something onto `to` (replacing what is there only with
    /// `overwrite`; the move itself refuses an existing name otherwise).
    pub(super) async fn may_replace_entry(
        &self,
        who: &User,
        to: &MediaPath,
        overwrite: bool,
    ) -> Result<(), FilesError> {
        match self.storage.lookup(to).await? {
            Found::Nothing => Ok(()),
            Found::Link(LinkEnd::Nowhere) => Err(StorageError::NotFound.into()),
            Found::Link(LinkEnd::Outside) => Err(StorageError::OutsideRoot.into()),
            _ if !overwrite => Err(StorageError::AlreadyExists.into()),
            Found::Link(_) => self.may_change_entry(who, to, "replace").await.map(|_| ()),
            Found::Entry(_) | Found::Other => self.may_change(who, to, "replace").await,
        }
    }

    /// Folders on the way to `path` that do not exist yet, outermost first: an upload that
    /// commits there creates them, and they are its uploader's (so they can remove them).
    async fn missing_folders(&self, path: &MediaPath) -> Result<Vec<MediaPath>, FilesError> {
        let mut out = Vec::new();
        let Some((parent, _)) = path.split_last() else {
            return Ok(out);
        };
        if parent.is_root() || self.storage.stat(&parent).await?.is_some() {
            return Ok(out);
        }
        let mut so_far = MediaPath::root();
        for seg in parent.segments() {
            so_far = so_far
                .join(seg)
                .map_err(|e| StorageError::Invalid(e.to_string()))?;
            if !out.is_empty() || self.storage.stat(&so_far).await?.is_none() {
                out.push(so_far.clone());
            }
        }
        Ok(out)
    }

    /// Just before a commit: where the upload lands (judged now, see `write_target`) and
    /// the folders the commit will create there.
    pub async fn commit_target(
        &self,
        who: &User,
        path: &MediaPath,
        overwrite: bool,
    ) -> Result<(MediaPath, Vec<MediaPath>), FilesError> {
        let target = self.write_target(who, path, overwrite).await?;
        let created = self.missing_folders(&target).await?;
        Ok((target, created))
    }

    /// Commits a finished upload of `size` bytes to `target` as `owner`'s: the index rows
    /// (the file and the folders the commit makes, `created`) are written first, then the
    /// file is renamed into place, then its exact size and mtime are recorded. A record
    /// that cannot be written refuses the upload before anything is visible (the staged
    /// data is closed: dropped, or kept to resume for tus); a commit that fails takes the
    /// record back. So no file appears without its owner in the index.
    pub(super) async fn commit_recorded(
        &self,
        owner: i64,
        up: Box<dyn Upload>,
        size: u64,
        target: &MediaPath,
        created: &[MediaPath],
        overwrite: bool,
    ) -> Result<ObjectMeta, FilesError> {
        let real = self.real(target).await.unwrap_or_else(|_| target.clone());
        let mut real_created = Vec::with_capacity(created.len());
        for f in created {
            real_created.push(self.real(f).await.unwrap_or_else(|_| f.clone()));
        }
        let _gate = self.commit_gate.lock().await;
        let recorded = match self
            .library
            .record_upload(&real_created, &real, size, owner)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                up.close().await;
                tracing::warn!(path = %target.to_string().escape_debug(), error = %e,
                    "upload refused: its owner cannot be recorded");
                return Err(e.into());
            }
        };
        match up.commit(target, overwrite).await {
            Ok(meta) => {
                self.library.record_committed(&real, &meta, owner).await;
                Ok(meta)
            }
            // The rename may still land: the record stays until that is known.
            Err(e @ StorageError::Stalled { .. }) => {
                self.settle(super::settle::Late::Upload {
                    rec: recorded,
                    target: target.clone(),
                    size,
                });
                Err(e.into())
            }
            Err(e) => {
                self.library.undo_upload(recorded).await;
                Err(e.into())
            }
        }
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
        let limit = self.max_bytes;
        let result = async {
            let target = self.write_target(who, &req.path, req.overwrite).await?;
            if req.expected.is_some_and(|n| n > limit) {
                return Err(StorageError::TooLarge { limit }.into());
            }
            let admitted = self.quotas.admit(who, req.expected, false).await?;
            let opts = UploadOptions {
                overwrite: req.overwrite,
                expected: req.expected,
                reserve: admitted.reserve,
                ..Default::default()
            };
            let mut up = self.storage.begin_upload(&target, opts).await?;
            // A body of unknown length stops where the user's media quota does.
            let cap = admitted.room.map_or(limit, |room| room.min(limit));
            let pumped = pump(&mut body, up.as_mut(), cap, self.timeout, |_| {}).await;
            let failed = match pumped {
                Pumped::Complete => None,
                Pumped::TooLong if cap < limit => {
                    up.close().await;
                    return Err(super::QuotaExceeded::MediaBytes {
                        used: admitted.used,
                        adding: None,
                        limit: admitted.limit,
                    }
                    .into());
                }
                Pumped::TooLong => Some(StorageError::TooLarge { limit }),
                Pumped::ClientGone(e) => Some(StorageError::ClientGone(e)),
                Pumped::Failed(e) => Some(e),
            };
            if let Some(e) = failed {
                up.close().await;
                return Err(e.into());
            }
            // Judged again now: the name may have been taken while the body streamed.
            let (target, created) = match self.commit_target(who, &req.path, req.overwrite).await {
                Ok(t) => t,
                Err(e) => {
                    up.close().await;
                    return Err(e);
                }
            };
            let size = match up.finish().await {
                Ok(n) => n,
                Err(e) => {
                    up.close().await;
                    return Err(e.into());
                }
            };
            let meta = self
                .commit_recorded(who.id, up, size, &target, &created, req.overwrite)
                .await;
            // Counted as in flight until the index records the file.
            drop(admitted.hold);
            meta
        }
        .await;
        let meta = self.counted(result, |m| m.size)?;
        tracing::info!(path = %req.path.to_string().escape_debug(), size = meta.size, "uploaded");
        Ok(meta)
    }

    /// A new folder and the missing parents it makes, all owned by `who` (as an upload's
    /// are: its creator can remove the whole new branch). Folders whose owner cannot be
    /// recorded are removed again (they are empty: nothing is lost) and the error returned.
    pub async fn create_folder(&self, who: &User, path: &MediaPath) -> Result<(), FilesError> {
        let mut made = self.missing_folders(path).await?;
        made.push(path.clone());
        self.storage.create_dir(path).await?;
        let mut recorded = Ok(());
        for dir in &made {
            let real = self.real(dir).await.unwrap_or_else(|_| dir.clone());
            recorded = self.library.try_record_folder(&real, who.id).await;
            if recorded.is_err() {
                break;
            }
        }
        if let Err(e) = recorded {
            for dir in made.iter().rev() {
                if let Err(gone) = self.storage.delete(dir).await {
                    tracing::warn!(path = %dir.to_string().escape_debug(), error = %gone,
                        "cannot remove a folder whose owner was not recorded");
                    break;
                }
            }
            return Err(e.into());
        }
        Ok(())
    }
}
