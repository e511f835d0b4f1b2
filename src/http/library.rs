//! `GET /api/library?path=DIR`: a folder listing straight from storage. The indexed library
//! (search, metadata, thumbnails) replaces this in a later issue; the response shape stays.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::auth::Principal;
use super::error::ApiError;
use super::AppState;
use crate::media_types;
use crate::storage::{EntryKind, MediaPath};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    path: String,
}

#[derive(Debug, Serialize)]
pub struct Listing {
    path: String,
    entries: Vec<Entry>,
}

#[derive(Debug, Serialize)]
pub struct Entry {
    name: String,
    kind: &'static str,
    size: u64,
    mtime: String,
    content_type: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Listing>, ApiError> {
    principal.require_read(state.config.auth.anonymous_read)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let dir = MediaPath::from_decoded(&q.path)?;
    let entries = state.storage.list(&dir).await?;
    let entries = entries
        .into_iter()
        .map(|e| {
            let is_dir = e.kind == EntryKind::Dir;
            let content_type = if is_dir {
                None
            } else {
                let ext = dir.join(&e.name).ok().and_then(|p| p.extension());
                Some(media_types::content_type(ext.as_deref()))
            };
            Entry {
                kind: if is_dir { "dir" } else { "file" },
                size: e.size,
                mtime: humantime::format_rfc3339_seconds(e.modified).to_string(),
                content_type,
                name: e.name,
            }
        })
        .collect();
    Ok(Json(Listing {
        path: dir.to_string(),
        entries,
    }))
}

/// STUB until the index lands: `GET /api/library/item?path=`.
pub async fn item() -> ApiError {
    ApiError::not_found("the library index is not built yet")
}

/// STUB until the index lands: `GET /api/library/thumb?path=`.
pub async fn thumb() -> ApiError {
    ApiError::not_found("the library index is not built yet")
}
