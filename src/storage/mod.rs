//! Storage: everything the rest of the program knows about where media bytes live. The
//! [`Storage`] trait hides paths: callers name files with a validated [`MediaPath`], read
//! through [`Object`]s whose validators come from the backend, list folders, and write through
//! a staged [`Upload`] that becomes visible only when committed. `local` is the local-disk
//! (and NFS) backend; `memory` is a second backend that proves the boundary in tests; `s3`
//! keeps media in a bucket of an S3-compatible object store.
//!
//! Invariant: every path handed to a backend is a validated [`MediaPath`]; backends never see
//! raw client input, and nothing outside this module holds a filesystem path to media.

pub mod copy;
mod errno;
pub mod local;
pub mod memory;
pub mod path;
mod pump;
pub mod s3;
mod zero_copy;

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;

pub use errno::errno_message;
pub use path::{MediaPath, PathError};
pub use pump::{pump, Pumped};
pub use zero_copy::{FileRegion, ReadFuture, ZeroCopy};

/// A stream of file bytes; each item is at most one chunk (`streaming.chunk_kib`, growing for
/// fast readers).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>;

/// A check that the stored file is still one version ([`Object::unchanged`]).
pub type VersionCheck = Pin<Box<dyn Future<Output = Result<(), StorageError>> + Send>>;

/// Bytes coming in (an upload body).
pub type ByteSource = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Called with the new durable offset each time a backend has made more of a staged upload
/// durable (survives a crash). Runs on a backend thread: keep it short (one database write).
pub type OnDurable = Arc<dyn Fn(u64) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("is a directory")]
    IsDirectory,
    #[error("not a directory")]
    NotADirectory,
    #[error("resolves outside the media root")]
    OutsideRoot,
    #[error("permission denied")]
    PermissionDenied,
    /// The service may not write in this folder (named relative to the media root).
    #[error("the service has no permission to write in folder '{0}'")]
    PermissionDeniedAt(String),
    #[error("no space left on the media disk")]
    NoSpace,
    #[error("the media filesystem is read-only")]
    ReadOnly,
    #[error("a file or folder with that name exists already")]
    AlreadyExists,
    #[error("the folder is not empty")]
    NotEmpty,
    #[error("larger than the {limit}-byte upload limit")]
    TooLarge { limit: u64 },
    /// The client stopped sending before the end.
    #[error("upload interrupted: {0}")]
    ClientGone(String),
    #[error("{0}")]
    Invalid(String),
    /// The backend did not answer in time (a hung NFS mount, a stalled disk).
    #[error("storage did not answer within {secs} s ({op})")]
    Stalled { op: &'static str, secs: u64 },
    /// The backend is there but unusable (media root missing, not mounted, another disk).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("file changed while being read")]
    Changed,
    /// A staged upload's data is gone (deleted by hand, or lost with its disk).
    #[error("the upload's data is gone")]
    UploadGone,
    /// Another writer still holds this staged upload.
    #[error("another request is still writing this upload")]
    Busy,
    /// No room left in the data dir, where a backend keeps upload state (S3's staging).
    #[error("no space left in the data directory")]
    DataDirFull,
    /// The store dropped an unfinished upload: another upload (or a delete) of the same name
    /// was completed meanwhile, which ends older unfinished ones on some stores (Garage).
    #[error("the store dropped this unfinished upload")]
    UploadDropped,
    /// A folder operation of many objects stopped half-way: `done` went, the rest did not;
    /// `message` says so and how to finish.
    #[error("{message}: {cause}")]
    Partial {
        done: u64,
        message: String,
        cause: Box<StorageError>,
    },
    #[error("i/o error: {0}")]
    Io(String),
    /// This backend cannot do it (yet).
    #[error("{0}")]
    NotSupported(String),
}

impl StorageError {
    /// A stable short name of the outcome, for metrics labels and API error codes.
    pub fn outcome(&self) -> &'static str {
        use StorageError::*;
        match self {
            NotFound | IsDirectory | NotADirectory => "not_found",
            OutsideRoot => "outside_root",
            PermissionDenied | PermissionDeniedAt(_) => "permission_denied",
            NoSpace => "no_space",
            ReadOnly => "read_only",
            AlreadyExists => "exists",
            NotEmpty => "not_empty",
            TooLarge { .. } => "too_large",
            ClientGone(_) => "upload_incomplete",
            Invalid(_) => "invalid",
            Stalled { .. } | Unavailable(_) => "storage_unavailable",
            UploadGone => "upload_gone",
            Busy => "upload_busy",
            UploadDropped => "upload_conflict",
            DataDirFull => "no_space",
            Partial { .. } => "partial",
            Changed | Io(_) => "storage_error",
            NotSupported(_) => "not_supported",
        }
    }

    /// The error an `io::Error` means for a read or a lookup.
    pub(crate) fn from_io(e: &std::io::Error) -> Self {
        use rustix::io::Errno;
        use std::io::ErrorKind;
        // What a share that is away or was re-exported answers (a soft NFS mount gives EIO
        // once the server stops answering, ESTALE after a re-export, ENOTCONN a FUSE or SMB
        // mount whose daemon is gone), and what a failing disk answers: usually passing, so
        // 503 with Retry-After, as when the whole root is away, rather than a 500.
        let away = [
            Errno::IO,
            Errno::STALE,
            Errno::NOTCONN,
            Errno::TIMEDOUT,
            Errno::HOSTDOWN,
            Errno::HOSTUNREACH,
            Errno::NOLINK,
            Errno::COMM,
        ];
        if e.raw_os_error()
            .is_some_and(|n| away.iter().any(|a| a.raw_os_error() == n))
        {
            return StorageError::Unavailable(errno_message(e));
        }
        match e.kind() {
            ErrorKind::NotFound => StorageError::NotFound,
            ErrorKind::PermissionDenied => StorageError::PermissionDenied,
            ErrorKind::NotADirectory => StorageError::NotADirectory,
            ErrorKind::IsADirectory => StorageError::IsDirectory,
            _ => StorageError::Io(errno_message(e)),
        }
    }
}

impl From<crate::blocking::BlockingError> for StorageError {
    fn from(e: crate::blocking::BlockingError) -> Self {
        match e {
            crate::blocking::BlockingError::Stalled { op, secs } => {
                StorageError::Stalled { op, secs }
            }
            e @ crate::blocking::BlockingError::Failed { .. } => StorageError::Io(e.to_string()),
        }
    }
}

/// What a client may learn about a stored file before reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub modified: SystemTime,
    /// Opaque strong validator, without quotes; changes whenever the content may have.
    pub etag: String,
}

/// An opened file. Ranges read from one `Object` all come from the same version of the file,
/// so the parts of a multi-range response match the ETag sent with it.
pub trait Object: Send + Sync {
    fn meta(&self) -> &ObjectMeta;
    /// Streams `range` (clamped by the caller to `0..size`) lazily, with bounded memory.
    fn read_range(&self, range: Range<u64>) -> ByteStream;
    /// As `read_range`, but a backend whose bytes are in a local file may hand `zc` regions
    /// of it to send without copying ([`ZeroCopy`]).
    fn read_range_to(&self, range: Range<u64>, zc: Option<&Arc<dyn ZeroCopy>>) -> ByteStream {
        let _ = zc;
        self.read_range(range)
    }
    /// Whether the stored file is still the version this `Object` was opened on (`Changed`
    /// otherwise), for a body that reads several ranges and must not end as if whole when
    /// they came from different versions. A backend whose every read is pinned to the
    /// version (S3's `If-Match`) has nothing to check.
    fn unchanged(&self) -> VersionCheck {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

/// A file or folder as a listing or `stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    /// Bytes of a file; 0 for a folder.
    pub size: u64,
    pub modified: SystemTime,
    /// Reached through a symbolic link (inside the root): listed, but a walk does not
    /// descend into it, so links never make a walk loop or see a folder twice.
    pub via_link: bool,
    /// A backend-wide identity of a folder (device, inode), for loop detection across bind
    /// mounts; None where the backend has none.
    pub id: Option<(u64, u64)>,
}

/// One folder: itself, and its visible entries (folders first, then by name). Visible means:
/// not starting with `.` (hidden, and streamhub's own `.streamhub*` names), a name a
/// `MediaPath` can carry, a regular file or a folder, never through a link that leaves the
/// root.
#[derive(Debug, Clone)]
pub struct Listing {
    pub dir: Entry,
    pub entries: Vec<Entry>,
    /// The folder also holds something not shown (a hidden name, a link out of the root, a
    /// FIFO): it is not all in the library, so not all one member's.
    pub hidden: bool,
    /// The names not shown, except streamhub's own `.streamhub*` (lossily decoded): what
    /// `storage copy` reports as left out.
    pub left_out: Vec<String>,
}

/// Whether a name not shown is worth reporting: everything but streamhub's own names.
pub fn reportable(name: &str) -> bool {
    !name.starts_with(".streamhub")
}

/// What the last name of a path is, looked at without following it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Nothing,
    /// A file or folder (not a link).
    Entry(Entry),
    /// Something else placed by hand (a FIFO, a device, a socket).
    Other,
    /// A symbolic link placed by hand, and where it leads.
    Link(LinkEnd),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEnd {
    /// A file inside the root, by its real path.
    File(MediaPath),
    /// A folder inside the root, by its real path.
    Dir(MediaPath),
    /// Out of the root.
    Outside,
    /// Nowhere: a missing target, a loop, one of streamhub's own names.
    Nowhere,
}

/// Room where media is written: what the filesystem (or, later, a bucket's quota) reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes an upload may still use (for an unprivileged writer).
    pub free: u64,
    pub total: u64,
}

/// What an external program (ffprobe, ffmpeg) reads a stored file from.
pub enum ProbeSource {
    /// An open file, handed to the program as its standard input (`file:/dev/stdin`, which
    /// re-opens the same file and can seek): no path is ever passed.
    File(std::fs::File),
    /// A URL the program fetches with ranges (a presigned object URL).
    Url(String),
    /// This backend cannot give a program the bytes.
    Unsupported,
}

/// How a new staged upload is made.
#[derive(Clone, Default)]
pub struct UploadOptions {
    /// Where it will be committed; checked now (a name that exists without `overwrite`, a
    /// path through a file or out of the root) so a doomed upload fails before its body.
    pub overwrite: bool,
    /// The size the client announced: refused at once (`NoSpace`) when the destination
    /// cannot take it, instead of after sending that much.
    pub expected: Option<u64>,
    /// Free space the destination must still have after `expected` bytes (or, with no
    /// announced size, before the first): refused at once (`NoSpace`) otherwise. The
    /// `[quotas] min_free_bytes` reserve plus what unfinished uploads have announced.
    pub reserve: u64,
    /// Survives restarts under its `key` (tus); otherwise a one-shot upload whose data is
    /// removed when the handle is dropped uncommitted.
    pub resumable: bool,
    /// Durable progress for resumable uploads: the backend makes written bytes durable
    /// about once a second while the body streams, and reports the offset here.
    pub on_durable: Option<OnDurable>,
}

/// A staged upload: bytes appended at its end, invisible under any media name until
/// `commit`. Dropping it without `finish` discards what was not yet durable (and, for a
/// one-shot upload, everything).
#[async_trait::async_trait]
pub trait Upload: Send {
    /// The backend's name for it (stored by resumable uploads, given to `resume_upload`).
    fn key(&self) -> &str;
    /// Appends one chunk. Back-pressure: returns when the backend can take the next one.
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError>;
    /// Makes everything written durable; returns the durable length.
    async fn finish(&mut self) -> Result<u64, StorageError>;
    /// Moves the finished upload to `dest` (never replacing an existing name unless
    /// `overwrite`), creating missing folders; atomic and durable. On failure nothing is
    /// visible and no folder it created is left behind; the staged data is kept for a
    /// resumable upload.
    async fn commit(
        self: Box<Self>,
        dest: &MediaPath,
        overwrite: bool,
    ) -> Result<ObjectMeta, StorageError>;
    /// Ends the upload uncommitted, waiting until the backend has let go: bytes past the
    /// durable offset are dropped (a resumable upload can be resumed from there), a one-shot
    /// upload's data is removed.
    async fn close(self: Box<Self>);
}

#[async_trait::async_trait]
pub trait Storage: Send + Sync {
    /// Short name of the backend for health output ("local", "nfs", "memory", "s3").
    fn kind(&self) -> &'static str;
    /// Readiness: the media root is there, readable, and the same volume as recorded.
    async fn check(&self) -> Result<(), StorageError>;
    /// Free and total space where media is written; fails as `check` does when the media
    /// root is not usable (and `Stalled` when it does not answer).
    async fn space(&self) -> Result<Space, StorageError>;
    /// Opens a regular file for reading.
    async fn open(&self, path: &MediaPath) -> Result<Arc<dyn Object>, StorageError>;
    /// What is at `path` (links followed inside the root), or None.
    async fn stat(&self, path: &MediaPath) -> Result<Option<Entry>, StorageError>;
    /// What the last name of `path` is, without following it if it is a link (folders on
    /// the way are followed). Writes decide by it whether they replace a file, go through a
    /// link or must refuse.
    async fn lookup(&self, path: &MediaPath) -> Result<Found, StorageError>;
    /// Whether `to` is where a folder move of `from` stopped half-way (S3 moves a folder
    /// object by object): the same move then goes on into it and finishes.
    async fn resumes_move(&self, _from: &MediaPath, _to: &MediaPath) -> Result<bool, StorageError> {
        Ok(false)
    }
    /// Lists a folder.
    async fn list(&self, dir: &MediaPath) -> Result<Listing, StorageError>;
    /// Starts a staged upload meant for `dest` (see [`UploadOptions`]).
    async fn begin_upload(
        &self,
        dest: &MediaPath,
        opts: UploadOptions,
    ) -> Result<Box<dyn Upload>, StorageError>;
    /// Reopens a resumable upload, cut back to `durable` bytes (what was acknowledged:
    /// bytes a crash left beyond it are dropped). `UploadGone` when its data is gone.
    async fn resume_upload(
        &self,
        key: &str,
        durable: u64,
        on_durable: Option<OnDurable>,
    ) -> Result<Box<dyn Upload>, StorageError>;
    /// Deletes a resumable upload's data (no error when already gone).
    async fn discard_upload(&self, key: &str) -> Result<(), StorageError>;
    /// Every resumable upload's data: its key and when it was last written, for sweeping
    /// orphans.
    async fn upload_keys(&self) -> Result<Vec<(String, SystemTime)>, StorageError>;
    /// Creates a folder and any missing parents (`AlreadyExists` when it exists); on failure
    /// no folder it created is left behind.
    async fn create_dir(&self, path: &MediaPath) -> Result<(), StorageError>;
    /// Deletes a file or an empty folder.
    async fn delete(&self, path: &MediaPath) -> Result<(), StorageError>;
    /// Deletes a folder and everything in it for good (backends without a trash; a
    /// recursive delete on the others goes through the trash). Re-runnable: a failure
    /// half-way leaves the rest in place, and says how much went.
    async fn delete_tree(&self, path: &MediaPath) -> Result<(), StorageError> {
        let _ = path;
        Err(StorageError::NotEmpty)
    }
    /// Moves a file or folder, creating missing folders of `to`; without `overwrite` an
    /// existing target is never replaced.
    async fn rename(
        &self,
        from: &MediaPath,
        to: &MediaPath,
        overwrite: bool,
    ) -> Result<(), StorageError>;
    /// Whether `trash` works here (deletes are permanent on backends without one).
    fn has_trash(&self) -> bool {
        false
    }
    /// Moves `path` (the last name not followed) into the backend's trash as `key` (letters
    /// and digits, chosen by the caller), whole and in one step. Backends without a trash
    /// answer `Invalid`.
    async fn trash(&self, path: &MediaPath, key: &str) -> Result<(), StorageError> {
        let _ = (path, key);
        Err(StorageError::Invalid(
            "this storage backend has no trash".into(),
        ))
    }
    /// Moves trash `key` back to `to`, never replacing anything; returns the folders it had
    /// to make on the way.
    async fn untrash(&self, key: &str, to: &MediaPath) -> Result<Vec<MediaPath>, StorageError> {
        let _ = (key, to);
        Err(StorageError::NotFound)
    }
    /// Removes trash `key` and everything in it for good (idempotent).
    async fn purge(&self, key: &str) -> Result<(), StorageError> {
        let _ = key;
        Ok(())
    }
    /// The keys in the trash.
    async fn trash_keys(&self) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }
    /// Calls still running whose callers gave up on them (answered 503): until none is
    /// left, a change that answered 503 may still be carried out (see `app::settle`).
    fn overdue(&self) -> usize {
        0
    }
    /// Where `path` really is: links followed (by the backend's rules), whether or not the
    /// last name exists; None when it leads outside the root. Ownership follows the file,
    /// not the alias a client typed.
    async fn real_path(&self, path: &MediaPath) -> Result<Option<MediaPath>, StorageError>;
    /// Gives an external program access to a file's bytes.
    async fn probe_source(&self, path: &MediaPath) -> Result<ProbeSource, StorageError>;
    /// How long an answer of `check` may be reused by health probes and scrapes (zero: ask
    /// every time; a local check is a `stat`, a remote one a request).
    fn check_ttl(&self) -> Duration {
        Duration::ZERO
    }
    /// A URL a client may fetch the file at `path` from directly (GET, or HEAD when `head`)
    /// instead of through streamhub, valid without login until it expires; the store is told
    /// to answer with the `response` headers (`response-content-type`, …). None: the
    /// backend serves no such URL (the default; S3 without `s3.redirect`). No I/O: the
    /// caller has opened the file already.
    fn direct_url(
        &self,
        path: &MediaPath,
        head: bool,
        response: &[(&str, &str)],
    ) -> Option<String> {
        let _ = (path, head, response);
        None
    }
    /// The origin (`scheme://host[:port]`) of every `direct_url`, for the page CSP.
    fn direct_origin(&self) -> Option<String> {
        None
    }
}
