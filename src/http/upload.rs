//! Writes over HTTP: `PUT /media/<path>` (raw body), `POST /api/upload?dir=` (multipart, one
//! or more files), `DELETE /media/<path>`, `POST /api/library/folder` and
//! `POST /api/library/move`. Bodies stream straight to `Storage::put`; nothing is buffered.
//!
//! Until the library index records who uploaded what (issue #5's index), overwriting, moving
//! and deleting are admin-only; members may add new files and folders.

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

fn declared_too_large(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
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

fn may_overwrite(principal: &Principal, overwrite: bool) -> Result<(), ApiError> {
    let user = principal.require_user()?;
    if overwrite && !user.is_admin() {
        return Err(super::auth::forbidden(
            "only an admin may replace an existing file",
        ));
    }
    Ok(())
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
    may_overwrite(&principal, q.overwrite)?;
    let raw = uri.path().strip_prefix("/media/").unwrap_or("");
    let path = MediaPath::from_url(raw)?.for_create()?;
    let limit = state.config.uploads.max_bytes;
    declared_too_large(&headers, limit)?;
    let source: ByteSource = Box::pin(
        body.into_data_stream()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::ConnectionAborted, e)),
    );
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
                },
            )
            .await,
    )?;
    tracing::info!(path = %path.to_string().escape_debug(), size = meta.size, "uploaded");
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
    dir: &MediaPath,
    field: Field<'_>,
    overwrite: bool,
) -> Result<Option<serde_json::Value>, ApiError> {
    let Some(name) = field.file_name().map(str::to_string) else {
        return Ok(None); // a plain form field, not a file
    };
    // A file name is one name: "a/b.mp4" or "..\\x" is refused, never interpreted.
    let path = dir.join(&name)?.for_create()?;
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
        },
    );
    let ((), result) = tokio::join!(pump, put);
    let meta = counted(state, result)?;
    tracing::info!(path = %path.to_string().escape_debug(), size = meta.size, "uploaded (multipart)");
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
    may_overwrite(&principal, q.overwrite)?;
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
        if let Some(v) = store_field(&state, &dir, field, q.overwrite).await? {
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
    principal.require_admin()?;
    let raw = uri.path().strip_prefix("/media/").unwrap_or("");
    let path = MediaPath::from_url(raw)?;
    if path.is_root() {
        return Err(super::auth::forbidden("the media root cannot be deleted"));
    }
    state.storage.delete(&path).await?;
    tracing::info!(path = %path.to_string().escape_debug(), "deleted");
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
    principal.require_admin()?;
    let from = MediaPath::from_decoded(&body.from)?;
    let to = MediaPath::from_decoded(&body.to)?.for_create()?;
    if from.is_root() {
        return Err(super::auth::forbidden("the media root cannot be moved"));
    }
    state.storage.rename(&from, &to, body.overwrite).await?;
    Ok(Json(
        json!({ "from": from.to_string(), "to": to.to_string() }),
    ))
}
