//! Staged uploads on the local backend. Bytes go into this node's hidden staging folder
//! (`.streamhub-staging/<node-id>/` in the root, or in the deepest existing destination folder
//! when that is another filesystem, so the commit is a rename; see `layout`), through a small
//! bounded channel into one writer thread: memory stays at a few chunks however large the
//! file, and a slow disk slows the client. Commit = fsync, `renameat` (`RENAME_NOREPLACE`
//! unless overwriting) into a folder resolved beneath the root at that moment, fsync of the
//! folder. Nothing is visible under a media name before that, and a failure leaves no data
//! and no folder behind.
//!
//! Resumable (tus) uploads: `.streamhub-staging/<node-id>/resumable/<token>.upload`, key
//! `resumable/<token>.upload` (relative: survives the root mounted elsewhere); a `tus-sync`
//! thread makes written bytes durable about once a second and reports the offset.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::sync::{
    atomic::{AtomicU8, Ordering},
    Arc,
};
use std::time::Duration;

use bytes::Bytes;
use rustix::fs::{AtFlags, Mode, OFlags};
use tokio::sync::mpsc;

use super::root::{dev_of, shown, Root};
use super::{write_err, Threads};
use crate::storage::{MediaPath, ObjectMeta, OnDurable, StorageError, Upload, UploadOptions};
use commit::commit_blocking;
use layout::node_staging;
pub use layout::NodeDir;
pub(super) use layout::{release, tidy, Tidied};
use sync::{write_loop, WriterDone};

mod commit;
mod layout;
mod sync;

/// Where uploads are written before they are renamed into place.
pub const STAGING_DIR: &str = ".streamhub-staging";
/// Its subfolder for resumable uploads (kept across restarts, unlike one-shot `*.part`).
const RESUMABLE_DIR: &str = "resumable";
const QUEUE: usize = 4; // chunks queued between the request body and the writer thread

fn open_subdir(dir: &File, name: &str, create: bool) -> Result<File, StorageError> {
    super::root::own_subdir(dir, name, create, StorageError::UploadGone, STAGING_DIR)
}

/// This node's staging folder in the root (and, for resumable uploads, its subfolder).
fn root_staging(
    rootdir: &File,
    node: &NodeDir,
    resumable: bool,
    create: bool,
) -> Result<File, StorageError> {
    let staging = node_staging(rootdir, node, create)?;
    if resumable {
        open_subdir(&staging, RESUMABLE_DIR, create)
    } else {
        Ok(staging)
    }
}

/// `NoSpace` when the filesystem of `dir` cannot take `len` more bytes (space an overwritten
/// file would free is not counted: the new file is complete before the old one goes).
fn check_room(dir: &File, len: u64) -> Result<(), StorageError> {
    match rustix::fs::fstatvfs(dir) {
        Ok(st) if st.f_bavail.saturating_mul(st.f_frsize) < len => Err(StorageError::NoSpace),
        _ => Ok(()),
    }
}

/// A key names a resumable upload: `resumable/<token>.upload` and nothing else.
fn key_name(key: &str) -> Result<&str, StorageError> {
    let name = key
        .strip_prefix("resumable/")
        .filter(|n| {
            n.ends_with(".upload")
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && !n.starts_with('.')
        })
        .ok_or(StorageError::UploadGone)?;
    Ok(name)
}

pub(super) fn begin(
    root: Arc<Root>,
    pool: Threads,
    node: &NodeDir,
    dest: &MediaPath,
    opts: UploadOptions,
    timeout: Duration,
) -> Result<LocalUpload, StorageError> {
    let rootdir = root.open()?;
    let (deepest, deepest_path) = root.check_dest(&rootdir, dest, opts.overwrite)?;
    rustix::fs::accessat(
        &deepest,
        ".",
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
        AtFlags::EACCESS,
    )
    .map_err(|e| write_err(&e.into(), &shown(&deepest_path)))?;
    let need = opts.expected.unwrap_or(0).saturating_add(opts.reserve);
    if need > 0 {
        check_room(&deepest, need)?;
    }
    let token = crate::secret::random_token();
    let (dir, name, key) = if opts.resumable {
        let dir = root_staging(&rootdir, node, true, true)?;
        let name = format!("{token}.upload");
        (dir, name.clone(), format!("{RESUMABLE_DIR}/{name}"))
    } else {
        // On the destination's filesystem, so the commit is a rename, not a copy.
        let dir = if dev_of(&deepest) == dev_of(&rootdir) {
            root_staging(&rootdir, node, false, true)?
        } else {
            node_staging(&deepest, node, true)?
        };
        let name = format!("{token}.part");
        (dir, name.clone(), name)
    };
    let fd = rustix::fs::openat(
        &dir,
        name.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| write_err(&e.into(), STAGING_DIR))?;
    Ok(LocalUpload {
        root,
        pool,
        key,
        dir: Arc::new(dir),
        name,
        resumable: opts.resumable,
        shown: dest
            .split_last()
            .map(|(p, _)| shown(&p))
            .unwrap_or_default(),
        timeout,
        on_durable: opts.on_durable,
        file: Some(File::from(fd)),
        writer: None,
        len: 0,
        done: false,
        floor: if opts.expected.is_none() {
            opts.reserve
        } else {
            0
        },
    })
}

pub(super) fn resume(
    root: Arc<Root>,
    pool: Threads,
    node: &NodeDir,
    key: &str,
    durable: u64,
    on_durable: Option<OnDurable>,
    timeout: Duration,
) -> Result<LocalUpload, StorageError> {
    let name = key_name(key)?.to_string();
    let rootdir = root.open()?;
    // An upload of the previous layout that the start-up move missed (the root was away
    // then) is moved into this node's folder now.
    let dir = match root_staging(&rootdir, node, true, false) {
        Err(StorageError::UploadGone) if layout::has_old(&rootdir, &name) => {
            root_staging(&rootdir, node, true, true)?
        }
        r => r?,
    };
    let fd = match open_staged(&dir, &name) {
        Err(StorageError::NotFound) if layout::adopt(&rootdir, &dir, &name)? => {
            open_staged(&dir, &name)
        }
        r => r,
    }
    .map_err(|e| match e {
        StorageError::NotFound => StorageError::UploadGone,
        e => e,
    })?;
    // Only our own file: a FIFO or a second hard link put in its place (which would make a
    // PATCH write into a file elsewhere) is "gone".
    let st = rustix::fs::fstat(&fd).map_err(|e| write_err(&e.into(), STAGING_DIR))?;
    if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() || st.st_nlink != 1 {
        return Err(StorageError::UploadGone);
    }
    let mut file = File::from(fd);
    // One writer per upload, also across a request that was cut off and whose writer is
    // still finishing: the lock goes with the last handle on the file.
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |e| match e {
            rustix::io::Errno::WOULDBLOCK => StorageError::Busy,
            e => write_err(&e.into(), STAGING_DIR),
        },
    )?;
    // Bytes a crash left past the acknowledged offset are never kept.
    let have = file
        .metadata()
        .map_err(|e| write_err(&e, STAGING_DIR))?
        .len();
    if have < durable {
        return Err(StorageError::UploadGone);
    }
    file.set_len(durable)
        .and_then(|()| file.seek(SeekFrom::Start(durable)).map(|_| ()))
        .map_err(|e| write_err(&e, STAGING_DIR))?;
    Ok(LocalUpload {
        root,
        pool,
        key: key.to_string(),
        dir: Arc::new(dir),
        name,
        resumable: true,
        shown: STAGING_DIR.to_string(),
        timeout,
        on_durable,
        file: Some(file),
        writer: None,
        len: durable,
        done: false,
        floor: 0,
    })
}

/// Opens a resumable upload's file in `dir`: read and write (a commit to another disk copies
/// it), never through a link, never waiting on a FIFO. `NotFound` when there is no such name;
/// a link or FIFO in its place is `UploadGone`.
fn open_staged(dir: &File, name: &str) -> Result<rustix::fd::OwnedFd, StorageError> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::NOENT => StorageError::NotFound,
        rustix::io::Errno::LOOP | rustix::io::Errno::NXIO => StorageError::UploadGone,
        e => write_err(&e.into(), STAGING_DIR),
    })
}

pub(super) fn discard(root: &Root, node: &NodeDir, key: &str) -> Result<(), StorageError> {
    let name = key_name(key)?;
    let rootdir = root.open()?;
    // Also where the previous layout kept it, should the start-up move have missed it.
    layout::discard_old(&rootdir, name);
    let dir = match root_staging(&rootdir, node, true, false) {
        Ok(d) => d,
        Err(StorageError::UploadGone) => return Ok(()),
        Err(e) => return Err(e),
    };
    match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(write_err(&e.into(), STAGING_DIR)),
    }
}

/// This node's resumable uploads (never another node's, nor the previous layout's: those
/// are moved into this node's folder at start, see `layout::tidy`).
pub(super) fn keys(
    root: &Root,
    node: &NodeDir,
) -> Result<Vec<(String, std::time::SystemTime)>, StorageError> {
    let rootdir = root.open()?;
    let dir = match root_staging(&rootdir, node, true, false) {
        Ok(d) => d,
        Err(StorageError::UploadGone) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let rd = rustix::fs::Dir::read_from(&dir).map_err(|e| StorageError::from_io(&e.into()))?;
    Ok(rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().ok().map(str::to_string))
        .filter(|n| n.ends_with(".upload"))
        .filter_map(|n| {
            let st = rustix::fs::statat(&dir, n.as_str(), AtFlags::SYMLINK_NOFOLLOW).ok()?;
            #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
            let modified = std::time::UNIX_EPOCH
                + std::time::Duration::new(
                    (st.st_mtime as i64).max(0) as u64,
                    (st.st_mtime_nsec as i64).clamp(0, 999_999_999) as u32,
                );
            Some((format!("{RESUMABLE_DIR}/{n}"), modified))
        })
        .collect())
}

struct Writer {
    tx: mpsc::Sender<Bytes>,
    ending: Arc<AtomicU8>,
    job: crate::blocking::Job<Result<WriterDone, StorageError>>,
}

pub(super) struct LocalUpload {
    root: Arc<Root>,
    /// Storage's threads: the writer holds one of `writers` for the upload's life.
    pool: Threads,
    key: String,
    /// The staging folder holding the file, and the file's name there.
    dir: Arc<File>,
    name: String,
    resumable: bool,
    /// The destination folder as errors name it.
    shown: String,
    timeout: Duration,
    on_durable: Option<OnDurable>,
    /// The staging file while no writer thread holds it.
    file: Option<File>,
    writer: Option<Writer>,
    /// Bytes handed over (durable ones included).
    len: u64,
    /// Committed, or closed: nothing left to clean up.
    done: bool,
    /// Free space the body may not eat into, for a body of unknown length (checked at the
    /// start for announced ones); 0 for none.
    floor: u64,
}

impl LocalUpload {
    async fn start_writer(&mut self) -> Result<&mut Writer, StorageError> {
        if self.writer.is_none() {
            let file = self.file.take().ok_or(StorageError::UploadGone)?;
            let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
            let ending = Arc::new(AtomicU8::new(sync::DROPPED));
            let job = sync::Job {
                file,
                start: self.len,
                rx,
                ending: ending.clone(),
                on_durable: self.on_durable.clone(),
                dir: self.dir.clone(),
                name: self.name.clone(),
                resumable: self.resumable,
                shown: self.shown.clone(),
                floor: self.floor,
            };
            let job = self
                .pool
                .writers
                .start("write", self.timeout, move || write_loop(job))
                .await?;
            self.writer = Some(Writer { tx, ending, job });
        }
        self.writer.as_mut().ok_or(StorageError::UploadGone)
    }

    /// Ends the writer thread (`how`: `sync::FINISH` or `sync::DISCARD`) and waits for it;
    /// the file back and its durable end, or its error.
    async fn join(&mut self, how: u8) -> Result<u64, StorageError> {
        let Some(w) = self.writer.take() else {
            return Ok(self.len);
        };
        let Writer {
            tx,
            ending,
            mut job,
        } = w;
        ending.store(how, Ordering::Release);
        drop(tx);
        let done = match tokio::time::timeout(self.timeout, &mut job.handle).await {
            Ok(Ok(r)) => r?,
            Ok(Err(join)) => return Err(StorageError::Io(join.to_string())),
            Err(_) => {
                job.give_up(); // in the kernel (a hung mount): counted as stuck
                return Err(StorageError::Stalled {
                    op: "fsync",
                    secs: self.timeout.as_secs(),
                });
            }
        };
        self.file = Some(done.file);
        Ok(done.end)
    }

    /// Best effort, without waiting: what `close` does.
    fn forget(&mut self) {
        if let Some(w) = self.writer.take() {
            // The writer cuts back (or removes a one-shot file) when the channel closes.
            drop(w.tx);
            // Nobody waits for it now: a writer hung in a write counts as stuck.
            w.job.give_up();
            return;
        }
        if !self.resumable {
            let (dir, name) = (self.dir.clone(), self.name.clone());
            let unlink = move || {
                let _ = rustix::fs::unlinkat(&*dir, name.as_str(), AtFlags::empty());
            };
            match tokio::runtime::Handle::try_current() {
                Ok(h) => drop(h.spawn_blocking(unlink)),
                Err(_) => unlink(),
            }
        }
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        if !self.done {
            self.forget();
        }
    }
}

#[async_trait::async_trait]
impl Upload for LocalUpload {
    fn key(&self) -> &str {
        &self.key
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        let n = chunk.len() as u64;
        let sent = self.start_writer().await?.tx.send(chunk).await;
        if sent.is_err() {
            // The writer stopped on an error: that error is the answer.
            return match self.join(sync::DISCARD).await {
                Err(e) => Err(e),
                Ok(_) => Err(StorageError::Io("the upload writer stopped".into())),
            };
        }
        self.len += n;
        Ok(())
    }

    async fn finish(&mut self) -> Result<u64, StorageError> {
        if self.writer.is_some() {
            let end = self.join(sync::FINISH).await?;
            self.len = end;
            return Ok(end);
        }
        // Nothing was written through a writer (an empty body): sync what is there.
        let file = self.file.take().ok_or(StorageError::UploadGone)?;
        let (len, on_durable, shown) = (self.len, self.on_durable.clone(), self.shown.clone());
        let file = self
            .pool
            .calls
            .run("fsync", self.timeout, move || {
                file.sync_all().map_err(|e| write_err(&e, &shown))?;
                if let Some(f) = on_durable {
                    f(len);
                }
                Ok::<_, StorageError>(file)
            })
            .await?;
        self.file = Some(file);
        Ok(len)
    }

    async fn commit(
        mut self: Box<Self>,
        dest: &MediaPath,
        overwrite: bool,
    ) -> Result<ObjectMeta, StorageError> {
        self.finish().await?;
        let mut file = self.file.take().ok_or(StorageError::UploadGone)?;
        let (root, dir, name) = (self.root.clone(), self.dir.clone(), self.name.clone());
        let (dest, resumable) = (dest.clone(), self.resumable);
        let res = self
            .pool
            .calls
            .run("commit", self.timeout, move || {
                let res = commit_blocking(&root, &mut file, &dir, &name, &dest, overwrite);
                // A failed resumable commit keeps its data (the caller decides); a one-shot one
                // goes now.
                if res.is_err() && !resumable {
                    let _ = rustix::fs::unlinkat(&*dir, name.as_str(), AtFlags::empty());
                }
                res
            })
            .await;
        // Even when the commit stalled, what is left is its to clean (or a resumable's data).
        self.done = resumable || !matches!(res, Err(StorageError::Stalled { .. }));
        res
    }

    async fn close(mut self: Box<Self>) {
        if self.writer.is_some() {
            // The writer cuts back to the durable offset (or removes a one-shot file).
            let _ = self.join(sync::DISCARD).await;
        } else if !self.resumable {
            let (dir, name) = (self.dir.clone(), self.name.clone());
            let _ = self
                .pool
                .calls
                .run("discard", self.timeout, move || match rustix::fs::unlinkat(
                    &*dir,
                    name.as_str(),
                    AtFlags::empty(),
                ) {
                    Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
                    Err(e) => Err(write_err(&e.into(), STAGING_DIR)),
                })
                .await;
        }
        self.done = true;
    }
}
