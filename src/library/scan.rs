//! The scanner: walks the media root through storage and makes the index match it, in
//! transactions of at most `BATCH_ROWS` rows on its own connection. Runs as a task the service
//! owns (`Library::run`); it checks for cancellation between folders, so a shutdown stops it
//! at a checkpoint (every write is a transaction) instead of abandoning it. `apply_chunked` is
//! the one-folder version a listing uses.
//!
//! Safety over freshness: a media root that is gone, unreadable, or empty while the index
//! has entries (an unmounted disk) changes nothing; a folder that fails to read keeps its rows.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rusqlite::Connection;
use tokio_util::sync::CancellationToken;

use super::disk::{self, DiskEntry};
use super::index::{self, Applied, Seq};
use super::seq::Reading;
use super::{query, Inner, LibraryError};
use crate::storage::MediaPath;

/// Rows written per transaction, so an API write never waits long behind the scanner.
pub const BATCH_ROWS: usize = 1000;
/// Deepest folder walked (loop safety on top of the (dev, inode) check).
pub const MAX_DEPTH: usize = 64;

/// What one full scan saw and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanReport {
    pub dirs: u64,
    pub files: u64,
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    /// Folders that could not be read (their rows were kept).
    pub errors: u64,
}

/// Thumbnails to delete once the transaction that dropped them is committed.
pub fn remove_thumbs(thumbs_dir: &Path, names: &[String]) {
    for n in names {
        // Names come from our own rows; still, never let one climb out of the folder.
        if n.contains('/') || n.starts_with('.') {
            continue;
        }
        let _ = std::fs::remove_file(thumbs_dir.join(n));
    }
}

/// Applies one folder's entries in transactions of at most `BATCH_ROWS` entries. The read
/// mark (`dir_mtime`) is written with the last chunk only, so a crash half way leaves the
/// folder marked unread.
#[allow(clippy::too_many_arguments)] // the scanner's and the listing's state, passed as is
pub fn apply_chunked(
    conn: &mut Connection,
    dir: &MediaPath,
    dir_mtime: Option<i64>,
    entries: &[DiskEntry],
    read_seq: i64,
    seq: &Seq,
    thumbs_dir: &Path,
) -> Result<Applied, LibraryError> {
    let present: HashSet<String> = entries.iter().map(|e| e.name.clone()).collect();
    let chunks: Vec<&[DiskEntry]> = if entries.is_empty() {
        vec![&[]]
    } else {
        entries.chunks(BATCH_ROWS).collect()
    };
    let mut done = Applied::default();
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let mut thumbs = Vec::new();
        let tx = conn.transaction()?;
        let mark = if i == last { dir_mtime } else { None };
        done.add(index::apply_dir(
            &tx,
            dir,
            mark,
            chunk,
            &present,
            read_seq,
            seq,
            &mut thumbs,
        )?);
        tx.commit()?;
        remove_thumbs(thumbs_dir, &thumbs);
    }
    Ok(done)
}

/// Refuses to treat an empty media root as "everything deleted" while the index has entries.
pub fn guard_empty_root(conn: &Connection, entries: &[DiskEntry]) -> Result<(), LibraryError> {
    if entries.is_empty() {
        let indexed = query::count(conn)?;
        if indexed > 0 {
            return Err(LibraryError::RootEmpty(indexed));
        }
    }
    Ok(())
}

/// A folder waiting to be walked.
struct Pending {
    dir: MediaPath,
    depth: usize,
    /// Entries already read, with the reading taken before and the folder's mtime.
    read: Option<(Vec<DiskEntry>, Reading, i64)>,
}

/// Runs `f` with the scanner's own connection on the blocking pool.
async fn scan_db<T: Send + 'static>(
    inner: &Arc<Inner>,
    f: impl FnOnce(&mut Connection, &Inner) -> Result<T, LibraryError> + Send + 'static,
) -> Result<T, LibraryError> {
    let inner = inner.clone();
    crate::blocking::run_unbounded("library scan", move || {
        let mut conn = inner.scan_conn()?;
        f(&mut conn, &inner)
    })
    .await
}

/// One full pass: walk the root, upsert what changed, drop what is gone. Stops (with
/// `Cancelled`) between folders when `cancel` fires; what was applied stays consistent.
pub async fn full_scan(
    inner: &Arc<Inner>,
    cancel: &CancellationToken,
) -> Result<ScanReport, LibraryError> {
    let storage = inner.storage.clone();
    let root_reading = inner.seq.reading();
    let listing =
        storage
            .list(&MediaPath::root())
            .await
            .map_err(|e| match LibraryError::from(e) {
                e @ (LibraryError::Unavailable(_) | LibraryError::Stalled(_)) => e,
                e => LibraryError::Unavailable(format!("media root: {e}")),
            })?;
    let (root_entries, root_mtime) = disk::entries(listing);
    let check = root_entries.clone();
    scan_db(inner, move |conn, _| guard_empty_root(conn, &check)).await?;

    let mut report = ScanReport::default();
    let mut batch = Batch::default();
    let mut visited: HashSet<(u64, u64)> = HashSet::new();
    let mut stack = vec![Pending {
        dir: MediaPath::root(),
        depth: 0,
        read: Some((root_entries, root_reading, root_mtime)),
    }];
    while let Some(Pending { dir, depth, read }) = stack.pop() {
        if cancel.is_cancelled() {
            batch.flush(inner, &mut report).await?;
            return Err(LibraryError::Cancelled);
        }
        let (entries, reading, mtime) = match read {
            Some(p) => p,
            None => {
                let reading = inner.seq.reading();
                match storage.list(&dir).await {
                    Ok(l) => {
                        let (e, m) = disk::entries(l);
                        (e, reading, m)
                    }
                    Err(e) => {
                        tracing::warn!(folder = %dir.to_string().escape_debug(), error = %e,
                            "library: cannot read folder; keeping its index entries");
                        report.errors += 1;
                        continue;
                    }
                }
            }
        };
        report.dirs += 1;
        for e in &entries {
            let fresh = e.id.is_none_or(|id| visited.insert(id));
            if e.walk && depth < MAX_DEPTH && fresh {
                if let Ok(p) = dir.join(&e.name) {
                    stack.push(Pending {
                        dir: p,
                        depth: depth + 1,
                        read: None,
                    });
                }
            }
            if e.kind == super::model::Kind::File {
                report.files += 1;
            }
        }
        let mark = disk::trusted_mtime(mtime);
        if entries.len() > BATCH_ROWS {
            batch.flush(inner, &mut report).await?;
            let done = scan_db(inner, move |conn, inner| {
                apply_chunked(
                    conn,
                    &dir,
                    mark,
                    &entries,
                    reading.at,
                    &inner.seq,
                    &inner.thumbs_dir,
                )
            })
            .await?;
            report.add(done);
        } else {
            batch.rows += entries.len().max(1);
            batch.dirs.push((dir, mark, entries, reading));
            if batch.rows >= BATCH_ROWS {
                batch.flush(inner, &mut report).await?;
            }
        }
    }
    batch.flush(inner, &mut report).await?;
    Ok(report)
}

/// Folders read but not yet written: small folders share a transaction (one fsync for up
/// to `BATCH_ROWS` entries instead of one per folder), and the disk is never read while a
/// write transaction is open.
#[derive(Default)]
struct Batch {
    dirs: Vec<(MediaPath, Option<i64>, Vec<DiskEntry>, Reading)>,
    rows: usize,
}

impl Batch {
    async fn flush(
        &mut self,
        inner: &Arc<Inner>,
        report: &mut ScanReport,
    ) -> Result<(), LibraryError> {
        if self.dirs.is_empty() {
            return Ok(());
        }
        let dirs = std::mem::take(&mut self.dirs);
        self.rows = 0;
        let done = scan_db(inner, move |conn, inner| {
            let mut thumbs = Vec::new();
            let mut done = Applied::default();
            let tx = conn.transaction()?;
            for (dir, mark, entries, reading) in &dirs {
                let present: HashSet<String> = entries.iter().map(|e| e.name.clone()).collect();
                done.add(index::apply_dir(
                    &tx,
                    dir,
                    *mark,
                    entries,
                    &present,
                    reading.at,
                    &inner.seq,
                    &mut thumbs,
                )?);
            }
            tx.commit()?;
            remove_thumbs(&inner.thumbs_dir, &thumbs);
            Ok(done)
        })
        .await?;
        report.add(done);
        Ok(())
    }
}

impl ScanReport {
    fn add(&mut self, done: Applied) {
        self.added += done.added;
        self.changed += done.changed;
        self.removed += done.removed;
    }
}

/// Deletes poster files no row refers to (left by a crash between commit and unlink).
/// Temporary files of a poster being made right now are left alone unless old.
pub fn sweep_thumbs(conn: &Connection, thumbs_dir: &Path) -> Result<u64, LibraryError> {
    let mut known = HashSet::new();
    {
        let mut st = conn.prepare("SELECT thumb FROM media WHERE thumb IS NOT NULL")?;
        for t in st.query_map([], |r| r.get::<_, String>(0))? {
            known.insert(t?);
        }
    }
    let Ok(rd) = std::fs::read_dir(thumbs_dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in rd.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let stale_tmp = name.ends_with(".tmp.jpg")
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600);
        let orphan = !name.ends_with(".tmp.jpg") && !known.contains(&name);
        if (stale_tmp || orphan) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Elapsed milliseconds since `t`, for the status.
pub fn ms_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}
