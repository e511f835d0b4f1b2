//! What a share link serves: the shared file, or for a shared folder a read-only listing and
//! the files under it — never anything outside it, whatever a link inside it points at (the
//! real place of what is asked for must be under the real place of the shared folder).

use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Serialize;

use super::error::ApiError;
use super::library::SafeJson;
use super::AppState;
use crate::storage::{Entry, EntryKind, MediaPath, ZeroCopy};

#[derive(Serialize)]
struct SharedListing {
    /// The shared folder's name.
    name: String,
    /// Where in it this listing is ("" for the shared folder itself).
    path: String,
    entries: Vec<SharedEntry>,
}

#[derive(Serialize)]
struct SharedEntry {
    name: String,
    kind: &'static str,
    size: u64,
    mtime: String,
    /// This entry through the same link.
    url: String,
}

fn not_found() -> ApiError {
    ApiError::not_found("no such file in this shared folder")
}

/// One request through a share link: `rel` under the shared path `shared` (`rel` root: the
/// share itself).
pub struct ShareRequest<'a> {
    pub token: &'a str,
    pub shared: &'a MediaPath,
    pub rel: &'a MediaPath,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// Where the file's cached bytes may go without a copy (`http::sendfile`).
    pub zc: Option<Arc<dyn ZeroCopy>>,
}

pub async fn serve(state: &AppState, req: &ShareRequest<'_>) -> Result<Response, ApiError> {
    match serve_inside(state, req).await {
        // Whatever the reason (a link leading out, a swapped folder), outside is "nothing".
        Err(e) if e.status == axum::http::StatusCode::FORBIDDEN => Err(not_found()),
        r => r,
    }
}

/// Whether `path` really is inside `base` (links followed by storage's rules).
async fn inside(state: &AppState, base: &MediaPath, path: &MediaPath) -> Result<bool, ApiError> {
    Ok(match state.storage.real_path(path).await? {
        Some(real) => real.segments().starts_with(base.segments()),
        None => false,
    })
}

async fn serve_inside(state: &AppState, req: &ShareRequest<'_>) -> Result<Response, ApiError> {
    let &ShareRequest {
        token,
        shared,
        rel,
        method,
        headers,
        ref zc,
    } = req;
    let mut target = shared.clone();
    for seg in rel.segments() {
        target = target.join(seg).map_err(|_| not_found())?;
    }
    // Links are stored for the real place: one swapped in on the way since serves nothing.
    if state.storage.real_path(shared).await?.as_ref() != Some(shared)
        || !inside(state, shared, &target).await?
    {
        return Err(not_found());
    }
    match state.storage.stat(&target).await? {
        None => Err(not_found()),
        Some(e) if e.kind == EntryKind::Dir => {
            // A person opening the link gets the web UI, which renders this same listing
            // (asked for again as JSON); scripts get the JSON.
            if super::ui::wants_page(headers) {
                let mut page = super::ui::page(headers);
                page.headers_mut().insert(
                    axum::http::header::VARY,
                    axum::http::HeaderValue::from_static("accept, accept-encoding"),
                );
                return Ok(page);
            }
            let listing = state.storage.list(&target).await?;
            let mut entries = Vec::with_capacity(listing.entries.len());
            for e in &listing.entries {
                // A link inside that leads out of the shared folder is not part of it.
                if e.via_link {
                    let Ok(p) = target.join(&e.name) else {
                        continue;
                    };
                    if !inside(state, shared, &p).await? {
                        continue;
                    }
                }
                entries.push(shared_entry(token, rel, e));
            }
            let mut resp = SafeJson(SharedListing {
                name: shared.name().unwrap_or_default().to_string(),
                path: rel.to_string(),
                entries,
            })
            .into_response();
            resp.headers_mut().insert(
                axum::http::header::VARY,
                axum::http::HeaderValue::from_static("accept"),
            );
            Ok(resp)
        }
        Some(_) => super::media::serve_file(state, &target, method, headers, zc.clone()).await,
    }
}

fn shared_entry(token: &str, rel: &MediaPath, e: &Entry) -> SharedEntry {
    let mut url = format!("/s/{token}");
    for seg in rel.segments().iter().chain(std::iter::once(&e.name)) {
        url.push('/');
        url.extend(utf8_percent_encode(seg, NON_ALPHANUMERIC));
    }
    SharedEntry {
        name: e.name.clone(),
        kind: match e.kind {
            EntryKind::Dir => "dir",
            EntryKind::File => "file",
        },
        size: e.size,
        mtime: humantime::format_rfc3339_seconds(e.modified).to_string(),
        url,
    }
}
