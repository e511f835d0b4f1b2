//! `GET`/`HEAD /media/<path>`: conditional requests and byte ranges over a storage object.
//! The decision (RFC 9110 §13.2.2 precondition order, then Range/If-Range) is the pure
//! [`decide_at`](super::conditional::decide_at); the handler only opens the object and
//! streams what was decided.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{stream, StreamExt};

use super::auth::Reader;
pub use super::conditional::Outcome;
use super::conditional::{decide_at, strong_date};
use super::error::ApiError;
use super::media_policy;
use super::sendfile::SendFrom;
use super::AppState;
use crate::media_types;
use crate::metrics::Metrics;
use crate::range::ByteRange;
use crate::storage::{ByteStream, MediaPath, Object, ZeroCopy};

/// Takes the whole request, not its method, URI and headers: those extractors clone them.
pub async fn get_media(
    State(state): State<AppState>,
    _: Reader,
    req: Request,
) -> Result<Response, ApiError> {
    let raw = req.uri().path().strip_prefix("/media/").unwrap_or("");
    let path = MediaPath::from_url(raw)?;
    let zc = SendFrom::for_request(&req);
    serve_file(&state, &path, req.method(), req.headers(), zc).await
}

/// Streams one stored file with conditional and range handling: shared by `/media/…` and
/// share links.
pub async fn serve_file(
    state: &AppState,
    path: &MediaPath,
    method: &Method,
    headers: &HeaderMap,
    zc: Option<Arc<dyn ZeroCopy>>,
) -> Result<Response, ApiError> {
    if path.is_root() {
        return Err(ApiError::not_found("this is a folder, not a file"));
    }
    let object = state.storage.open(path).await?;
    let meta = object.meta();
    let ext = path.extension();
    let content_type = media_types::content_type(ext.as_deref());
    let head = method == Method::HEAD;
    let now = SystemTime::now();
    let outcome = decide_at(headers, meta, state.config.streaming.max_ranges, now);
    let active = media_policy::is_active_content(ext.as_deref(), content_type);
    let policy = media_policy::policy(content_type);
    let content_type = media_policy::served_type(content_type);
    let disposition = disposition(active, path.name().unwrap_or("file"))?;
    if media_policy::may_redirect(ext.as_deref(), content_type) {
        // The store answers with our type and disposition: they are signed into the URL.
        let response = [
            ("response-content-type", content_type),
            (
                "response-content-disposition",
                disposition.to_str().unwrap_or_default(),
            ),
        ];
        if let Some(url) = state.storage.direct_url(path, head, &response) {
            state.metrics.media_redirects.inc();
            let mut h = HeaderMap::with_capacity(2);
            h.insert(header::LOCATION, header_value(url)?);
            // The URL works without login until it expires: no cache may keep it for
            // someone else.
            let private = HeaderValue::from_static("private, no-store");
            h.insert(header::CACHE_CONTROL, private);
            return Ok(respond(StatusCode::TEMPORARY_REDIRECT, h, Body::empty()));
        }
    }
    // Set straight into the map, every value made without `fmt` where it can be: this runs
    // for each range a player asks for (issue 17's profile counted ~10k instructions in
    // the builder's per-header checks alone).
    let mut h = HeaderMap::with_capacity(16);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // No script runs in anything served from here, whatever a browser is made to render.
    h.insert(header::CONTENT_SECURITY_POLICY, policy);
    h.insert(header::CONTENT_DISPOSITION, disposition);
    h.insert(header::ETAG, header_value(quoted(&meta.etag))?);
    if strong_date(meta.modified, now) {
        // Until 2 s after it the date is weak: a client given it could resume a later
        // version with `If-Range` (`conditional::strong_date`). The ETag is always sent.
        let modified = httpdate::fmt_http_date(meta.modified);
        h.insert(header::LAST_MODIFIED, header_value(modified)?);
    }
    let (status, length, body): (StatusCode, u64, Option<ByteStream>) = match outcome {
        Outcome::PreconditionFailed => {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "the file does not match the request's If-Match/If-Unmodified-Since",
            ))
        }
        Outcome::NotModified => return Ok(respond(StatusCode::NOT_MODIFIED, h, Body::empty())),
        Outcome::Unsatisfiable => {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!(
                    "no requested range lies within the file's {} bytes",
                    meta.size
                ),
            )
            .with_header(
                header::CONTENT_RANGE,
                header_value(format!("bytes */{}", meta.size))?,
            ));
        }
        Outcome::Full => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            (
                StatusCode::OK,
                meta.size,
                Some(object.read_range_to(0..meta.size, zc.as_ref())),
            )
        }
        Outcome::Partial(ranges) if ranges.len() == 1 => {
            let r = ranges[0];
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            let range = r.content_range(meta.size);
            h.insert(header::CONTENT_RANGE, header_value(range)?);
            (
                StatusCode::PARTIAL_CONTENT,
                r.len(),
                Some(object.read_range_to(r.start..r.end + 1, zc.as_ref())),
            )
        }
        Outcome::Partial(ranges) => {
            let body = Multipart::new(content_type, meta.size, ranges);
            let ty = format!("multipart/byteranges; boundary={}", body.boundary);
            h.insert(header::CONTENT_TYPE, header_value(ty)?);
            (
                StatusCode::PARTIAL_CONTENT,
                body.len(),
                Some(body.stream(object.clone())),
            )
        }
    };
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    let body = match body {
        Some(stream) if !head => Body::from_stream(Counted::new(stream, state.metrics.clone())),
        _ => Body::empty(),
    };
    Ok(respond(status, h, body))
}

fn respond(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// A header value from a string made for it: its bytes move into the value, uncopied.
fn header_value(s: String) -> Result<HeaderValue, ApiError> {
    HeaderValue::try_from(s).map_err(|e| ApiError::internal(&e))
}

fn quoted(etag: &str) -> String {
    let mut s = String::with_capacity(etag.len() + 2);
    s.push('"');
    s.push_str(etag);
    s.push('"');
    s
}

/// `inline` or `attachment`, with the file's name in RFC 8187 form (any name is safe in it).
fn disposition(active: bool, name: &str) -> Result<HeaderValue, ApiError> {
    let kind = if active { "attachment" } else { "inline" };
    let mut s = String::with_capacity(kind.len() + 19 + name.len());
    s.push_str(kind);
    s.push_str("; filename*=UTF-8''");
    s.extend(percent_encoding::utf8_percent_encode(
        name,
        super::RFC8187_VALUE,
    ));
    header_value(s)
}

/// A `multipart/byteranges` body, streamed part by part from storage; its length is known up
/// front so clients get a Content-Length.
struct Multipart {
    boundary: String,
    heads: Vec<Bytes>,
    ranges: Vec<ByteRange>,
    tail: Bytes,
}

impl Multipart {
    fn new(content_type: &str, total: u64, ranges: Vec<ByteRange>) -> Self {
        let boundary = format!("streamhub-{:016x}", random_u64());
        let heads = ranges
            .iter()
            .map(|r| {
                Bytes::from(format!(
                    "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
                    r.content_range(total)
                ))
            })
            .collect();
        let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
        Multipart {
            boundary,
            heads,
            ranges,
            tail,
        }
    }

    fn len(&self) -> u64 {
        let heads: u64 = self.heads.iter().map(|h| h.len() as u64).sum();
        let data: u64 = self.ranges.iter().map(ByteRange::len).sum();
        heads + data + self.tail.len() as u64
    }

    /// The parts are copied, never sent from the page cache, and the file's version is
    /// checked after the last one is read: parts read from two versions (a file rewritten
    /// in place between them) end the body short, without its closing boundary, instead of
    /// as a whole answer under the first version's ETag (attack pass of stop 35).
    fn stream(self, object: Arc<dyn Object>) -> ByteStream {
        let check = object.clone();
        let parts = self
            .heads
            .into_iter()
            .zip(self.ranges)
            .map(move |(head, r)| {
                let part = object.read_range(r.start..r.end + 1);
                stream::once(async move { Ok(head) }).chain(part)
            });
        let tail = self.tail;
        Box::pin(
            stream::iter(parts)
                .flatten()
                .chain(stream::once(async move {
                    check.unchanged().await?;
                    Ok(tail)
                })),
        )
    }
}

/// A random boundary without a `rand` dependency: std's `RandomState` is seeded per process
/// from the OS and perturbed per instance.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}

/// Counts bytes handed to hyper and how many media bodies are in flight: two atomic updates
/// per chunk, nothing per byte. Media files, multi-range bodies and zip archives alike.
pub(super) struct Counted<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Counted<S> {
    pub(super) fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        metrics.active_streams.inc();
        Counted { inner, metrics }
    }
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        self.metrics.active_streams.dec();
    }
}

impl<S, E> futures_util::Stream for Counted<S>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, E>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_next(cx);
        match &poll {
            std::task::Poll::Ready(Some(Ok(b))) => {
                self.metrics.bytes_streamed.inc_by(b.len() as u64);
            }
            // The head went out already: the client sees the body end short, the log says
            // why (the access line, written with the head, says 200).
            std::task::Poll::Ready(Some(Err(e))) => ended_early(e),
            _ => {}
        }
        poll
    }
}

/// One log call site for every body type (`Counted` is generic; each copy of the macro
/// cost the binary budget about 500 bytes).
#[inline(never)]
fn ended_early(e: &dyn std::fmt::Display) {
    tracing::warn!(error = %e, "a response body ended early");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_length_matches_stream() {
        let mp = Multipart::new(
            "video/mp4",
            1000,
            vec![
                ByteRange { start: 0, end: 9 },
                ByteRange {
                    start: 500,
                    end: 599,
                },
            ],
        );
        let expected: u64 =
            mp.heads.iter().map(|h| h.len() as u64).sum::<u64>() + 110 + mp.tail.len() as u64;
        assert_eq!(mp.len(), expected);
        assert!(std::str::from_utf8(&mp.heads[1])
            .unwrap()
            .contains("Content-Range: bytes 500-599/1000"));
    }
}
