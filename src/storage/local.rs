//! Local filesystem backend (also the NFS case). Every filesystem call runs on tokio's blocking
//! pool under `storage.timeout_secs`, so a stalled disk or hung mount turns into
//! [`StorageError::Stalled`] (503) instead of freezing the runtime.

use std::fs::File;
use std::future::Future;
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::Stream;

use super::{
    write, ByteSource, ByteStream, DirEntry, EntryKind, MediaPath, Object, ObjectMeta, PutOptions,
    Storage, StorageError,
};

#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub allow_symlink_escape: bool,
    pub timeout: Duration,
    pub chunk_size: usize,
}

pub struct LocalStorage {
    root: PathBuf,
    /// `root` with symlinks resolved, for the containment check.
    canonical_root: PathBuf,
    opts: LocalOptions,
    /// Device of the root at start; the non-blocking open only runs while it is unchanged.
    root_dev: u64,
    /// What `statfs` says the root is (`"local"`, `"nfs"`, …).
    fs_kind: &'static str,
    /// Non-blocking opens are possible (local filesystem, kernel has `RESOLVE_CACHED`).
    fast_open: AtomicBool,
    budget: Arc<ChunkBudget>,
}

impl LocalStorage {
    /// `root` must exist; it is resolved once so containment checks compare real paths.
    pub fn new(root: &Path, opts: LocalOptions) -> Result<Self, StorageError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            StorageError::Unavailable(format!("media root {}: {e}", root.display()))
        };
        let canonical_root = root.canonicalize().map_err(|e| unavailable(&e))?;
        let root_dev = std::fs::metadata(&canonical_root)
            .map_err(|e| unavailable(&e))?
            .dev();
        let fs_kind = rustix::fs::statfs(&canonical_root)
            .map(|s| fs_kind(magic_of(&s)))
            .unwrap_or("unknown");
        Ok(LocalStorage {
            root: root.to_path_buf(),
            canonical_root,
            opts,
            root_dev,
            fs_kind,
            fast_open: AtomicBool::new(fs_kind == "local"),
            budget: Arc::default(),
        })
    }

    fn write_ctx(&self) -> write::WriteCtx {
        write::WriteCtx {
            root: self.canonical_root.clone(),
            allow_escape: self.opts.allow_symlink_escape,
            timeout: self.opts.timeout,
        }
    }

    /// Removes partial uploads a crash left in the staging folder; returns how many.
    pub fn clean_staging(&self) -> usize {
        write::clean_staging(&self.canonical_root)
    }

    /// Staging files of resumable uploads in the root's staging folder. Blocking.
    pub fn resumable_files(&self) -> Vec<PathBuf> {
        write::resumable_files(&self.canonical_root)
    }

    /// Filesystem kind of the media root as detected at start.
    pub fn fs_kind(&self) -> &'static str {
        self.fs_kind
    }

    /// Opens `path` only if that cannot block: every path component must already be in the
    /// dentry cache (`RESOLVE_CACHED`), stay on the root's (local) filesystem (`NO_XDEV`) and,
    /// unless escapes are allowed, stay beneath the root (`BENEATH`). `None` means "take the
    /// blocking path" — a cold cache, an absolute symlink, a mount point, an old kernel — so
    /// a spun-down disk or an NFS mount never stalls a runtime worker, while hot files skip a
    /// thread hand-off per request.
    fn open_fast(
        &self,
        path: &MediaPath,
    ) -> Option<Result<(File, std::fs::Metadata), StorageError>> {
        use rustix::fs::{openat2, statx, AtFlags, Mode, OFlags, ResolveFlags, StatxFlags, CWD};
        use rustix::io::Errno;
        if !self.fast_open.load(Ordering::Relaxed) || path.is_root() {
            return None;
        }
        let root = match openat2(
            CWD,
            &self.canonical_root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::CACHED,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOSYS) | Err(Errno::INVAL) => {
                self.fast_open.store(false, Ordering::Relaxed);
                return None;
            }
            Err(_) => return None,
        };
        // Something may have been mounted over the root since start: only trust the device
        // we checked then. DONT_SYNC keeps this from asking a network server.
        let st = statx(
            &root,
            "",
            AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC,
            StatxFlags::BASIC_STATS,
        )
        .ok()?;
        if rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor) != self.root_dev {
            return None;
        }
        let mut how = ResolveFlags::CACHED | ResolveFlags::NO_XDEV | ResolveFlags::NO_MAGICLINKS;
        if !self.opts.allow_symlink_escape {
            how |= ResolveFlags::BENEATH;
        }
        let rel = path.to_string();
        let fd = match openat2(
            &root,
            rel.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Some(Err(StorageError::NotFound)),
            Err(Errno::ACCESS) => return Some(Err(StorageError::PermissionDenied)),
            Err(_) => return None,
        };
        let file = File::from(fd);
        // Same local filesystem as the root (NO_XDEV): fstat reads the in-memory inode.
        Some(
            file.metadata()
                .map(|md| (file, md))
                .map_err(|e| StorageError::from_io(&e)),
        )
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    async fn blocking<T, F>(&self, op: &'static str, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, StorageError> + Send + 'static,
    {
        run_blocking(op, self.opts.timeout, f).await
    }

    fn resolver(&self) -> Resolver {
        Resolver {
            root: self.canonical_root.clone(),
            allow_escape: self.opts.allow_symlink_escape,
        }
    }
}

pub(crate) async fn run_blocking<T, F>(
    op: &'static str,
    timeout: Duration,
    f: F,
) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => Err(StorageError::Io(format!("{op}: {join}"))),
        Err(_) => Err(StorageError::Stalled {
            op,
            secs: timeout.as_secs(),
        }),
    }
}

/// Maps a `MediaPath` to a real path and enforces that it stays under the root.
#[derive(Clone)]
struct Resolver {
    root: PathBuf,
    allow_escape: bool,
}

impl Resolver {
    fn resolve(&self, path: &MediaPath) -> Result<PathBuf, StorageError> {
        let mut p = self.root.clone();
        p.extend(path.segments());
        let real = p.canonicalize().map_err(|e| StorageError::from_io(&e))?;
        self.contain(real)
    }

    fn contain(&self, real: PathBuf) -> Result<PathBuf, StorageError> {
        if self.allow_escape || real.starts_with(&self.root) {
            Ok(real)
        } else {
            Err(StorageError::OutsideRoot)
        }
    }
}

pub(crate) fn etag_of(md: &std::fs::Metadata) -> String {
    // inode + size + mtime (ns): a replaced or rewritten file gets a new tag.
    let nanos = md
        .mtime()
        .wrapping_mul(1_000_000_000)
        .wrapping_add(md.mtime_nsec());
    format!("{:x}-{:x}-{:x}", md.ino(), md.size(), nanos)
}

struct LocalObject {
    file: Arc<File>,
    meta: ObjectMeta,
    timeout: Duration,
    chunk_size: usize,
    budget: Arc<ChunkBudget>,
}

impl Object for LocalObject {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn read_range(&self, range: Range<u64>) -> ByteStream {
        let end = range.end.min(self.meta.size);
        Box::pin(ReadStream::new(
            self.file.clone(),
            range.start.min(end)..end,
            self.chunk_size,
            self.timeout,
            self.budget.clone(),
        ))
    }
}

type ChunkFuture = Pin<Box<dyn Future<Output = Result<Bytes, StorageError>> + Send>>;

/// Chunks grow up to this size while the consumer keeps up (a fast client), and fall back to
/// `streaming.chunk_kib` when it does not, so slow clients hold small buffers.
const MAX_CHUNK: u64 = 1024 * 1024;
/// A consumer that asks again within this time counts as fast.
const FAST_CONSUMER: Duration = Duration::from_millis(2);

/// Memory that grown (larger than `streaming.chunk_kib`) chunks may hold across all streams of
/// one storage. A client that drains its socket quickly earns bigger reads, but a socket buffer
/// that swallows the first megabytes of a slow client looks fast too; without this cap 200 such
/// clients would each pin a 1 MiB chunk. Base-size chunks are always allowed, so every stream
/// progresses; the budget only decides who may read in bigger steps.
const GROWN_CHUNK_BUDGET: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
pub(crate) struct ChunkBudget {
    in_use: AtomicUsize,
}

impl ChunkBudget {
    fn try_take(self: &Arc<Self>, n: usize) -> Option<Lease> {
        let mut cur = self.in_use.load(Ordering::Relaxed);
        loop {
            if cur + n > GROWN_CHUNK_BUDGET {
                return None;
            }
            match self.in_use.compare_exchange_weak(
                cur,
                cur + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Lease {
                        budget: self.clone(),
                        n,
                    })
                }
                Err(now) => cur = now,
            }
        }
    }
}

/// A share of the grown-chunk budget, returned when the chunk's last `Bytes` is dropped
/// (after hyper has written it).
struct Lease {
    budget: Arc<ChunkBudget>,
    n: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.budget.in_use.fetch_sub(self.n, Ordering::AcqRel);
    }
}

struct LeasedBuf {
    buf: Vec<u8>,
    _lease: Option<Lease>,
}

impl AsRef<[u8]> for LeasedBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

fn into_bytes(buf: Vec<u8>, lease: Option<Lease>) -> Bytes {
    match lease {
        None => Bytes::from(buf),
        Some(l) => Bytes::from_owner(LeasedBuf {
            buf,
            _lease: Some(l),
        }),
    }
}

/// Reads a range chunk by chunk with bounded memory.
///
/// Page-cache hits are read inline with `preadv2(RWF_NOWAIT)`, which never blocks: it returns
/// EAGAIN instead of waiting for the disk. Only then does a chunk go to the blocking pool, and
/// the following chunk is read ahead there too (cold data is usually followed by cold data), so
/// disk reads overlap socket writes. A slow client holds at most one chunk in hyper and one
/// read ahead.
struct ReadStream {
    file: Arc<File>,
    pos: u64,
    end: u64,
    base_chunk: u64,
    chunk: u64,
    timeout: Duration,
    pending: Option<ChunkFuture>,
    last_yield: Option<Instant>,
    budget: Arc<ChunkBudget>,
    /// Cleared when the filesystem does not support RWF_NOWAIT (some network filesystems).
    nowait: bool,
}

impl ReadStream {
    fn new(
        file: Arc<File>,
        range: Range<u64>,
        chunk: usize,
        timeout: Duration,
        budget: Arc<ChunkBudget>,
    ) -> Self {
        ReadStream {
            file,
            pos: range.start,
            end: range.end,
            base_chunk: chunk as u64,
            chunk: chunk as u64,
            timeout,
            pending: None,
            last_yield: None,
            budget,
            nowait: true,
        }
    }

    /// Size of the next read and, for a grown chunk, its share of the budget.
    fn next_len(&mut self) -> (usize, Option<Lease>) {
        let left = self.end - self.pos;
        let fast = self.last_yield.is_some_and(|t| t.elapsed() < FAST_CONSUMER);
        let want = if fast {
            (self.chunk * 2).min(MAX_CHUNK.max(self.base_chunk))
        } else {
            self.base_chunk
        };
        let want = want.min(left);
        if want > self.base_chunk {
            if let Some(lease) = self.budget.try_take(want as usize) {
                self.chunk = want;
                return (want as usize, Some(lease));
            }
        }
        self.chunk = self.base_chunk;
        (left.min(self.base_chunk) as usize, None)
    }

    fn start_blocking(&mut self, n: usize, lease: Option<Lease>) -> ChunkFuture {
        let offset = self.pos;
        self.pos += n as u64;
        let file = self.file.clone();
        let timeout = self.timeout;
        // spawn_blocking starts the read now, not when the future is first polled.
        let handle = tokio::task::spawn_blocking(move || read_exact_at(&file, offset, n, lease));
        Box::pin(async move {
            match tokio::time::timeout(timeout, handle).await {
                Ok(Ok(r)) => r,
                Ok(Err(join)) => Err(StorageError::Io(join.to_string())),
                Err(_) => Err(StorageError::Stalled {
                    op: "read",
                    secs: timeout.as_secs(),
                }),
            }
        })
    }

    fn finish(
        &mut self,
        res: Result<Bytes, StorageError>,
    ) -> Poll<Option<Result<Bytes, StorageError>>> {
        match res {
            Ok(b) => {
                self.last_yield = Some(Instant::now());
                Poll::Ready(Some(Ok(b)))
            }
            Err(e) => {
                self.pos = self.end;
                self.pending = None;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

impl Stream for ReadStream {
    type Item = Result<Bytes, StorageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(fut) = this.pending.as_mut() {
            let res = match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            };
            this.pending = None;
            if res.is_ok() && this.pos < this.end {
                let (n, lease) = this.next_len();
                this.pending = Some(this.start_blocking(n, lease));
            }
            return this.finish(res);
        }
        if this.pos >= this.end {
            return Poll::Ready(None);
        }
        let (n, lease) = this.next_len();
        let mut lease = lease;
        if this.nowait {
            match read_nowait(&this.file, this.pos, n, &mut lease) {
                NoWait::Data(b) => {
                    this.pos += b.len() as u64;
                    return this.finish(Ok(b));
                }
                NoWait::Eof => return this.finish(Err(StorageError::Changed)),
                NoWait::Failed(e) => return this.finish(Err(e)),
                NoWait::WouldBlock => {}
                NoWait::Unsupported => this.nowait = false,
            }
        }
        let mut fut = this.start_blocking(n, lease);
        match fut.as_mut().poll(cx) {
            Poll::Pending => {
                this.pending = Some(fut);
                Poll::Pending
            }
            Poll::Ready(r) => this.finish(r),
        }
    }
}

enum NoWait {
    Data(Bytes),
    Eof,
    WouldBlock,
    Unsupported,
    Failed(StorageError),
}

/// One `preadv2(RWF_NOWAIT)`: data only if it is already in the page cache.
fn read_nowait(file: &File, offset: u64, n: usize, lease: &mut Option<Lease>) -> NoWait {
    use rustix::io::{Errno, ReadWriteFlags};
    let mut buf = vec![0u8; n];
    let res = rustix::io::preadv2(
        file,
        &mut [std::io::IoSliceMut::new(&mut buf)],
        offset,
        ReadWriteFlags::NOWAIT,
    );
    match res {
        Ok(0) => NoWait::Eof,
        Ok(k) => {
            buf.truncate(k);
            NoWait::Data(into_bytes(buf, lease.take()))
        }
        Err(Errno::AGAIN) | Err(Errno::INTR) => NoWait::WouldBlock,
        Err(Errno::OPNOTSUPP) | Err(Errno::INVAL) | Err(Errno::NOSYS) => NoWait::Unsupported,
        Err(e) => NoWait::Failed(StorageError::from_io(&std::io::Error::from(e))),
    }
}

fn read_exact_at(
    file: &File,
    offset: u64,
    n: usize,
    lease: Option<Lease>,
) -> Result<Bytes, StorageError> {
    let mut buf = vec![0u8; n];
    let mut done = 0;
    while done < n {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            // The file shrank under us: the response already promised `n` more bytes.
            Ok(0) => return Err(StorageError::Changed),
            Ok(k) => done += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StorageError::from_io(&e)),
        }
    }
    Ok(into_bytes(buf, lease))
}

#[async_trait::async_trait]
impl Storage for LocalStorage {
    async fn open(&self, path: &MediaPath) -> Result<Arc<dyn Object>, StorageError> {
        let (file, md) = match self.open_fast(path) {
            Some(r) => r?,
            None => {
                let resolver = self.resolver();
                let path = path.clone();
                self.blocking("open", move || {
                    let real = resolver.resolve(&path)?;
                    let file = File::open(&real).map_err(|e| StorageError::from_io(&e))?;
                    let md = file.metadata().map_err(|e| StorageError::from_io(&e))?;
                    Ok((file, md))
                })
                .await?
            }
        };
        if md.is_dir() {
            return Err(StorageError::IsDirectory);
        }
        if !md.is_file() {
            // FIFOs, devices, sockets: reading them could block or never end.
            return Err(StorageError::NotFound);
        }
        let meta = ObjectMeta {
            size: md.len(),
            modified: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            etag: etag_of(&md),
        };
        Ok(Arc::new(LocalObject {
            file: Arc::new(file),
            meta,
            timeout: self.opts.timeout,
            chunk_size: self.opts.chunk_size,
            budget: self.budget.clone(),
        }))
    }

    async fn list(&self, dir: &MediaPath) -> Result<Vec<DirEntry>, StorageError> {
        let resolver = self.resolver();
        let dir = dir.clone();
        self.blocking("list", move || {
            let real = resolver.resolve(&dir)?;
            let rd = std::fs::read_dir(&real).map_err(|e| StorageError::from_io(&e))?;
            let mut out = Vec::new();
            for entry in rd {
                let Ok(entry) = entry else { continue };
                // A link that escapes the root is not shown, so a listing never reveals what
                // lies outside.
                let Some((name, _, md)) =
                    visible_entry(&entry, |target| resolver.contain(target).is_ok())
                else {
                    continue;
                };
                let kind = if md.is_dir() {
                    EntryKind::Dir
                } else {
                    EntryKind::File
                };
                out.push(DirEntry {
                    name,
                    kind,
                    size: if md.is_file() { md.len() } else { 0 },
                    modified: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
            out.sort_by(|a, b| {
                (a.kind != EntryKind::Dir, &a.name).cmp(&(b.kind != EntryKind::Dir, &b.name))
            });
            Ok(out)
        })
        .await
    }

    async fn check(&self) -> Result<(), StorageError> {
        let root = self.canonical_root.clone();
        self.blocking("check", move || {
            let md = std::fs::metadata(&root).map_err(|e| {
                StorageError::Unavailable(format!("media root {}: {e}", root.display()))
            })?;
            if !md.is_dir() {
                return Err(StorageError::Unavailable(format!(
                    "media root {} is not a folder",
                    root.display()
                )));
            }
            std::fs::read_dir(&root).map_err(|e| {
                StorageError::Unavailable(format!("media root {}: {e}", root.display()))
            })?;
            Ok(())
        })
        .await
    }

    fn kind(&self) -> &'static str {
        self.fs_kind
    }

    async fn put(
        &self,
        path: &MediaPath,
        body: ByteSource,
        opts: PutOptions,
    ) -> Result<ObjectMeta, StorageError> {
        write::put(self.write_ctx(), path, body, opts).await
    }

    async fn exists(&self, path: &MediaPath) -> Result<bool, StorageError> {
        let mut p = self.canonical_root.clone();
        p.extend(path.segments());
        self.blocking("stat", move || match std::fs::symlink_metadata(&p) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) if e.raw_os_error() == Some(20) => Ok(false), // ENOTDIR: a file on the way
            Err(e) => Err(StorageError::from_io(&e)),
        })
        .await
    }

    async fn create_staged(
        &self,
        dest: &MediaPath,
        overwrite: bool,
        length: u64,
    ) -> Result<PathBuf, StorageError> {
        let (root, esc, p) = (
            self.canonical_root.clone(),
            self.opts.allow_symlink_escape,
            dest.clone(),
        );
        self.blocking("create", move || {
            write::create_resumable(&root, &p, overwrite, length, esc)
        })
        .await
    }

    async fn commit_staged(
        &self,
        staged: &Path,
        dest: &MediaPath,
        overwrite: bool,
    ) -> Result<ObjectMeta, StorageError> {
        let (root, esc, p) = (
            self.canonical_root.clone(),
            self.opts.allow_symlink_escape,
            dest.clone(),
        );
        let staged = staged.to_path_buf();
        self.blocking("commit", move || {
            write::commit_resumable(&root, &staged, &p, overwrite, esc)
        })
        .await
    }

    async fn create_dir(&self, path: &MediaPath) -> Result<(), StorageError> {
        let (root, esc, p) = (
            self.canonical_root.clone(),
            self.opts.allow_symlink_escape,
            path.clone(),
        );
        self.blocking("mkdir", move || write::create_dir(&root, &p, esc))
            .await
    }

    async fn delete(&self, path: &MediaPath) -> Result<(), StorageError> {
        let (root, esc, p) = (
            self.canonical_root.clone(),
            self.opts.allow_symlink_escape,
            path.clone(),
        );
        self.blocking("delete", move || write::delete(&root, &p, esc))
            .await
    }

    async fn rename(
        &self,
        from: &MediaPath,
        to: &MediaPath,
        overwrite: bool,
    ) -> Result<(), StorageError> {
        let (root, esc) = (self.canonical_root.clone(), self.opts.allow_symlink_escape);
        let (f, t) = (from.clone(), to.clone());
        self.blocking("rename", move || {
            write::rename(&root, &f, &t, overwrite, esc)
        })
        .await
    }
}

/// One entry of a folder as listings show it: a UTF-8 name (anything else cannot be named by
/// a `MediaPath`) not starting with `.` (hidden, and the staging folder), a regular file or a
/// folder — through a symlink only when `inside(target)` — with its metadata (links
/// followed) and the entry's own file type. None for anything else, or what vanished meanwhile.
pub(crate) fn visible_entry(
    entry: &std::fs::DirEntry,
    inside: impl Fn(PathBuf) -> bool,
) -> Option<(String, std::fs::FileType, std::fs::Metadata)> {
    let name = entry.file_name().into_string().ok()?;
    if name.starts_with('.') {
        return None;
    }
    let ft = entry.file_type().ok()?;
    let path = entry.path();
    if ft.is_symlink() && !inside(path.canonicalize().ok()?) {
        return None;
    }
    let md = std::fs::metadata(&path).ok()?;
    (md.is_dir() || md.is_file()).then_some((name, ft, md))
}

/// f_type is i64 on 64-bit Linux but 32 bits wide (and signed on some) on 32-bit targets.
#[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
fn magic_of(s: &rustix::fs::StatFs) -> i64 {
    (s.f_type as i64) & 0xFFFF_FFFF
}

/// What kind of filesystem `path` is on (`"local"`, `"nfs"`, …), or `"unknown"`.
pub fn fs_kind_of(path: &Path) -> &'static str {
    rustix::fs::statfs(path)
        .map(|s| fs_kind(magic_of(&s)))
        .unwrap_or("unknown")
}

/// Names the filesystem behind a `statfs` magic number; anything reached over a network (or
/// through FUSE, which may be) is not "local" and never gets the non-blocking fast path.
fn fs_kind(magic: i64) -> &'static str {
    match magic {
        0x6969 => "nfs",
        0x517B | 0xFF53_4D42 | 0xFE53_4D42 => "smb",
        0x6573_5546 => "fuse",
        0x00C3_6400 => "ceph",
        0x0102_1997 => "9p",
        0x5346_414F | 0x6B41_4653 => "afs",
        0x0187 => "autofs",
        0x0116_1970 | 0x7461_636F | 0x564C | 0x7375_7245 => "cluster",
        _ => "local",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn storage(root: &Path) -> LocalStorage {
        LocalStorage::new(
            root,
            LocalOptions {
                allow_symlink_escape: false,
                timeout: Duration::from_secs(5),
                chunk_size: 7,
            },
        )
        .expect("root exists")
    }

    async fn read_all(obj: &Arc<dyn Object>, r: Range<u64>) -> Vec<u8> {
        let mut s = obj.read_range(r);
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.expect("read ok"));
        }
        out
    }

    #[tokio::test]
    async fn reads_ranges_in_small_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100u8).collect();
        std::fs::write(dir.path().join("f.bin"), &data).unwrap();
        let s = storage(dir.path());
        let obj = s
            .open(&MediaPath::from_url("f.bin").unwrap())
            .await
            .unwrap();
        assert_eq!(obj.meta().size, 100);
        assert_eq!(read_all(&obj, 0..100).await, data);
        assert_eq!(read_all(&obj, 10..31).await, &data[10..31]);
        assert_eq!(read_all(&obj, 99..100).await, &data[99..]);
        assert!(read_all(&obj, 50..50).await.is_empty());
    }

    #[tokio::test]
    async fn symlink_escape_refused_unless_allowed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        std::fs::write(dir.path().join("real"), b"r").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("inner")).unwrap();
        let s = storage(dir.path());
        let err = s
            .open(&MediaPath::from_url("link").unwrap())
            .await
            .err()
            .expect("refused");
        assert!(matches!(err, StorageError::OutsideRoot));
        assert!(s.open(&MediaPath::from_url("inner").unwrap()).await.is_ok());
        let names: Vec<String> = s
            .list(&MediaPath::root())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["inner", "real"]);

        let open = LocalStorage::new(
            dir.path(),
            LocalOptions {
                allow_symlink_escape: true,
                timeout: Duration::from_secs(5),
                chunk_size: 64,
            },
        )
        .unwrap();
        assert!(open
            .open(&MediaPath::from_url("link").unwrap())
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn relative_symlinks_take_the_same_rules() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("media");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(base.path().join("secret"), b"s").unwrap();
        std::fs::write(root.join("real"), b"r").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("up")).unwrap();
        std::os::unix::fs::symlink("real", root.join("near")).unwrap();
        let s = storage(&root);
        assert_eq!(s.fs_kind(), "local");
        // Warm the dentry cache so the non-blocking path is the one taken.
        let _ = std::fs::metadata(root.join("near"));
        let _ = std::fs::metadata(root.join("up"));
        for _ in 0..2 {
            let e = s
                .open(&MediaPath::from_url("up").unwrap())
                .await
                .err()
                .unwrap();
            assert!(matches!(e, StorageError::OutsideRoot), "{e}");
            let obj = s.open(&MediaPath::from_url("near").unwrap()).await.unwrap();
            assert_eq!(obj.meta().size, 1);
            let e = s
                .open(&MediaPath::from_url("missing").unwrap())
                .await
                .err()
                .unwrap();
            assert!(matches!(e, StorageError::NotFound), "{e}");
        }
    }

    #[test]
    fn chunk_budget_is_returned_when_the_last_bytes_drop() {
        let b = Arc::new(ChunkBudget::default());
        let lease = b.try_take(GROWN_CHUNK_BUDGET).expect("whole budget free");
        assert!(b.try_take(1).is_none());
        let bytes = into_bytes(vec![1; 10], Some(lease));
        let part = bytes.slice(2..4);
        drop(bytes);
        assert!(b.try_take(1).is_none(), "a slice still holds the buffer");
        drop(part);
        assert!(b.try_take(GROWN_CHUNK_BUDGET).is_some());
    }

    #[test]
    fn network_filesystems_are_recognised() {
        assert_eq!(fs_kind(0x6969), "nfs");
        assert_eq!(fs_kind(0xFF53_4D42), "smb");
        assert_eq!(fs_kind(0x6573_5546), "fuse");
        assert_eq!(fs_kind(0xEF53), "local");
    }

    #[tokio::test]
    async fn errors_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let s = storage(dir.path());
        let e = s
            .open(&MediaPath::from_url("nope").unwrap())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, StorageError::NotFound), "{e}");
        let e = s
            .open(&MediaPath::from_url("sub").unwrap())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, StorageError::IsDirectory), "{e}");
        let e = s
            .list(&MediaPath::from_url("nope").unwrap())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, StorageError::NotFound), "{e}");
    }

    #[tokio::test]
    async fn shrinking_file_is_an_error_not_short_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), vec![1u8; 100]).unwrap();
        let s = storage(dir.path());
        let obj = s.open(&MediaPath::from_url("f").unwrap()).await.unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("f"))
            .unwrap()
            .set_len(10)
            .unwrap();
        let mut st = obj.read_range(0..100);
        let mut saw_err = false;
        while let Some(c) = st.next().await {
            if c.is_err() {
                saw_err = true;
            }
        }
        assert!(saw_err);
    }
}
