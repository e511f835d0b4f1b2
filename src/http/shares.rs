//! Share links over HTTP: create, list and revoke (`/api/shares`), and `GET /s/<token>`, which
//! streams exactly the file the link was made for — the path comes from the database row the
//! signed token names, never from the URL — or, for a folder, lists it (`share_dir`: the
//! files under it, nothing outside it). Links are given out as full URLs.

use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::{Extension, Json};
use serde::Deserialize;

use super::auth::{ConnMeta, Member};
use super::error::ApiError;
use super::json::{ApiJson, ApiPath};
use super::sendfile::SendVia;
use super::wire::accounts::{NewShareJson, ShareJson, SharesJson};
use super::AppState;
use crate::auth::shares::Share;
use crate::auth::AuthError;
use crate::blocking::run_unbounded;
use crate::storage::MediaPath;

/// What share links start with: `server.public_url`, else the scheme and host this request
/// came to (what the sharer typed works for the people they send it to on the same LAN).
/// Without a usable host the link stays a path.
pub(super) fn link_base(
    state: &AppState,
    meta: &ConnMeta,
    uri: &Uri,
    headers: &HeaderMap,
) -> String {
    let configured = state.config.server.public_url.trim_end_matches('/');
    if !configured.is_empty() {
        return configured.to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .filter(|h| {
            !h.is_empty()
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        });
    match host {
        Some(h) => format!("{}://{h}", if meta.tls { "https" } else { "http" }),
        None => String::new(),
    }
}

/// Points the links made for `from` (and for what is under it) at `to`: after a move, at
/// the new name; after a delete, at the trash key (a reserved name: they serve nothing, and
/// never whatever is put at the old name next); after a restore, back. Resume positions
/// follow the same way (`positions::Positions::move_under`).
pub(super) async fn repoint(state: &AppState, from: String, to: String) {
    let accounts = state.accounts.clone();
    let positions = state.positions.clone();
    let (f, t) = (from.clone(), to.clone());
    if let Err(e) = run_unbounded("share move", move || accounts.move_shares(&from, &to)).await {
        tracing::error!(error = %e, "its share links could not follow");
    }
    if let Err(e) = run_unbounded("position move", move || positions.move_under(&f, &t)).await {
        tracing::error!(error = %e, "its resume positions could not follow");
    }
}

fn with_base(mut share: Share, base: &str) -> Share {
    share.url = format!("{base}{}", share.url);
    share
}

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
    Extension(meta): Extension<ConnMeta>,
    uri: Uri,
    headers: HeaderMap,
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
            "share a file or a folder in it, not the whole media root",
        ));
    }
    // Only an existing file or folder inside the root can be shared, and the link is made
    // for its real place: it serves nothing if a link is later swapped in on the way.
    if state.storage.stat(&path).await?.is_none() {
        return Err(ApiError::not_found("no such file or folder"));
    }
    let real = state
        .storage
        .real_path(&path)
        .await?
        .ok_or_else(|| ApiError::not_found("no such file or folder"))?;
    let accounts = state.accounts.clone();
    let stored = real.to_string();
    let share = run_unbounded("share create", move || {
        accounts.create_share(&user, &stored, expires_in)
    })
    .await?;
    let share = with_base(share, &link_base(&state, &meta, &uri, &headers));
    Ok((StatusCode::CREATED, Json(NewShareJson::from(&share))))
}

pub async fn list(
    State(state): State<AppState>,
    member: Member,
    Extension(meta): Extension<ConnMeta>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<SharesJson>, ApiError> {
    let owner = member.listing_scope();
    let accounts = state.accounts.clone();
    let shares = run_unbounded("share list", move || accounts.list_shares(owner)).await?;
    let base = link_base(&state, &meta, &uri, &headers);
    Ok(Json(SharesJson {
        shares: shares
            .into_iter()
            .map(|s| ShareJson::from(&with_base(s, &base)))
            .collect(),
    }))
}

pub async fn revoke(
    State(state): State<AppState>,
    Member(user): Member,
    ApiPath(id): ApiPath<String>,
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
    ApiPath(token): ApiPath<String>,
    method: Method,
    headers: HeaderMap,
    SendVia(zc): SendVia,
) -> Result<Response, ApiError> {
    let shared = shared_path(&state, token.clone()).await?;
    let req = super::share_dir::ShareRequest {
        token: &token,
        shared: &shared,
        rel: &MediaPath::root(),
        method: &method,
        headers: &headers,
        zc,
    };
    super::share_dir::serve(&state, &req).await
}

/// `GET|HEAD /s/<token>/<path>`: something under a shared folder. The URL is read raw (a
/// name that is not UTF-8 is "nothing here" like any other bad path, not a framework error).
pub async fn fetch_under(
    State(state): State<AppState>,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    SendVia(zc): SendVia,
) -> Result<Response, ApiError> {
    let nothing = || ApiError::not_found("no such file");
    let (token, raw) = uri
        .path()
        .strip_prefix("/s/")
        .and_then(|p| p.split_once('/'))
        .ok_or_else(nothing)?;
    let token = percent_encoding::percent_decode_str(token)
        .decode_utf8()
        .map_err(|_| nothing())?
        .into_owned();
    let shared = shared_path(&state, token.clone()).await?;
    // A bad path under a link is "nothing here", like a tampered token: no hints.
    let rel = if raw.is_empty() {
        // `/s/<token>/`: the shared folder itself; a file has nothing "under" it.
        match state.storage.stat(&shared).await? {
            Some(e) if e.kind == crate::storage::EntryKind::Dir => MediaPath::root(),
            _ => return Err(nothing()),
        }
    } else {
        MediaPath::from_url(raw).map_err(|_| nothing())?
    };
    let req = super::share_dir::ShareRequest {
        token: &token,
        shared: &shared,
        rel: &rel,
        method: &method,
        headers: &headers,
        zc,
    };
    super::share_dir::serve(&state, &req).await
}

async fn shared_path(state: &AppState, token: String) -> Result<MediaPath, ApiError> {
    let accounts = state.accounts.clone();
    let resolved = run_unbounded("share lookup", move || accounts.resolve_share(&token)).await?;
    let stored = resolved?;
    MediaPath::from_decoded(&stored).map_err(|_| ApiError::not_found("no such file"))
}
