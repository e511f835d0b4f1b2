//! tus 1.0.0 resumable uploads at `/api/tus/`: core (HEAD, PATCH), creation,
//! creation-with-upload, termination, expiration and checksum (sha1, sha256). Handlers
//! translate headers into calls on `tus` (state, appending) and `storage` (staging, commit).
//!
//! An upload belongs to the user who created it: anyone else gets 404 for its id.

use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::auth::Principal;
use super::error::ApiError;
use super::json::ApiPath;
use super::upload::body_source;
use super::AppState;
use crate::app::resumable::{NewUpload, ResumableError};
use crate::auth::User;
use crate::storage::MediaPath;
use crate::tus::{Checksum, Metadata, Upload};

pub const VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
const OFFSET_TYPE: &str = "application/offset+octet-stream";

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");

/// Every tus answer, errors included, names the protocol version.
fn tus_reply(result: Result<Response, ApiError>) -> Response {
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.headers_mut()
        .insert(TUS_RESUMABLE, HeaderValue::from_static(VERSION));
    resp
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn check_version(h: &HeaderMap) -> Result<(), ApiError> {
    if header_str(h, "tus-resumable") == Some(VERSION) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "tus_version",
        "send Tus-Resumable: 1.0.0 (the only tus version served here)",
    )
    .with_header(
        HeaderName::from_static("tus-version"),
        HeaderValue::from_static(VERSION),
    ))
}

fn number(h: &HeaderMap, name: &'static str) -> Result<Option<u64>, ApiError> {
    // Two values may disagree; which one a proxy saw is unknowable.
    if h.get_all(name).iter().nth(1).is_some() {
        return Err(ApiError::bad_request(
            "bad_header",
            format!("{name} was sent more than once"),
        ));
    }
    match h.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request("bad_header", format!("{name} must be a whole number"))
            }),
    }
}

fn http_date(secs: i64) -> HeaderValue {
    let t = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    HeaderValue::from_str(&httpdate::fmt_http_date(t))
        .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

/// `OPTIONS /api/tus/`: what this server supports (no login needed).
pub async fn options(State(state): State<AppState>) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(VERSION));
    h.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    h.insert(
        "tus-checksum-algorithm",
        HeaderValue::from_static("sha1,sha256"),
    );
    h.insert(
        "tus-max-size",
        HeaderValue::from(state.config.uploads.max_bytes),
    );
    tus_reply(Ok(resp))
}

/// `POST /api/tus/`: creation (and creation-with-upload).
///
/// The tus handlers take the principal rather than a `Member` extractor: the protocol's
/// version check comes first, and every answer (401 included) carries `Tus-Resumable`.
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    tus_reply(
        async {
            check_version(&headers)?;
            let user = principal.require_user()?;
            create_inner(&state, user, &headers, body).await
        }
        .await,
    )
}

async fn create_inner(
    state: &AppState,
    user: &User,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_version(headers)?;
    if headers.contains_key("upload-defer-length") {
        return Err(ApiError::bad_request(
            "defer_length_unsupported",
            "Upload-Defer-Length is not supported: send Upload-Length",
        ));
    }
    let length = number(headers, "upload-length")?.ok_or_else(|| {
        ApiError::bad_request("missing_length", "send Upload-Length (the file size)")
    })?;
    let raw_meta = header_str(headers, "upload-metadata")
        .unwrap_or("")
        .to_string();
    let meta = Metadata::parse(&raw_meta).map_err(ApiError::from)?;
    let filename = meta
        .text("filename")
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_filename",
                "Upload-Metadata must carry 'filename' (the file's name)",
            )
        })?;
    let folder = meta
        .text("folder")
        .map_err(ApiError::from)?
        .unwrap_or_default();
    let overwrite = match meta.text("overwrite").map_err(ApiError::from)?.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "bad_metadata",
                "overwrite must be true, false, 1 or 0",
            ))
        }
    };
    let dest = MediaPath::from_api(&folder)?
        .join(&filename)?
        .for_create()?;
    let upload = state
        .resumable
        .create(
            user,
            NewUpload {
                dest,
                overwrite,
                length,
                metadata: raw_meta,
            },
        )
        .await?;
    let with_body = header_str(headers, "content-type")
        .map(|t| t.eq_ignore_ascii_case(OFFSET_TYPE))
        .unwrap_or(false);
    let offset = if with_body || length == 0 {
        let checksum = match header_str(headers, "upload-checksum") {
            Some(v) if with_body => Some(Checksum::parse(v).map_err(ApiError::from)?),
            _ => None,
        };
        match state
            .resumable
            .write(user, &upload, body_source(body), checksum)
            .await
        {
            Ok(o) => Some(o),
            Err(e) => {
                // The client sees the error (413, 460, 507…) and no Location: the upload it
                // would not know how to resume goes too.
                state.resumable.abandon(&upload).await?;
                return Err(e.into());
            }
        }
    } else {
        None
    };
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/tus/{}", upload.id)) {
        h.insert(header::LOCATION, v);
    }
    h.insert(UPLOAD_EXPIRES, http_date(upload.expires_at));
    if let Some(o) = offset {
        h.insert(UPLOAD_OFFSET, HeaderValue::from(o));
    }
    Ok(resp)
}

/// The caller's upload `id`, after the version check.
async fn load(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: &str,
) -> Result<Upload, ApiError> {
    check_version(headers)?;
    let user = principal.require_user()?;
    Ok(state.resumable.find(user, id).await?)
}

/// `HEAD /api/tus/{id}`: where to resume.
pub async fn head(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Response {
    tus_reply(
        async {
            let u = load(&state, &principal, &headers, &id).await?;
            let mut resp = StatusCode::OK.into_response();
            let h = resp.headers_mut();
            h.insert(UPLOAD_OFFSET, HeaderValue::from(u.offset));
            h.insert(UPLOAD_LENGTH, HeaderValue::from(u.length));
            if !u.metadata.is_empty() {
                if let Ok(v) = HeaderValue::from_str(&u.metadata) {
                    h.insert(UPLOAD_METADATA, v);
                }
            }
            if !u.is_complete() {
                h.insert(UPLOAD_EXPIRES, http_date(u.expires_at));
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(resp)
        }
        .await,
    )
}

/// `PATCH /api/tus/{id}`: bytes at `Upload-Offset`.
pub async fn patch(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    tus_reply(patch_inner(&state, &principal, &id, &headers, body).await)
}

async fn patch_inner(
    state: &AppState,
    principal: &Principal,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let upload = load(state, principal, headers, id).await?;
    let is_offset_type = header_str(headers, "content-type")
        .map(|t| t.eq_ignore_ascii_case(OFFSET_TYPE))
        .unwrap_or(false);
    if !is_offset_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("a PATCH body must be sent as Content-Type: {OFFSET_TYPE}"),
        ));
    }
    let offset = number(headers, "upload-offset")?
        .ok_or_else(|| ApiError::bad_request("missing_offset", "send Upload-Offset"))?;
    if offset != upload.offset {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "offset_mismatch",
            format!(
                "Upload-Offset is {offset} but the upload has {} bytes; HEAD it and resume there",
                upload.offset
            ),
        ));
    }
    let declared = number(headers, "content-length")?;
    if declared.is_some_and(|n| offset.saturating_add(n) > upload.length) {
        return Err(ResumableError::PastLength {
            length: upload.length,
        }
        .into());
    }
    let checksum = header_str(headers, "upload-checksum")
        .map(Checksum::parse)
        .transpose()
        .map_err(ApiError::from)?;
    let new_offset = if upload.is_complete() {
        // Already committed: only an empty, idempotent PATCH is meaningful.
        if declared.unwrap_or(0) > 0 {
            return Err(ResumableError::Complete.into());
        }
        upload.offset
    } else {
        let user = principal.require_user()?;
        state
            .resumable
            .write(user, &upload, body_source(body), checksum)
            .await?
    };
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(UPLOAD_OFFSET, HeaderValue::from(new_offset));
    if new_offset < upload.length {
        h.insert(
            UPLOAD_EXPIRES,
            http_date(state.resumable.expires_after_now()),
        );
    }
    Ok(resp)
}

/// `DELETE /api/tus/{id}`: termination; the partial data is deleted.
pub async fn terminate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Response {
    tus_reply(
        async {
            let u = load(&state, &principal, &headers, &id).await?;
            state.resumable.terminate(&u).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}
