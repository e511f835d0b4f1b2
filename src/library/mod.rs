//! The media library index: what is in the media root (path, size, mtime, type, and — when
//! ffprobe/ffmpeg are installed — duration, codecs, resolution, poster thumbnails), kept in
//! SQLite and refreshed by a scanner that never blocks serving.
//!
//! STUB: the interface the rest of the service calls; the index itself is being built.

use std::path::Path;
use std::time::Duration;

use crate::config::LibraryConfig;
use crate::storage::{MediaPath, ObjectMeta};

/// Schema of the index, appended to the database migrations (`db::migrations`).
pub const MIGRATIONS: &[&str] = &[];

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("database error: {0}")]
    Db(String),
}

/// A cheap handle to the index and its scanner.
#[derive(Clone)]
pub struct Library {}

impl Library {
    /// Opens the index in `<data_dir>/streamhub.db` (already migrated by `db::Db::open`).
    /// Blocking.
    pub fn open(
        _data_dir: &Path,
        _media_root: &Path,
        _config: &LibraryConfig,
        _storage_timeout: Duration,
    ) -> Result<Library, LibraryError> {
        Ok(Library {})
    }

    /// Starts the background scanner (a scan now, then periodically and when nudged).
    pub fn start(&self) {}

    /// A file was committed through streamhub (upload, tus): index it now, owned by `owner`.
    /// Errors are logged, never returned: the upload itself has succeeded.
    pub async fn record_write(&self, _path: &MediaPath, _meta: &ObjectMeta, _owner: Option<i64>) {}

    /// A folder was created through streamhub.
    pub async fn record_folder(&self, _path: &MediaPath, _owner: Option<i64>) {}

    /// A file or folder was deleted through streamhub.
    pub async fn record_delete(&self, _path: &MediaPath) {}

    /// A file or folder was moved through streamhub (everything under a folder moves along).
    pub async fn record_move(&self, _from: &MediaPath, _to: &MediaPath) {}

    /// The user who uploaded `path` through streamhub (None: unknown or placed by hand).
    pub async fn owner_of(&self, _path: &MediaPath) -> Result<Option<i64>, LibraryError> {
        Ok(None)
    }

    /// For `/readyz` details: scanner state, ffprobe/ffmpeg availability.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({})
    }
}
