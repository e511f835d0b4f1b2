//! The media library index: what is in the media root (path, size, mtime, type, and — when
//! ffprobe/ffmpeg are installed — duration, codecs, resolution, poster thumbnails), kept in
//! SQLite and refreshed by a scanner that never blocks serving.
//!
//! Layout: `schema` (tables, connections), `model` (types, parsers), `disk` (what storage
//! says, as the index sees it), `index` (writes), `query` (reads), `scan` (the walk), `probe`
//! (ffprobe/ffmpeg), `worker` (the scanner task and probe phase), `read` (listing, item,
//! poster for `http`). The media is reached only through the `Storage` trait.
//!
//! The library has its own two connections (one for the scanner, one behind a mutex for
//! queries and `record_*`), so walking a slow disk never holds the service's `Db` lock.

mod disk;
mod index;
pub mod model;
mod probe;
mod query;
mod read;
mod record;
mod scan;
mod schema;
mod seq;
mod trash;
mod worker;

#[cfg(test)]
mod query_tests;
#[cfg(test)]
mod race_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, Transaction};
use tokio_util::sync::CancellationToken;

use crate::config::LibraryConfig;
use crate::storage::{MediaPath, ObjectMeta, Storage};

pub use model::{Item, Kind, ListRequest, MediaClass, Page, Sort, SortKey};
pub use read::{Thumb, Totals};
pub use record::Recorded;
pub use scan::ScanReport;
pub use trash::TrashEntry;

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("database error: {0}")]
    Db(String),
    /// The data dir's state (read-only, full, …) refused a database write.
    #[error("database in the data dir: {0}")]
    DataDir(crate::db::DataDirFault),
    #[error("no such file or folder")]
    NotFound,
    #[error("not a folder")]
    NotADirectory,
    #[error("resolves outside the media root")]
    OutsideRoot,
    #[error("the service may not read this folder")]
    PermissionDenied,
    /// The media root is gone or unreadable (an unmounted disk); the index is kept.
    #[error("media root unavailable: {0}")]
    Unavailable(String),
    /// The media root is empty while the index has entries: most likely a disk that is not
    /// mounted, so nothing is removed from the index.
    #[error("the media root is empty but the index has {0} entries (is the disk mounted?)")]
    RootEmpty(u64),
    #[error("the media disk did not answer within {0} s")]
    Stalled(u64),
    #[error("{0}")]
    BadQuery(String),
    #[error("no thumbnail: {0}")]
    NoThumbnail(String),
    #[error("i/o error: {0}")]
    Io(String),
    #[error("library task failed: {0}")]
    Task(String),
    /// A scan stopped for shutdown (at a checkpoint: what it wrote is consistent).
    #[error("stopped for shutdown")]
    Cancelled,
}

impl From<crate::blocking::BlockingError> for LibraryError {
    fn from(e: crate::blocking::BlockingError) -> Self {
        match e {
            crate::blocking::BlockingError::Stalled { secs, .. } => LibraryError::Stalled(secs),
            e => LibraryError::Task(e.to_string()),
        }
    }
}

impl From<rusqlite::Error> for LibraryError {
    fn from(e: rusqlite::Error) -> Self {
        match crate::db::classify(&e) {
            Some(fault) => LibraryError::DataDir(fault),
            None => LibraryError::Db(e.to_string()),
        }
    }
}

/// Which external programs answered `-version` (checked once, off the start-up path: each
/// check is a process start, ~50 ms on a small board).
#[derive(Debug, Clone, Copy)]
struct Tools {
    ffprobe: bool,
    ffmpeg: bool,
}

/// The scanner's state, for `/readyz`.
#[derive(Debug, Default)]
struct Status {
    scanning: bool,
    scans: u64,
    last_ms: Option<u64>,
    last_finished: Option<SystemTime>,
    last_report: Option<ScanReport>,
    warning: Option<String>,
    /// Entries in the index after the last scan (or at open).
    indexed: u64,
}

impl Status {
    fn finish(&mut self, result: &Result<ScanReport, LibraryError>, ms: u64) {
        self.scanning = false;
        self.scans += 1;
        self.last_ms = Some(ms);
        self.last_finished = Some(SystemTime::now());
        match result {
            Ok(r) => {
                self.last_report = Some(*r);
                self.warning = None;
            }
            Err(e) => self.warning = Some(format!("last scan skipped, index kept: {e}")),
        }
    }
}

struct Inner {
    storage: Arc<dyn Storage>,
    db_file: PathBuf,
    thumbs_dir: PathBuf,
    config: LibraryConfig,
    /// Bound on one listing's disk work (`storage.timeout_secs`).
    timeout: Duration,
    /// Queries and `record_*`. Disk I/O never happens while it is held.
    conn: Mutex<Connection>,
    /// The scanner's own connection, opened on first use.
    scan_conn: Mutex<Option<Connection>>,
    seq: index::Seq,
    tools: std::sync::OnceLock<Tools>,
    status: Mutex<Status>,
    /// Wakes the scanner to probe what `record_*` added.
    nudge: tokio::sync::Notify,
    /// Wakes the scanner for a full scan now (an admin's rescan, a search on a stale index).
    rescan: tokio::sync::Notify,
    /// When a search last asked for a scan (at most one per `search_rescan_secs`).
    search_asked: Mutex<Option<std::time::Instant>>,
    /// At most one on-demand poster at a time (each is an ffmpeg process).
    thumb_gate: tokio::sync::Semaphore,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock poisons it; the connection itself is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The scanner's connection (blocking; one scanner at a time holds it).
    fn scan_conn(&self) -> Result<ScanConn<'_>, LibraryError> {
        let mut guard = self.scan_conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(schema::open_conn(&self.db_file)?);
        }
        Ok(ScanConn(guard))
    }

    fn with_status(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Blocking the first time (runs the programs); call from blocking code only.
    fn tools(&self) -> Tools {
        *self.tools.get_or_init(|| {
            let tools = Tools {
                ffprobe: probe::available(&self.config.ffprobe),
                ffmpeg: probe::available(&self.config.ffmpeg),
            };
            if !tools.ffprobe || !tools.ffmpeg {
                tracing::warn!(
                    ffprobe = tools.ffprobe,
                    ffmpeg = tools.ffmpeg,
                    "library: ffprobe/ffmpeg not found; no durations, codecs or posters"
                );
            }
            tools
        })
    }

    fn thumbs_enabled(&self) -> bool {
        self.tools().ffmpeg && self.config.thumbnails
    }

    /// One write transaction on the query connection; posters it dropped are deleted after
    /// the commit (a crash in between leaves an orphan the next scan sweeps, never a row
    /// pointing at a missing poster that is not regenerated).
    fn write(
        &self,
        f: impl FnOnce(&Transaction, &index::Seq) -> Result<Vec<String>, LibraryError>,
    ) -> Result<(), LibraryError> {
        let thumbs = {
            let mut conn = self.lock();
            let tx = conn.transaction()?;
            let thumbs = f(&tx, &self.seq)?;
            tx.commit()?;
            thumbs
        };
        scan::remove_thumbs(&self.thumbs_dir, &thumbs);
        Ok(())
    }
}

/// The scanner's connection, held for one step.
struct ScanConn<'a>(MutexGuard<'a, Option<Connection>>);

impl std::ops::Deref for ScanConn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Set by `scan_conn` before the guard is handed out.
        self.0.as_ref().expect("scanner connection opened")
    }
}

impl std::ops::DerefMut for ScanConn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.0.as_mut().expect("scanner connection opened")
    }
}

/// The library's state for `/readyz`.
#[derive(Debug, Clone, PartialEq)]
pub struct LibraryStatus {
    /// None until the background check of the tools is done.
    pub ffprobe: Option<bool>,
    pub ffmpeg: Option<bool>,
    pub thumbnails: Option<bool>,
    /// What is missing, if anything.
    pub message: Option<&'static str>,
    pub scanning: bool,
    pub scans: u64,
    pub last_scan: Option<LastScan>,
    /// Why the last scan was skipped (the index is kept).
    pub warning: Option<String>,
    /// Entries in the index.
    pub indexed: u64,
}

/// When the last scan finished, how long it took and what it did.
#[derive(Debug, Clone, PartialEq)]
pub struct LastScan {
    pub finished: SystemTime,
    pub ms: Option<u64>,
    pub report: Option<ScanReport>,
}

/// A cheap handle to the index and its scanner.
#[derive(Clone)]
pub struct Library {
    inner: Arc<Inner>,
}

impl Library {
    /// Opens the index in `<data_dir>/streamhub.db` (already migrated by `db::Db::open`) and
    /// checks whether ffprobe and ffmpeg run. Blocking.
    pub fn open(
        data_dir: &Path,
        storage: Arc<dyn Storage>,
        config: &LibraryConfig,
        storage_timeout: Duration,
    ) -> Result<Library, LibraryError> {
        let db_file = data_dir.join(crate::db::DB_FILE);
        let conn = schema::open_conn(&db_file)?;
        let thumbs_dir = data_dir.join("thumbs");
        std::fs::create_dir_all(&thumbs_dir)
            .map_err(|e| LibraryError::Io(format!("{}: {e}", thumbs_dir.display())))?;
        let max_seq: i64 =
            conn.query_row("SELECT coalesce(max(seq), 0) FROM media", [], |r| r.get(0))?;
        let indexed = query::count(&conn)?;
        Ok(Library {
            inner: Arc::new(Inner {
                storage,
                db_file,
                thumbs_dir,
                config: config.clone(),
                timeout: storage_timeout,
                conn: Mutex::new(conn),
                scan_conn: Mutex::new(None),
                seq: index::Seq::starting_after(max_seq),
                tools: std::sync::OnceLock::new(),
                status: Mutex::new(Status {
                    indexed,
                    ..Status::default()
                }),
                nudge: tokio::sync::Notify::new(),
                rescan: tokio::sync::Notify::new(),
                search_asked: Mutex::new(None),
                thumb_gate: tokio::sync::Semaphore::new(1),
            }),
        })
    }

    /// The background scanner (a scan now, then periodically, probing when nudged), for
    /// the service to own: it returns when `cancel` fires, at a checkpoint (every write is a
    /// transaction, so nothing is left half-done).
    pub fn scanner(&self, cancel: CancellationToken) -> impl std::future::Future<Output = ()> {
        worker::run(self.inner.clone(), cancel)
    }

    fn nudge(&self) {
        self.inner.nudge.notify_one();
    }

    /// Asks the scanner for a full scan as soon as it is free (returns at once; a scan
    /// already running finishes first, and requests made meanwhile make one more scan).
    pub fn request_scan(&self) {
        self.inner.rescan.notify_one();
    }

    /// Files copied in by hand are found by a scan, not by uploads' `record_*`: a search on
    /// an index older than `search_rescan_secs` asks for one in the background, so they are
    /// searchable moments later rather than after `scan_interval_secs`. Cheap: a clock
    /// check, and at most one request per `search_rescan_secs` whatever the search load.
    pub(crate) fn freshen_for_search(&self) {
        let freshness = Duration::from_secs(self.inner.config.search_rescan_secs);
        if freshness.is_zero() {
            return;
        }
        let now = std::time::Instant::now();
        {
            let s = self.inner.status.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = s
                .last_finished
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age < freshness);
            if s.scanning || fresh {
                return;
            }
        }
        let mut asked = self
            .inner
            .search_asked
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if asked.is_some_and(|t| now.duration_since(t) < freshness) {
            return;
        }
        *asked = Some(now);
        self.request_scan();
    }

    async fn record(
        &self,
        what: &'static str,
        f: impl FnOnce(&Transaction, &index::Seq) -> Result<Vec<String>, LibraryError> + Send + 'static,
    ) {
        let inner = self.inner.clone();
        match crate::blocking::run_unbounded("library record", move || inner.write(f)).await {
            Ok(()) => self.nudge(),
            Err(e) => tracing::error!(error = %e, what, "library: cannot record change"),
        }
    }

    /// A file was committed through streamhub (upload, tus): index it now, owned by `owner`.
    /// Errors are logged, never returned: the upload itself has succeeded.
    pub async fn record_write(&self, path: &MediaPath, meta: &ObjectMeta, owner: Option<i64>) {
        let (path, size, mtime) = (path.clone(), meta.size, model::to_ns(meta.modified));
        self.record("write", move |tx, seq| {
            index::record_write(tx, &path, size, mtime, owner, seq)
        })
        .await;
    }

    /// A folder was created through streamhub.
    pub async fn record_folder(&self, path: &MediaPath, owner: Option<i64>) {
        let path = path.clone();
        self.record("folder", move |tx, seq| {
            index::record_folder(tx, &path, owner, seq)
        })
        .await;
    }

    /// A file or folder was deleted through streamhub.
    pub async fn record_delete(&self, path: &MediaPath) {
        let path = path.clone();
        self.record("delete", move |tx, seq| {
            index::record_delete(tx, &path, seq)
        })
        .await;
    }

    /// A file or folder was moved through streamhub (everything under a folder moves along).
    pub async fn record_move(&self, from: &MediaPath, to: &MediaPath) {
        let (from, to) = (from.clone(), to.clone());
        self.record("move", move |tx, seq| {
            index::record_move(tx, &from, &to, seq)
        })
        .await;
    }

    /// The user who uploaded `path` through streamhub (None: unknown or placed by hand).
    pub async fn owner_of(&self, path: &MediaPath) -> Result<Option<i64>, LibraryError> {
        let inner = self.inner.clone();
        let p = path.to_string();
        crate::blocking::run_unbounded("library owner", move || query::owner(&inner.lock(), &p))
            .await
    }

    /// When `user` uploaded (or created) `path` and, for a folder, everything indexed in it:
    /// the paths indexed under it. None when something there is someone else's.
    pub async fn owned_subtree(
        &self,
        path: &MediaPath,
        user: i64,
    ) -> Result<Option<std::collections::HashSet<String>>, LibraryError> {
        let inner = self.inner.clone();
        let p = path.to_string();
        crate::blocking::run_unbounded("library owner", move || {
            query::owned_subtree(&inner.lock(), &p, user)
        })
        .await
    }

    /// For `/readyz` details: scanner state, ffprobe/ffmpeg availability. Never a reason to
    /// be unready: the library works without ffmpeg. Never waits (this runs on the
    /// runtime): the tools are unknown until the background check is done.
    pub fn status(&self) -> LibraryStatus {
        let t = self.inner.tools.get().copied();
        let message = match t.map(|t| (t.ffprobe, t.ffmpeg)) {
            None => Some("checking for ffprobe and ffmpeg"),
            Some((true, true)) => None,
            Some((false, false)) => Some("ffmpeg not installed: no durations or thumbnails"),
            Some((false, true)) => {
                Some("ffprobe not installed: no durations, codecs or resolutions")
            }
            Some((true, false)) => Some("ffmpeg not installed: no thumbnails"),
        };
        let s = self.inner.status.lock().unwrap_or_else(|p| p.into_inner());
        LibraryStatus {
            ffprobe: t.map(|t| t.ffprobe),
            ffmpeg: t.map(|t| t.ffmpeg),
            thumbnails: t.map(|t| t.ffmpeg && self.inner.config.thumbnails),
            message,
            scanning: s.scanning,
            scans: s.scans,
            last_scan: s.last_finished.map(|finished| LastScan {
                finished,
                ms: s.last_ms,
                report: s.last_report,
            }),
            warning: s.warning.clone(),
            indexed: s.indexed,
        }
    }

    /// Runs one full scan now (tests, benchmarks, tools).
    pub async fn scan_now(&self) -> Result<ScanReport, LibraryError> {
        worker::scan_once(&self.inner, &CancellationToken::new()).await
    }

    /// Probes (and makes posters for) everything pending now.
    pub async fn probe_now(&self) -> u64 {
        worker::probe_pending(&self.inner, &CancellationToken::new()).await
    }
}
