//! Resume positions over HTTP (`PUT /api/positions`, `GET /api/positions[?path=]`): thin
//! translations over `positions::Positions`, always for the calling user (401 for anonymous).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::Member;
use super::error::ApiError;
use super::json::ApiJson;
use super::library::SafeJson;
use super::wire::time::from_millis;
use super::AppState;
use crate::blocking::run_unbounded;
use crate::positions::Position;
use crate::storage::MediaPath;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveBody {
    path: String,
    position: f64,
    #[serde(default)]
    duration: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionQuery {
    path: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PositionJson {
    path: String,
    position: f64,
    duration: Option<f64>,
    updated_at: String,
}

impl From<Position> for PositionJson {
    fn from(p: Position) -> Self {
        PositionJson {
            updated_at: from_millis(p.updated_at),
            path: p.path,
            position: p.position,
            duration: p.duration,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PositionsJson {
    items: Vec<PositionJson>,
}

/// A media file's path as the API takes it; the root is a folder, not something played.
fn media_file(raw: &str) -> Result<MediaPath, ApiError> {
    let path = MediaPath::from_api(raw)?;
    if path.is_root() {
        return Err(ApiError::bad_request(
            "bad_path",
            "path: name a file, not the media root",
        ));
    }
    Ok(path)
}

/// `PUT /api/positions` -> 204. A position near the end (see `positions::is_finished`)
/// removes the entry: the file was watched.
pub async fn save(
    State(state): State<AppState>,
    Member(user): Member,
    ApiJson(body): ApiJson<SaveBody>,
) -> Result<StatusCode, ApiError> {
    let path = media_file(&body.path)?.to_string();
    let store = state.positions.clone();
    run_unbounded("position save", move || {
        store.save(user.id, &path, body.position, body.duration)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/positions?path=P` -> one position (nulls when none), or without `path` the
/// newest 20 ("continue watching").
pub async fn get(
    State(state): State<AppState>,
    Member(user): Member,
    query: Result<Query<PositionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(super::error::bad_query)?;
    let store = state.positions.clone();
    match q.path {
        Some(raw) => {
            let path = media_file(&raw)?.to_string();
            let key = path.clone();
            let found = run_unbounded("position get", move || store.get(user.id, &key)).await?;
            // A file never played (or finished) starts at the beginning: nulls, not a 404,
            // so a player's first look is not an error.
            Ok(match found {
                Some(p) => SafeJson(PositionJson::from(p)).into_response(),
                None => SafeJson(serde_json::json!({
                    "path": path,
                    "position": null,
                    "duration": null,
                    "updated_at": null,
                }))
                .into_response(),
            })
        }
        None => {
            let items = run_unbounded("positions", move || store.recent(user.id)).await?;
            Ok(SafeJson(PositionsJson {
                items: items.into_iter().map(PositionJson::from).collect(),
            })
            .into_response())
        }
    }
}
