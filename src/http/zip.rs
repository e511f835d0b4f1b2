//! `GET /api/library/zip?path=DIR`: a folder as a zip download, streamed as `app::zip`
//! builds it (chunked, no length: the size is known only at the end). Errors found before
//! the first byte are JSON like every endpoint's; one found after it cuts the body off (the
//! client sees a broken download, never a shorter archive that looks whole) and is logged.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use futures_util::TryStreamExt;
use percent_encoding::utf8_percent_encode;
use serde::Deserialize;

use super::auth::Reader;
use super::error::ApiError;
use super::media::Counted;
use super::AppState;
use crate::app::zip::zip_folder;
use crate::storage::MediaPath;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZipQuery {
    /// The folder; empty or `/` is the media root.
    #[serde(default)]
    path: String,
}

pub async fn download(
    State(state): State<AppState>,
    _: Reader,
    query: Result<Query<ZipQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(super::error::bad_query)?;
    let dir = MediaPath::from_api(&q.path)?;
    let archive = zip_folder(state.storage.clone(), &dir).await?;
    let name = dir.name().unwrap_or("media");
    let disposition = format!(
        "attachment; filename=\"{}.zip\"; filename*=UTF-8''{}.zip",
        ascii_fallback(name),
        utf8_percent_encode(name, super::RFC8187_VALUE)
    );
    // The body is polled after this handler returned: log a failure in its request's span.
    let span = tracing::Span::current();
    let folder = dir.to_string();
    let body = archive.inspect_err(move |e| {
        span.in_scope(|| {
            tracing::warn!(folder = %folder.escape_debug(), error = %e,
                "zip download cut off: the client gets a broken archive");
        });
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/zip")
        .header(header::CONTENT_DISPOSITION, disposition)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(Counted::new(body, state.metrics.clone())))
        .map_err(|e| ApiError::internal(&e))
}

/// The plain `filename="…"` for clients without RFC 6266 `filename*`: printable ASCII, with
/// everything else (and the quote and backslash) as `_`.
fn ascii_fallback(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::ascii_fallback;

    #[test]
    fn fallback_names_are_plain_ascii() {
        assert_eq!(ascii_fallback("My Films"), "My Films");
        assert_eq!(ascii_fallback("été \"x\"\\y"), "_t_ _x__y");
        assert_eq!(ascii_fallback("日本"), "__");
    }
}
