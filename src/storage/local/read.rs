//! The read half of the local backend: an open file streamed range by range with bounded
//! memory. Page-cache hits are read inline with `preadv2(RWF_NOWAIT)`; anything that would
//! wait for the disk goes to the blocking pool under the storage timeout, so a spun-down
//! disk or a hung NFS mount never stalls a runtime worker.

use std::fs::File;
use std::future::Future;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::Stream;

use super::chunk::{read_at_handle, read_nowait, NoWait};
use super::lease::{ChunkBudget, Lease};
use super::pace::Pace;
use super::region::{self, LocalRegion};
use crate::blocking::Pool;
use crate::storage::{
    ByteStream, FileRegion, Object, ObjectMeta, StorageError, VersionCheck, ZeroCopy,
};

pub(super) fn etag_of(md: &std::fs::Metadata) -> String {
    // inode + size + mtime (ns): a replaced or rewritten file gets a new tag.
    let nanos = md
        .mtime()
        .wrapping_mul(1_000_000_000)
        .wrapping_add(md.mtime_nsec());
    let mut tag = String::with_capacity(40);
    crate::hex::push_u64(&mut tag, md.ino());
    tag.push('-');
    crate::hex::push_u64(&mut tag, md.size());
    tag.push('-');
    // `{:x}` of the i64 wrote its two's complement: the same digits.
    crate::hex::push_u64(&mut tag, nanos as u64);
    tag
}

/// Opens the object's file again by its path (blocking), for a read that met `ESTALE`.
pub(super) type Reopen = Arc<dyn Fn() -> Result<File, StorageError> + Send + Sync>;

/// The object's open file, replaced when a read meets `ESTALE` and the file, opened again by
/// its path, is still the same version (same validator).
pub(super) struct Handle {
    file: RwLock<Arc<File>>,
    reopen: Reopen,
    etag: String,
}

impl Handle {
    pub(super) fn current(&self) -> Arc<File> {
        self.file.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// After `ESTALE` on `stale`: the file opened again, once, if it is the same version
    /// (`Changed` otherwise: the ranges of one response come from one version). Blocking.
    pub(super) fn refresh(&self, stale: &Arc<File>) -> Result<Arc<File>, StorageError> {
        let now = self.current();
        if !Arc::ptr_eq(&now, stale) {
            // Another read already opened it again.
            return Ok(now);
        }
        tracing::debug!("ESTALE on read: opening the file again");
        let fresh = (self.reopen)()?;
        let md = fresh.metadata().map_err(|e| StorageError::from_io(&e))?;
        if etag_of(&md) != self.etag {
            return Err(StorageError::Changed);
        }
        let fresh = Arc::new(fresh);
        *self.file.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    /// The file is still the version the response began with (`Changed` otherwise).
    /// Blocking: on NFS the `fstat` may ask the server.
    pub(super) fn unchanged(&self) -> Result<(), StorageError> {
        let md = self
            .current()
            .metadata()
            .map_err(|e| StorageError::from_io(&e))?;
        if etag_of(&md) == self.etag {
            Ok(())
        } else {
            Err(StorageError::Changed)
        }
    }
}

#[cfg(test)]
impl Handle {
    /// A handle on `file` that cannot be opened again.
    pub(super) fn for_test(file: File) -> Arc<Handle> {
        Arc::new(Handle {
            file: RwLock::new(Arc::new(file)),
            reopen: Arc::new(|| Err(StorageError::NotFound)),
            etag: String::new(),
        })
    }
}

pub(super) struct LocalObject {
    file: Arc<Handle>,
    meta: ObjectMeta,
    timeout: Duration,
    chunk_size: usize,
    budget: Arc<ChunkBudget>,
    pool: Arc<Pool>,
    /// The file is on a local filesystem: its cached bytes may be sent with `sendfile`
    /// (`region`).
    zero_copy: bool,
}

impl LocalObject {
    /// `file` must be a regular file; `md` its metadata.
    pub(super) fn new(
        file: File,
        reopen: Reopen,
        md: &std::fs::Metadata,
        timeout: Duration,
        chunk_size: usize,
        budget: Arc<ChunkBudget>,
        pool: Arc<Pool>,
    ) -> Self {
        let meta = meta_of(md);
        LocalObject {
            file: Arc::new(Handle {
                file: RwLock::new(Arc::new(file)),
                reopen,
                etag: meta.etag.clone(),
            }),
            meta,
            timeout,
            chunk_size,
            budget,
            pool,
            zero_copy: false,
        }
    }

    /// Cached bytes may go out with `sendfile`: for a file on a local filesystem only.
    pub(super) fn zero_copy(mut self, on: bool) -> Self {
        self.zero_copy = on;
        self
    }
}

/// Size, mtime and the strong validator of a file's metadata.
pub(super) fn meta_of(md: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        size: md.len(),
        modified: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        etag: etag_of(md),
    }
}

impl Object for LocalObject {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn read_range(&self, range: Range<u64>) -> ByteStream {
        self.read_range_to(range, None)
    }

    fn read_range_to(&self, range: Range<u64>, zc: Option<&Arc<dyn ZeroCopy>>) -> ByteStream {
        let end = range.end.min(self.meta.size);
        let mut stream = ReadStream::new(
            self.file.clone(),
            range.start.min(end)..end,
            self.chunk_size,
            self.timeout,
            self.budget.clone(),
            self.pool.clone(),
        );
        if let Some(zc) = zc.filter(|_| self.zero_copy && region::supported()) {
            let file: Arc<dyn FileRegion> = Arc::new(LocalRegion {
                handle: self.file.clone(),
                pool: self.pool.clone(),
                timeout: self.timeout,
            });
            stream.tail = zc.in_flight();
            stream.zc = Some((zc.clone(), file));
        }
        Box::pin(stream)
    }

    fn unchanged(&self) -> VersionCheck {
        let file = self.file.clone();
        Box::pin(
            self.pool
                .spawn("read", self.timeout, move || file.unchanged()),
        )
    }
}

type ChunkFuture = Pin<Box<dyn Future<Output = Result<Bytes, StorageError>> + Send>>;

/// A stream that has read this much inline (page-cache hits) lets its task go to the back
/// of the runtime's queue before reading more: in effect one chunk per turn. hyper writes up
/// to 16 frames per poll of a connection, so a fast client's task held a worker for up to 16
/// chunks while new requests waited. With 50 players seeking on 2 cores
/// (`scripts/bench/ttfb.py`), a seek's first byte took p50 59 / p99 97 ms (nginx 10 / 69);
/// yielding every 512 KiB, 53 / 87; every 64 KiB, 14 / 28, with more seeks served, and a
/// single download at 0.93× of the no-yield speed (docs/PERFORMANCE.md).
const YIELD_EVERY: u64 = 64 * 1024;

/// Reads a range chunk by chunk with bounded memory.
///
/// Page-cache hits are read inline with `preadv2(RWF_NOWAIT)`, which never blocks: it returns
/// EAGAIN instead of waiting for the disk. Only then does a chunk go to the blocking pool, and
/// the following chunk is read ahead there too (cold data is usually followed by cold data), so
/// disk reads overlap socket writes. A slow client holds at most one chunk in hyper and one
/// read ahead.
struct ReadStream {
    file: Arc<Handle>,
    /// Where the range began: a read that took more than one chunk checks the file's version
    /// before its last chunk ([`ReadStream::last_of_many`]).
    start: u64,
    pos: u64,
    end: u64,
    timeout: Duration,
    pending: Option<ChunkFuture>,
    /// How big each read is, from how quickly the consumer asks ([`Pace`]).
    pace: Pace,
    budget: Arc<ChunkBudget>,
    pool: Arc<Pool>,
    /// Cleared when the filesystem does not support RWF_NOWAIT (some network filesystems).
    nowait: bool,
    /// Bytes read inline since this stream last let its task go ([`YIELD_EVERY`]).
    since_yield: u64,
    /// Where cached stretches go instead of being read (`read_range_to`), and the file.
    zc: Option<(Arc<dyn ZeroCopy>, Arc<dyn FileRegion>)>,
    /// A read of several chunks hands no region within this many bytes of its end
    /// ([`ZeroCopy::in_flight`]).
    tail: u64,
    base: usize,
}

impl ReadStream {
    fn new(
        file: Arc<Handle>,
        range: Range<u64>,
        chunk: usize,
        timeout: Duration,
        budget: Arc<ChunkBudget>,
        pool: Arc<Pool>,
    ) -> Self {
        ReadStream {
            file,
            start: range.start,
            pos: range.start,
            end: range.end,
            timeout,
            pending: None,
            pace: Pace::new(chunk as u64),
            budget,
            pool,
            nowait: true,
            since_yield: 0,
            zc: None,
            tail: 0,
            base: chunk,
        }
    }

    /// Size of the next read and, for a grown chunk, its share of the budget. `ahead`: a
    /// read-ahead, started as a disk read came back, not at the consumer's asking.
    fn next_len(&mut self, ahead: bool, now: Instant) -> (usize, Option<Lease>) {
        let budget = &self.budget;
        self.pace
            .next(now, self.end - self.pos, ahead, |n| budget.try_take(n))
    }

    /// The next stretch as a region for the connection to send from the page cache, when it
    /// is all there; otherwise its size and lease for a read. A region holds no memory, so
    /// its size grows without the grown-chunk budget.
    fn send_cached(
        &mut self,
        (zc, file): (Arc<dyn ZeroCopy>, Arc<dyn FileRegion>),
        now: Instant,
    ) -> Result<Bytes, (usize, Option<Lease>)> {
        let (n, _) = self.pace.next(now, self.end - self.pos, false, Some);
        let one_chunk = self.pos == self.start && self.pos + n as u64 >= self.end;
        if !one_chunk && self.end - (self.pos + n as u64).min(self.end) < self.tail {
            // The rest of a read of several chunks is copied: when its last chunk checks the
            // file's version (`last_of_many`), no page handed over may still be in a socket,
            // where a rewrite would change it after the check (attack pass of stop 35). A
            // single-chunk read was opened and checked microseconds before it is handed over.
            self.zc = None;
            return Err(self.copied(n));
        }
        // The last chunk of several is read and checked on the pool (`start_blocking`), in
        // one read like any uncached stretch, never handed over as a region.
        let cached = if self.last_of_many(n) {
            Some(false)
        } else {
            region::cached(&self.file.current(), self.pos, n)
        };
        if cached.is_none() {
            // The kernel will not say for this file (see `region::cached`): copy it all.
            self.zc = None;
        }
        if let Some(b) = (cached == Some(true))
            .then(|| zc.region(file, self.pos, n))
            .flatten()
        {
            self.pos += n as u64;
            self.since_yield += n as u64;
            return Ok(b);
        }
        Err(self.copied(n))
    }

    /// A stretch of `n` bytes (a region's size) to be read instead: as large only with a
    /// share of the grown-chunk budget.
    fn copied(&self, n: usize) -> (usize, Option<Lease>) {
        if n > self.base {
            if let Some(lease) = self.budget.try_take(n) {
                return (n, Some(lease));
            }
        }
        (n.min(self.base), None)
    }

    /// The next `n` bytes end a read that took more than one chunk. A file rewritten in
    /// place while it was sent (`cp` over it, `dd conv=notrunc`) would reach the client as
    /// a mix of versions under the first one's ETag, as a complete response (attack pass
    /// F1): that last chunk is read on the pool and sent only if the file is still the same
    /// version, so such a response ends short instead. A single-chunk read (a player's
    /// range) is not checked: it was opened and checked microseconds before.
    fn last_of_many(&self, n: usize) -> bool {
        self.pos > self.start && self.pos + n as u64 >= self.end
    }

    fn start_blocking(&mut self, n: usize, lease: Option<Lease>) -> ChunkFuture {
        let offset = self.pos;
        let check = self.last_of_many(n);
        self.pos += n as u64;
        let file = self.file.clone();
        Box::pin(self.pool.spawn("read", self.timeout, move || {
            let chunk = read_at_handle(&file, offset, n, lease)?;
            if check {
                file.unchanged()?;
            }
            Ok(chunk)
        }))
    }

    fn finish(
        &mut self,
        res: Result<Bytes, StorageError>,
        now: Instant,
    ) -> Poll<Option<Result<Bytes, StorageError>>> {
        match res {
            Ok(b) => {
                self.pace.out(now, b.len() as u64);
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
        // One clock read per poll serves the pace's three questions.
        let now = Instant::now();
        this.pace.asked(now);
        if let Some(fut) = this.pending.as_mut() {
            let res = match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            };
            this.pending = None;
            if res.is_ok() && this.pos < this.end {
                let (n, lease) = this.next_len(true, now);
                this.pending = Some(this.start_blocking(n, lease));
            }
            return this.finish(res, now);
        }
        if this.pos >= this.end {
            return Poll::Ready(None);
        }
        if this.nowait && this.since_yield >= YIELD_EVERY {
            this.since_yield = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let (n, mut lease) = match this.zc.clone() {
            Some(zc) => match this.send_cached(zc, now) {
                Ok(b) => return this.finish(Ok(b), now),
                Err(sized) => sized,
            },
            None => this.next_len(false, now),
        };
        if this.nowait && !this.last_of_many(n) {
            match read_nowait(&this.file.current(), this.pos, n, &mut lease) {
                NoWait::Data(b) => {
                    this.pos += b.len() as u64;
                    this.since_yield += b.len() as u64;
                    return this.finish(Ok(b), now);
                }
                NoWait::Eof => return this.finish(Err(StorageError::Changed), now),
                NoWait::Failed(e) => return this.finish(Err(e), now),
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
            Poll::Ready(r) => this.finish(r, now),
        }
    }
}
