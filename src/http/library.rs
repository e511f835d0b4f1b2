//! `GET /api/library` (a folder's entries, or a search with `q=`/`type=`), `GET
//! /api/library/item`, `GET /api/library/thumb`, the scanner's status and rescan: thin translations between HTTP and the `library` index.
//! Names and paths go out only as JSON strings, with `<`, `>` and `&` written as `\u00XX`, so a
//! hostile file name stays data even if some client pastes a string into HTML.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};

use super::auth::{Admin, Reader};
use super::error::ApiError;
use super::AppState;
use crate::library::model::RawList;
use crate::library::{Item, Kind, ListRequest, Page};
use crate::storage::MediaPath;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    path: String,
    q: Option<String>,
    #[serde(rename = "type")]
    class: Option<String>,
    sort: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathQuery {
    path: String,
}

#[derive(Debug, Serialize)]
pub struct Listing {
    path: String,
    entries: Vec<Entry>,
    total: u64,
    page: u32,
    per_page: u32,
    pages: u64,
}

#[derive(Debug, Serialize)]
pub struct Entry {
    name: String,
    path: String,
    kind: &'static str,
    size: u64,
    mtime: String,
    content_type: Option<String>,
    media: &'static str,
    duration: Option<f64>,
    width: Option<i64>,
    height: Option<i64>,
    video_codec: Option<String>,
    audio_codec: Option<String>,
    thumb: Option<String>,
    /// Whether the caller uploaded or created it (so a page offers rename, move and delete
    /// to a member only where they may; admins may anywhere). False for anonymous callers.
    yours: bool,
}

#[derive(Debug, Serialize)]
pub struct ItemBody {
    #[serde(flatten)]
    entry: Entry,
    probed: bool,
    probe_error: Option<String>,
}

/// Query-value encoding for the thumb URL: everything but unreserved characters and '/'.
pub(super) const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// JSON with `<`, `>`, `&` escaped as `\u003c`, `\u003e`, `\u0026` (as Go's encoder does).
/// Those bytes occur in JSON only inside strings, so escaping them in the serialised text is
/// exact, and the value a JSON parser reads is unchanged.
pub struct SafeJson<T>(pub T);

impl<T: Serialize> IntoResponse for SafeJson<T> {
    fn into_response(self) -> Response {
        let raw = match serde_json::to_vec(&self.0) {
            Ok(v) => v,
            Err(e) => return ApiError::internal(&e).into_response(),
        };
        let mut out = Vec::with_capacity(raw.len() + 16);
        for b in raw {
            match b {
                b'<' => out.extend_from_slice(b"\\u003c"),
                b'>' => out.extend_from_slice(b"\\u003e"),
                b'&' => out.extend_from_slice(b"\\u0026"),
                _ => out.push(b),
            }
        }
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            out,
        )
            .into_response()
    }
}

fn entry(state: &AppState, it: Item, viewer: Option<i64>) -> Entry {
    // A poster URL is offered when one exists or can be made on request.
    let may_thumb = it.kind == Kind::File
        && it.class.has_poster()
        && (it.thumb.is_some()
            || (!it.thumb_failed && state.library.can_make_thumbs() && it.probe_error.is_none()));
    Entry {
        yours: viewer.is_some() && it.owner == viewer,
        thumb: may_thumb.then(|| {
            format!(
                "/api/library/thumb?path={}",
                utf8_percent_encode(&it.path, QUERY_VALUE)
            )
        }),
        mtime: humantime::format_rfc3339_seconds(it.modified()).to_string(),
        kind: it.kind.as_str(),
        media: it.class.as_str(),
        size: it.size,
        content_type: it.content_type,
        duration: it.duration,
        width: it.width,
        height: it.height,
        video_codec: it.video_codec,
        audio_codec: it.audio_codec,
        name: it.name,
        path: it.path,
    }
}

fn listing(state: &AppState, page: Page, viewer: Option<i64>) -> Listing {
    let pages = page.pages();
    Listing {
        path: page.path,
        total: page.total,
        page: page.page,
        per_page: page.per_page,
        pages,
        entries: page
            .entries
            .into_iter()
            .map(|i| entry(state, i, viewer))
            .collect(),
    }
}

pub async fn list(
    State(state): State<AppState>,
    reader: Reader,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<SafeJson<Listing>, ApiError> {
    let Query(q) = query.map_err(super::error::bad_query)?;
    let dir = MediaPath::from_api(&q.path)?;
    let raw = RawList {
        q: q.q.as_deref(),
        class: q.class.as_deref(),
        sort: q.sort.as_deref(),
        page: q.page.as_deref(),
        per_page: q.per_page.as_deref(),
    };
    let req = ListRequest::parse(dir, &raw).map_err(ApiError::from)?;
    let page = state.library.list(req).await.map_err(ApiError::from)?;
    Ok(SafeJson(listing(&state, page, reader.viewer_id())))
}

pub(super) fn item_path(
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<MediaPath, ApiError> {
    let Query(q) = query.map_err(super::error::bad_query)?;
    Ok(MediaPath::from_api(&q.path)?)
}

/// `GET /api/library/item?path=`: one entry with everything the index knows.
pub async fn item(
    State(state): State<AppState>,
    reader: Reader,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<SafeJson<ItemBody>, ApiError> {
    let path = item_path(query)?;
    let it = state.library.item(&path).await.map_err(ApiError::from)?;
    let (probed, probe_error) = (it.probed, it.probe_error.clone());
    Ok(SafeJson(ItemBody {
        entry: entry(&state, it, reader.viewer_id()),
        probed,
        probe_error,
    }))
}

/// `GET /api/library/thumb?path=`: the poster JPEG, made on request when missing.
pub async fn thumb(
    State(state): State<AppState>,
    _: Reader,
    query: Result<Query<PathQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let path = item_path(query)?;
    let t = state
        .library
        .thumbnail(&path)
        .await
        .map_err(ApiError::from)?;
    let etag = format!("\"{}\"", t.etag);
    let etag_value = HeaderValue::from_str(&etag)
        .map_err(|_| ApiError::internal(&"poster name is not a header value"))?;
    let cache = HeaderValue::from_static("private, max-age=60");
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == etag || v == "*");
    if matches {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
            (header::ETAG, etag_value),
            (header::CACHE_CONTROL, cache),
        ],
        t.bytes,
    )
        .into_response())
}

/// `GET /api/library/status`: the scanner's state and what the library can do (ffprobe,
/// thumbnails), as `/readyz` shows it.
pub async fn status(
    State(state): State<AppState>,
    _: Reader,
) -> Json<super::wire::library::StatusJson> {
    Json(super::wire::library::StatusJson::from(
        &state.library.status(),
    ))
}

/// `POST /api/library/rescan` (admin): a full scan as soon as the scanner is free, for files
/// copied in by hand. Answers at once (202) with the state to poll.
pub async fn rescan(
    State(state): State<AppState>,
    _: Admin,
) -> (StatusCode, Json<super::wire::library::StatusJson>) {
    state.library.request_scan();
    (
        StatusCode::ACCEPTED,
        Json(super::wire::library::StatusJson::from(
            &state.library.status(),
        )),
    )
}
