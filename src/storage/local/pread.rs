//! Reading a chunk into memory that was never zero-filled.
//!
//! Every byte of a chunk buffer is written by the read before anyone sees it (what is not read
//! is not part of the buffer), so zero-filling it first is pure cost: `vec![0; n]` is a
//! `calloc`, whose `memset` took 2.4–3 % of the CPU of a 64 KiB range request in issue 17's
//! profile, and a megabyte of stores per grown chunk of a download. rustix's `preadv2` only
//! takes initialised buffers, so this is the one place the storage layer uses `unsafe`
//! (audited, listed in `lib.rs`).

use std::fs::File;
use std::os::fd::AsRawFd;

use rustix::io::Errno;

/// One `preadv2` at `offset` into `buf`'s spare capacity, at most `max - buf.len()` bytes
/// (never past the capacity); `buf` grows by what was read, which is returned. With `nowait`,
/// `RWF_NOWAIT`: only data already in the page cache, `EAGAIN` instead of waiting for a disk.
#[allow(unsafe_code)]
pub(super) fn pread_into(
    file: &File,
    buf: &mut Vec<u8>,
    max: usize,
    offset: u64,
    nowait: bool,
) -> Result<usize, Errno> {
    let len = buf.len();
    let room = max.saturating_sub(len).min(buf.capacity() - len);
    if room == 0 {
        return Ok(0);
    }
    let offset = libc::off_t::try_from(offset).map_err(|_| Errno::INVAL)?;
    let flags = if nowait { libc::RWF_NOWAIT } else { 0 };
    let spare = buf.spare_capacity_mut();
    let iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: room,
    };
    // SAFETY: `iov` describes `room` bytes of the vector's spare capacity, which `buf` owns and
    // nothing else borrows during the call; the kernel writes at most `iov_len` bytes there.
    let read = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, flags) };
    if read < 0 {
        let raw = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        return Err(Errno::from_raw_os_error(raw));
    }
    let read = (read as usize).min(room);
    // SAFETY: the kernel initialised the first `read` bytes of the spare capacity, and
    // `len + read <= capacity`.
    unsafe { buf.set_len(len + read) };
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_what_the_file_has_and_never_past_max() {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(b"0123456789").expect("write");
        let mut buf = Vec::with_capacity(8);
        assert_eq!(pread_into(&f, &mut buf, 4, 2, false), Ok(4));
        assert_eq!(buf, b"2345");
        // Continues where it stopped, capped by `max`, then by the end of the file.
        assert_eq!(pread_into(&f, &mut buf, 6, 6, false), Ok(2));
        assert_eq!(buf, b"234567");
        assert_eq!(pread_into(&f, &mut buf, 8, 8, false), Ok(2));
        assert_eq!(buf, b"23456789");
        assert_eq!(pread_into(&f, &mut buf, 8, 10, false), Ok(0));
        let mut tail = Vec::with_capacity(4);
        assert_eq!(pread_into(&f, &mut tail, 4, 10, false), Ok(0));
        assert!(tail.is_empty());
    }

    #[test]
    fn nowait_reads_cached_data_and_errors_come_back_as_errno() {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(b"abc").expect("write");
        let mut buf = Vec::with_capacity(3);
        // Just written, so in the page cache: RWF_NOWAIT has it (tmpfs and ext4 both support
        // the flag; a filesystem that does not answers EOPNOTSUPP, which callers handle).
        match pread_into(&f, &mut buf, 3, 0, true) {
            Ok(n) => assert_eq!(&buf[..n], &b"abc"[..n]),
            Err(e) => assert_eq!(e, Errno::OPNOTSUPP),
        }
        let mut buf = Vec::with_capacity(3);
        assert_eq!(
            pread_into(&f, &mut buf, 3, u64::MAX, false),
            Err(Errno::INVAL)
        );
    }
}
