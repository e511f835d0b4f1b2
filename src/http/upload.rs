//! Writes over HTTP: `PUT /media/<path>` (raw body), `POST /api/upload?dir=` (multipart, one
//! or more files), `DELETE /media/<path>`, `POST /api/library/folder` and
//! `POST /api/library/move`. Bodies stream straight to `Storage::put`; nothing is buffered.
//!
//! Who may change what: members add files and folders; a member may replace, move or delete
//! what they uploaded (the library index records the uploader); admins may change anything.
//! Every change is recorded in the library index as it happens.

use axum::body::Body;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::json;

use super::auth::Principal;
use super::error::ApiError;
use super::json::ApiJson;
use super::AppState;
use crate::storage::{ByteSource, MediaPath, ObjectMeta, PutOptions};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PutQuery {
    #[serde(default)]
    overwrite: bool,
}

/// A request body as storage takes it; a broken connection is an `io::Error`.
pub(super) fn body_source(body: Body) -> ByteSource {
    Box::pin(
        body.into_data_stream()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::ConnectionAborted, e)),
    )
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn declared_too_large(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    match declared_length(headers) {
        Some(n) if n > limit => Err(crate::storage::StorageError::TooLarge { limit }.into()),
        _ => Ok(()),
    }
}

/// Counts a finished upload by the code its client sees.
fn counted(
    state: &AppState,
    result: Result<ObjectMeta, crate::storage::StorageError>,
) -> Result<ObjectMeta, ApiError> {
    match result {
        Ok(meta) => {
            state.metrics.observe_upload("ok", meta.size);
            Ok(meta)
        }
        Err(e) => {
            let err = ApiError::from(e);
            state.metrics.observe_upload(err.code, 0);
            Err(err)
        }
    }
}

fn file_json(path: &MediaPath, meta: &ObjectMeta) -> serde_json::Value {
    json!({ "path": path.to_string(), "size": meta.size, "etag": meta.etag })
}

/// A member may change (replace, move, delete) only what they uploaded — for a folder, also
/// everything in it; an admin anything.
/// A path that does not exist is left to storage to report (404).
pub(super) async fn may_change(
    state: &AppState,
    principal: &Principal,
    path: &MediaPath,
    what: &str,
) -> Result<(), ApiError> {
    let user = principal.require_user()?;
    if user.is_admin() {
        return Ok(());
    }
    let owns = state
        .library
        .owns_subtree(path, user.id)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if owns {
        return Ok(());
    }
    Err(super::auth::forbidden(&format!(
        "only the member who uploaded it, or an admin, may {what} '{path}'"
    )))
}

/// Replacing an existing file is changing it; writing a new name is open to every member.
pub(super) async fn may_write(
    state: &AppState,
    principal: &Principal,
    path: &MediaPath,
    overwrite: bool,
) -> Result<(), ApiError> {
    principal.require_user()?;
    if overwrite && state.storage.exists(path).await? {
        may_change(state, principal, path, "replace").await?;
    }
    Ok(())
}

fn owner_id(principal: &Principal) -> Option<i64> {
    principal.user().map(|u| u.id)
}

pub async fn put_media(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    uri: Uri,
    query: Result<Query<PutQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    principal.require_user()?;
    let raw = uri.path().strip_prefix("/media/").unwrap_or("");
    let path = MediaPath::from_url(raw)?.for_create()?;
    may_write(&state, &principal, &path, q.overwrite).await?;
    let limit = state.config.uploads.max_bytes;
    declared_too_large(&headers, limit)?;
    let source = body_source(body);
    let meta = counted(
        &state,
        state
            .storage
            .put(
                &path,
                source,
                PutOptions {
                    overwrite: q.overwrite,
                    max_bytes: limit,
                    expected: declared_length(&headers),
                },
            )
            .await,
    )?;
    tracing::info!(path = %path.to_string().escape_debug(), size = meta.size, "uploaded");
    state
        .library
        .record_write(&path, &meta, owner_id(&principal))
        .await;
    let location = format!(
        "/media/{}",
        path.segments()
            .iter()
            .map(
                |s| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            )
            .collect::<Vec<_>>()
            .join("/")
    );
    let mut resp = (StatusCode::CREATED, Json(file_json(&path, &meta))).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    #[serde(default)]
    dir: String,
    #[serde(default)]
    overwrite: bool,
}

/// One multipart file field, streamed to storage.
async fn store_field(
    state: &AppState,
    principal: &Principal,
    dir: &MediaPath,
    field: Field<'_>,
    overwrite: bool,
) -> Result<Option<serde_json::Value>, ApiError> {
    let Some(name) = field.file_name().map(str::to_string) else {
        return Ok(None); // a plain form field, not a file
    };
    // A file name is one name: "a/b.mp4" or "..\\x" is refused, never interpreted.
    let path = dir.join(&name)?.for_create()?;
    may_write(state, principal, &path, overwrite).await?;
    let limit = state.config.uploads.max_bytes;
    // Field borrows the Multipart; give storage an owned stream over its chunks.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    let pump = async move {
        let mut field = field;
        loop {
            match field.chunk().await {
                Ok(Some(c)) => {
                    if tx.send(Ok(c)).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx
                        .send(Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            e.to_string(),
                        )))
                        .await;
                    break;
                }
            }
        }
    };
    let source: ByteSource = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let put = state.storage.put(
        &path,
        source,
        PutOptions {
            overwrite,
            max_bytes: limit,
            expected: None,
        },
    );
    let ((), result) = tokio::join!(pump, put);
    let meta = counted(state, result)?;
    tracing::info!(path = %path.to_string().escape_debug(), size = meta.size, "uploaded (multipart)");
    state
        .library
        .record_write(&path, &meta, owner_id(principal))
        .await;
    Ok(Some(file_json(&path, &meta)))
}

pub async fn upload_multipart(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    principal.require_user()?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send multipart/form-data: {}", e.body_text()),
        )
    })?;
    declared_too_large(&headers, state.config.uploads.max_bytes.saturating_mul(16))?;
    let dir = MediaPath::from_decoded(&q.dir)?;
    let mut stored = Vec::new();
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request("bad_multipart", e.body_text()))?;
        let Some(field) = field else { break };
        if let Some(v) = store_field(&state, &principal, &dir, field, q.overwrite).await? {
            stored.push(v);
        }
    }
    if stored.is_empty() {
        return Err(ApiError::bad_request(
            "no_files",
            "the form carried no file",
        ));
    }
    Ok((StatusCode::CREATED, Json(json!({ "files": stored }))))
}

pub async fn delete_media(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    principal.require_user()?;
    let raw = uri.path().strip_prefix("/media/").unwrap_or("");
    let path = MediaPath::from_url(raw)?;
    if path.is_root() {
        return Err(super::auth::forbidden("the media root cannot be deleted"));
    }
    may_change(&state, &principal, &path, "delete").await?;
    state.storage.delete(&path).await?;
    tracing::info!(path = %path.to_string().escape_debug(), "deleted");
    state.library.record_delete(&path).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderBody {
    path: String,
}

pub async fn create_folder(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<FolderBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    principal.require_user()?;
    let path = MediaPath::from_decoded(&body.path)?.for_create()?;
    state.storage.create_dir(&path).await?;
    state
        .library
        .record_folder(&path, owner_id(&principal))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "path": path.to_string() })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    from: String,
    to: String,
    #[serde(default)]
    overwrite: bool,
}

pub async fn move_entry(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<MoveBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    principal.require_user()?;
    let from = MediaPath::from_decoded(&body.from)?;
    let to = MediaPath::from_decoded(&body.to)?.for_create()?;
    if from.is_root() {
        return Err(super::auth::forbidden("the media root cannot be moved"));
    }
    may_change(&state, &principal, &from, "move").await?;
    if body.overwrite && state.storage.exists(&to).await? {
        may_change(&state, &principal, &to, "replace").await?;
    }
    state.storage.rename(&from, &to, body.overwrite).await?;
    state.library.record_move(&from, &to).await;
    Ok(Json(
        json!({ "from": from.to_string(), "to": to.to_string() }),
    ))
}
