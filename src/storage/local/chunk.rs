//! One chunk of a local read: inline when the page cache has it all (`preadv2(RWF_NOWAIT)`,
//! never waits on a device), or on storage's pool, where a read that meets `ESTALE` opens the
//! file again and where the last chunk of a long read checks that the file is still the
//! version the response began with.

use std::fs::File;

use bytes::Bytes;

use super::lease::{into_bytes, Lease};
use super::pread::pread_into;
use super::read::Handle;
use crate::storage::StorageError;

pub(super) enum NoWait {
    Data(Bytes),
    Eof,
    WouldBlock,
    Unsupported,
    Failed(StorageError),
}

/// One `preadv2(RWF_NOWAIT)`: data only if it is already in the page cache.
pub(super) fn read_nowait(file: &File, offset: u64, n: usize, lease: &mut Option<Lease>) -> NoWait {
    use rustix::io::Errno;
    let mut buf = Vec::with_capacity(n);
    match pread_into(file, &mut buf, n, offset, true) {
        Ok(0) => NoWait::Eof,
        Ok(_) => NoWait::Data(into_bytes(buf, lease.take())),
        // STALE: the blocking path opens the file again.
        Err(Errno::AGAIN) | Err(Errno::INTR) | Err(Errno::STALE) => NoWait::WouldBlock,
        Err(Errno::OPNOTSUPP) | Err(Errno::INVAL) | Err(Errno::NOSYS) => NoWait::Unsupported,
        Err(e) => NoWait::Failed(StorageError::from_io(&std::io::Error::from(e))),
    }
}

/// One chunk from the object's file; on `ESTALE` the file is opened again, once, and the
/// chunk read from it (see [`Handle::refresh`]).
pub(super) fn read_at_handle(
    handle: &Handle,
    offset: u64,
    n: usize,
    lease: Option<Lease>,
) -> Result<Bytes, StorageError> {
    let mut buf = Vec::with_capacity(n);
    let file = handle.current();
    let done = match read_exact_at(&file, offset, &mut buf, n) {
        Err(ReadErr::Stale) => {
            let fresh = handle.refresh(&file)?;
            read_exact_at(&fresh, offset, &mut buf, n).map_err(|e| match e {
                ReadErr::Stale => StorageError::from_io(&rustix::io::Errno::STALE.into()),
                ReadErr::Other(e) => e,
            })
        }
        Err(ReadErr::Other(e)) => Err(e),
        Ok(()) => Ok(()),
    };
    done?;
    Ok(into_bytes(buf, lease))
}

enum ReadErr {
    /// The server forgot the file handle (what was read so far stays in the buffer).
    Stale,
    Other(StorageError),
}

/// Fills `buf` up to `n` bytes with the file's bytes from `offset + buf.len()` on.
fn read_exact_at(file: &File, offset: u64, buf: &mut Vec<u8>, n: usize) -> Result<(), ReadErr> {
    use rustix::io::Errno;
    while buf.len() < n {
        match pread_into(file, buf, n, offset + buf.len() as u64, false) {
            // The file shrank under us: the response already promised these bytes.
            Ok(0) => return Err(ReadErr::Other(StorageError::Changed)),
            Ok(_) | Err(Errno::INTR) => {}
            Err(Errno::STALE) => return Err(ReadErr::Stale),
            Err(e) => return Err(ReadErr::Other(StorageError::from_io(&e.into()))),
        }
    }
    Ok(())
}
