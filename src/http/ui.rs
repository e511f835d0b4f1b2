//! The web UI's static files, embedded at build time (`build.rs` from `ui/`): `index.html`
//! at `/` (revalidated on every load, so a new version is picked up at once) and everything
//! else under `/ui/<version>/` (cached for a year: a new build has a new version).
//!
//! These routes sit outside the authentication layer: the page itself is public (it asks the
//! API who the visitor is), and a stale session cookie must not turn the page into a 401.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use super::json::ApiPath;

/// One embedded file and its precompressed forms (absent where compression did not pay).
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    /// Hash of the raw bytes; the ETag of each representation derives from it.
    pub tag: &'static str,
    /// The bytes as they are, kept only where gzip does not pay: otherwise the rare client
    /// that takes no compression gets the gzip form inflated (`plain`), which keeps about
    /// 140 KB of the binary budget.
    pub raw: Option<&'static [u8]>,
    pub gzip: Option<&'static [u8]>,
    pub brotli: Option<&'static [u8]>,
}

/// The fixed header `build.rs`'s gzip encoder writes (no name, no extra fields) and the
/// trailer (CRC-32, length): what lies between is raw deflate.
const GZIP_HEADER: usize = 10;
const GZIP_TRAILER: usize = 8;

impl Asset {
    /// The uncompressed bytes.
    pub fn plain(&self) -> Option<bytes::Bytes> {
        if let Some(raw) = self.raw {
            return Some(bytes::Bytes::from_static(raw));
        }
        let gz = self.gzip?;
        let deflate = gz.get(GZIP_HEADER..gz.len().checked_sub(GZIP_TRAILER)?)?;
        miniz_oxide::inflate::decompress_to_vec(deflate)
            .ok()
            .map(bytes::Bytes::from)
    }
}

mod generated {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/ui/assets.rs"));
}

pub use generated::VERSION;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Routes for the UI; merged beside the API, outside its authentication layer.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/favicon.ico", get(favicon))
        .route("/ui/{version}/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    page(&headers)
}

/// The page itself, for addresses the UI renders besides `/` (a shared folder opened in a
/// browser): the same bytes, revalidated on every load.
pub fn page(headers: &HeaderMap) -> Response {
    respond(&generated::INDEX, headers, "no-cache")
}

/// Whether a request is a browser opening a page (not a script or `fetch`, which ask for
/// `*/*` or JSON): the first type in `Accept` is `text/html`.
pub fn wants_page(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| first.trim().to_ascii_lowercase().starts_with("text/html"))
}

/// Browsers ask for `/favicon.ico` on pages that name no icon (a JSON answer, a file).
async fn favicon(headers: HeaderMap) -> Response {
    match generated::ASSETS.iter().find(|a| a.path == "icon.svg") {
        Some(a) => respond(a, &headers, "public, max-age=86400"),
        None => ApiError::not_found("no icon").into_response(),
    }
}

async fn asset(
    ApiPath((version, path)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if version != VERSION {
        return ApiError::not_found("this version of the page is gone: reload the page")
            .into_response();
    }
    match generated::ASSETS.iter().find(|a| a.path == path) {
        Some(a) => respond(a, &headers, IMMUTABLE),
        None => ApiError::not_found("no such file in the web UI").into_response(),
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Coding {
    Brotli,
    Gzip,
    Identity,
}

/// The best coding the client accepts (`q=0` refuses one) among those the asset has.
fn negotiate(headers: &HeaderMap, asset: &Asset) -> Coding {
    let accepted = |name: &str| {
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|item| {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim();
                let refused = parts.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                coding.eq_ignore_ascii_case(name) && !refused
            })
    };
    if asset.brotli.is_some() && accepted("br") {
        Coding::Brotli
    } else if asset.gzip.is_some() && accepted("gzip") {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

fn respond(asset: &Asset, headers: &HeaderMap, cache: &'static str) -> Response {
    let coding = negotiate(headers, asset);
    let (body, encoding, etag) = match (coding, asset.brotli, asset.gzip) {
        (Coding::Brotli, Some(b), _) => (
            Some(bytes::Bytes::from_static(b)),
            Some("br"),
            format!("\"{}.br\"", asset.tag),
        ),
        (Coding::Gzip, _, Some(g)) => (
            Some(bytes::Bytes::from_static(g)),
            Some("gzip"),
            format!("\"{}.gz\"", asset.tag),
        ),
        _ => (asset.plain(), None, format!("\"{}\"", asset.tag)),
    };
    let Some(body) = body else {
        // build.rs checks every gzip form inflates back: this would be a broken build.
        tracing::error!(asset = asset.path, "an embedded UI file does not inflate");
        return ApiError::internal(&"an embedded file of the web UI is damaged").into_response();
    };
    // Any representation of the same bytes is as good for revalidation.
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t.split('.').next() == Some(asset.tag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = body.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        if let Some(e) = encoding {
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
        }
        r
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

#[cfg(test)]
#[path = "ui_tests.rs"]
mod tests;
