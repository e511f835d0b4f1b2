//! Writes over HTTP: `PUT /media/<path>` (raw body), `POST /api/upload?dir=` (multipart, one
//! or more files), `DELETE /media/<path>`, `POST /api/library/folder` and
//! `POST /api/library/move`. Thin: each turns the request into a call on `app::Files`
//! (which holds the rules and the orchestration) and its result into JSON.

use axum::body::Body;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::auth::Member;
use super::error::ApiError;
use super::json::ApiJson;
use super::AppState;
use crate::app::PutRequest;
use crate::storage::{ByteSource, MediaPath, ObjectMeta, StorageError};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PutQuery {
    #[serde(default)]
    overwrite: bool,
}

/// A stored file as the API shows it.
#[derive(Serialize)]
struct FileJson {
    path: String,
    size: u64,
    etag: String,
}

impl FileJson {
    fn new(path: &MediaPath, meta: &ObjectMeta) -> Self {
        FileJson {
            path: path.to_string(),
            size: meta.size,
            etag: meta.etag.clone(),
        }
    }
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

/// `/media/<path>` as a URL path: each name percent-encoded.
fn media_url(path: &MediaPath) -> String {
    let segs: Vec<String> = path
        .segments()
        .iter()
        .map(|s| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
        .collect();
    format!("/media/{}", segs.join("/"))
}

pub async fn put_media(
    State(state): State<AppState>,
    Member(user): Member,
    uri: Uri,
    query: Result<Query<PutQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(super::error::bad_query)?;
    let raw = uri.path().strip_prefix("/media/").unwrap_or("");
    let path = MediaPath::from_url(raw)?.for_create()?;
    let req = PutRequest {
        path: path.clone(),
        overwrite: q.overwrite,
        expected: declared_length(&headers),
    };
    let meta = state.files.put(&user, req, body_source(body)).await?;
    let mut resp = (StatusCode::CREATED, Json(FileJson::new(&path, &meta))).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&media_url(&path)) {
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

/// A multipart field as a body storage can take (the field borrows the form, so its chunks
/// are handed over through a small channel while both run).
async fn store_field(
    state: &AppState,
    user: &crate::auth::User,
    dir: &MediaPath,
    field: Field<'_>,
    overwrite: bool,
) -> Result<Option<FileJson>, ApiError> {
    let Some(name) = field.file_name().map(str::to_string) else {
        // A file whose name could not be read (`filename*=`, or not UTF-8) is an error, not
        // a plain form field to skip.
        let disposition = field
            .headers()
            .get(axum::http::header::CONTENT_DISPOSITION)
            .map(|v| v.as_bytes().to_ascii_lowercase());
        if disposition.is_some_and(|d| d.windows(8).any(|w| w == b"filename")) {
            return Err(ApiError::bad_request(
                "bad_path",
                "a file's name must be sent as filename=\"...\" in UTF-8 (filename*= is not taken)",
            ));
        }
        return Ok(None); // a plain form field, not a file
    };
    // A file name is one name: "a/b.mp4" or "..\\x" is refused, never interpreted.
    let path = dir.join(&name)?.for_create()?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    let feed = async move {
        let mut field = field;
        loop {
            let item = match field.chunk().await {
                Ok(Some(c)) => Ok(c),
                Ok(None) => break,
                Err(e) => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    e.to_string(),
                )),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    };
    let source: ByteSource = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let req = PutRequest {
        path: path.clone(),
        overwrite,
        expected: None,
    };
    let ((), stored) = tokio::join!(feed, state.files.put(user, req, source));
    Ok(Some(FileJson::new(&path, &stored?)))
}

#[derive(Serialize)]
struct UploadedJson<F: Serialize = Vec<FileJson>> {
    files: F,
}

/// Each file of a form commits on its own: when a later one fails, the answer says which
/// earlier ones were stored (`files`, as in a 201).
fn with_stored(mut e: ApiError, stored: &[FileJson]) -> ApiError {
    if stored.is_empty() {
        return e;
    }
    let names: Vec<&str> = stored.iter().map(|f| f.path.as_str()).collect();
    e.message = format!(
        "{} (this file only: the form's earlier files were stored: {})",
        e.message,
        names.join(", ")
    );
    e.extra = serde_json::to_value(UploadedJson { files: stored })
        .ok()
        .or(e.extra);
    e
}

pub async fn upload_multipart(
    State(state): State<AppState>,
    Member(user): Member,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(super::error::bad_query)?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send multipart/form-data: {}", e.body_text()),
        )
    })?;
    let limit = state.files.max_bytes().saturating_mul(16);
    if declared_length(&headers).is_some_and(|n| n > limit) {
        return Err(StorageError::TooLarge { limit }.into());
    }
    // Each file's whole path (this folder included) is checked as a new name.
    let dir = MediaPath::from_api(&q.dir)?;
    let mut stored = Vec::new();
    loop {
        let next = match multipart.next_field().await {
            Ok(Some(field)) => store_field(&state, &user, &dir, field, q.overwrite).await,
            Ok(None) => break,
            Err(e) => Err(ApiError::bad_request("bad_multipart", e.body_text())),
        };
        match next {
            Ok(Some(v)) => stored.push(v),
            Ok(None) => {}
            Err(e) => return Err(with_stored(e, &stored)),
        }
    }
    if stored.is_empty() {
        return Err(ApiError::bad_request(
            "no_files",
            "the form carried no file",
        ));
    }
    Ok((StatusCode::CREATED, Json(UploadedJson { files: stored })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderBody {
    path: String,
}

#[derive(Serialize)]
pub struct PathJson {
    path: String,
}

pub async fn create_folder(
    State(state): State<AppState>,
    Member(user): Member,
    ApiJson(body): ApiJson<FolderBody>,
) -> Result<(StatusCode, Json<PathJson>), ApiError> {
    let path = MediaPath::from_api(&body.path)?.for_create()?;
    state.files.create_folder(&user, &path).await?;
    Ok((
        StatusCode::CREATED,
        Json(PathJson {
            path: path.to_string(),
        }),
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

#[derive(Serialize)]
pub struct MovedJson {
    from: String,
    to: String,
}

pub async fn move_entry(
    State(state): State<AppState>,
    Member(user): Member,
    ApiJson(body): ApiJson<MoveBody>,
) -> Result<Json<MovedJson>, ApiError> {
    let from = MediaPath::from_api(&body.from)?;
    let to = MediaPath::from_api(&body.to)?;
    // `mv a films/`: a trailing slash says "into this folder", which must then exist.
    if body.to.ends_with('/') && !to.is_root() && !state.files.is_folder(&to).await? {
        return Err(ApiError::not_found(format!(
            "there is no folder '{to}' to move into (create it first: POST /api/library/folder)"
        )));
    }
    let to = state
        .files
        .move_entry(&user, &from, &to, body.overwrite)
        .await?;
    // Share links follow what they were made for.
    super::shares::repoint(&state, from.to_string(), to.to_string()).await;
    Ok(Json(MovedJson {
        from: from.to_string(),
        to: to.to_string(),
    }))
}
