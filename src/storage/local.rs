//! Local filesystem backend (also the NFS case). Every filesystem call runs on tokio's blocking
//! pool under `storage.timeout_secs`, so a stalled disk or hung mount turns into
//! [`StorageError::Stalled`] (503) instead of freezing the runtime.

use std::fs::File;
use std::future::Future;
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;

use super::{
    ByteStream, DirEntry, EntryKind, MediaPath, Object, ObjectMeta, Storage, StorageError,
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
}

impl LocalStorage {
    /// `root` must exist; it is resolved once so containment checks compare real paths.
    pub fn new(root: &Path, opts: LocalOptions) -> Result<Self, StorageError> {
        let canonical_root = root.canonicalize().map_err(|e| {
            StorageError::Unavailable(format!("media root {}: {e}", root.display()))
        })?;
        Ok(LocalStorage {
            root: root.to_path_buf(),
            canonical_root,
            opts,
        })
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

async fn run_blocking<T, F>(op: &'static str, timeout: Duration, f: F) -> Result<T, StorageError>
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

fn etag_of(md: &std::fs::Metadata) -> String {
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
}

impl Object for LocalObject {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn read_range(&self, range: Range<u64>) -> ByteStream {
        Box::pin(ReadStream {
            file: self.file.clone(),
            pos: range.start,
            end: range.end.min(self.meta.size),
            chunk: self.chunk_size as u64,
            timeout: self.timeout,
            pending: None,
        })
    }
}

type ChunkFuture = Pin<Box<dyn Future<Output = Result<Bytes, StorageError>> + Send>>;

/// Reads a range chunk by chunk with `pread` on the blocking pool, one chunk ahead of the
/// consumer: the next read overlaps the socket write of the current chunk, and memory stays at
/// two chunks per stream however slow the client.
struct ReadStream {
    file: Arc<File>,
    pos: u64,
    end: u64,
    chunk: u64,
    timeout: Duration,
    pending: Option<ChunkFuture>,
}

impl ReadStream {
    fn start_next(&mut self) -> Option<ChunkFuture> {
        if self.pos >= self.end {
            return None;
        }
        let n = (self.end - self.pos).min(self.chunk) as usize;
        let offset = self.pos;
        self.pos += n as u64;
        let file = self.file.clone();
        let timeout = self.timeout;
        // spawn_blocking starts the read now, not when the future is first polled.
        let handle = tokio::task::spawn_blocking(move || read_exact_at(&file, offset, n));
        Some(Box::pin(async move {
            match tokio::time::timeout(timeout, handle).await {
                Ok(Ok(r)) => r,
                Ok(Err(join)) => Err(StorageError::Io(join.to_string())),
                Err(_) => Err(StorageError::Stalled {
                    op: "read",
                    secs: timeout.as_secs(),
                }),
            }
        }))
    }
}

impl Stream for ReadStream {
    type Item = Result<Bytes, StorageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.pending.is_none() {
            this.pending = this.start_next();
        }
        let Some(fut) = this.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let res = match fut.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        this.pending = None;
        match res {
            Ok(bytes) => {
                this.pending = this.start_next();
                Poll::Ready(Some(Ok(bytes)))
            }
            Err(e) => {
                this.pos = this.end;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

fn read_exact_at(file: &File, offset: u64, n: usize) -> Result<Bytes, StorageError> {
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
    Ok(Bytes::from(buf))
}

#[async_trait::async_trait]
impl Storage for LocalStorage {
    async fn open(&self, path: &MediaPath) -> Result<Arc<dyn Object>, StorageError> {
        let resolver = self.resolver();
        let path = path.clone();
        let timeout = self.opts.timeout;
        let chunk_size = self.opts.chunk_size;
        self.blocking("open", move || {
            let real = resolver.resolve(&path)?;
            let file = File::open(&real).map_err(|e| StorageError::from_io(&e))?;
            let md = file.metadata().map_err(|e| StorageError::from_io(&e))?;
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
            let obj: Arc<dyn Object> = Arc::new(LocalObject {
                file: Arc::new(file),
                meta,
                timeout,
                chunk_size,
            });
            Ok(obj)
        })
        .await
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
                let Ok(name) = entry.file_name().into_string() else {
                    continue; // not UTF-8: cannot be addressed by a MediaPath either
                };
                if name.starts_with('.') {
                    continue;
                }
                let Ok(ft) = entry.file_type() else { continue };
                let path = entry.path();
                if ft.is_symlink() {
                    // A link that escapes the root is not shown, so a listing never reveals
                    // what lies outside.
                    let Ok(target) = path.canonicalize() else {
                        continue;
                    };
                    if resolver.contain(target).is_err() {
                        continue;
                    }
                }
                let Ok(md) = std::fs::metadata(&path) else {
                    continue;
                };
                let kind = if md.is_dir() {
                    EntryKind::Dir
                } else if md.is_file() {
                    EntryKind::File
                } else {
                    continue;
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
        "local"
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
