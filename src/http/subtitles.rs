//! Subtitles for the player: `GET /api/library/subtitles?path=<video>` lists the `.srt` and
//! `.vtt` files beside a video that belong to it (read from the folder through `Storage`,
//! not the index, so a file copied in a moment ago shows), and `GET
//! /api/library/vtt?path=<file>` serves one as WebVTT (`subtitles::to_webvtt`). Read
//! permission as for `/media/`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use percent_encoding::utf8_percent_encode;
use serde::Serialize;

use super::auth::Reader;
use super::error::ApiError;
use super::library::{item_path, PathQuery, SafeJson, QUERY_VALUE};
use super::AppState;
use crate::storage::{EntryKind, StorageError};
use crate::subtitles::{self, Format, SubtitleError};

#[derive(Debug, Serialize)]
pub struct TrackJson {
    path: String,
    label: String,
    lang: Option<String>,
    format: &'static str,
    url: String,
}

#[derive(Debug, Serialize)]
pub struct TracksJson {
    tracks: Vec<TrackJson>,
}

/// The subtitle tracks of a video, sorted by label. 404 when the video is not there.
pub async fn tracks(
    State(state): State<AppState>,
    _: Reader,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<SafeJson<TracksJson>, ApiError> {
    let video = item_path(query)?;
    let (dir, name) = video
        .split_last()
        .ok_or_else(|| ApiError::not_found("the media root is no video"))?;
    let listing = state.storage.list(&dir).await.map_err(|e| match e {
        StorageError::NotADirectory => StorageError::NotFound,
        e => e,
    })?;
    let is_file = |n: &str| {
        listing
            .entries
            .iter()
            .any(|e| e.name == n && e.kind == EntryKind::File)
    };
    if !is_file(name) {
        return Err(ApiError::not_found("no such file"));
    }
    let mut tracks = Vec::new();
    for entry in listing.entries.iter().filter(|e| e.kind == EntryKind::File) {
        let Some(t) = subtitles::sidecar(name, &entry.name) else {
            continue;
        };
        let path = dir.join(&t.name)?.to_string();
        tracks.push(TrackJson {
            url: format!(
                "/api/library/vtt?path={}",
                utf8_percent_encode(&path, QUERY_VALUE)
            ),
            path,
            label: t.label,
            lang: t.lang,
            format: t.format.as_str(),
        });
    }
    tracks.sort_by(|a, b| a.label.cmp(&b.label).then_with(|| a.path.cmp(&b.path)));
    Ok(SafeJson(TracksJson { tracks }))
}

fn bad_subtitles(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_subtitles", msg)
}

/// One `.srt` (converted) or `.vtt` (checked) file as `text/vtt; charset=utf-8`; over
/// `subtitles::MAX_BYTES` -> 413.
static SUBTITLE_SLOTS: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(2));

pub async fn vtt(
    State(state): State<AppState>,
    _: Reader,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let path = item_path(query)?;
    let format = path
        .name()
        .and_then(Format::of)
        .ok_or_else(|| bad_subtitles("not a .srt or .vtt file"))?;
    // Each conversion holds the file a few times over in memory: two at a time.
    let _slot = SUBTITLE_SLOTS
        .acquire()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let object = state.storage.open(&path).await?;
    let size = object.meta().size;
    if size > subtitles::MAX_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "subtitle files over {} bytes are not served",
                subtitles::MAX_BYTES
            ),
        ));
    }
    let read = object.read_range(0..size).try_fold(
        Vec::with_capacity(size as usize),
        |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        },
    );
    let timeout = state.config.storage_timeout();
    let bytes =
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| StorageError::Stalled {
                op: "subtitle read",
                secs: timeout.as_secs(),
            })??;
    // Linear, but up to 2 MiB of text: off the runtime's workers.
    let converted = crate::blocking::run_unbounded("subtitle convert", move || {
        Ok::<_, crate::blocking::BlockingError>(subtitles::to_webvtt(format, &bytes))
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    let text = converted.map_err(|e| match e {
        SubtitleError::NotWebVtt => bad_subtitles(e.to_string()),
    })?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/vtt; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        text,
    )
        .into_response())
}
