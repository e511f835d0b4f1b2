//! Writes to the index: applying one folder's disk entries (the scanner and listing refresh),
//! and the changes streamhub itself makes (`record_*`). Plain blocking code over a
//! `rusqlite::Transaction`; the callers choose the connection and batch size.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, OptionalExtension, Transaction};

use super::disk::DiskEntry;
use super::model::{classify, Kind, MediaClass};
pub use super::seq::Seq;
use super::LibraryError;
use crate::storage::MediaPath;

/// What one `apply_dir` changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
}

impl Applied {
    pub fn add(&mut self, o: Applied) {
        self.added += o.added;
        self.changed += o.changed;
        self.removed += o.removed;
    }
}

struct Known {
    path: String,
    kind: Kind,
    size: i64,
    mtime_ns: i64,
    seq: i64,
}

fn kind_of(s: &str) -> Kind {
    if s == "dir" {
        Kind::Dir
    } else {
        Kind::File
    }
}

/// Lower and upper bounds of the paths strictly under `p` (`p/` .. `p0`, as '0' follows '/'),
/// so a subtree is a range on the unique path index, with no LIKE pattern to escape.
pub fn subtree_bounds(p: &str) -> (String, String) {
    if p.is_empty() {
        // Everything but the root row itself.
        return (String::new(), "\u{10FFFF}".repeat(2));
    }
    (format!("{p}/"), format!("{p}0"))
}

/// Deletes `path` and everything under it; returns the thumbnails to remove once committed.
pub fn delete_subtree(tx: &Transaction, path: &str) -> Result<(Vec<String>, u64), LibraryError> {
    let (lo, hi) = subtree_bounds(path);
    let mut thumbs = Vec::new();
    {
        let mut st = tx.prepare_cached(
            "SELECT thumb FROM media WHERE thumb IS NOT NULL
               AND (path = ?1 OR (path > ?2 AND path < ?3)) AND path <> ''",
        )?;
        let rows = st.query_map(params![path, lo, hi], |r| r.get::<_, String>(0))?;
        for t in rows {
            thumbs.push(t?);
        }
    }
    let n = tx.execute(
        "DELETE FROM media WHERE (path = ?1 OR (path > ?2 AND path < ?3)) AND path <> ''",
        params![path, lo, hi],
    )?;
    Ok((thumbs, n as u64))
}

fn insert(
    tx: &Transaction,
    path: &MediaPath,
    kind: Kind,
    size: u64,
    mtime_ns: i64,
    owner: Option<i64>,
    seq: i64,
) -> Result<(), LibraryError> {
    let (parent, name) = path.split_last().ok_or(LibraryError::NotFound)?;
    let (ct, class) = match kind {
        Kind::Dir => (None, MediaClass::Dir),
        Kind::File => {
            let (ct, class) = classify(path);
            (Some(ct), class)
        }
    };
    tx.prepare_cached(
        "INSERT INTO media (path, parent, name, kind, size, mtime_ns, content_type, media,
                            owner, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        path.to_string(),
        parent.to_string(),
        name,
        kind.as_str(),
        i64::try_from(size).unwrap_or(i64::MAX),
        mtime_ns,
        ct,
        class.as_str(),
        owner,
        seq
    ])?;
    Ok(())
}

/// A file's bytes changed: new size/mtime, and what was learned from the old bytes is
/// forgotten (probe results, poster). Returns the old poster to delete.
fn update_file(
    tx: &Transaction,
    path: &str,
    size: u64,
    mtime_ns: i64,
    seq: i64,
) -> Result<Option<String>, LibraryError> {
    let old: Option<String> = tx
        .prepare_cached("SELECT thumb FROM media WHERE path = ?1")?
        .query_row([path], |r| r.get(0))
        .optional()?
        .flatten();
    tx.prepare_cached(
        "UPDATE media SET size = ?2, mtime_ns = ?3, seq = ?4, duration = NULL,
             video_codec = NULL, audio_codec = NULL, width = NULL, height = NULL,
             probed_at = NULL, probe_error = NULL, thumb = NULL, thumb_state = NULL
         WHERE path = ?1",
    )?
    .execute(params![
        path,
        i64::try_from(size).unwrap_or(i64::MAX),
        mtime_ns,
        seq
    ])?;
    Ok(old)
}

/// Makes the index's children of `dir` match the disk, read after `read_seq` was taken: rows
/// named in `entries` are added or updated, rows whose name is not in `present` (every name
/// on disk) are removed. Rows written since (seq > read_seq) are newer than this reading and
/// kept. A big folder is applied in several calls, `entries` in chunks, `present` whole.
/// Records `dir_mtime` (None: not trusted) as the folder's read mark. Poster files of removed
/// or changed rows are appended to `thumbs` for deletion after commit.
#[allow(clippy::too_many_arguments)] // one call site per caller; a struct would only rename them
pub fn apply_dir(
    tx: &Transaction,
    dir: &MediaPath,
    dir_mtime: Option<i64>,
    entries: &[DiskEntry],
    present: &HashSet<String>,
    read_seq: i64,
    seq: &Seq,
    thumbs: &mut Vec<String>,
) -> Result<Applied, LibraryError> {
    let dir_s = dir.to_string();
    if seq.gone_since(&dir_s, read_seq) {
        // Removed through streamhub after this reading began: what it read is history.
        return Ok(Applied::default());
    }
    let mut known: HashMap<String, Known> = HashMap::new();
    {
        let mut st = tx.prepare_cached(
            "SELECT name, path, kind, size, mtime_ns, seq FROM media WHERE parent = ?1",
        )?;
        let rows = st.query_map([&dir_s], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Known {
                    path: r.get(1)?,
                    kind: kind_of(&r.get::<_, String>(2)?),
                    size: r.get(3)?,
                    mtime_ns: r.get(4)?,
                    seq: r.get(5)?,
                },
            ))
        })?;
        for row in rows {
            let (name, k) = row?;
            known.insert(name, k);
        }
    }
    let mut done = Applied::default();
    for e in entries {
        let Ok(path) = dir.join(&e.name) else {
            continue;
        };
        match known.remove(&e.name) {
            None if seq.gone_since(&path.to_string(), read_seq) => {}
            None => {
                insert(tx, &path, e.kind, e.size, e.mtime_ns, None, seq.next())?;
                done.added += 1;
            }
            Some(k) if k.seq > read_seq => {}
            Some(k) if k.kind != e.kind => {
                let (t, _) = delete_subtree(tx, &k.path)?;
                thumbs.extend(t);
                insert(tx, &path, e.kind, e.size, e.mtime_ns, None, seq.next())?;
                done.changed += 1;
            }
            Some(k) => {
                let size = i64::try_from(e.size).unwrap_or(i64::MAX);
                if e.kind == Kind::File && (k.size != size || k.mtime_ns != e.mtime_ns) {
                    thumbs.extend(update_file(tx, &k.path, e.size, e.mtime_ns, seq.next())?);
                    done.changed += 1;
                } else if e.kind == Kind::Dir && k.mtime_ns != e.mtime_ns {
                    tx.prepare_cached("UPDATE media SET mtime_ns = ?2 WHERE path = ?1")?
                        .execute(params![k.path, e.mtime_ns])?;
                }
            }
        }
    }
    for (name, k) in known {
        if k.seq <= read_seq && !present.contains(&name) && !seq.is_in_flux(&k.path) {
            let (t, n) = delete_subtree(tx, &k.path)?;
            thumbs.extend(t);
            done.removed += n;
        }
    }
    ensure_dir_row(tx, dir, seq)?;
    // No-op writes are skipped: an unchanged folder costs a read transaction, no fsync.
    tx.prepare_cached(
        "UPDATE media SET dir_mtime_ns = ?2 WHERE path = ?1 AND dir_mtime_ns IS NOT ?2",
    )?
    .execute(params![dir_s, dir_mtime])?;
    Ok(done)
}

/// Makes sure `dir` and its ancestors have folder rows (an upload creates missing folders).
pub fn ensure_dir_row(tx: &Transaction, dir: &MediaPath, seq: &Seq) -> Result<(), LibraryError> {
    let segs = dir.segments();
    // Deepest first: once a folder row exists its ancestors do too (no write lock taken
    // for the common case of an indexed folder).
    let exists = |p: &str| -> Result<bool, LibraryError> {
        Ok(tx
            .prepare_cached("SELECT 1 FROM media WHERE path = ?1")?
            .exists([p])?)
    };
    if exists(&segs.join("/"))? {
        return Ok(());
    }
    // Shown until the scanner reads the folder's own mtime (never 1970).
    let now = super::model::to_ns(std::time::SystemTime::now());
    for i in 1..=segs.len() {
        let p = segs[..i].join("/");
        let parent = segs[..i - 1].join("/");
        tx.prepare_cached(
            "INSERT INTO media (path, parent, name, kind, media, mtime_ns, seq)
             VALUES (?1, ?2, ?3, 'dir', 'dir', ?4, ?5) ON CONFLICT(path) DO NOTHING",
        )?
        .execute(params![p, parent, segs[i - 1], now, seq.next()])?;
    }
    Ok(())
}

/// A file committed through streamhub: indexed now, owned by `owner`.
pub fn record_write(
    tx: &Transaction,
    path: &MediaPath,
    size: u64,
    mtime_ns: i64,
    owner: Option<i64>,
    seq: &Seq,
) -> Result<Vec<String>, LibraryError> {
    let mut thumbs = Vec::new();
    if let Some((parent, _)) = path.split_last() {
        ensure_dir_row(tx, &parent, seq)?;
    }
    let p = path.to_string();
    let existing: Option<String> = tx
        .prepare_cached("SELECT kind FROM media WHERE path = ?1")?
        .query_row([&p], |r| r.get(0))
        .optional()?;
    let s = seq.next();
    match existing.as_deref().map(kind_of) {
        None => insert(tx, path, Kind::File, size, mtime_ns, owner, s)?,
        Some(Kind::Dir) => {
            thumbs.extend(delete_subtree(tx, &p)?.0);
            insert(tx, path, Kind::File, size, mtime_ns, owner, s)?;
        }
        Some(Kind::File) => {
            // Always new bytes (an overwrite), even if size and mtime happen to match.
            thumbs.extend(update_file(tx, &p, size, mtime_ns, s)?);
            tx.prepare_cached("UPDATE media SET owner = ?2 WHERE path = ?1")?
                .execute(params![p, owner])?;
        }
    }
    Ok(thumbs)
}

/// A folder created through streamhub, owned by `owner`.
pub fn record_folder(
    tx: &Transaction,
    path: &MediaPath,
    owner: Option<i64>,
    seq: &Seq,
) -> Result<Vec<String>, LibraryError> {
    let p = path.to_string();
    let mut thumbs = Vec::new();
    let existing: Option<String> = tx
        .prepare_cached("SELECT kind FROM media WHERE path = ?1")?
        .query_row([&p], |r| r.get(0))
        .optional()?;
    if existing.as_deref() == Some("file") {
        thumbs.extend(delete_subtree(tx, &p)?.0);
    }
    ensure_dir_row(tx, path, seq)?;
    tx.prepare_cached("UPDATE media SET owner = ?2, seq = ?3 WHERE path = ?1")?
        .execute(params![p, owner, seq.next()])?;
    Ok(thumbs)
}

/// `from` (and, for a folder, everything under it) now lives at `to`. Owners, probe results
/// and posters move along; whatever the index had at `to` is replaced.
pub fn record_move(
    tx: &Transaction,
    from: &MediaPath,
    to: &MediaPath,
    seq: &Seq,
) -> Result<Vec<String>, LibraryError> {
    let (f, t) = (from.to_string(), to.to_string());
    let (tparent, tname) = to.split_last().ok_or(LibraryError::NotFound)?;
    let mut thumbs = delete_subtree(tx, &t)?.0;
    seq.removed(&f);
    ensure_dir_row(tx, &tparent, seq)?;
    let moved = tx
        .prepare_cached(
            "UPDATE media SET path = ?2, parent = ?3, name = ?4, seq = ?5 WHERE path = ?1",
        )?
        .execute(params![f, t, tparent.to_string(), tname, seq.next()])?;
    if moved == 0 {
        // Not indexed yet (placed by hand just now): the next listing or scan finds it.
        return Ok(thumbs);
    }
    let (lo, hi) = subtree_bounds(&f);
    // substr() counts characters on TEXT, as length() does, so the prefix cut is exact.
    tx.prepare_cached(
        "UPDATE media SET path = ?1 || substr(path, length(?2) + 1),
                          parent = ?1 || substr(parent, length(?2) + 1), seq = ?5
         WHERE path > ?3 AND path < ?4",
    )?
    .execute(params![t, f, lo, hi, seq.next()])?;
    thumbs.shrink_to_fit();
    Ok(thumbs)
}

/// A file or folder deleted through streamhub.
pub fn record_delete(
    tx: &Transaction,
    path: &MediaPath,
    seq: &Seq,
) -> Result<Vec<String>, LibraryError> {
    if path.is_root() {
        return Ok(Vec::new());
    }
    let p = path.to_string();
    seq.removed(&p);
    Ok(delete_subtree(tx, &p)?.0)
}
