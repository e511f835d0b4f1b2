//! Writes to the local backend: streamed uploads that commit atomically, folders, renames and
//! deletes. An upload is written into a hidden staging folder on the destination's filesystem,
//! fsynced, renamed into place (`RENAME_NOREPLACE` unless overwriting) and the folder fsynced,
//! so a reader, the listing and a crash only ever see nothing or the whole file.
//!
//! The request body is pumped through a small bounded channel into one blocking writer
//! thread: memory stays at a few chunks however large the file, and a slow disk slows the
//! client (back-pressure) instead of buffering.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::local::{etag_of, run_blocking};
use super::{ByteSource, MediaPath, ObjectMeta, PutOptions, StorageError};

/// Hidden folder (in the media root, or in a destination on another filesystem) where
/// uploads are written before they are renamed into place. Emptied at start.
pub const STAGING_DIR: &str = ".streamhub-staging";

/// Chunks queued between the request body and the writer thread.
const QUEUE: usize = 4;

pub(crate) fn io_err(e: &std::io::Error, folder: &str) -> StorageError {
    match e.raw_os_error() {
        Some(28) | Some(122) => StorageError::NoSpace, // ENOSPC, EDQUOT
        Some(17) => StorageError::AlreadyExists,       // EEXIST
        Some(13) | Some(1) => StorageError::PermissionDeniedAt(folder.to_string()),
        Some(30) => StorageError::ReadOnly, // EROFS
        _ => StorageError::from_io(e),
    }
}

/// The folder of `path` as errors name it: relative to the media root, `/` for the root.
fn shown_parent(path: &MediaPath) -> String {
    match path.split_last() {
        Some((d, _)) if d.is_root() => "/".to_string(),
        Some((d, _)) => d.to_string(),
        None => String::new(),
    }
}

/// The real folder `dir` (created if missing), checked to lie under `root`.
pub(crate) fn ensure_dir(
    root: &Path,
    dir: &MediaPath,
    allow_escape: bool,
) -> Result<PathBuf, StorageError> {
    let mut p = root.to_path_buf();
    p.extend(dir.segments());
    let shown = if dir.is_root() {
        "/".to_string()
    } else {
        dir.to_string()
    };
    std::fs::create_dir_all(&p).map_err(|e| io_err(&e, &shown))?;
    let real = p.canonicalize().map_err(|e| io_err(&e, &shown))?;
    if !allow_escape && !real.starts_with(root) {
        return Err(StorageError::OutsideRoot);
    }
    if !real.is_dir() {
        return Err(StorageError::NotADirectory);
    }
    Ok(real)
}

/// Staging folder on the same filesystem as `dest_dir`.
fn staging_for(root: &Path, dest_dir: &Path) -> Result<PathBuf, StorageError> {
    let root_staging = root.join(STAGING_DIR);
    let same_fs = match (std::fs::metadata(root), std::fs::metadata(dest_dir)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => true,
    };
    let staging = if same_fs {
        root_staging
    } else {
        dest_dir.join(STAGING_DIR)
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&staging)
        .map_err(|e| io_err(&e, STAGING_DIR))?;
    Ok(staging)
}

/// Removes what crashed or killed uploads left in the root's staging folder.
pub(crate) fn clean_staging(root: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(root.join(STAGING_DIR)) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::Io(format!("fsync {}: {e}", dir.display())))
}

fn meta_of(path: &Path) -> Result<ObjectMeta, StorageError> {
    let md = std::fs::metadata(path).map_err(|e| StorageError::from_io(&e))?;
    Ok(ObjectMeta {
        size: md.len(),
        modified: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        etag: etag_of(&md),
    })
}

/// Moves `from` to `to`; without `overwrite` an existing `to` is never replaced (atomic check).
/// `shown` names the destination folder in errors, relative to the media root.
fn rename_into_place(
    from: &Path,
    to: &Path,
    overwrite: bool,
    shown: &str,
) -> Result<(), StorageError> {
    if overwrite {
        return std::fs::rename(from, to).map_err(|e| io_err(&e, shown));
    }
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        from,
        rustix::fs::CWD,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(|e| io_err(&std::io::Error::from(e), shown))
}

struct Target {
    dest: PathBuf,
    dest_dir: PathBuf,
    tmp: PathBuf,
}

/// `NoSpace` when the filesystem of `dir` cannot take `len` more bytes (space an overwritten
/// file would free is not counted: the new file is complete before the old one goes).
fn check_room(dir: &Path, len: u64) -> Result<(), StorageError> {
    match rustix::fs::statvfs(dir) {
        Ok(st) if st.f_bavail.saturating_mul(st.f_frsize) < len => Err(StorageError::NoSpace),
        _ => Ok(()),
    }
}

fn prepare_target(
    root: &Path,
    path: &MediaPath,
    overwrite: bool,
    allow_escape: bool,
) -> Result<Target, StorageError> {
    let (parent, name) = path.split_last().ok_or(StorageError::IsDirectory)?;
    let dest_dir = ensure_dir(root, &parent, allow_escape)?;
    let dest = dest_dir.join(name);
    match std::fs::symlink_metadata(&dest) {
        Ok(md) if md.is_dir() => return Err(StorageError::IsDirectory),
        Ok(_) if !overwrite => return Err(StorageError::AlreadyExists),
        _ => {}
    }
    let staging = staging_for(root, &dest_dir)?;
    let tmp = staging.join(format!(
        "{}.part",
        super::super::auth::secret::random_token()
    ));
    Ok(Target {
        dest,
        dest_dir,
        tmp,
    })
}

/// The blocking half of an upload: drains `rx` into a staging file and commits it if
/// `complete` is set when the channel closes.
fn write_staged(
    target: Target,
    mut rx: mpsc::Receiver<Bytes>,
    complete: Arc<AtomicBool>,
    overwrite: bool,
    shown_dir: String,
) -> Result<ObjectMeta, StorageError> {
    let Target {
        dest,
        dest_dir,
        tmp,
    } = target;
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| io_err(&e, STAGING_DIR))?;
        while let Some(chunk) = rx.blocking_recv() {
            f.write_all(&chunk).map_err(|e| io_err(&e, &shown_dir))?;
        }
        if !complete.load(Ordering::Acquire) {
            return Err(StorageError::Aborted);
        }
        f.sync_all().map_err(|e| io_err(&e, &shown_dir))?;
        drop(f);
        rename_into_place(&tmp, &dest, overwrite, &shown_dir)?;
        sync_dir(&dest_dir)?;
        meta_of(&dest)
    })();
    if result.is_err() {
        // Whatever failed, nothing partial stays behind.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// How pumping a request body into a writer thread ended.
pub(crate) enum Pumped {
    /// Every byte was handed over.
    Complete,
    /// More than the allowed bytes arrived; the rest was not read.
    TooLong,
    /// The client's body broke off.
    ClientGone(String),
    /// The writer thread stopped taking chunks: its own error is the answer.
    WriterStopped,
    /// The writer took no chunk for the storage timeout (a stalled disk or mount).
    Stalled,
}

/// Hands `body` to a blocking writer through `tx`, at most `max` bytes, so memory stays at the
/// channel's few chunks and a slow disk slows the client. Shared by one-shot and resumable
/// uploads.
pub(crate) async fn pump(
    body: &mut ByteSource,
    tx: &mpsc::Sender<Bytes>,
    max: u64,
    timeout: Duration,
) -> Pumped {
    let mut total: u64 = 0;
    loop {
        match body.next().await {
            Some(Ok(chunk)) => {
                total += chunk.len() as u64;
                if total > max {
                    return Pumped::TooLong;
                }
                match tokio::time::timeout(timeout, tx.send(chunk)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Pumped::WriterStopped,
                    Err(_) => return Pumped::Stalled,
                }
            }
            Some(Err(e)) => return Pumped::ClientGone(e.to_string()),
            None => return Pumped::Complete,
        }
    }
}

/// The writer thread's result, or `Stalled` when it does not finish within `timeout`.
pub(crate) async fn join_writer<T, E: From<StorageError>>(
    writer: tokio::task::JoinHandle<Result<T, E>>,
    timeout: Duration,
    op: &'static str,
) -> Result<T, E> {
    match tokio::time::timeout(timeout, writer).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => Err(StorageError::Io(join.to_string()).into()),
        Err(_) => Err(StorageError::Stalled {
            op,
            secs: timeout.as_secs(),
        }
        .into()),
    }
}

pub(crate) struct WriteCtx {
    pub root: PathBuf,
    pub allow_escape: bool,
    pub timeout: Duration,
}

pub(crate) async fn put(
    ctx: WriteCtx,
    path: &MediaPath,
    mut body: ByteSource,
    opts: PutOptions,
) -> Result<ObjectMeta, StorageError> {
    let (root, allow_escape) = (ctx.root.clone(), ctx.allow_escape);
    let p = path.clone();
    let target = run_blocking("create", ctx.timeout, move || {
        let t = prepare_target(&root, &p, opts.overwrite, allow_escape)?;
        if let Some(len) = opts.expected {
            check_room(&t.dest_dir, len)?;
        }
        Ok(t)
    })
    .await?;
    let shown_dir = shown_parent(path);
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let complete = Arc::new(AtomicBool::new(false));
    let writer = {
        let complete = complete.clone();
        tokio::task::spawn_blocking(move || {
            write_staged(target, rx, complete, opts.overwrite, shown_dir)
        })
    };
    let pumped = match pump(&mut body, &tx, opts.max_bytes, ctx.timeout).await {
        Pumped::Complete => {
            complete.store(true, Ordering::Release);
            Ok(())
        }
        // The writer stopped (disk full, permission…): its error is the answer.
        Pumped::WriterStopped => Ok(()),
        Pumped::TooLong => Err(StorageError::TooLarge {
            limit: opts.max_bytes,
        }),
        Pumped::ClientGone(e) => Err(StorageError::ClientGone(e)),
        Pumped::Stalled => Err(StorageError::Stalled {
            op: "write",
            secs: ctx.timeout.as_secs(),
        }),
    };
    drop(tx);
    let written = join_writer(writer, ctx.timeout, "commit").await;
    pumped?;
    written
}

pub(crate) fn create_dir(
    root: &Path,
    path: &MediaPath,
    allow_escape: bool,
) -> Result<(), StorageError> {
    let (parent, name) = path.split_last().ok_or(StorageError::AlreadyExists)?;
    let dir = ensure_dir(root, &parent, allow_escape)?;
    let target = dir.join(name);
    std::fs::create_dir(&target).map_err(|e| io_err(&e, &parent.to_string()))?;
    sync_dir(&dir)
}

pub(crate) fn delete(
    root: &Path,
    path: &MediaPath,
    allow_escape: bool,
) -> Result<(), StorageError> {
    let (parent, name) = path
        .split_last()
        .ok_or(StorageError::PermissionDeniedAt("/".into()))?;
    let mut dir = root.to_path_buf();
    dir.extend(parent.segments());
    let dir = dir.canonicalize().map_err(|e| StorageError::from_io(&e))?;
    if !allow_escape && !dir.starts_with(root) {
        return Err(StorageError::OutsideRoot);
    }
    let target = dir.join(name);
    let md = std::fs::symlink_metadata(&target).map_err(|e| StorageError::from_io(&e))?;
    let shown = parent.to_string();
    if md.is_dir() {
        // Only empty folders: deleting a tree by accident is not undoable.
        std::fs::remove_dir(&target).map_err(|e| match e.raw_os_error() {
            Some(39) => StorageError::NotEmpty, // ENOTEMPTY
            _ => io_err(&e, &shown),
        })?;
    } else {
        std::fs::remove_file(&target).map_err(|e| io_err(&e, &shown))?;
    }
    sync_dir(&dir)
}

pub(crate) fn rename(
    root: &Path,
    from: &MediaPath,
    to: &MediaPath,
    overwrite: bool,
    allow_escape: bool,
) -> Result<(), StorageError> {
    let (fparent, fname) = from.split_last().ok_or(StorageError::NotFound)?;
    let (tparent, tname) = to.split_last().ok_or(StorageError::AlreadyExists)?;
    let mut fdir = root.to_path_buf();
    fdir.extend(fparent.segments());
    let fdir = fdir.canonicalize().map_err(|e| StorageError::from_io(&e))?;
    if !allow_escape && !fdir.starts_with(root) {
        return Err(StorageError::OutsideRoot);
    }
    let src = fdir.join(fname);
    std::fs::symlink_metadata(&src).map_err(|e| StorageError::from_io(&e))?;
    let tdir = ensure_dir(root, &tparent, allow_escape)?;
    let dst = tdir.join(tname);
    if dst.starts_with(&src) {
        return Err(StorageError::Invalid(
            "cannot move a folder into itself".into(),
        ));
    }
    let shown = if tparent.is_root() {
        "/".to_string()
    } else {
        tparent.to_string()
    };
    rename_into_place(&src, &dst, overwrite, &shown)?;
    sync_dir(&tdir)?;
    if tdir != fdir {
        sync_dir(&fdir)?;
    }
    Ok(())
}

/// Subfolder of the root's staging folder holding resumable (tus) uploads. Unlike the
/// `*.part` files of one-shot uploads, these survive a restart: they are resumed.
pub const RESUMABLE_DIR: &str = "resumable";

/// The nearest folder of `dir` that exists (the root at worst), for choosing the filesystem.
fn existing_ancestor(root: &Path, dir: &MediaPath) -> PathBuf {
    let mut best = root.to_path_buf();
    let mut p = root.to_path_buf();
    for seg in dir.segments() {
        p.push(seg);
        match std::fs::metadata(&p) {
            Ok(md) if md.is_dir() => best = p.clone(),
            _ => break,
        }
    }
    best
}

/// A new empty staging file for a resumable upload to `dest`. Parent folders are made only
/// at commit, so an abandoned upload leaves no empty folder behind.
pub(crate) fn create_resumable(
    root: &Path,
    dest: &MediaPath,
    overwrite: bool,
    length: u64,
    allow_escape: bool,
) -> Result<PathBuf, StorageError> {
    let (parent, name) = dest.split_last().ok_or(StorageError::IsDirectory)?;
    let near = existing_ancestor(root, &parent);
    let real = near.canonicalize().map_err(|e| StorageError::from_io(&e))?;
    if !allow_escape && !real.starts_with(root) {
        return Err(StorageError::OutsideRoot);
    }
    let mut full = root.to_path_buf();
    full.extend(parent.segments());
    if near == full {
        match std::fs::symlink_metadata(real.join(name)) {
            Ok(md) if md.is_dir() => return Err(StorageError::IsDirectory),
            Ok(_) if !overwrite => return Err(StorageError::AlreadyExists),
            _ => {}
        }
    }
    check_room(&real, length)?;
    let dir = staging_for(root, &real)?.join(RESUMABLE_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| io_err(&e, STAGING_DIR))?;
    let tmp = dir.join(format!(
        "{}.upload",
        super::super::auth::secret::random_token()
    ));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| io_err(&e, STAGING_DIR))?;
    Ok(tmp)
}

/// Commits a finished resumable upload: fsync, rename into place (copying first when the
/// destination turned out to be on another filesystem), fsync the folder.
pub(crate) fn commit_resumable(
    root: &Path,
    staged: &Path,
    dest: &MediaPath,
    overwrite: bool,
    allow_escape: bool,
) -> Result<ObjectMeta, StorageError> {
    let target = prepare_target(root, dest, overwrite, allow_escape)?;
    let shown = shown_parent(dest);
    File::open(staged)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(&e, STAGING_DIR))?;
    let same_fs = match (
        std::fs::metadata(staged),
        std::fs::metadata(&target.dest_dir),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => true,
    };
    let from = if same_fs {
        staged.to_path_buf()
    } else {
        let copy = (|| {
            std::fs::copy(staged, &target.tmp)?;
            File::open(&target.tmp)?.sync_all()
        })();
        if let Err(e) = copy {
            let _ = std::fs::remove_file(&target.tmp);
            return Err(io_err(&e, &shown));
        }
        target.tmp.clone()
    };
    if let Err(e) = rename_into_place(&from, &target.dest, overwrite, &shown) {
        if !same_fs {
            let _ = std::fs::remove_file(&target.tmp);
        }
        return Err(e);
    }
    if !same_fs {
        let _ = std::fs::remove_file(staged);
    }
    sync_dir(&target.dest_dir)?;
    meta_of(&target.dest)
}

/// Resumable staging files under the root's staging folder (for the expiry sweep).
pub(crate) fn resumable_files(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join(STAGING_DIR).join(RESUMABLE_DIR))
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}
