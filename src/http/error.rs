//! The one mapping from domain errors to HTTP: status + JSON `{"error": code, "message": …}`.
//! Internal detail is logged here, not sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::app::FilesError;
use crate::auth::shares::ShareError;
use crate::auth::AuthError;
use crate::db::{DataDirFault, DbError};
use crate::library::LibraryError;
use crate::notes::NoteError;
use crate::storage::{PathError, StorageError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra headers some errors must carry (416's Content-Range, 405's Allow).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// Extra members of the JSON body (412's `current` note).
    pub extra: Option<serde_json::Value>,
    /// Set when the cause is the data dir's state: the response carries it as an extension,
    /// and `http::data_dir` names the directory and what is wrong with it in the message.
    pub data_dir: Option<DataDirFault>,
}

/// The response extension of an answer caused by the data dir's state.
#[derive(Debug, Clone, Copy)]
pub struct DataDirFailure(pub DataDirFault);

/// Seconds a client is told to wait when the data dir cannot be written: long enough for
/// an operator (or a cleanup) to act, short enough that a client comes back on its own.
pub const DATA_DIR_RETRY_SECS: u32 = 30;
/// `Retry-After` of `storage_unavailable`: a hung mount or a missing disk is not fixed in a
/// second, but players retry on their own and should find it back soon after it is.
pub const STORAGE_RETRY_SECS: u32 = 5;

/// Storage calls that change something (`StorageError::Stalled`'s `op`): when one does not
/// answer in time its outcome is unknown (see `app::settle`).
const CHANGES: &[&str] = &[
    "delete", "rename", "trash", "untrash", "commit", "mkdir", "purge",
];

/// The message of an answer caused by the data dir's state. `dir` is where it is (unknown
/// to the error mappings, filled in by `http::data_dir`), `reason` what the file system
/// says (a probe's errno name) or else what SQLite said.
pub fn data_dir_message(
    dir: Option<&std::path::Path>,
    fault: DataDirFault,
    reason: &str,
) -> String {
    let dir = match dir {
        Some(d) => format!("the data directory {} (server.data_dir)", d.display()),
        None => "the data directory (server.data_dir)".to_string(),
    };
    match fault {
        DataDirFault::Full => {
            format!("no space left in {dir}: nothing was changed; free some space there")
        }
        DataDirFault::Damaged => {
            format!("{dir} cannot be read reliably: {reason}; nothing was changed")
        }
        _ => format!("{dir} cannot be written: {reason}; nothing was changed (reads still work)"),
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
            extra: None,
            data_dir: None,
        }
    }

    /// The data dir's state refused a database write (or read): 507 `no_space` when it is
    /// full, 503 `busy` when another writer held the lock too long, otherwise 503
    /// `data_dir_unavailable` with `Retry-After`. Never 500: it is not a bug of ours.
    pub fn data_dir(fault: DataDirFault) -> Self {
        // Logged at warn by `http::data_dir` with the directory and the errno; busy here.
        tracing::debug!(error = %fault, "data dir: a database write failed");
        let message = data_dir_message(None, fault, &fault.to_string());
        let e = match fault {
            DataDirFault::Full => Self::new(StatusCode::INSUFFICIENT_STORAGE, "no_space", message),
            DataDirFault::Busy => {
                tracing::warn!("database busy past the busy timeout");
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "the database is busy with another write; retry in a moment",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            _ => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "data_dir_unavailable",
                message,
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from(DATA_DIR_RETRY_SECS)),
        };
        ApiError {
            data_dir: Some(fault),
            ..e
        }
    }

    /// A database error: the data dir's state ([`ApiError::data_dir`]) or ours (500).
    pub fn db(e: &DbError) -> Self {
        match e.fault() {
            Some(fault) => Self::data_dir(fault),
            None => Self::internal(e),
        }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("allowed methods: {allow}"),
        )
        .with_header(header::ALLOW, HeaderValue::from_static(allow))
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: not logged in, or credentials that do not check out.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: logged in, but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// A failure of ours (database, task): the detail is logged (inside the request's span,
    /// so with its request id), never sent.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details (look up this response's x-request-id)",
        )
    }
}

impl From<PathError> for ApiError {
    fn from(e: PathError) -> Self {
        match e {
            PathError::BadNewName(..) => ApiError::bad_request("bad_name", e.to_string()),
            _ => ApiError::bad_request("bad_path", e.to_string()),
        }
    }
}

impl From<FilesError> for ApiError {
    fn from(e: FilesError) -> Self {
        match e {
            FilesError::Storage(e) => e.into(),
            FilesError::Path(e) => e.into(),
            FilesError::Forbidden(msg) => ApiError::forbidden(msg),
            FilesError::Index(_) => ApiError::internal(&e),
            FilesError::DataDir(fault)
            | FilesError::Quota(crate::app::quota::QuotaError::DataDir(fault)) => {
                ApiError::data_dir(fault)
            }
            FilesError::Busy(msg) => ApiError::new(StatusCode::CONFLICT, "busy", msg),
            FilesError::Quota(crate::app::quota::QuotaError::Exceeded(q)) => {
                ApiError::new(StatusCode::FORBIDDEN, "quota_exceeded", q.to_string())
            }
            FilesError::Quota(_) => ApiError::internal(&e),
        }
    }
}

impl From<crate::app::zip::ZipError> for ApiError {
    /// Before the first byte of a zip download; later ones cut the body off instead.
    fn from(e: crate::app::zip::ZipError) -> Self {
        use crate::app::zip::ZipError::*;
        match e {
            Storage(e) | Entry { source: e, .. } => e.into(),
            Path(e) => e.into(),
            NotAFolder => ApiError::bad_request(
                "invalid",
                "this is a file, not a folder: download it from /media/<path>",
            ),
            TooManyEntries | TooDeep | Name(_) => ApiError::internal(&e),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::BadCredentials => ApiError::unauthorized("wrong name or password"),
            AuthError::Invalid { field, reason } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("{field}: {reason}"),
            ),
            AuthError::UserExists(n) => ApiError::new(
                StatusCode::CONFLICT,
                "exists",
                format!("user {n} already exists"),
            ),
            AuthError::NoSuchUser(_) | AuthError::NotFound => ApiError::not_found("not found"),
            AuthError::LastAdmin => ApiError::new(
                StatusCode::CONFLICT,
                "last_admin",
                "the last admin cannot be deleted or demoted",
            ),
            AuthError::Db(e) => ApiError::db(&e),
            AuthError::Hash(_) | AuthError::Blocking(_) => ApiError::internal(&e),
        }
    }
}

impl From<NoteError> for ApiError {
    fn from(e: NoteError) -> Self {
        use NoteError::*;
        match e {
            NotFound => ApiError::not_found("no such note"),
            RevisionNotFound(_) => ApiError::not_found(e.to_string()),
            Stale { .. } => ApiError::new(StatusCode::PRECONDITION_FAILED, "stale", e.to_string()),
            Deleted => ApiError::new(StatusCode::CONFLICT, "deleted", e.to_string()),
            Invalid { .. } | BadRevision(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
            }
            TooLong { field, .. } if field == "title" || field == "body" => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            TooLong { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
            }
            Forbidden(msg) => ApiError::forbidden(msg),
            MergeConflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "merge_conflict", e.to_string())
            }
            QuotaExceeded(msg) => ApiError::new(StatusCode::FORBIDDEN, "quota_exceeded", msg),
            Db(e) => ApiError::db(&e),
            Corrupt(_) => ApiError::internal(&e),
        }
    }
}

impl From<crate::positions::PositionError> for ApiError {
    fn from(e: crate::positions::PositionError) -> Self {
        use crate::positions::PositionError::*;
        match e {
            Invalid { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
            }
            Db(e) => ApiError::db(&e),
            Blocking(_) => ApiError::internal(&e),
        }
    }
}

impl From<ShareError> for ApiError {
    fn from(e: ShareError) -> Self {
        match e {
            ShareError::NotFound => ApiError::not_found("no such share link"),
            ShareError::Expired => ApiError::new(StatusCode::GONE, "link_expired", e.to_string()),
            ShareError::Revoked => ApiError::new(StatusCode::GONE, "link_revoked", e.to_string()),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        use StorageError::*;
        let code = e.outcome();
        match e {
            NotFound => ApiError::not_found("no such file"),
            IsDirectory => ApiError::not_found("this is a folder, not a file"),
            NotADirectory => ApiError::not_found("no such folder"),
            OutsideRoot => ApiError::new(
                StatusCode::FORBIDDEN,
                "outside_root",
                "this path resolves outside the media root",
            ),
            PermissionDenied => ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "the service may not read this file",
            ),
            Stalled { .. } | Unavailable(_) => {
                tracing::warn!(error = %e, "storage unavailable");
                // A change whose call hung may still land when the storage answers (a call
                // stuck in the kernel cannot be cancelled): the client must look, not assume.
                let message = match &e {
                    Stalled { op, .. } if CHANGES.contains(op) => format!(
                        "{e}: the outcome is unknown, the change may still be carried out when \
                         the storage answers again; look before trying again"
                    ),
                    _ => e.to_string(),
                };
                // Outages of a disk or an object store are usually short: tell clients
                // when to come back instead of letting them hammer the service.
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    message,
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from(STORAGE_RETRY_SECS))
            }
            PermissionDeniedAt(folder) => ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                format!("the service has no permission to write in folder '{folder}'"),
            ),
            NoSpace => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "no_space",
                "no space left on the media disk",
            ),
            ReadOnly => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "read_only",
                "the media filesystem is read-only",
            ),
            AlreadyExists => ApiError::new(
                StatusCode::CONFLICT,
                "exists",
                "a file or folder with that name exists already",
            ),
            NotEmpty => ApiError::new(StatusCode::CONFLICT, "not_empty", "the folder is not empty"),
            TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("larger than the upload limit of {limit} bytes; nothing was kept"),
            ),
            ClientGone(_) => ApiError::bad_request(
                code,
                "the upload ended before all its bytes arrived; nothing was kept",
            ),
            Invalid(msg) => ApiError::bad_request(code, msg),
            NotSupported(msg) => ApiError::new(StatusCode::NOT_IMPLEMENTED, code, msg),
            UploadGone => ApiError::new(
                StatusCode::GONE,
                code,
                "this upload's data is gone (deleted, or lost with its disk); start a new one",
            ),
            Busy => ApiError::new(
                StatusCode::LOCKED,
                code,
                "another request is still writing this upload; retry when it has finished",
            ),
            DataDirFull => ApiError::data_dir(DataDirFault::Full),
            UploadDropped => ApiError::new(
                StatusCode::CONFLICT,
                code,
                "another upload of this name finished while this one was sent, and the store \
                 dropped this one; nothing of it was kept: send it again to replace that one",
            ),
            Partial {
                done,
                message,
                cause,
            } => {
                let cause = ApiError::from(*cause);
                ApiError {
                    code,
                    message: format!("{message} ({})", cause.message),
                    extra: Some(serde_json::json!({ "done": done })),
                    ..cause
                }
            }
            Changed | Io(_) => {
                tracing::error!(error = %e, "storage error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code,
                    "the storage failed; the server log has the details",
                )
            }
        }
    }
}

impl From<LibraryError> for ApiError {
    fn from(e: LibraryError) -> Self {
        use LibraryError::*;
        match e {
            NotFound => ApiError::not_found("no such file or folder"),
            NotADirectory => ApiError::not_found("not a folder"),
            OutsideRoot => StorageError::OutsideRoot.into(),
            PermissionDenied => ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "the service may not read this folder",
            ),
            BadQuery(msg) => ApiError::bad_request("bad_query", msg),
            NoThumbnail(why) => ApiError::new(StatusCode::NOT_FOUND, "no_thumbnail", why),
            Unavailable(_) | RootEmpty(_) | Stalled(_) => {
                tracing::warn!(error = %e, "library unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    e.to_string(),
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from(STORAGE_RETRY_SECS))
            }
            DataDir(fault) => ApiError::data_dir(fault),
            Db(_) | Io(_) | Task(_) | Cancelled => ApiError::internal(&e),
        }
    }
}

impl From<crate::app::ResumableError> for ApiError {
    /// tus answers (`http::tus`).
    fn from(e: crate::app::ResumableError) -> Self {
        use crate::app::ResumableError::*;
        let msg = e.to_string();
        match e {
            NotFound => ApiError::not_found(msg),
            Expired => ApiError::new(StatusCode::GONE, "expired", msg),
            Busy => ApiError::new(StatusCode::LOCKED, "upload_busy", msg),
            ChecksumMismatch => ApiError::new(
                StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
                "checksum_mismatch",
                msg,
            ),
            PastLength { .. } | Complete => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "past_upload_length", msg)
            }
            Interrupted { .. } => ApiError::bad_request("upload_interrupted", msg),
            Files(e) => e.into(),
            State(crate::tus::TusError::Db(e)) => ApiError::db(&e),
            State(e) => ApiError::internal(&e),
        }
    }
}

impl From<crate::tus::ProtoError> for ApiError {
    fn from(e: crate::tus::ProtoError) -> Self {
        let code = match e {
            crate::tus::ProtoError::Metadata(_) => "bad_metadata",
            crate::tus::ProtoError::Checksum(_) => "bad_checksum",
            crate::tus::ProtoError::Algorithm(_) => "checksum_algorithm",
        };
        ApiError::bad_request(code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.code, "message": self.message });
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) =
            (self.extra, body.as_object_mut())
        {
            for (k, v) in extra {
                obj.insert(k, v);
            }
        }
        let mut resp = (self.status, Json(body)).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        if let Some(fault) = self.data_dir {
            resp.extensions_mut().insert(DataDirFailure(fault));
        }
        resp
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;

/// A query string that does not parse: 400 `bad_query`, in our words (axum's text starts
/// "Failed to deserialize query string", which is about our code, not the request).
pub fn bad_query(e: axum::extract::rejection::QueryRejection) -> ApiError {
    let text = e.body_text();
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    ApiError::bad_request("bad_query", format!("bad query parameters: {detail}"))
}
