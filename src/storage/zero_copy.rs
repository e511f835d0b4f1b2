//! Sending file bytes without copying them through our memory: the contract between a
//! backend that has the bytes in a local file and a connection that can send straight from
//! it (`sendfile`). Neither side knows the other: storage hands a [`FileRegion`] to whatever
//! [`ZeroCopy`] the caller passed, and gets back the frame to yield in its place.

use std::future::Future;
use std::os::fd::BorrowedFd;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use super::StorageError;

/// The bytes of a read that could not be sent from the page cache.
pub type ReadFuture = Pin<Box<dyn Future<Output = Result<Bytes, StorageError>> + Send>>;

/// A stored file that a connection may send from.
pub trait FileRegion: Send + Sync {
    /// Sends up to `len` bytes from `offset` to `socket` (non-blocking), only if all of them
    /// are in the page cache now: `Ok(None)` when some are not, so the call never waits for a
    /// device. `Ok(Some(0))`: the file ends before `offset`.
    fn send_cached(
        &self,
        socket: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> std::io::Result<Option<usize>>;

    /// Reads `len` bytes from `offset` the way the backend reads anything that may wait for
    /// the device (off the runtime, under the storage timeout): for bytes that left the page
    /// cache between the frame's making and its sending.
    fn read(&self, offset: u64, len: usize) -> ReadFuture;
}

/// Where a body may hand file regions instead of bytes: a connection's writer, which sends
/// the regions in the order their frames reach it.
pub trait ZeroCopy: Send + Sync {
    /// The frame to yield in place of `len` bytes of `file` from `offset`, or `None` when
    /// this region cannot be sent this way (then the bytes are read as usual). The frame
    /// must be yielded at once: the writer pairs frames and regions by order.
    fn region(&self, file: Arc<dyn FileRegion>, offset: u64, len: usize) -> Option<Bytes>;

    /// The most bytes the kernel may still be sending from after they were handed over: a
    /// region's pages stay in the socket, not a copy, until they are acknowledged (and, for
    /// a client on this host, until it has read them). A body that checks its file's version
    /// at its end hands no region within this many bytes of that end, so that every byte
    /// that could still change is a copy when it checks.
    fn in_flight(&self) -> u64;
}
