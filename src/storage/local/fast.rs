//! The non-blocking open of the local backend: a file whose every path component is in the
//! dentry cache on the root's own local filesystem is opened on the runtime worker
//! (`openat2(RESOLVE_CACHED)`), without a thread hand-off; anything else takes the blocking
//! path.

use std::fs::File;
use std::sync::atomic::Ordering;

use super::{identity, LocalStorage, MARKER, MARKER_RECHECK};
use crate::storage::{MediaPath, StorageError};

impl LocalStorage {
    /// Opens `path` only if that cannot block: every path component must already be in the
    /// dentry cache (`RESOLVE_CACHED`), stay on the root's (local) filesystem (`NO_XDEV`) and,
    /// unless escapes are allowed, stay beneath the root (`BENEATH`); the root must still be
    /// the checked volume (its device, and the marker already verified). `None` means "take
    /// the blocking path" — a cold cache, an absolute symlink, a mount point, an old kernel,
    /// a changed marker — so a spun-down disk or an NFS mount never stalls a runtime worker,
    /// while hot files skip a thread hand-off per request.
    pub(super) fn open_fast(&self, path: &MediaPath) -> Option<Result<File, StorageError>> {
        use rustix::fs::{fstat, openat2, Mode, OFlags, ResolveFlags};
        use rustix::io::Errno;
        if !self.fast_open.load(Ordering::Relaxed) || path.is_root() {
            return None;
        }
        if path.is_hidden() {
            return Some(Err(StorageError::NotFound));
        }
        let canonical = &self.probed.get()?.0;
        // What this request needs of the identity, copied out (no allocation per request).
        let (expected, dev, seen) = {
            let ident = self.root.ident.lock().ok()?;
            if ident.blocked.is_some() {
                return None;
            }
            (ident.expected.is_some(), ident.dev, ident.marker)
        };
        let cached = |dir: &dyn rustix::fd::AsFd, p: &str, flags: OFlags, how: ResolveFlags| {
            openat2(dir, p, flags | OFlags::CLOEXEC, Mode::empty(), how)
        };
        let root = match openat2(
            rustix::fs::CWD,
            canonical,
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
        // Same filesystem, in-memory inodes: fstat does not wait on a device.
        let st = fstat(&root).ok()?;
        if expected {
            if dev != Some(st.st_dev) {
                return None;
            }
            if self.marker_fresh() {
                return self.open_cached(&root, path);
            }
            let marker = cached(
                &root,
                MARKER,
                OFlags::PATH | OFlags::NOFOLLOW,
                ResolveFlags::CACHED | ResolveFlags::BENEATH,
            )
            .ok()?;
            let m = fstat(&marker).ok()?;
            if seen != Some(identity::seen_of(&m)) {
                return None;
            }
            self.marker_seen();
        }
        self.open_cached(&root, path)
    }

    /// The marker was verified on the fast path less than [`MARKER_RECHECK`] ago. The device
    /// is compared on every request (an unmount or another disk is seen at once); the marker
    /// itself (3 syscalls) at most once per interval, so a disk swapped for another with the
    /// same device number within it could be read from for that long — never written to:
    /// writes take the blocking path, which checks the marker every time.
    fn marker_fresh(&self) -> bool {
        let last = self.marker_seen_ms.load(Ordering::Relaxed);
        last != 0 && self.now_ms().saturating_sub(last) < MARKER_RECHECK.as_millis() as u64
    }

    fn marker_seen(&self) {
        self.marker_seen_ms
            .store(self.now_ms().max(1), Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The open itself, beneath the already-opened root (see [`Self::open_fast`]).
    fn open_cached(
        &self,
        root: &rustix::fd::OwnedFd,
        path: &MediaPath,
    ) -> Option<Result<File, StorageError>> {
        use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
        use rustix::io::Errno;
        // Links take the slow path, where `resolve` follows them by our rules.
        let mut how = ResolveFlags::CACHED
            | ResolveFlags::NO_XDEV
            | ResolveFlags::NO_MAGICLINKS
            | ResolveFlags::NO_SYMLINKS;
        if !self.opts.allow_symlink_escape {
            how |= ResolveFlags::BENEATH;
        }
        let rel = path.to_string();
        match openat2(
            root,
            rel.as_str(),
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        ) {
            Ok(fd) => Some(Ok(File::from(fd))),
            // A missing name may be spelled in another Unicode form on disk: the slow path
            // looks for it.
            Err(Errno::NOTDIR) => Some(Err(StorageError::NotFound)),
            Err(Errno::ACCESS) => Some(Err(StorageError::PermissionDenied)),
            Err(_) => None,
        }
    }
}
