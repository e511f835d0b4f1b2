//! Notes' Markdown as sanitised HTML (`notes::markdown`): `POST /api/notes/render` (the
//! editor's preview, for logged-in users) and `GET /api/notes/{id}/html` (a stored note,
//! with exactly the read rules of `GET /api/notes/{id}`; it does not count a view).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::{Member, Reader};
use super::error::ApiError;
use super::json::{ApiJson, ApiPath};
use super::library::SafeJson;
use super::notes::NOTE_JSON_MAX;
use super::AppState;
use crate::blocking::{run_unbounded, BlockingError};
use crate::notes::markdown;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderBody {
    body: String,
}

#[derive(Debug, Serialize)]
pub struct RenderedJson {
    html: String,
}

#[derive(Debug, Serialize)]
pub struct NoteHtmlJson {
    id: String,
    html: String,
}

/// Renders at a time: each may take a core for a while on a large note, and anonymous
/// readers may ask for public notes, so a flood waits here instead of taking every core.
static RENDER_SLOTS: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(2));

/// Rendering is linear but up to a note body's size (1 MiB by default): off the runtime.
async fn render(body: String) -> Result<String, ApiError> {
    let _slot = RENDER_SLOTS
        .acquire()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    run_unbounded("markdown", move || {
        Ok::<_, BlockingError>(markdown::render(&body))
    })
    .await
    .map_err(|e| ApiError::internal(&e))
}

/// `POST /api/notes/render {"body"}` -> `{"html"}`; a body over `notes.max_body_bytes` ->
/// 413, as for a note.
pub async fn preview(
    State(state): State<AppState>,
    _: Member,
    ApiJson(req): ApiJson<RenderBody, NOTE_JSON_MAX>,
) -> Result<SafeJson<RenderedJson>, ApiError> {
    let max = state.config.notes.max_body_bytes;
    if req.body.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("body: at most {max} bytes"),
        ));
    }
    Ok(SafeJson(RenderedJson {
        html: render(req.body).await?,
    }))
}

/// `GET /api/notes/{id}/html` -> `{"id", "html"}`; private notes of others -> 404.
pub async fn note_html(
    State(state): State<AppState>,
    reader: Reader,
    ApiPath(id): ApiPath<String>,
) -> Result<SafeJson<NoteHtmlJson>, ApiError> {
    let viewer = reader.viewer_id();
    let store = state.notes.clone();
    let note = state
        .accounts
        .db()
        .call(move |c| store.get(c, &id, viewer))
        .await
        .map_err(ApiError::from)?;
    Ok(SafeJson(NoteHtmlJson {
        html: render(note.body).await?,
        id: note.id,
    }))
}
