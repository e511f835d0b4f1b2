//! The local-disk backend (also the NFS/SMB case): private parts `root` (the root handle and
//! every lookup beneath it), `identity` (the root's marker), `mount` (`require_mount`),
//! `fast` (the non-blocking open), `read` (streaming ranges), `pace` (its read sizes) and
//! `pread` (its reads), `staging` (uploads), `ops` (listing, folders, moves, deletes).
//!
//! Every filesystem call runs on storage's own bounded share of the blocking pool
//! ([`crate::blocking::Pool`], `storage.max_threads`) under `storage.timeout_secs`, so a
//! stalled disk or hung mount turns into [`StorageError::Stalled`] (503) instead of freezing
//! the runtime or starving the database of threads — except two kinds of call the kernel
//! guarantees not to block: reads of page-cached data (`preadv2(RWF_NOWAIT)`) and opens whose
//! every component is in the dentry cache on the root's own local filesystem
//! (`openat2(RESOLVE_CACHED)`); and `region`'s `sendfile` of bytes `cachestat` has just found
//! all in the page cache, on a local filesystem only (see `region`).

mod chunk;
mod fast;
mod fskind;
mod identity;
mod lease;
mod mount;
mod ops;
mod pace;
mod pread;
mod read;
mod region;
mod resolve;
mod root;
mod staging;
pub use fskind::fs_kind_of;
pub(crate) use mount::{is_mount_point, NOT_A_MOUNT};
#[cfg(test)]
mod tests;
mod trash;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{
    Entry, Found, Listing, MediaPath, Object, OnDurable, ProbeSource, Space, Storage, StorageError,
    Upload, UploadOptions,
};
use crate::blocking::{Pool, Watch};
pub(crate) use identity::parse_marker;
pub use identity::{Established, MARKER};
use lease::ChunkBudget;
pub(crate) use ops::write_err;
use read::LocalObject;
use root::Root;
pub use staging::{NodeDir, STAGING_DIR};
pub use trash::TRASH_DIR;

#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub allow_symlink_escape: bool,
    pub timeout: Duration,
    pub chunk_size: usize,
    /// This node's folder inside staging folders (the sync node id), so nodes sharing one
    /// media folder never touch each other's staged uploads.
    pub node: NodeDir,
}

pub struct LocalStorage {
    root: Arc<Root>,
    opts: LocalOptions,
    /// The root with symlinks resolved, for the non-blocking open, and what `statfs` says
    /// the root is (`"local"`, `"nfs"`, …): taken once the root exists (at `new`, or at
    /// `establish` for a new install whose root it creates).
    probed: std::sync::OnceLock<(PathBuf, &'static str)>,
    /// Non-blocking opens are possible (local filesystem, kernel has `RESOLVE_CACHED`).
    fast_open: AtomicBool,
    /// When the fast path last verified the marker (ms since `started`; 0: never).
    marker_seen_ms: AtomicU64,
    started: std::time::Instant,
    budget: Arc<ChunkBudget>,
    /// Storage's threads (see `crate::blocking::Pool`).
    pool: Threads,
    /// The last call found the root away (hung, unmounted, another volume): the moment it
    /// goes and the moment it answers again are logged once each, not per request.
    down: AtomicBool,
}

/// Storage's two bounded pools: one for calls (open, read, list, commit …), one for the
/// long-lived upload writers, so uploads that trickle in never hold the threads reads need.
#[derive(Clone)]
pub(super) struct Threads {
    pub calls: Arc<Pool>,
    pub writers: Arc<Pool>,
}

impl Threads {
    /// `n` threads for calls, half as many (at least one) for upload writers.
    fn new(n: usize) -> Self {
        Threads {
            calls: Pool::new(n),
            writers: Pool::new(n.div_ceil(2)),
        }
    }
}

/// Threads storage may hold at once by default: enough for a Pi's disk and a few dozen
/// streams, few enough that hung reads leave most of the blocking pool to the database.
pub const DEFAULT_MAX_THREADS: usize = 32;

/// The error says the media root must be a mount point and is not (`storage.require_mount`).
pub fn not_mounted(e: &StorageError) -> bool {
    matches!(e, StorageError::Unavailable(m) if m == mount::NOT_A_MOUNT)
}

/// How long a marker verified on the read fast path stays trusted (see `marker_fresh`).
const MARKER_RECHECK: Duration = Duration::from_secs(1);

impl LocalStorage {
    /// A backend over the folder `root`. Nothing is checked, created or looked at here (a hung
    /// mount cannot stall it): the root's identity and filesystem are settled by
    /// [`LocalStorage::establish`]; until then (or while the disk is away) operations say so.
    pub fn new(root: &Path, opts: LocalOptions) -> Self {
        LocalStorage {
            root: Arc::new(Root::new(root, opts.allow_symlink_escape)),
            opts,
            fast_open: AtomicBool::new(false),
            marker_seen_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
            probed: std::sync::OnceLock::new(),
            budget: Arc::default(),
            pool: Threads::new(DEFAULT_MAX_THREADS),
            down: AtomicBool::new(false),
        }
    }

    /// At most `n` storage calls run at once (`storage.max_threads`; upload writers have
    /// half as many threads of their own); more wait within their timeout, or fail at once
    /// while every thread is stuck.
    pub fn with_max_threads(mut self, n: usize) -> Self {
        self.pool = Threads::new(n);
        self
    }

    /// The media root must be a mount point (`storage.require_mount`): an NFS root whose
    /// server was not mounted is the empty folder beneath it, never written to.
    pub fn with_require_mount(mut self, on: bool) -> Self {
        self.root =
            Arc::new(Root::new(self.root.path(), self.opts.allow_symlink_escape).require_mount(on));
        self
    }

    /// Settles the root's real path and filesystem kind once the root exists; the fast open
    /// is on only for a local filesystem.
    fn probe(&self) {
        if self.probed.get().is_some() {
            return;
        }
        if let Ok(canon) = self.root.path().canonicalize() {
            let kind = fs_kind_of(&canon);
            if self.probed.set((canon, kind)).is_ok() {
                self.fast_open.store(kind == "local", Ordering::Relaxed);
            }
        }
    }

    /// Settles the root's identity (see `identity`), removes what crashed one-shot uploads
    /// left in this node's staging folder and moves resumable uploads of the previous staging
    /// layout into it (see `staging::tidy`). Blocking; call at start.
    pub fn establish(
        &self,
        recorded: Option<&str>,
        indexed: u64,
    ) -> Result<Established, StorageError> {
        // The recorded identity is in force before the first call that may wait on the disk.
        let est = self.root.establish(recorded, indexed);
        self.probe();
        let est = est?;
        self.tidy();
        Ok(est)
    }

    /// Removes what crashed one-shot uploads of this node left in its staging folder.
    /// Blocking.
    pub fn tidy(&self) {
        if let Ok(root) = self.root.open() {
            let staging::Tidied { removed, moved } = staging::tidy(&root, &self.opts.node);
            if removed > 0 {
                tracing::warn!(
                    count = removed,
                    "removed partial uploads left by an earlier crash or kill"
                );
            }
            if moved > 0 {
                tracing::info!(
                    count = moved,
                    "moved resumable uploads into this node's staging folder"
                );
            }
        }
    }

    /// Removes this node's staging folder if empty (`storage copy`'s end). Blocking.
    pub fn release_staging(&self) {
        if let Ok(root) = self.root.open() {
            staging::release(&root, &self.opts.node);
        }
    }

    /// The volume id in the root's marker, if there is one (for `storage copy`). Blocking.
    pub fn volume_id(&self) -> Result<Option<String>, StorageError> {
        self.root.marker_id()
    }

    /// Writes the root's marker (what `storage copy` does once everything else is copied).
    /// Blocking.
    pub fn write_volume_id(&self, id: &str) -> Result<(), StorageError> {
        self.root.write_marker_id(id)
    }

    /// Filesystem kind of the media root as detected at start.
    pub fn fs_kind(&self) -> &'static str {
        self.probed.get().map_or("unknown", |p| p.1)
    }

    async fn blocking<T, F>(&self, op: &'static str, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Root) -> Result<T, StorageError> + Send + 'static,
    {
        let root = self.root.clone();
        let r = self
            .pool
            .calls
            .run(op, self.opts.timeout, move || f(&root))
            .await;
        self.note(op, r.as_ref().err());
        r
    }

    /// A call that changes the root in steps: each step first checks that its caller still
    /// waits ([`ops::go_on`]), so a change answered 503 is not carried further later.
    async fn changing<T, F>(&self, op: &'static str, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Root, &Watch) -> Result<T, StorageError> + Send + 'static,
    {
        let root = self.root.clone();
        let r = self
            .pool
            .calls
            .run_watched(op, self.opts.timeout, move |w| f(&root, w))
            .await;
        self.note(op, r.as_ref().err());
        r
    }

    /// Logs a change between "the root answers" and "it does not" (see `down`).
    fn note(&self, op: &'static str, e: Option<&StorageError>) {
        let down = matches!(
            e,
            Some(StorageError::Stalled { .. } | StorageError::Unavailable(_))
        );
        if self.down.load(Ordering::Relaxed) == down
            || self.down.swap(down, Ordering::AcqRel) == down
        {
            return;
        }
        match e {
            Some(e) if down => {
                tracing::warn!(op, error = %e, "media storage: not answering or not usable")
            }
            _ => tracing::info!(op, "media storage: answering again"),
        }
    }

    /// The file is on the root's own filesystem, not on a mount beneath it (where a hung
    /// FUSE or NFS server would hang a runtime worker in `sendfile`).
    fn on_root_device(&self, md: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        let dev = self.root.ident.lock().ok().and_then(|i| i.dev);
        dev == Some(md.dev())
    }

    fn object(&self, file: File, path: &MediaPath) -> Result<Arc<dyn Object>, StorageError> {
        // On the root's local filesystem (or from the blocking pool): fstat does not block.
        let md = file.metadata().map_err(|e| StorageError::from_io(&e))?;
        if md.is_dir() {
            return Err(StorageError::IsDirectory);
        }
        if !md.is_file() {
            // FIFOs, devices, sockets: reading them could block or never end.
            return Err(StorageError::NotFound);
        }
        // How a read that meets ESTALE (an NFS handle the server forgot) gets the file back.
        let (root, p) = (self.root.clone(), path.clone());
        let reopen: read::Reopen = Arc::new(move || {
            let dir = root.open()?;
            root.file(&dir, &p)
        });
        Ok(Arc::new(
            LocalObject::new(
                file,
                reopen,
                &md,
                self.opts.timeout,
                self.opts.chunk_size,
                self.budget.clone(),
                self.pool.calls.clone(),
            )
            .zero_copy(self.fs_kind() == "local" && self.on_root_device(&md)),
        ))
    }
}

#[async_trait::async_trait]
impl Storage for LocalStorage {
    fn kind(&self) -> &'static str {
        self.fs_kind()
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.blocking("check", |root| {
            let dir = root.open()?;
            // Readable, not only present.
            rustix::fs::Dir::read_from(&dir).map_err(|e| {
                StorageError::Unavailable(format!(
                    "media root: {}",
                    super::errno_message(&e.into())
                ))
            })?;
            Ok(())
        })
        .await
    }

    async fn space(&self) -> Result<Space, StorageError> {
        self.blocking("space", |root| {
            // Through the verified root handle: an unmounted disk is `Unavailable`, never
            // the space of the empty mount point.
            let dir = root.open()?;
            let st = rustix::fs::fstatvfs(&dir).map_err(|e| {
                StorageError::Unavailable(format!(
                    "media root: {}",
                    super::errno_message(&e.into())
                ))
            })?;
            Ok(Space {
                free: st.f_bavail.saturating_mul(st.f_frsize),
                total: st.f_blocks.saturating_mul(st.f_frsize),
            })
        })
        .await
    }

    async fn open(&self, path: &MediaPath) -> Result<Arc<dyn Object>, StorageError> {
        let file = match self.open_fast(path) {
            Some(r) => r?,
            None => {
                let p = path.clone();
                self.blocking("open", move |root| {
                    let dir = root.open()?;
                    root.file(&dir, &p)
                })
                .await?
            }
        };
        self.object(file, path)
    }

    async fn stat(&self, path: &MediaPath) -> Result<Option<Entry>, StorageError> {
        let p = path.clone();
        self.blocking("stat", move |root| ops::stat(root, &p)).await
    }

    async fn lookup(&self, path: &MediaPath) -> Result<Found, StorageError> {
        let p = path.clone();
        self.blocking("stat", move |root| ops::lookup(root, &p))
            .await
    }

    async fn list(&self, dir: &MediaPath) -> Result<Listing, StorageError> {
        let p = dir.clone();
        self.blocking("list", move |root| ops::list(root, &p)).await
    }

    async fn begin_upload(
        &self,
        dest: &MediaPath,
        opts: UploadOptions,
    ) -> Result<Box<dyn Upload>, StorageError> {
        let (p, timeout, node) = (dest.clone(), self.opts.timeout, self.opts.node.clone());
        let (root, pool) = (self.root.clone(), self.pool.clone());
        let up = self
            .blocking("create", move |_| {
                staging::begin(root, pool, &node, &p, opts, timeout)
            })
            .await?;
        Ok(Box::new(up))
    }

    async fn resume_upload(
        &self,
        key: &str,
        durable: u64,
        on_durable: Option<OnDurable>,
    ) -> Result<Box<dyn Upload>, StorageError> {
        let (key, timeout, node) = (key.to_string(), self.opts.timeout, self.opts.node.clone());
        let (root, pool) = (self.root.clone(), self.pool.clone());
        let up = self
            .blocking("resume", move |_| {
                staging::resume(root, pool, &node, &key, durable, on_durable, timeout)
            })
            .await?;
        Ok(Box::new(up))
    }

    async fn discard_upload(&self, key: &str) -> Result<(), StorageError> {
        let (key, node) = (key.to_string(), self.opts.node.clone());
        self.blocking("discard", move |root| staging::discard(root, &node, &key))
            .await
    }

    async fn upload_keys(&self) -> Result<Vec<(String, std::time::SystemTime)>, StorageError> {
        let node = self.opts.node.clone();
        self.blocking("list uploads", move |root| staging::keys(root, &node))
            .await
    }

    async fn create_dir(&self, path: &MediaPath) -> Result<(), StorageError> {
        let p = path.clone();
        self.blocking("mkdir", move |root| ops::create_dir(root, &p))
            .await
    }

    async fn delete(&self, path: &MediaPath) -> Result<(), StorageError> {
        let p = path.clone();
        self.changing("delete", move |root, w| ops::delete(root, &p, w))
            .await
    }

    async fn rename(
        &self,
        from: &MediaPath,
        to: &MediaPath,
        overwrite: bool,
    ) -> Result<(), StorageError> {
        let (f, t) = (from.clone(), to.clone());
        self.changing("rename", move |root, w| {
            ops::rename(root, &f, &t, overwrite, w)
        })
        .await
    }

    fn has_trash(&self) -> bool {
        true
    }

    fn overdue(&self) -> usize {
        self.pool.calls.stuck() + self.pool.writers.stuck()
    }

    async fn trash(&self, path: &MediaPath, key: &str) -> Result<(), StorageError> {
        let (p, k) = (path.clone(), key.to_string());
        self.changing("trash", move |root, w| trash::trash(root, &p, &k, w))
            .await
    }

    async fn untrash(&self, key: &str, to: &MediaPath) -> Result<Vec<MediaPath>, StorageError> {
        let (k, t) = (key.to_string(), to.clone());
        self.changing("untrash", move |root, w| trash::untrash(root, &k, &t, w))
            .await
    }

    async fn purge(&self, key: &str) -> Result<(), StorageError> {
        let k = key.to_string();
        self.blocking("purge", move |root| trash::purge(root, &k))
            .await
    }

    async fn trash_keys(&self) -> Result<Vec<String>, StorageError> {
        self.blocking("trash keys", trash::keys).await
    }

    async fn real_path(&self, path: &MediaPath) -> Result<Option<MediaPath>, StorageError> {
        let p = path.clone();
        self.blocking("resolve", move |root| {
            let dir = root.open()?;
            root.real_path(&dir, &p)
        })
        .await
    }

    async fn probe_source(&self, path: &MediaPath) -> Result<ProbeSource, StorageError> {
        let p = path.clone();
        self.blocking("open", move |root| {
            let dir = root.open()?;
            Ok(ProbeSource::File(root.file(&dir, &p)?))
        })
        .await
    }
}
