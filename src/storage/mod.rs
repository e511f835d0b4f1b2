//! Storage: where media bytes live. A small object-safe trait so the HTTP layer streams from a
//! local disk (or NFS mount) today and from S3 later without knowing which.
//!
//! Invariant: every path handed to a backend is a validated [`MediaPath`]; backends never see
//! raw client input.

pub mod local;
pub mod path;
pub mod write;

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;

pub use local::LocalStorage;
pub use path::{MediaPath, PathError};

/// A stream of file bytes; each item is at most one chunk (`streaming.chunk_kib`).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>;

/// Bytes coming in (an upload body).
pub type ByteSource = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

#[derive(Debug, Clone, Copy)]
pub struct PutOptions {
    /// Replace an existing file (atomically); otherwise an existing name is `AlreadyExists`.
    pub overwrite: bool,
    /// Abort (and remove the partial file) past this many bytes.
    pub max_bytes: u64,
    /// The size the client announced (Content-Length): refused at once (`NoSpace`) when the
    /// destination's filesystem has less room, instead of after sending that much.
    pub expected: Option<u64>,
}

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
    #[error("upload aborted")]
    Aborted,
    #[error("{0}")]
    Invalid(String),
    /// The backend did not answer in time (a hung NFS mount, a stalled disk).
    #[error("storage did not answer within {secs} s ({op})")]
    Stalled { op: &'static str, secs: u64 },
    /// The backend is there but unusable (media root missing, not mounted).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("file changed while being read")]
    Changed,
    #[error("i/o error: {0}")]
    Io(String),
}

impl StorageError {
    pub(crate) fn from_io(e: &std::io::Error) -> Self {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::NotFound => StorageError::NotFound,
            ErrorKind::PermissionDenied => StorageError::PermissionDenied,
            ErrorKind::NotADirectory => StorageError::NotADirectory,
            ErrorKind::IsADirectory => StorageError::IsDirectory,
            _ => StorageError::Io(e.to_string()),
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
    pub modified: SystemTime,
}

#[async_trait::async_trait]
pub trait Storage: Send + Sync {
    /// Opens a regular file for reading.
    async fn open(&self, path: &MediaPath) -> Result<Arc<dyn Object>, StorageError>;
    /// Lists a folder: visible entries only (no dot-files), folders first, then by name.
    async fn list(&self, dir: &MediaPath) -> Result<Vec<DirEntry>, StorageError>;
    /// Readiness: the root is there and readable.
    async fn check(&self) -> Result<(), StorageError>;
    /// Short name of the backend for health output ("local", later "nfs", "s3").
    fn kind(&self) -> &'static str;
    /// Streams `body` into `path`, committing atomically: nothing is visible until the whole
    /// file is durable, and a failure leaves nothing behind. Parent folders are created.
    async fn put(
        &self,
        path: &MediaPath,
        body: ByteSource,
        opts: PutOptions,
    ) -> Result<ObjectMeta, StorageError>;
    /// Whether anything (file or folder) has this name.
    async fn exists(&self, path: &MediaPath) -> Result<bool, StorageError>;
    /// Resumable uploads: a new empty staging file for a future `dest`, on the filesystem
    /// `dest` will be on; the caller appends to it (across requests and restarts) and then
    /// calls `commit_staged`. `AlreadyExists` when `dest` exists and not `overwrite`.
    async fn create_staged(
        &self,
        dest: &MediaPath,
        overwrite: bool,
        length: u64,
    ) -> Result<std::path::PathBuf, StorageError>;
    /// Makes a finished staging file durable and moves it into place (as `put` commits).
    async fn commit_staged(
        &self,
        staged: &std::path::Path,
        dest: &MediaPath,
        overwrite: bool,
    ) -> Result<ObjectMeta, StorageError>;
    /// Creates one folder (its parents as needed).
    async fn create_dir(&self, path: &MediaPath) -> Result<(), StorageError>;
    /// Deletes a file or an empty folder.
    async fn delete(&self, path: &MediaPath) -> Result<(), StorageError>;
    /// Moves a file or folder; without `overwrite` an existing target is never replaced.
    async fn rename(
        &self,
        from: &MediaPath,
        to: &MediaPath,
        overwrite: bool,
    ) -> Result<(), StorageError>;
}
