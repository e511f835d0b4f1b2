//! Share links over HTTP: create, list and revoke (`/api/shares`), and `GET /s/<token>`, which
//! streams exactly the file the link was made for — the path comes from the database row the
//! signed token names, never from the URL.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

use super::auth::Member;
use super::error::ApiError;
use super::json::ApiJson;
use super::wire::accounts::{NewShareJson, ShareJson, SharesJson};
use super::AppState;
use crate::auth::AuthError;
use crate::blocking::run_unbounded;
use crate::storage::MediaPath;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    path: String,
    expires_in: Option<i64>,
}

const DEFAULT_EXPIRY: i64 = 7 * 86_400;
const MAX_EXPIRY: i64 = 365 * 86_400;

pub async fn create(
    State(state): State<AppState>,
    Member(user): Member,
    ApiJson(body): ApiJson<ShareBody>,
) -> Result<(StatusCode, Json<NewShareJson>), ApiError> {
    let expires_in = body.expires_in.unwrap_or(DEFAULT_EXPIRY);
    if !(1..=MAX_EXPIRY).contains(&expires_in) {
        return Err(AuthError::Invalid {
            field: "expires_in",
            reason: format!("seconds, between 1 and {MAX_EXPIRY}"),
        }
        .into());
    }
    let path = MediaPath::from_api(&body.path)?;
    if path.is_root() {
        return Err(ApiError::bad_request(
            "bad_path",
            "share a file, not the media root",
        ));
    }
    // Only an existing regular file inside the root can be shared.
    state.storage.open(&path).await?;
    let accounts = state.accounts.clone();
    let stored = path.to_string();
    let share = run_unbounded("share create", move || {
        accounts.create_share(&user, &stored, expires_in)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(NewShareJson::from(&share))))
}

pub async fn list(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<SharesJson>, ApiError> {
    let owner = member.listing_scope();
    let accounts = state.accounts.clone();
    let shares = run_unbounded("share list", move || accounts.list_shares(owner)).await?;
    Ok(Json(SharesJson {
        shares: shares.iter().map(ShareJson::from).collect(),
    }))
}

pub async fn revoke(
    State(state): State<AppState>,
    Member(user): Member,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found("no such share"))?;
    let accounts = state.accounts.clone();
    run_unbounded("share revoke", move || accounts.revoke_share(id, &user)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET|HEAD /s/<token>`: open to anyone holding the link, whatever `anonymous_read` says.
pub async fn fetch(
    State(state): State<AppState>,
    Path(token): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let accounts = state.accounts.clone();
    let resolved = run_unbounded("share lookup", move || accounts.resolve_share(&token)).await?;
    let stored = resolved?;
    let path = MediaPath::from_decoded(&stored).map_err(|_| ApiError::not_found("no such file"))?;
    super::media::serve_file(&state, &path, &method, &headers).await
}
