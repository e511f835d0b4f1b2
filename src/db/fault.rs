//! Which SQLite failures mean "the data dir cannot take a write" (read-only, full, gone,
//! failing, or locked past the busy timeout) rather than a bug of ours. Classified here,
//! once, so every module that wraps a database error answers the same way (`http::error`
//! turns a [`DataDirFault`] into 503 `data_dir_unavailable`, 507 `no_space` or 503 `busy`).

use rusqlite::ErrorCode;

/// Why the data dir (the database in it) could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataDirFault {
    /// `SQLITE_READONLY*`, `SQLITE_PERM`: the file system or the file refuses writes.
    #[error("read-only")]
    ReadOnly,
    /// `SQLITE_FULL`: no space left (or the file-size limit).
    #[error("no space left")]
    Full,
    /// `SQLITE_CANTOPEN`: a file in it (the journal, the database) cannot be opened.
    #[error("a database file cannot be opened")]
    CantOpen,
    /// `SQLITE_IOERR*`: the disk failed a read, write or sync (a file system turned
    /// read-only under an open file reports this too).
    #[error("disk i/o error")]
    Io,
    /// `SQLITE_CORRUPT`, `SQLITE_NOTADB`: what SQLite read is not a database page. A failing
    /// disk returns such pages (an ext4 shut down after I/O errors did, in the attack run),
    /// and a damaged file reads the same; either way the data dir needs its operator.
    #[error("the database reads as damaged (a failing disk, or a damaged file)")]
    Damaged,
    /// `SQLITE_BUSY`/`SQLITE_LOCKED` after the busy timeout: another writer held the lock.
    #[error("the database stayed locked past the busy timeout")]
    Busy,
}

/// The fault `e` is, if it is one of the data dir's state rather than of our code.
pub fn classify(e: &rusqlite::Error) -> Option<DataDirFault> {
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        return None;
    };
    Some(match f.code {
        ErrorCode::ReadOnly | ErrorCode::PermissionDenied => DataDirFault::ReadOnly,
        ErrorCode::DiskFull => DataDirFault::Full,
        ErrorCode::CannotOpen => DataDirFault::CantOpen,
        ErrorCode::SystemIoFailure => DataDirFault::Io,
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => DataDirFault::Damaged,
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => DataDirFault::Busy,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn sqlite(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn every_extended_code_of_a_data_dir_state_is_classified() {
        let cases = [
            (ffi::SQLITE_READONLY, DataDirFault::ReadOnly),
            (ffi::SQLITE_CORRUPT, DataDirFault::Damaged),
            (ffi::SQLITE_NOTADB, DataDirFault::Damaged),
            (ffi::SQLITE_READONLY_RECOVERY, DataDirFault::ReadOnly),
            (ffi::SQLITE_READONLY_CANTLOCK, DataDirFault::ReadOnly),
            (ffi::SQLITE_READONLY_ROLLBACK, DataDirFault::ReadOnly),
            (ffi::SQLITE_READONLY_DBMOVED, DataDirFault::ReadOnly),
            (ffi::SQLITE_READONLY_CANTINIT, DataDirFault::ReadOnly),
            (ffi::SQLITE_READONLY_DIRECTORY, DataDirFault::ReadOnly),
            (ffi::SQLITE_PERM, DataDirFault::ReadOnly),
            (ffi::SQLITE_FULL, DataDirFault::Full),
            (ffi::SQLITE_CANTOPEN, DataDirFault::CantOpen),
            (ffi::SQLITE_CANTOPEN_ISDIR, DataDirFault::CantOpen),
            (ffi::SQLITE_IOERR, DataDirFault::Io),
            (ffi::SQLITE_IOERR_WRITE, DataDirFault::Io),
            (ffi::SQLITE_IOERR_FSYNC, DataDirFault::Io),
            (ffi::SQLITE_IOERR_SHMMAP, DataDirFault::Io),
            (ffi::SQLITE_BUSY, DataDirFault::Busy),
            (ffi::SQLITE_BUSY_SNAPSHOT, DataDirFault::Busy),
            (ffi::SQLITE_LOCKED, DataDirFault::Busy),
        ];
        for (code, want) in cases {
            assert_eq!(classify(&sqlite(code)), Some(want), "code {code}");
        }
    }

    #[test]
    fn our_own_mistakes_are_not_a_data_dir_state() {
        for code in [
            ffi::SQLITE_CONSTRAINT,
            ffi::SQLITE_CONSTRAINT_UNIQUE,
            ffi::SQLITE_MISUSE,
            ffi::SQLITE_ERROR,
        ] {
            assert_eq!(classify(&sqlite(code)), None, "code {code}");
        }
        assert_eq!(classify(&rusqlite::Error::QueryReturnedNoRows), None);
        assert_eq!(classify(&rusqlite::Error::InvalidColumnIndex(3)), None);
    }

    /// The real thing: a database whose file the connection may only read.
    #[test]
    fn a_write_to_a_read_only_database_is_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        drop(c);
        let ro = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let e = ro.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
        assert_eq!(classify(&e), Some(DataDirFault::ReadOnly));
    }

    #[test]
    fn a_lock_held_past_the_busy_timeout_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut a = rusqlite::Connection::open(&path).unwrap();
        a.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        let b = rusqlite::Connection::open(&path).unwrap();
        b.busy_timeout(std::time::Duration::ZERO).unwrap();
        let tx = a
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        let e = b.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
        assert_eq!(classify(&e), Some(DataDirFault::Busy));
        drop(tx);
    }
}
