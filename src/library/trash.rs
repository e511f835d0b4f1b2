//! The trash's records (migration `0010_trash.sql`): one row per deleted entry, and the index
//! rows of everything in it, so that a restore brings back owners and probed metadata with
//! the bytes. The bytes themselves are the storage backend's (`Storage::trash`).

use rusqlite::{params, OptionalExtension, Transaction};

use super::index::{self, subtree_bounds, Seq};
use super::{Library, LibraryError};
use crate::storage::MediaPath;

/// The index columns a trashed entry keeps (everything but its place and its poster, which
/// is made again after a restore).
const KEPT: &str = "kind, size, mtime_ns, content_type, media, duration, video_codec, \
                    audio_codec, width, height, probed_at, probe_error, owner";

/// One entry in the trash.
#[derive(Debug, Clone, PartialEq)]
pub struct TrashEntry {
    pub id: i64,
    pub key: String,
    /// Where it was (relative to the media root).
    pub path: String,
    pub kind: String,
    /// Bytes of the files in it.
    pub size: i64,
    pub owner_id: Option<i64>,
    pub owner: Option<String>,
    pub deleted_by: Option<String>,
    /// Seconds since the epoch.
    pub deleted_at: i64,
}

fn entry_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<TrashEntry> {
    Ok(TrashEntry {
        id: r.get(0)?,
        key: r.get(1)?,
        path: r.get(2)?,
        kind: r.get(3)?,
        size: r.get(4)?,
        owner_id: r.get(5)?,
        owner: r.get(6)?,
        deleted_by: r.get(7)?,
        deleted_at: r.get(8)?,
    })
}

const SELECT: &str = "SELECT t.id, t.key, t.path, t.kind, t.size, t.owner, o.name, d.name,
                             t.deleted_at
                      FROM trash t LEFT JOIN users o ON o.id = t.owner
                      LEFT JOIN users d ON d.id = t.deleted_by";

/// Records `real` as going to the trash as `key` and keeps its index rows (they stay in the
/// index until the move has happened: `finish_out`). Returns the new entry's id.
fn out(
    tx: &Transaction,
    real: &MediaPath,
    key: &str,
    kind: &str,
    by: i64,
    now: i64,
) -> Result<i64, LibraryError> {
    let p = real.to_string();
    let (lo, hi) = subtree_bounds(&p);
    tx.execute(
        "INSERT INTO trash (key, path, kind, size, owner, deleted_by, deleted_at)
         VALUES (?1, ?2, coalesce((SELECT kind FROM media WHERE path = ?2), ?3),
                 (SELECT coalesce(sum(size), 0) FROM media
                  WHERE kind = 'file' AND (path = ?2 OR (path > ?4 AND path < ?5))),
                 -- the owner only when everything in it is theirs (as for deleting it)
                 CASE WHEN (SELECT count(DISTINCT coalesce(owner, -1)) FROM media
                            WHERE path = ?2 OR (path > ?4 AND path < ?5)) = 1
                      THEN (SELECT owner FROM media WHERE path = ?2) END, ?6, ?7)",
        params![key, p, kind, lo, hi, by, now],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        &format!(
            "INSERT INTO trash_media (trash, rel, {KEPT})
             SELECT ?1, CASE WHEN path = ?2 THEN '' ELSE substr(path, length(?2) + 2) END, {KEPT}
             FROM media WHERE path = ?2 OR (path > ?3 AND path < ?4)"
        ),
        params![id, p, lo, hi],
    )?;
    Ok(id)
}

/// Brings the kept rows of entry `id` back into the index at `to` and forgets the entry.
fn back(tx: &Transaction, id: i64, to: &MediaPath, seq: &Seq) -> Result<Vec<String>, LibraryError> {
    let t = to.to_string();
    let (tparent, _) = to.split_last().ok_or(LibraryError::NotFound)?;
    let thumbs = index::delete_subtree(tx, &t)?.0;
    index::ensure_dir_row(tx, &tparent, seq)?;
    let rels: Vec<String> = {
        let mut st = tx.prepare("SELECT rel FROM trash_media WHERE trash = ?1 ORDER BY rel")?;
        let rows = st.query_map([id], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut insert = tx.prepare(&format!(
        "INSERT INTO media (path, parent, name, {KEPT}, seq)
         SELECT ?3, ?4, ?5, kind, size, mtime_ns, content_type, media, duration, video_codec,
                audio_codec, width, height, probed_at, probe_error,
                (SELECT id FROM users WHERE id = owner), ?6
         FROM trash_media WHERE trash = ?1 AND rel = ?2"
    ))?;
    for rel in rels {
        let path = if rel.is_empty() {
            to.clone()
        } else {
            MediaPath::from_decoded(&format!("{t}/{rel}"))
                .map_err(|e| LibraryError::Db(format!("a kept path is not valid: {e}")))?
        };
        let (parent, name) = path.split_last().ok_or(LibraryError::NotFound)?;
        insert.execute(params![
            id,
            rel,
            path.to_string(),
            parent.to_string(),
            name,
            seq.next()
        ])?;
    }
    tx.execute("DELETE FROM trash WHERE id = ?1", [id])?;
    Ok(thumbs)
}

impl Library {
    async fn trash_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, LibraryError> + Send + 'static,
    ) -> Result<T, LibraryError> {
        let inner = self.inner.clone();
        crate::blocking::run_unbounded("library trash", move || f(&mut inner.lock())).await
    }

    /// Step 1 of a delete to the trash: the record, before anything moves.
    pub async fn trash_out(
        &self,
        real: &MediaPath,
        key: &str,
        kind: &'static str,
        by: i64,
        now: i64,
    ) -> Result<i64, LibraryError> {
        let (real, key) = (real.clone(), key.to_string());
        self.trash_db(move |c| {
            let tx = c.transaction()?;
            let id = out(&tx, &real, &key, kind, by, now)?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    /// Step 2, once the backend has moved it: out of the index (posters go).
    pub async fn trash_finish_out(&self, real: &MediaPath) {
        self.record_delete(real).await;
    }

    /// Forgets entry `id` (its move failed, or it was purged).
    pub async fn trash_forget(&self, id: i64) -> Result<(), LibraryError> {
        self.trash_db(move |c| Ok(c.execute("DELETE FROM trash WHERE id = ?1", [id])?))
            .await
            .map(|_| ())
    }

    /// After the backend moved entry `id` back to `to`: its rows return to the index.
    pub async fn trash_back(&self, id: i64, to: &MediaPath) -> Result<(), LibraryError> {
        let to = to.clone();
        let inner = self.inner.clone();
        crate::blocking::run_unbounded("library trash", move || {
            inner.write(|tx, seq| back(tx, id, &to, seq))
        })
        .await?;
        self.inner.nudge.notify_one();
        Ok(())
    }

    /// The entries `owner` may see (None: all, for admins), newest first.
    pub async fn trash_list(&self, owner: Option<i64>) -> Result<Vec<TrashEntry>, LibraryError> {
        self.trash_db(move |c| {
            let mut st = c.prepare(&format!(
                "{SELECT} WHERE ?1 IS NULL OR t.owner = ?1 ORDER BY t.deleted_at DESC, t.id DESC"
            ))?;
            let rows = st.query_map([owner], entry_of)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn trash_get(&self, id: i64) -> Result<Option<TrashEntry>, LibraryError> {
        self.trash_db(move |c| {
            Ok(
                c.query_row(&format!("{SELECT} WHERE t.id = ?1"), [id], entry_of)
                    .optional()?,
            )
        })
        .await
    }

    /// Entries deleted before `before` (seconds since the epoch).
    pub async fn trash_older_than(&self, before: i64) -> Result<Vec<TrashEntry>, LibraryError> {
        self.trash_db(move |c| {
            let mut st = c.prepare(&format!("{SELECT} WHERE t.deleted_at < ?1"))?;
            let rows = st.query_map([before], entry_of)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Entries in the trash (everyone's) and the bytes of their files.
    pub async fn trash_totals(&self) -> Result<super::read::Totals, LibraryError> {
        self.trash_db(|c| {
            let (n, bytes): (i64, i64) = c.query_row(
                "SELECT count(*), coalesce(sum(size), 0) FROM trash",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(super::read::Totals {
                count: u64::try_from(n).unwrap_or(0),
                bytes: u64::try_from(bytes).unwrap_or(0),
            })
        })
        .await
    }
}
