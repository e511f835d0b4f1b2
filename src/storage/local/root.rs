//! The media root as a directory handle, and every lookup beneath it.
//!
//! Each operation starts from a fresh handle on the root ([`Root::open`]), which also checks
//! that the root is still the recorded volume (see `identity`). Paths are then resolved with
//! `openat2(RESOLVE_BENEATH)` (through cap-primitives, which falls back to a step-by-step
//! `O_NOFOLLOW` walk on kernels without it), so a symbolic link — or a folder swapped for one
//! while a request runs — can never take an operation outside the root. The one exception is
//! an absolute link that points back inside the root (users make those): it is resolved by
//! its real path, and that real path is then opened beneath the root again.
//! `storage.allow_symlink_escape` is honoured here and nowhere else.

use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cap_primitives::fs::{FollowSymlinks, OpenOptions};

use super::identity::Ident;
use crate::storage::{errno_message, MediaPath, StorageError};

pub(super) struct Root {
    path: PathBuf,
    allow_escape: bool,
    pub(super) ident: Mutex<Ident>,
}

/// An escape attempt, as cap-primitives reports it: `EXDEV` from `openat2`, or its own
/// permission error (which, unlike a real `EACCES`, carries no OS error number).
pub(super) fn is_escape(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error())
        || (e.kind() == io::ErrorKind::PermissionDenied && e.raw_os_error().is_none())
}

/// The error a failed lookup means to a client.
pub(super) fn lookup_err(e: &io::Error) -> StorageError {
    if is_escape(e) {
        return StorageError::OutsideRoot;
    }
    StorageError::from_io(e)
}

/// `a/b/c` as a relative path (the root itself is `.`).
pub(super) fn rel_path(p: &MediaPath) -> PathBuf {
    if p.is_root() {
        return PathBuf::from(".");
    }
    p.segments().iter().collect()
}

fn dir_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true)
        ._cap_fs_ext_maybe_dir(true)
        ._cap_fs_ext_follow(FollowSymlinks::Yes);
    cap_primitives::fs::OpenOptionsExt::custom_flags(&mut o, libc_o_directory());
    o
}

fn file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
    o.read(true)
        ._cap_fs_ext_nonblock(true)
        ._cap_fs_ext_follow(FollowSymlinks::Yes);
    o
}

fn libc_o_directory() -> i32 {
    rustix::fs::OFlags::DIRECTORY.bits() as i32
}

/// Opens the folder at `path` (absolute, as configured), following links in the path itself.
pub(super) fn open_dir_at(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_directory())
        .open(path)
}

impl Root {
    pub fn new(path: &Path, allow_escape: bool) -> Self {
        Root {
            path: path.to_path_buf(),
            allow_escape,
            ident: Mutex::new(Ident::default()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle on the root, checked to be the recorded volume. Blocking.
    pub fn open(&self) -> Result<File, StorageError> {
        let dir = open_dir_at(&self.path)
            .map_err(|e| StorageError::Unavailable(format!("media root: {}", errno_message(&e))))?;
        self.verify(&dir)?;
        Ok(dir)
    }

    /// Runs `op` on `rel` beneath `root`; an escape is retried by real path (see the module
    /// comment) and otherwise refused.
    fn beneath<T>(
        &self,
        root: &File,
        rel: &MediaPath,
        op: impl Fn(&File, &Path) -> io::Result<T>,
    ) -> Result<T, StorageError> {
        let p = rel_path(rel);
        match op(root, &p) {
            Ok(t) => Ok(t),
            Err(e) if is_escape(&e) => self.by_real_path(root, &p, &op),
            Err(e) => Err(lookup_err(&e)),
        }
    }

    /// Whatever the lookup found after an escape, the client learns only "outside the root"
    /// (403): never whether something exists out there.
    fn by_real_path<T>(
        &self,
        root: &File,
        p: &Path,
        op: &impl Fn(&File, &Path) -> io::Result<T>,
    ) -> Result<T, StorageError> {
        let real = self
            .path
            .join(p)
            .canonicalize()
            .map_err(|_| StorageError::OutsideRoot)?;
        if self.allow_escape {
            let slash = open_dir_at(Path::new("/")).map_err(|e| lookup_err(&e))?;
            let rel = real.strip_prefix("/").unwrap_or(&real);
            return op(&slash, rel).map_err(|e| lookup_err(&e));
        }
        let canon_root = self
            .path
            .canonicalize()
            .map_err(|e| StorageError::Unavailable(errno_message(&e)))?;
        let inside = real
            .strip_prefix(&canon_root)
            .map_err(|_| StorageError::OutsideRoot)?;
        let inside = if inside.as_os_str().is_empty() {
            Path::new(".")
        } else {
            inside
        };
        // The real path has no links left; if one was swapped in meanwhile, this refuses.
        op(root, inside).map_err(|e| lookup_err(&e))
    }

    /// An existing folder beneath the root.
    pub fn dir(&self, root: &File, rel: &MediaPath) -> Result<File, StorageError> {
        if rel.is_root() {
            return root.try_clone().map_err(|e| StorageError::from_io(&e));
        }
        let dir = self.beneath(root, rel, |start, p| {
            cap_primitives::fs::open(start, p, &dir_options())
        })?;
        Ok(dir)
    }

    /// An existing regular file beneath the root, opened for reading (never a FIFO or
    /// device: those are `NotFound`).
    pub fn file(&self, root: &File, rel: &MediaPath) -> Result<File, StorageError> {
        let f = self.beneath(root, rel, |start, p| {
            cap_primitives::fs::open(start, p, &file_options())
        })?;
        let md = f.metadata().map_err(|e| StorageError::from_io(&e))?;
        if md.is_dir() {
            return Err(StorageError::IsDirectory);
        }
        if !md.is_file() {
            return Err(StorageError::NotFound);
        }
        Ok(f)
    }

    /// What `rel` is (links followed beneath the root), or None when nothing is there.
    pub fn stat(
        &self,
        root: &File,
        rel: &MediaPath,
    ) -> Result<Option<std::fs::Metadata>, StorageError> {
        let opened = self.beneath(root, rel, |start, p| {
            let mut o = OpenOptions::new();
            // O_PATH ignores the access mode, but an open without one is refused (EINVAL).
            o.read(true)._cap_fs_ext_follow(FollowSymlinks::Yes);
            cap_primitives::fs::OpenOptionsExt::custom_flags(
                &mut o,
                rustix::fs::OFlags::PATH.bits() as i32,
            );
            cap_primitives::fs::open(start, p, &o)
        });
        match opened {
            Ok(f) => f
                .metadata()
                .map(Some)
                .map_err(|e| StorageError::from_io(&e)),
            Err(StorageError::NotFound | StorageError::NotADirectory) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The folder `rel`, creating what is missing one name at a time (each `mkdirat` in a
    /// folder already resolved beneath the root). Returns the folder and the folders it
    /// created, outermost first, for [`Root::undo_dirs`].
    pub fn make_dirs(
        &self,
        root: &File,
        rel: &MediaPath,
    ) -> Result<(File, Vec<MediaPath>), StorageError> {
        let mut created = Vec::new();
        let result = (|| {
            let mut cur = root.try_clone().map_err(|e| StorageError::from_io(&e))?;
            let mut so_far = MediaPath::root();
            for seg in rel.segments() {
                so_far = so_far
                    .join(seg)
                    .map_err(|e| StorageError::Invalid(e.to_string()))?;
                match self.dir(root, &so_far) {
                    Ok(d) => cur = d,
                    Err(StorageError::NotFound) => {
                        match rustix::fs::mkdirat(&cur, seg.as_str(), 0o755.into()) {
                            Ok(()) => created.push(so_far.clone()),
                            Err(rustix::io::Errno::EXIST) => {}
                            Err(e) => {
                                return Err(super::write_err(&e.into(), &shown(&so_far)));
                            }
                        }
                        cur = self.dir(root, &so_far)?;
                    }
                    // A file where a folder is needed.
                    Err(StorageError::NotADirectory) => return Err(StorageError::AlreadyExists),
                    Err(e) => return Err(e),
                }
            }
            Ok(cur)
        })();
        match result {
            Ok(dir) => Ok((dir, created)),
            Err(e) => {
                self.undo_dirs(root, &created);
                Err(e)
            }
        }
    }

    /// Removes folders `make_dirs` created (innermost first), if still empty.
    pub fn undo_dirs(&self, root: &File, created: &[MediaPath]) {
        for p in created.iter().rev() {
            let Some((parent, name)) = p.split_last() else {
                continue;
            };
            if let Ok(d) = self.dir(root, &parent) {
                let _ = rustix::fs::unlinkat(&d, name, rustix::fs::AtFlags::REMOVEDIR);
            }
        }
    }

    /// Checks, without creating anything, that a new file could be committed at `dest`:
    /// every existing folder on the way resolves inside the root, none is a file, and `dest`
    /// is not a folder (nor an existing file unless `overwrite`). Returns the deepest
    /// existing folder on the way and its name (where the bytes may be staged, on its
    /// filesystem, and what must be writable).
    pub fn check_dest(
        &self,
        root: &File,
        dest: &MediaPath,
        overwrite: bool,
    ) -> Result<(File, MediaPath), StorageError> {
        let (parent, name) = dest.split_last().ok_or(StorageError::IsDirectory)?;
        let mut deepest = root.try_clone().map_err(|e| StorageError::from_io(&e))?;
        let mut deepest_path = MediaPath::root();
        let mut so_far = MediaPath::root();
        for seg in parent.segments() {
            so_far = so_far
                .join(seg)
                .map_err(|e| StorageError::Invalid(e.to_string()))?;
            match self.dir(root, &so_far) {
                Ok(d) => {
                    deepest = d;
                    deepest_path = so_far.clone();
                }
                // The rest is made at commit.
                Err(StorageError::NotFound) => return Ok((deepest, deepest_path)),
                Err(StorageError::NotADirectory) => return Err(StorageError::AlreadyExists),
                Err(e) => return Err(e),
            }
        }
        match rustix::fs::statat(&deepest, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => {
                Err(StorageError::IsDirectory)
            }
            Ok(_) if !overwrite => Err(StorageError::AlreadyExists),
            _ => Ok((deepest, deepest_path)),
        }
    }
}

/// A folder as errors name it: relative to the media root, `/` for the root.
pub(super) fn shown(p: &MediaPath) -> String {
    if p.is_root() {
        "/".to_string()
    } else {
        p.to_string()
    }
}

/// The device of an open file or folder.
pub(super) fn dev_of(f: &File) -> Option<u64> {
    f.metadata().ok().map(|m| m.dev())
}
