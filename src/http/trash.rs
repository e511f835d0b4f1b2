//! `DELETE /media/<path>` (to the trash, or for good) and the trash: `GET /api/trash`,
//! `POST /api/trash/{id}/restore`, `DELETE /api/trash/{id}`, `DELETE /api/trash` — thin
//! translations over `app::Files`' delete and trash use cases.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Member;
use super::error::ApiError;
use super::json::{ApiPath, OptionalJson};
use super::wire::time::from_secs;
use super::AppState;
use crate::app::trash::trash_share_path;
use crate::app::{DeleteOptions, Deleted};
use crate::blocking::run_unbounded;
use crate::storage::MediaPath;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    permanent: bool,
}

/// 204; a delete to the trash names its entry in `X-Trash-Id` (for an "undo").
pub async fn delete_media(
    State(state): State<AppState>,
    Member(user): Member,
    uri: Uri,
    query: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(super::error::bad_query)?;
    let raw = uri.path().strip_prefix("/media/").unwrap_or("");
    let path = MediaPath::from_url(raw)?;
    let opts = DeleteOptions {
        recursive: q.recursive,
        permanent: q.permanent,
    };
    let mut res = StatusCode::NO_CONTENT.into_response();
    let gone_to = match state.files.delete(&user, &path, opts).await? {
        Deleted::Trashed { id, key } => {
            res.headers_mut()
                .insert("x-trash-id", HeaderValue::from(id));
            key
        }
        Deleted::Gone { key } => {
            // Gone for good: nobody resumes it.
            let (positions, p) = (state.positions.clone(), path.to_string());
            if let Err(e) =
                run_unbounded("position forget", move || positions.forget_under(&p)).await
            {
                tracing::error!(error = %e, "its resume positions could not be dropped");
            }
            key.unwrap_or_else(|| "gone".into())
        }
    };
    super::shares::repoint(&state, path.to_string(), trash_share_path(&gone_to)).await;
    Ok(res)
}

/// A trash entry id from the URL; anything else names no entry.
fn entry_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found("no such entry in the trash"))
}

#[derive(Serialize)]
pub struct TrashItemJson {
    id: i64,
    path: String,
    kind: String,
    size: i64,
    owner: Option<String>,
    deleted_by: Option<String>,
    deleted_at: String,
    /// When the sweep removes it for good.
    expires_at: String,
}

#[derive(Serialize)]
pub struct TrashJson {
    items: Vec<TrashItemJson>,
    total_bytes: i64,
    trash_days: u64,
}

/// `GET /api/trash`: an admin sees everything, a member what was theirs.
pub async fn list(
    State(state): State<AppState>,
    Member(user): Member,
) -> Result<Json<TrashJson>, ApiError> {
    let days = state.config.storage.trash_days;
    let keep = i64::try_from(days.saturating_mul(86_400)).unwrap_or(i64::MAX);
    let entries = state.files.trash_list(&user).await?;
    Ok(Json(TrashJson {
        total_bytes: entries.iter().map(|e| e.size).sum(),
        trash_days: days,
        items: entries
            .into_iter()
            .map(|e| TrashItemJson {
                id: e.id,
                expires_at: from_secs(e.deleted_at.saturating_add(keep)),
                deleted_at: from_secs(e.deleted_at),
                path: e.path,
                kind: e.kind,
                size: e.size,
                owner: e.owner,
                deleted_by: e.deleted_by,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    to: Option<String>,
}

#[derive(Serialize)]
pub struct RestoredJson {
    path: String,
}

/// `POST /api/trash/{id}/restore` with no body (back where it was) or `{"to": PATH}`.
pub async fn restore(
    State(state): State<AppState>,
    Member(user): Member,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<RestoreBody>,
) -> Result<Json<RestoredJson>, ApiError> {
    let to = body
        .and_then(|b| b.to)
        .map(|t| MediaPath::from_api(&t))
        .transpose()?;
    let (path, key) = state.files.restore(&user, entry_id(&id)?, to).await?;
    super::shares::repoint(&state, trash_share_path(&key), path.to_string()).await;
    Ok(Json(RestoredJson {
        path: path.to_string(),
    }))
}

/// `DELETE /api/trash/{id}`: gone for good.
pub async fn purge(
    State(state): State<AppState>,
    Member(user): Member,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.files.purge(&user, entry_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct EmptiedJson {
    purged: usize,
}

/// `DELETE /api/trash`: empties what the caller may see of it.
pub async fn empty(
    State(state): State<AppState>,
    Member(user): Member,
) -> Result<Json<EmptiedJson>, ApiError> {
    let purged = state.files.empty_trash(&user).await?;
    Ok(Json(EmptiedJson { purged }))
}
