//! The local backend's side of zero-copy sends ([`FileRegion`]): a file's bytes go from the
//! page cache to a socket with `sendfile`, and only bytes that are there. `sendfile` has no
//! non-blocking mode for the file side, so `cachestat(2)` (Linux 6.5) asks first whether the
//! whole stretch is cached; what is not is read as any other read, on storage's pool. Only a
//! root on a local filesystem gets here (`LocalObject`): on NFS a page dropped between the
//! two calls would hang a runtime worker on the server, on a local disk it costs one read.

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::chunk::read_at_handle;
use super::read::Handle;
use crate::blocking::Pool;
use crate::storage::{FileRegion, ReadFuture};

pub(super) struct LocalRegion {
    pub(super) handle: Arc<Handle>,
    pub(super) pool: Arc<Pool>,
    pub(super) timeout: Duration,
}

impl FileRegion for LocalRegion {
    fn send_cached(
        &self,
        socket: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> std::io::Result<Option<usize>> {
        let file = self.handle.current();
        if cached(&file, offset, len) != Some(true) {
            return Ok(None);
        }
        let mut at = offset;
        Ok(Some(rustix::fs::sendfile(
            socket,
            &*file,
            Some(&mut at),
            len,
        )?))
    }

    fn read(&self, offset: u64, len: usize) -> ReadFuture {
        let handle = self.handle.clone();
        Box::pin(self.pool.spawn("read", self.timeout, move || {
            read_at_handle(&handle, offset, len, None)
        }))
    }
}

/// The kernel has `cachestat`; cleared at its first `ENOSYS`.
static CACHESTAT: AtomicBool = AtomicBool::new(true);

/// Whether the kernel can say what is cached (false before Linux 6.5).
pub(super) fn supported() -> bool {
    CACHESTAT.load(Ordering::Relaxed)
}

/// Whether every page of `len` bytes from `offset` is in the page cache; `None` when the
/// kernel cannot say.
pub(super) fn cached(file: &File, offset: u64, len: usize) -> Option<bool> {
    if len == 0 {
        return Some(true);
    }
    let page = page_size();
    let last = offset.checked_add(len as u64 - 1)?;
    let pages = last / page - offset / page + 1;
    match cachestat(file, offset, len as u64) {
        Ok(n) => Some(n >= pages),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            if CACHESTAT.swap(false, Ordering::Relaxed) {
                tracing::info!("zero-copy sends off: no cachestat (Linux < 6.5)");
            }
            None
        }
        Err(e) => {
            // EPERM: since Linux 6.x only a process that may write the file (or owns it) may
            // ask, and a seccomp filter (systemd 252's `@system-service` does not know the
            // call) refuses it for every file. Either way this file is copied.
            static SAID: AtomicBool = AtomicBool::new(false);
            if !SAID.swap(true, Ordering::Relaxed) {
                tracing::info!(error = %e, "zero-copy sends refused: a file the service may not write, or a filter");
            }
            None
        }
    }
}

fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(sysconf_page_size)
}

/// The page size (4 KiB, or 16 KiB on a Raspberry Pi 5's kernel). rustix's `param` would
/// cost 1 KiB of the binary budget for this one number.
#[allow(unsafe_code)]
fn sysconf_page_size() -> u64 {
    // SAFETY: sysconf takes no pointers; _SC_PAGESIZE is always answered on Linux.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// `cachestat(2)`'s syscall number: one number on every architecture (the unified table).
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct Range {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Stat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Pages of the range in the page cache. libc has no wrapper for this call yet.
#[allow(unsafe_code)]
fn cachestat(file: &File, off: u64, len: u64) -> std::io::Result<u64> {
    let range = Range { off, len };
    let mut stat = Stat::default();
    // SAFETY: `range` and `stat` are live, properly laid out (`repr(C)` as in
    // <linux/mman.h>) and exclusively ours for the call; the descriptor is open.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.nr_cache)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_just_written_is_cached_and_past_its_end_is_not() {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(&vec![7u8; 3 * 4096 + 10]).expect("write");
        let file = f.as_file();
        assert_eq!(cached(file, 0, 3 * 4096 + 10), Some(true));
        assert_eq!(
            cached(file, 4095, 2),
            Some(true),
            "a range across a page edge"
        );
        assert_eq!(cached(file, 1 << 30, 4096), Some(false));
        // A range that runs past the end has pages that are not there.
        assert_eq!(cached(file, 4096, 1 << 20), Some(false));
    }
}
