//! The error policy: each domain error's status and code, and internal failures logged with
//! the request id while the client gets no detail.

use std::sync::{Arc, Mutex};

use super::*;
use crate::blocking::BlockingError;
use crate::db::DbError;

/// A log sink for one test's subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Maps `make()`'s error inside a request span like `access_log`'s; returns it and the log.
fn in_request(make: impl FnOnce() -> ApiError) -> (ApiError, String) {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let err = tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", id = %"2a");
        let _entered = span.enter();
        make()
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    (err, text)
}

#[test]
fn internal_detail_is_logged_with_the_request_id_never_sent() {
    let secret = "/var/lib/streamhub/streamhub.db: disk I/O error";
    let cases: Vec<Box<dyn FnOnce() -> ApiError>> = vec![
        Box::new(|| AuthError::Db(DbError::Task(secret.into())).into()),
        Box::new(|| AuthError::Hash(secret.into()).into()),
        Box::new(|| AuthError::Blocking(BlockingError::Failed { op: "argon2" }).into()),
        Box::new(|| NoteError::Corrupt(secret.into()).into()),
        Box::new(|| NoteError::Db(DbError::Task(secret.into())).into()),
        Box::new(|| LibraryError::Task(secret.into()).into()),
    ];
    for make in cases {
        let (e, log) = in_request(make);
        assert_eq!((e.status.as_u16(), e.code), (500, "internal"));
        assert!(!e.message.contains("/var/lib"), "{}", e.message);
        assert!(e.message.contains("x-request-id"), "{}", e.message);
        assert!(log.contains("request{id=2a}"), "{log}");
        assert!(log.contains("internal error"), "{log}");
    }
    let (_, log) = in_request(|| AuthError::Db(DbError::Task(secret.into())).into());
    assert!(log.contains(secret), "the detail is in the log: {log}");
}

#[test]
fn auth_and_share_errors_map_to_their_codes() {
    let cases: Vec<(ApiError, u16, &str)> = vec![
        (AuthError::BadCredentials.into(), 401, "unauthorized"),
        (
            AuthError::Invalid {
                field: "name",
                reason: "too long".into(),
            }
            .into(),
            422,
            "invalid",
        ),
        (AuthError::UserExists("bob".into()).into(), 409, "exists"),
        (AuthError::NoSuchUser("bob".into()).into(), 404, "not_found"),
        (AuthError::NotFound.into(), 404, "not_found"),
        (AuthError::LastAdmin.into(), 409, "last_admin"),
        (ShareError::NotFound.into(), 404, "not_found"),
        (ShareError::Expired.into(), 410, "link_expired"),
        (ShareError::Revoked.into(), 410, "link_revoked"),
        (ApiError::unauthorized("log in first"), 401, "unauthorized"),
        (ApiError::forbidden("no"), 403, "forbidden"),
    ];
    for (e, status, code) in cases {
        assert_eq!((e.status.as_u16(), e.code), (status, code), "{}", e.message);
    }
    let e = ApiError::from(AuthError::BadCredentials);
    assert_eq!(e.message, "wrong name or password");
}

#[test]
fn note_errors_map_to_their_codes() {
    let cases: Vec<(NoteError, u16, &str)> = vec![
        (NoteError::NotFound, 404, "not_found"),
        (NoteError::RevisionNotFound("r1".into()), 404, "not_found"),
        (
            NoteError::Stale {
                current_rev: "r2".into(),
            },
            412,
            "stale",
        ),
        (NoteError::Deleted, 409, "deleted"),
        (
            NoteError::TooLong {
                field: "body",
                max: 1,
            },
            413,
            "too_large",
        ),
        (
            NoteError::TooLong {
                field: "tags",
                max: 1,
            },
            422,
            "invalid",
        ),
        (NoteError::BadRevision("hash".into()), 422, "invalid"),
        (NoteError::Forbidden("only the owner"), 403, "forbidden"),
        (
            NoteError::MergeConflict {
                fields: vec!["body"],
            },
            409,
            "merge_conflict",
        ),
    ];
    for (n, status, code) in cases {
        let e = ApiError::from(n);
        assert_eq!((e.status.as_u16(), e.code), (status, code), "{}", e.message);
    }
}

/// A SQLite failure with `code` (an extended result code).
fn sqlite(code: i32) -> DbError {
    DbError::Sql(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(code),
        None,
    ))
}

#[test]
fn a_data_dir_that_takes_no_write_is_503_or_507_from_every_module_never_500() {
    use rusqlite::ffi;
    let read_only = || sqlite(ffi::SQLITE_READONLY_DBMOVED);
    let cases: Vec<(ApiError, u16, &str)> = vec![
        (
            AuthError::Db(read_only()).into(),
            503,
            "data_dir_unavailable",
        ),
        (
            NoteError::Db(read_only()).into(),
            503,
            "data_dir_unavailable",
        ),
        (
            NoteError::Db(sqlite(ffi::SQLITE_IOERR_WRITE)).into(),
            503,
            "data_dir_unavailable",
        ),
        (
            NoteError::Db(sqlite(ffi::SQLITE_CANTOPEN)).into(),
            503,
            "data_dir_unavailable",
        ),
        (
            AuthError::Db(sqlite(ffi::SQLITE_FULL)).into(),
            507,
            "no_space",
        ),
        (NoteError::Db(sqlite(ffi::SQLITE_BUSY)).into(), 503, "busy"),
        (
            crate::positions::PositionError::Db(read_only()).into(),
            503,
            "data_dir_unavailable",
        ),
        (
            LibraryError::DataDir(DataDirFault::ReadOnly).into(),
            503,
            "data_dir_unavailable",
        ),
        (
            FilesError::DataDir(DataDirFault::Full).into(),
            507,
            "no_space",
        ),
        (
            FilesError::Quota(crate::app::quota::QuotaError::DataDir(DataDirFault::Io)).into(),
            503,
            "data_dir_unavailable",
        ),
        (
            crate::app::ResumableError::State(crate::tus::TusError::Db(read_only())).into(),
            503,
            "data_dir_unavailable",
        ),
    ];
    for (e, status, code) in cases {
        assert_eq!((e.status.as_u16(), e.code), (status, code), "{e:?}");
        assert!(
            e.message.contains("server.data_dir") || code == "busy",
            "{e:?}"
        );
        let retry = e
            .headers
            .iter()
            .find(|(k, _)| k == header::RETRY_AFTER)
            .map(|(_, v)| v.clone());
        assert_eq!(
            retry.is_some(),
            status == 503,
            "Retry-After on 503 only: {e:?}"
        );
        let resp = e.into_response();
        // Marked for `http::data_dir`, which names the directory (busy has nothing to name).
        assert_eq!(
            resp.extensions().get::<DataDirFailure>().is_some(),
            code != "busy"
        );
    }
}

#[test]
fn the_data_dir_message_names_the_directory_and_the_reason() {
    let dir = std::path::Path::new("/var/lib/streamhub");
    let m = data_dir_message(
        Some(dir),
        DataDirFault::ReadOnly,
        "EROFS: Read-only file system",
    );
    assert_eq!(
        m,
        "the data directory /var/lib/streamhub (server.data_dir) cannot be written: \
         EROFS: Read-only file system; nothing was changed (reads still work)"
    );
    let m = data_dir_message(Some(dir), DataDirFault::Full, "ENOSPC");
    assert!(
        m.starts_with("no space left in the data directory /var/lib/streamhub (server.data_dir)"),
        "{m}"
    );
}
