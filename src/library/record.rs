//! Recording an upload before its commit, and taking the record back when the commit then
//! fails. An upload's owner must be in the index before its file is visible (a file with no
//! owner recorded would be nobody's, and outside its uploader's quota), so `app::Files`
//! records first and renames into place second; this is the index half of that order.

use rusqlite::OptionalExtension;

use super::{index, model, Library, LibraryError};
use crate::storage::{MediaPath, ObjectMeta};

/// What [`Library::record_upload`] wrote over, to put back with [`Library::undo_upload`].
#[derive(Debug)]
pub struct Recorded {
    file: MediaPath,
    /// The file's row before: (owner, size, mtime_ns), or None when it had none.
    prior: Option<(Option<i64>, u64, i64)>,
    /// The outermost folder the commit was to create, if any (its rows go with it).
    first_new_folder: Option<MediaPath>,
}

impl Library {
    /// Indexes, in one transaction, the folders an upload's commit will create and the file
    /// as `owner`'s (`size` bytes; the mtime is fixed by [`Library::record_write`] after the
    /// commit). An error means nothing was recorded, and the upload must not be committed.
    pub async fn record_upload(
        &self,
        folders: &[MediaPath],
        file: &MediaPath,
        size: u64,
        owner: i64,
    ) -> Result<Recorded, LibraryError> {
        let inner = self.inner.clone();
        let (folders, file) = (folders.to_vec(), file.clone());
        crate::blocking::run_unbounded("library record upload", move || {
            let mut prior = None;
            let p = file.to_string();
            // Before the row exists: a scan that reads the folder before the rename must
            // not take the row (and its owner) for a file removed by hand.
            inner.seq.in_flux(&p);
            let written = inner.write(|tx, seq| {
                prior = tx
                    .prepare_cached(
                        "SELECT owner, size, mtime_ns FROM media WHERE path = ?1 AND kind = 'file'",
                    )?
                    .query_row([&p], |r| {
                        Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64, r.get(2)?))
                    })
                    .optional()?;
                let mut thumbs = Vec::new();
                for f in &folders {
                    thumbs.extend(index::record_folder(tx, f, Some(owner), seq)?);
                }
                let now = model::to_ns(std::time::SystemTime::now());
                thumbs.extend(index::record_write(tx, &file, size, now, Some(owner), seq)?);
                Ok(thumbs)
            });
            if written.is_err() {
                inner.seq.settled(&p);
            }
            written?;
            Ok(Recorded {
                file,
                prior,
                first_new_folder: folders.into_iter().next(),
            })
        })
        .await
    }

    /// The commit after [`Library::record_upload`] failed: the index goes back to what the
    /// disk has (the file's old row, or none; no rows for folders that were not made). If
    /// even that cannot be written, it is logged: the scanner drops rows of missing files
    /// and re-reads changed ones, so the index still heals, and no file is without a row.
    pub async fn undo_upload(&self, rec: Recorded) {
        let inner = self.inner.clone();
        let done = crate::blocking::run_unbounded("library undo upload", move || {
            let written = inner.write(|tx, seq| {
                let mut thumbs = Vec::new();
                if let Some(folder) = &rec.first_new_folder {
                    thumbs.extend(index::record_delete(tx, folder, seq)?);
                }
                match rec.prior {
                    Some((owner, size, mtime)) => {
                        thumbs.extend(index::record_write(tx, &rec.file, size, mtime, owner, seq)?)
                    }
                    None => thumbs.extend(index::record_delete(tx, &rec.file, seq)?),
                }
                Ok(thumbs)
            });
            // Whatever the write's outcome: the commit is over (the scanner heals a failure).
            inner.seq.settled(&rec.file.to_string());
            written
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "library: cannot take back the record of a failed upload; the next scan corrects it");
        }
    }

    /// A folder made through streamhub, owned by `owner`; an error means nothing was
    /// recorded (the caller removes the folder again).
    pub async fn try_record_folder(
        &self,
        path: &MediaPath,
        owner: i64,
    ) -> Result<(), LibraryError> {
        let (inner, path) = (self.inner.clone(), path.clone());
        crate::blocking::run_unbounded("library record folder", move || {
            inner.write(|tx, seq| index::record_folder(tx, &path, Some(owner), seq))
        })
        .await?;
        self.nudge();
        Ok(())
    }

    /// An entry moved through streamhub (with everything under it); an error means nothing
    /// was recorded.
    pub async fn try_record_move(
        &self,
        from: &MediaPath,
        to: &MediaPath,
    ) -> Result<(), LibraryError> {
        let (inner, from, to) = (self.inner.clone(), from.clone(), to.clone());
        crate::blocking::run_unbounded("library record move", move || {
            inner.write(|tx, seq| index::record_move(tx, &from, &to, seq))
        })
        .await?;
        self.nudge();
        Ok(())
    }

    /// A move of `from` is on its way (until [`Library::move_settled`]): a reading of the
    /// disk that misses its file keeps its row. It may have read between the rename and
    /// its record, or while a late move on a hung share had landed and not yet been taken
    /// back; without the mark the row, and its owner, would go.
    pub fn moving(&self, from: &MediaPath) {
        self.inner.seq.in_flux(&from.to_string());
    }

    /// The move of `from` is recorded, or taken back.
    pub fn move_settled(&self, from: &MediaPath) {
        self.inner.seq.settled(&from.to_string());
    }

    /// The exact size and mtime of a file just committed (recorded before the commit), and
    /// a nudge to the scanner to probe it. Best effort: the owner is already recorded.
    pub async fn record_committed(&self, path: &MediaPath, meta: &ObjectMeta, owner: i64) {
        self.record_write(path, meta, Some(owner)).await;
        self.inner.seq.settled(&path.to_string());
    }

    /// A commit that answered 503 turned out to have landed: its row is an ordinary row now.
    pub fn upload_landed(&self, rec: &Recorded) {
        self.inner.seq.settled(&rec.file.to_string());
    }
}
