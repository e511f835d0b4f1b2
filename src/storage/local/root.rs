//! The media root as a directory handle, and every lookup beneath it.
//!
//! Each operation starts from a fresh handle on the root ([`Root::open`]), which also checks
//! that the root is still the recorded volume (see `identity`). Paths are then walked one
//! name at a time with `O_NOFOLLOW` from folder handles already resolved beneath the root,
//! links followed by our own rules (`resolve`), so a symbolic link — or a folder swapped for
//! one while a request runs — can never take an operation outside the root, and nothing
//! outside is ever looked up. `storage.allow_symlink_escape` is honoured in `resolve` and
//! nowhere else.

use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::identity::Ident;
use super::resolve::{self, Located, Rules};
use crate::storage::{errno_message, MediaPath, StorageError};

pub(super) struct Root {
    path: PathBuf,
    allow_escape: bool,
    /// The root must be a mount point (`storage.require_mount`).
    pub(super) must_be_mount: bool,
    /// The root's real path (links in the configured path resolved), for absolute link
    /// targets; taken when the root is first opened.
    canon: Mutex<Option<PathBuf>>,
    pub(super) ident: Mutex<Ident>,
}

/// Opens the folder at `path` (absolute, as configured), following links in the path itself.
pub(super) fn open_dir_at(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OFlags::DIRECTORY.bits() as i32)
        .open(path)
}

/// Opens `name` in `dir` (never through a link) with `flags`.
fn open_in(dir: &File, name: &str, flags: OFlags) -> Result<File, Errno> {
    rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
}

impl Root {
    pub fn new(path: &Path, allow_escape: bool) -> Self {
        Root {
            path: path.to_path_buf(),
            allow_escape,
            must_be_mount: false,
            canon: Mutex::new(None),
            ident: Mutex::new(Ident::default()),
        }
    }

    /// The root must be a mount point (see `mount`).
    pub fn require_mount(mut self, on: bool) -> Self {
        self.must_be_mount = on;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle on the root, checked to be the recorded volume (and a mount point when
    /// required). Blocking. A stale NFS handle (`ESTALE`: the server re-exported, or the
    /// folder was replaced on it) is looked up afresh once.
    pub fn open(&self) -> Result<File, StorageError> {
        let dir = match open_dir_at(&self.path) {
            Err(e) if is_stale(&e) => open_dir_at(&self.path),
            r => r,
        }
        .map_err(|e| StorageError::Unavailable(format!("media root: {}", errno_message(&e))))?;
        self.check_mount(&dir)?;
        self.verify(&dir)?;
        Ok(dir)
    }

    /// `Unavailable` when the root must be a mount point and `dir` is not one.
    pub fn check_mount(&self, dir: &File) -> Result<(), StorageError> {
        if self.must_be_mount && super::mount::is_mount_point(dir) == Some(false) {
            return Err(StorageError::Unavailable(super::mount::NOT_A_MOUNT.into()));
        }
        Ok(())
    }

    fn canon_root(&self) -> Result<PathBuf, StorageError> {
        let mut c = self.canon.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = c.as_ref() {
            return Ok(p.clone());
        }
        let p = self
            .path
            .canonicalize()
            .map_err(|e| StorageError::Unavailable(format!("media root: {}", errno_message(&e))))?;
        *c = Some(p.clone());
        Ok(p)
    }

    /// Where `rel` leads (see `resolve`), for a read.
    fn locate(&self, root: &File, rel: &MediaPath) -> Result<Located, StorageError> {
        self.locate_in(root, rel, self.allow_escape)
    }

    /// `anywhere`: links may lead out of the root (`allow_symlink_escape`, reads only).
    fn locate_in(
        &self,
        root: &File,
        rel: &MediaPath,
        anywhere: bool,
    ) -> Result<Located, StorageError> {
        let canon = self.canon_root()?;
        let rules = Rules {
            canon_root: &canon,
            anywhere,
        };
        resolve::locate(root, rel.segments(), &rules)
    }

    /// The path under the root where `rel` really is (links followed), or None when it
    /// leads outside (escapes allowed).
    pub fn real_path(
        &self,
        root: &File,
        rel: &MediaPath,
    ) -> Result<Option<MediaPath>, StorageError> {
        let real = self.locate(root, rel)?.real;
        Ok(real.and_then(|r| MediaPath::from_names(r).ok()))
    }

    /// An existing folder beneath the root, opened for reading (links may lead out of the
    /// root when escapes are allowed).
    pub fn dir(&self, root: &File, rel: &MediaPath) -> Result<File, StorageError> {
        self.dir_in(root, rel, self.allow_escape)
    }

    /// An existing folder inside the root, to change something in: never out of the root,
    /// whatever `allow_symlink_escape` says (it lets people read a linked folder, not make
    /// the service write anywhere its user may).
    pub fn wdir(&self, root: &File, rel: &MediaPath) -> Result<File, StorageError> {
        self.dir_in(root, rel, false)
    }

    fn dir_in(&self, root: &File, rel: &MediaPath, anywhere: bool) -> Result<File, StorageError> {
        if rel.is_root() {
            return root.try_clone().map_err(|e| StorageError::from_io(&e));
        }
        let at = self.locate_in(root, rel, anywhere)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        let opened = match &at.name {
            Some(n) => open_in(&at.dir, n, flags),
            None => open_in(&at.dir, ".", flags),
        };
        opened.map_err(|e| match e {
            Errno::NOENT | Errno::LOOP => StorageError::NotFound,
            Errno::NOTDIR => StorageError::NotADirectory,
            e => StorageError::from_io(&e.into()),
        })
    }

    /// An existing regular file beneath the root, opened for reading (never a FIFO or
    /// device: those are `NotFound`; non-blocking, so opening a FIFO cannot wait). On NFS a
    /// name may be looked up with a file handle the server no longer knows (`ESTALE`, after
    /// the file was replaced there): the lookup is done again, once, from a fresh root.
    pub fn file(&self, root: &File, rel: &MediaPath) -> Result<File, StorageError> {
        match self.file_once(root, rel) {
            Err(Stale) => {
                tracing::debug!(path = %rel, "ESTALE on open: looking the file up again");
                let fresh = self.open()?;
                self.file_once(&fresh, rel)
                    .map_err(|Stale| StorageError::from_io(&Errno::STALE.into()))?
            }
            Ok(r) => r,
        }
    }

    /// One attempt of [`Root::file`]; `Err(Stale)` when the server said ESTALE.
    fn file_once(&self, root: &File, rel: &MediaPath) -> Result<Result<File, StorageError>, Stale> {
        Ok(match self.file_inner(root, rel) {
            Err(FileErr::Stale) => return Err(Stale),
            Err(FileErr::Other(e)) => Err(e),
            Ok(f) => Ok(f),
        })
    }

    fn file_inner(&self, root: &File, rel: &MediaPath) -> Result<File, FileErr> {
        let at = self.locate(root, rel)?;
        let name = at.name.as_deref().ok_or(StorageError::IsDirectory)?;
        let f = open_in(&at.dir, name, OFlags::RDONLY | OFlags::NONBLOCK).map_err(|e| match e {
            Errno::STALE => FileErr::Stale,
            // NXIO: a Unix socket placed in the root (not a file anyone can read).
            Errno::NOENT | Errno::LOOP | Errno::NXIO => StorageError::NotFound.into(),
            e => StorageError::from_io(&e.into()).into(),
        })?;
        let md = f.metadata().map_err(|e| match e.raw_os_error() {
            Some(n) if n == Errno::STALE.raw_os_error() => FileErr::Stale,
            _ => StorageError::from_io(&e).into(),
        })?;
        if md.is_dir() {
            return Err(StorageError::IsDirectory.into());
        }
        if !md.is_file() {
            return Err(StorageError::NotFound.into());
        }
        Ok(f)
    }

    /// What `rel` is (links followed beneath the root), or None when nothing is there.
    pub fn stat(
        &self,
        root: &File,
        rel: &MediaPath,
    ) -> Result<Option<std::fs::Metadata>, StorageError> {
        let at = match self.locate(root, rel) {
            Ok(at) => at,
            Err(StorageError::NotFound | StorageError::NotADirectory) => return Ok(None),
            Err(e) => return Err(e),
        };
        let opened = match &at.name {
            Some(n) => open_in(&at.dir, n, OFlags::PATH),
            None => open_in(&at.dir, ".", OFlags::PATH),
        };
        match opened {
            Ok(f) => f
                .metadata()
                .map(Some)
                .map_err(|e| StorageError::from_io(&e)),
            Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => Ok(None),
            Err(e) => Err(StorageError::from_io(&e.into())),
        }
    }

    /// `name` as it is spelled in `dir`: itself, or its NFD twin when only that exists.
    pub fn spelled(dir: &File, name: &str) -> String {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => resolve::twin(dir, name).unwrap_or_else(|| name.to_string()),
            _ => name.to_string(),
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
                let seg = Self::spelled(&cur, seg);
                so_far = so_far
                    .join(&seg)
                    .map_err(|e| StorageError::Invalid(e.to_string()))?;
                match self.wdir(root, &so_far) {
                    Ok(d) => cur = d,
                    Err(StorageError::NotFound) => {
                        match rustix::fs::mkdirat(&cur, seg.as_str(), Mode::from_raw_mode(0o755)) {
                            Ok(()) => created.push(so_far.clone()),
                            Err(rustix::io::Errno::EXIST) => {}
                            Err(e) => {
                                return Err(super::write_err(&e.into(), &shown(&so_far)));
                            }
                        }
                        cur = self.wdir(root, &so_far)?;
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
            if let Ok(d) = self.wdir(root, &parent) {
                let _ = rustix::fs::unlinkat(&d, name, AtFlags::REMOVEDIR);
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
            let seg = Self::spelled(&deepest, seg);
            so_far = so_far
                .join(&seg)
                .map_err(|e| StorageError::Invalid(e.to_string()))?;
            match self.wdir(root, &so_far) {
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
        let name = Self::spelled(&deepest, name);
        match rustix::fs::statat(&deepest, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => {
                Err(StorageError::IsDirectory)
            }
            Ok(_) if !overwrite => Err(StorageError::AlreadyExists),
            _ => Ok((deepest, deepest_path)),
        }
    }
}

/// The server no longer knows a file handle (NFS `ESTALE`).
pub(super) struct Stale;

enum FileErr {
    Stale,
    Other(StorageError),
}

impl From<StorageError> for FileErr {
    fn from(e: StorageError) -> Self {
        FileErr::Other(e)
    }
}

pub(super) fn is_stale(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::STALE.raw_os_error())
}

/// Opens streamhub's own folder `name` in `dir` (staging, trash), making it first (0700)
/// when asked; never through a link. `missing` is what a missing folder means to the caller;
/// other failures name `shown`.
pub(super) fn own_subdir(
    dir: &File,
    name: &str,
    create: bool,
    missing: StorageError,
    shown: &str,
) -> Result<File, StorageError> {
    use rustix::fs::{Mode, OFlags};
    if create {
        match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(super::write_err(&e.into(), shown)),
        }
    }
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
    .map_err(|e| match e {
        rustix::io::Errno::NOENT => missing,
        e => super::write_err(&e.into(), shown),
    })
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
