//! The SQLite database in the data dir (`streamhub.db`): opened with WAL, `synchronous=FULL`,
//! foreign keys and a busy timeout, and migrated to the current schema at open. `db` owns the
//! one ordered list of numbered migrations (`migrations/NNNN_*.sql`, listed in
//! `db::migrations`) for every module's tables: accounts, notes, the library index, uploads.
//!
//! rusqlite is blocking: async callers go through [`Db::call`], which runs the closure on the
//! blocking pool, never on a runtime worker.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

pub mod fault;
pub(crate) mod migrations;

pub use fault::{classify, DataDirFault};

pub const DB_FILE: &str = "streamhub.db";

/// The schema version a database has after [`Db::open`]: the number of migrations.
pub fn schema_version() -> usize {
    migrations::FILES.len()
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database task failed: {0}")]
    Task(String),
}

impl DbError {
    /// The data dir's state this error shows (read-only, full, …), if it is one.
    pub fn fault(&self) -> Option<DataDirFault> {
        match self {
            DbError::Sql(e) => classify(e),
            _ => None,
        }
    }
}

/// A `Db::call` closure's own error, or the pool's.
enum CallError<E> {
    Inner(E),
    Blocking(crate::blocking::BlockingError),
}

impl<E> From<crate::blocking::BlockingError> for CallError<E> {
    fn from(e: crate::blocking::BlockingError) -> Self {
        CallError::Blocking(e)
    }
}

impl From<crate::blocking::BlockingError> for DbError {
    fn from(e: crate::blocking::BlockingError) -> Self {
        DbError::Task(e.to_string())
    }
}

/// Opens a connection to the database file with the settings every streamhub connection
/// uses: WAL, `synchronous=FULL`, foreign keys, a 5 s busy timeout, the read memory map, and
/// `BEGIN IMMEDIATE` for every `transaction()`. Immediate matters: a deferred transaction
/// that reads and then writes, while another connection commits in between, fails at once
/// with SQLITE_BUSY (a stale snapshot cannot be upgraded, and the busy timeout does not
/// apply). Taking the write lock at BEGIN makes such writers wait their turn instead.
///
/// The read map is 64 MiB: a notepad up to about 25,000 notes is read through it whole, and
/// a larger one costs searches about 15 % at p95 (100,000 notes, 241 MiB: 25–29 ms against
/// 18–25 ms with 256 MiB, `examples/notes_bench` with `BENCH_MMAP_BYTES`), while the file
/// pages it adds to the RSS stay within 64 MiB on a 1 GiB box. Without a map the reads go
/// through SQLite's own cache, and the process's anonymous memory grew under the soak
/// instead (38.9 → 56.9 MiB in 10 minutes, `docs/PERFORMANCE.md`).
pub fn open_conn(path: &Path) -> Result<Connection, rusqlite::Error> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA mmap_size = 67108864;",
    )?;
    conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
    Ok(conn)
}

/// Password hashes, token hashes and the share-link key live in the database: it is made
/// 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm` files the database's
/// mode), whatever the umask, and an older database made readable by others is tightened.
pub fn private_db_files(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    for p in [
        path.to_path_buf(),
        path.with_extension("db-wal"),
        path.with_extension("db-shm"),
    ] {
        if let Ok(md) = std::fs::metadata(&p) {
            if md.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

/// A file only its owner can read (backups, exports), whatever the umask: a new one
/// (`replace` false: failing if it exists), or one created or emptied and tightened.
pub fn private_file(path: &Path, replace: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut opts = std::fs::OpenOptions::new();
    // Never through a link planted where the file goes (a root-run export or backup would
    // otherwise overwrite, and chmod, whatever it points at).
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    opts.write(true).mode(0o600).custom_flags(nofollow);
    if replace {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let f = opts.open(path)?;
    if replace {
        // An existing file keeps its mode through `open`.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// Brings `conn` to the latest schema: applies, in order, each numbered migration it has not
/// applied yet (`PRAGMA user_version` counts them). Tests use it on in-memory connections, so
/// they run against the real schema rather than a hand-made one.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    migrations::migrations()
        .to_latest(conn)
        .map_err(|e| DbError::Migrate(e.to_string()))
}

/// A shared handle to the database.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Db {
    /// Opens (creating if needed) `<data_dir>/streamhub.db` and migrates it. Blocking.
    /// Reads go through a memory map (up to 256 MiB): full-text search walks large posting
    /// lists, and mapped pages cost no read() copy (they are the kernel's page cache, shared
    /// and reclaimable, not heap).
    pub fn open(data_dir: &Path) -> Result<Db, DbError> {
        let path = data_dir.join(DB_FILE);
        let open_err = |e: &dyn std::fmt::Display| DbError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        private_db_files(&path).map_err(|e| open_err(&crate::storage::errno_message(&e)))?;
        let mut conn = open_conn(&path).map_err(|e| open_err(&e))?;
        migrate(&mut conn)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fact about this node (`node_state`), if recorded. Blocking.
    pub fn state(&self, key: &str) -> Result<Option<String>, DbError> {
        use rusqlite::OptionalExtension;
        Ok(self.with(|c| {
            c.query_row("SELECT value FROM node_state WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
        })?)
    }

    /// Records a fact about this node. Blocking.
    pub fn set_state(&self, key: &str, value: &str) -> Result<(), DbError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO node_state (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
        })?;
        Ok(())
    }

    /// Runs `f` with the connection, on the calling thread (CLI and blocking code).
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        // A panic while holding the lock poisons it; the connection itself is still usable.
        let mut guard = match self.conn.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        crate::blocking::run_unbounded("database", move || db.with(f).map_err(CallError::Inner))
            .await
            .map_err(|e| match e {
                CallError::Inner(e) => e,
                CallError::Blocking(b) => E::from(DbError::from(b)),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_twice_and_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let mode: String = db
            .with(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(db);
        Db::open(dir.path()).expect("re-open of a migrated database");
    }

    /// The CI failure this guards against: a library refresh (read, then write) on one
    /// connection while the scanner committed on another got "database is locked" at once.
    #[test]
    fn read_then_write_waits_for_another_writer_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.with(|c| c.execute_batch("CREATE TABLE t (v INTEGER)"))
            .unwrap();
        let mut a = open_conn(db.path()).unwrap();
        let path = db.path().to_path_buf();
        let tx = a.transaction().unwrap();
        let n: i64 = tx
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        let other = std::thread::spawn(move || {
            let b = open_conn(&path).unwrap();
            b.execute("INSERT INTO t VALUES (2)", [])
        });
        std::thread::sleep(Duration::from_millis(100));
        tx.execute("INSERT INTO t VALUES (?1)", [n + 1]).unwrap();
        tx.commit().unwrap();
        other.join().unwrap().unwrap();
        let rows: i64 = db
            .with(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(rows, 2);
    }
}
