//! Resumable uploads (tus 1.0.0): upload state in SQLite (`tus_uploads`), data staged by the
//! storage backend under a key (`Storage::begin_upload` with `resumable`), committed like any
//! other upload when the last byte is in.
//!
//! The offset in the database is the truth: it only ever names bytes that were fsynced. A
//! crash can leave the staging file longer than that; every write starts by cutting the file
//! back to the recorded offset, so a resumed upload never keeps bytes it did not acknowledge.
//!
//! No maintained Rust crate serves tus on axum with a custom commit step, and the protocol
//! core is small; the HTTP side is in `http::tus`.

pub mod append;
pub mod proto;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::{params, OptionalExtension};

use crate::db::{Db, DbError};
use crate::storage::Storage;

pub use append::{append, AppendError, Span};
pub use proto::{Checksum, ChecksumAlgo, Metadata, ProtoError};

/// Staged data no upload refers to is removed once it is this old (a creation records its
/// row well within it).
const ORPHAN_AGE: Duration = Duration::from_secs(600);

/// One upload as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: String,
    pub owner: i64,
    /// Destination, as a `MediaPath` display string.
    pub dest: String,
    pub overwrite: bool,
    pub length: u64,
    pub offset: u64,
    /// The `Upload-Metadata` header as the client sent it (echoed on HEAD).
    pub metadata: String,
    /// The storage backend's key of the staged data.
    pub staged: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub completed_at: Option<i64>,
}

impl Upload {
    pub fn is_complete(&self) -> bool {
        self.completed_at.is_some()
    }

    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at <= now
    }
}

/// The upload table over the shared database.
#[derive(Clone)]
pub struct TusStore {
    db: Db,
    /// Seconds an upload lives after its last write.
    pub expiry_secs: i64,
}

fn row_to_upload(r: &rusqlite::Row<'_>) -> rusqlite::Result<Upload> {
    Ok(Upload {
        id: r.get(0)?,
        owner: r.get(1)?,
        dest: r.get(2)?,
        overwrite: r.get(3)?,
        length: r.get::<_, i64>(4)?.max(0) as u64,
        offset: r.get::<_, i64>(5)?.max(0) as u64,
        metadata: r.get(6)?,
        staged: r.get(7)?,
        created_at: r.get(8)?,
        expires_at: r.get(9)?,
        completed_at: r.get(10)?,
    })
}

const COLUMNS: &str = "id, owner, dest, overwrite, length, upload_offset, metadata, staged, \
                       created_at, expires_at, completed_at";

impl TusStore {
    pub fn new(db: Db, expiry_secs: u64) -> Self {
        TusStore {
            db,
            expiry_secs: i64::try_from(expiry_secs).unwrap_or(i64::MAX / 2),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// When an upload last written at `now` (whole seconds) expires: the clock has whole
    /// seconds, so one is added — an upload is never expired before `expiry_secs` of quiet.
    pub fn expires_after(&self, now: i64) -> i64 {
        now.saturating_add(self.expiry_secs).saturating_add(1)
    }

    /// Blocking.
    pub fn insert(&self, u: &Upload) -> Result<(), DbError> {
        self.db.with(|c| {
            c.execute(
                &format!("INSERT INTO tus_uploads ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![
                    u.id,
                    u.owner,
                    u.dest,
                    u.overwrite,
                    u.length as i64,
                    u.offset as i64,
                    u.metadata,
                    u.staged,
                    u.created_at,
                    u.expires_at,
                    u.completed_at
                ],
            )
        })?;
        Ok(())
    }

    /// Blocking.
    pub fn get(&self, id: &str) -> Result<Option<Upload>, DbError> {
        Ok(self.db.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM tus_uploads WHERE id = ?1"),
                [id],
                row_to_upload,
            )
            .optional()
        })?)
    }

    /// Records durable progress and pushes the expiry out. Blocking.
    pub fn set_offset(&self, id: &str, offset: u64, now: i64) -> Result<(), DbError> {
        self.db.with(|c| {
            c.execute(
                "UPDATE tus_uploads SET upload_offset = ?2, expires_at = ?3 WHERE id = ?1",
                params![id, offset as i64, self.expires_after(now)],
            )
        })?;
        Ok(())
    }

    /// Blocking.
    pub fn mark_complete(&self, id: &str, now: i64) -> Result<(), DbError> {
        self.db.with(|c| {
            c.execute(
                "UPDATE tus_uploads SET completed_at = ?2, expires_at = ?3 WHERE id = ?1",
                params![id, now, self.expires_after(now)],
            )
        })?;
        Ok(())
    }

    /// Forgets an upload (its data is the caller's to discard). Blocking.
    pub fn delete(&self, id: &str) -> Result<(), DbError> {
        self.db
            .with(|c| c.execute("DELETE FROM tus_uploads WHERE id = ?1", [id]))?;
        Ok(())
    }

    /// Uploads past their expiry. Blocking.
    pub fn expired(&self, now: i64) -> Result<Vec<Upload>, DbError> {
        Ok(self.db.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM tus_uploads WHERE expires_at <= ?1"
            ))?;
            let rows = st.query_map([now], row_to_upload)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?)
    }

    /// Keys of every upload's staged data. Blocking.
    pub fn known_keys(&self) -> Result<HashSet<String>, DbError> {
        Ok(self.db.with(|c| {
            let mut st = c.prepare("SELECT staged FROM tus_uploads")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<_>>()
        })?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TusError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Blocking(#[from] crate::blocking::BlockingError),
}

/// The service's handle: the store, and which uploads a request is writing right now (one
/// writer per upload; a second PATCH while the first runs is refused, not interleaved).
pub struct Tus {
    pub store: TusStore,
    storage: Arc<dyn Storage>,
    busy: std::sync::Mutex<HashSet<String>>,
}

/// Held while a request writes an upload.
pub struct Busy<'a> {
    tus: &'a Tus,
    id: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut set = match self.tus.busy.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        set.remove(&self.id);
    }
}

impl Tus {
    pub fn new(store: TusStore, storage: Arc<dyn Storage>) -> Self {
        Tus {
            store,
            storage,
            busy: Default::default(),
        }
    }

    /// Forgets an upload and deletes its staged data.
    pub async fn remove(&self, u: &Upload) -> Result<(), TusError> {
        if let Err(e) = self.storage.discard_upload(&u.staged).await {
            // The row goes anyway: an orphan is swept at the next start.
            tracing::warn!(upload = %u.id, error = %e, "cannot delete upload data");
        }
        let (store, id) = (self.store.clone(), u.id.clone());
        crate::blocking::run_unbounded("tus delete", move || store.delete(&id)).await?;
        Ok(())
    }

    /// Deletes expired uploads (state and data), and staged data no upload refers to that was
    /// last written before `orphans_before` (data of an upload being created right now has
    /// no row yet for a moment). Returns how many unfinished uploads expired.
    pub async fn sweep(&self, now: i64, orphans_before: SystemTime) -> Result<usize, TusError> {
        let store = self.store.clone();
        let expired =
            crate::blocking::run_unbounded("tus sweep", move || store.expired(now)).await?;
        for u in &expired {
            self.remove(u).await?;
        }
        let store = self.store.clone();
        let known = crate::blocking::run_unbounded("tus sweep", move || store.known_keys()).await?;
        for (key, modified) in self.storage.upload_keys().await? {
            if modified < orphans_before && !known.contains(&key) {
                self.storage.discard_upload(&key).await?;
            }
        }
        Ok(expired.iter().filter(|u| !u.is_complete()).count())
    }

    /// Sweeps now and then, for ever (the service owns and cancels the task). Orphans (data
    /// left by a crash between staging and recording, or by a create whose disk vanished) go
    /// at the first pass when older than the start, and later once `ORPHAN_AGE` old.
    pub async fn sweep_forever(self: Arc<Self>) {
        let every = Duration::from_secs(self.store.expiry_secs.clamp(1, 60) as u64);
        let started = SystemTime::now();
        loop {
            let before = SystemTime::now()
                .checked_sub(ORPHAN_AGE)
                .map_or(started, |t| t.max(started));
            match self.sweep(crate::auth::now_secs(), before).await {
                Ok(n) if n > 0 => tracing::info!(count = n, "expired resumable uploads deleted"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "resumable upload sweep failed"),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// None when another request is writing this upload.
    pub fn claim(&self, id: &str) -> Option<Busy<'_>> {
        let mut set = match self.busy.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        set.insert(id.to_string()).then(|| Busy {
            tus: self,
            id: id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;
    use crate::storage::{MediaPath, UploadOptions};

    fn store() -> (tempfile::TempDir, TusStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.with(|c| {
            c.execute(
                "INSERT INTO users (name, password_hash, role, created_at) VALUES ('a', 'x', 'member', 0)",
                [],
            )
        })
        .unwrap();
        (dir, TusStore::new(db, 60))
    }

    async fn upload(storage: &MemoryStorage, id: &str, expires_at: i64) -> Upload {
        let dest = MediaPath::from_decoded(&format!("{id}.bin")).unwrap();
        let up = storage
            .begin_upload(
                &dest,
                UploadOptions {
                    resumable: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let key = up.key().to_string();
        up.close().await;
        Upload {
            id: id.into(),
            owner: 1,
            dest: dest.to_string(),
            overwrite: false,
            length: 10,
            offset: 3,
            metadata: String::new(),
            staged: key,
            created_at: 0,
            expires_at,
            completed_at: None,
        }
    }

    #[tokio::test]
    async fn round_trip_progress_and_expiry_sweep() {
        let (_dir, s) = store();
        let storage = MemoryStorage::new();
        let tus = Tus::new(s.clone(), Arc::new(storage.clone()));
        let keep = upload(&storage, "keep", 100).await;
        let old = upload(&storage, "old", 10).await;
        let orphan = upload(&storage, "orphan", 10).await;
        s.insert(&keep).unwrap();
        s.insert(&old).unwrap();
        assert_eq!(s.get("keep").unwrap().as_ref(), Some(&keep));
        s.set_offset("keep", 7, 50).unwrap();
        let got = s.get("keep").unwrap().unwrap();
        assert_eq!((got.offset, got.expires_at), (7, 111));
        // Orphans written after the cut-off are left alone (a create may be recording its row).
        let long_ago = SystemTime::UNIX_EPOCH;
        tus.sweep(0, long_ago).await.unwrap();
        assert!(storage.staged_keys().contains(&orphan.staged));
        let n = tus
            .sweep(60, SystemTime::now() + Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert!(s.get("old").unwrap().is_none());
        let left = storage.staged_keys();
        assert_eq!(
            left,
            vec![keep.staged.clone()],
            "expired and orphan data go: {left:?}"
        );
        assert!(!left.contains(&old.staged) && !left.contains(&orphan.staged));
    }
}
