//! `GET`/`HEAD /media/<path>`: conditional requests and byte ranges over a storage object.
//! The decision (RFC 9110 §13.2.2 precondition order, then Range/If-Range) is the pure
//! [`decide`]; the handler only opens the object and streams what was decided.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use headers::{ETag, HeaderMapExt, IfMatch, IfModifiedSince, IfNoneMatch, IfUnmodifiedSince};

use super::auth::Reader;
use super::error::ApiError;
use super::media_policy;
use super::sendfile::SendFrom;
use super::AppState;
use crate::media_types;
use crate::metrics::Metrics;
use crate::range::{self, ByteRange, RangeDecision};
use crate::storage::{ByteStream, MediaPath, Object, ObjectMeta, ZeroCopy};

/// What to answer, decided from the request headers and the object's validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    NotModified,
    PreconditionFailed,
    Full,
    Partial(Vec<ByteRange>),
    Unsatisfiable,
}

/// RFC 9110 §13.2.2: If-Match, else If-Unmodified-Since (412); If-None-Match, else
/// If-Modified-Since (304); then Range, honoured only when If-Range (if any) matches.
pub fn decide(headers: &HeaderMap, meta: &ObjectMeta, max_ranges: usize) -> Outcome {
    let etag = strong_etag(meta);
    if let Some(im) = headers.typed_get::<IfMatch>() {
        if !etag.as_ref().is_some_and(|e| im.precondition_passes(e)) {
            return Outcome::PreconditionFailed;
        }
    } else if let Some(ius) = headers.typed_get::<IfUnmodifiedSince>() {
        if !ius.precondition_passes(meta.modified) {
            return Outcome::PreconditionFailed;
        }
    }
    if let Some(inm) = headers.typed_get::<IfNoneMatch>() {
        if etag.as_ref().is_some_and(|e| !inm.precondition_passes(e)) {
            return Outcome::NotModified;
        }
    } else if let Some(ims) = headers.typed_get::<IfModifiedSince>() {
        if !ims.is_modified(meta.modified) {
            return Outcome::NotModified;
        }
    }
    let Some(range) = headers.get(header::RANGE) else {
        return Outcome::Full;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        if !if_range_matches(if_range, meta) {
            return Outcome::Full;
        }
    }
    let Ok(range) = range.to_str() else {
        return Outcome::Full;
    };
    match range::evaluate(range, meta.size, max_ranges) {
        RangeDecision::Full => Outcome::Full,
        RangeDecision::Partial(r) => Outcome::Partial(r),
        RangeDecision::Unsatisfiable => Outcome::Unsatisfiable,
    }
}

fn strong_etag(meta: &ObjectMeta) -> Option<ETag> {
    format!("\"{}\"", meta.etag).parse().ok()
}

/// §13.1.5: an entity-tag must match strongly; a date must equal Last-Modified exactly.
fn if_range_matches(value: &HeaderValue, meta: &ObjectMeta) -> bool {
    let Ok(v) = value.to_str() else { return false };
    let v = v.trim();
    if v.starts_with('"') {
        return v.len() == meta.etag.len() + 2 && v[1..v.len() - 1] == meta.etag;
    }
    if v.starts_with("W/") {
        return false;
    }
    match httpdate::parse_http_date(v) {
        Ok(date) => date == whole_seconds(meta.modified),
        Err(_) => false,
    }
}

/// HTTP dates have one-second resolution.
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

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
    let meta = object.meta().clone();
    let ext = path.extension();
    let content_type = media_types::content_type(ext.as_deref());
    let head = method == Method::HEAD;
    let outcome = decide(headers, &meta, state.config.streaming.max_ranges);
    let disposition = if media_policy::is_active_content(ext.as_deref(), &content_type) {
        "attachment"
    } else {
        "inline"
    };
    let policy = media_policy::policy(&content_type);
    let content_type = media_policy::served_type(content_type);
    let filename = path.name().unwrap_or("file");
    let disposition = format!(
        "{disposition}; filename*=UTF-8''{}",
        percent_encoding::utf8_percent_encode(filename, super::RFC8187_VALUE)
    );
    if media_policy::may_redirect(ext.as_deref(), &content_type) {
        // The store answers with our type and disposition: they are signed into the URL.
        let response = [
            ("response-content-type", content_type.as_str()),
            ("response-content-disposition", disposition.as_str()),
        ];
        if let Some(url) = state.storage.direct_url(path, head, &response) {
            state.metrics.media_redirects.inc();
            return Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(header::LOCATION, url)
                // The URL works without login until it expires: no cache may keep it for
                // someone else.
                .header(header::CACHE_CONTROL, "private, no-store")
                .body(Body::empty())
                .map_err(|e| ApiError::internal(&e));
        }
    }
    let mut builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        // No script runs in anything served from here, whatever a browser is made to render.
        .header(header::CONTENT_SECURITY_POLICY, policy)
        .header(header::CONTENT_DISPOSITION, disposition)
        .header(header::ETAG, format!("\"{}\"", meta.etag))
        .header(
            header::LAST_MODIFIED,
            httpdate::fmt_http_date(meta.modified),
        );
    let (status, length, body): (StatusCode, u64, Option<ByteStream>) = match outcome {
        Outcome::PreconditionFailed => {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "the file does not match the request's If-Match/If-Unmodified-Since",
            ))
        }
        Outcome::NotModified => {
            return builder
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .map_err(|e| ApiError::internal(&e));
        }
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
                HeaderValue::from_str(&format!("bytes */{}", meta.size))
                    .map_err(|e| ApiError::internal(&e))?,
            ));
        }
        Outcome::Full => {
            builder = builder.header(header::CONTENT_TYPE, &content_type);
            (
                StatusCode::OK,
                meta.size,
                Some(object.read_range_to(0..meta.size, zc.as_ref())),
            )
        }
        Outcome::Partial(ranges) if ranges.len() == 1 => {
            let r = ranges[0];
            builder = builder
                .header(header::CONTENT_TYPE, &content_type)
                .header(header::CONTENT_RANGE, r.content_range(meta.size));
            (
                StatusCode::PARTIAL_CONTENT,
                r.len(),
                Some(object.read_range_to(r.start..r.end + 1, zc.as_ref())),
            )
        }
        Outcome::Partial(ranges) => {
            let body = Multipart::new(&content_type, meta.size, ranges);
            builder = builder.header(
                header::CONTENT_TYPE,
                format!("multipart/byteranges; boundary={}", body.boundary),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                body.len(),
                Some(body.stream(object, zc)),
            )
        }
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, length);
    let body = match body {
        Some(stream) if !head => Body::from_stream(Counted::new(stream, state.metrics.clone())),
        _ => Body::empty(),
    };
    builder.body(body).map_err(|e| ApiError::internal(&e))
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

    fn stream(self, object: Arc<dyn Object>, zc: Option<Arc<dyn ZeroCopy>>) -> ByteStream {
        let parts = self
            .heads
            .into_iter()
            .zip(self.ranges)
            .map(move |(head, r)| {
                let part = object.read_range_to(r.start..r.end + 1, zc.as_ref());
                stream::once(async move { Ok(head) }).chain(part)
            });
        let tail = self.tail;
        Box::pin(
            stream::iter(parts)
                .flatten()
                .chain(stream::once(async move { Ok(tail) })),
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
{
    type Item = Result<Bytes, E>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_next(cx);
        if let std::task::Poll::Ready(Some(Ok(b))) = &poll {
            self.metrics.bytes_streamed.inc_by(b.len() as u64);
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            size: 1000,
            modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            etag: "abc-3e8-1".to_string(),
        }
    }

    fn hdrs(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn lm() -> String {
        httpdate::fmt_http_date(meta().modified)
    }

    #[test]
    fn plain_and_ranges() {
        assert_eq!(decide(&hdrs(&[]), &meta(), 16), Outcome::Full);
        assert_eq!(
            decide(&hdrs(&[("range", "bytes=0-9")]), &meta(), 16),
            Outcome::Partial(vec![ByteRange { start: 0, end: 9 }])
        );
        assert_eq!(
            decide(&hdrs(&[("range", "bytes=5000-")]), &meta(), 16),
            Outcome::Unsatisfiable
        );
    }

    #[test]
    fn if_none_match_and_modified_since() {
        let m = meta();
        assert_eq!(
            decide(&hdrs(&[("if-none-match", "\"abc-3e8-1\"")]), &m, 16),
            Outcome::NotModified
        );
        assert_eq!(
            decide(&hdrs(&[("if-none-match", "W/\"abc-3e8-1\"")]), &m, 16),
            Outcome::NotModified,
            "If-None-Match uses weak comparison"
        );
        assert_eq!(
            decide(&hdrs(&[("if-none-match", "\"other\"")]), &m, 16),
            Outcome::Full
        );
        assert_eq!(
            decide(&hdrs(&[("if-modified-since", &lm())]), &m, 16),
            Outcome::NotModified
        );
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            decide(
                &hdrs(&[("if-none-match", "\"other\""), ("if-modified-since", &lm())]),
                &m,
                16
            ),
            Outcome::Full
        );
    }

    #[test]
    fn if_match_and_unmodified_since() {
        let m = meta();
        assert_eq!(
            decide(&hdrs(&[("if-match", "\"abc-3e8-1\"")]), &m, 16),
            Outcome::Full
        );
        assert_eq!(
            decide(
                &hdrs(&[("if-match", "\"nope\""), ("range", "bytes=0-1")]),
                &m,
                16
            ),
            Outcome::PreconditionFailed,
            "preconditions come before ranges"
        );
        assert_eq!(decide(&hdrs(&[("if-match", "*")]), &m, 16), Outcome::Full);
        assert_eq!(
            decide(
                &hdrs(&[("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]),
                &m,
                16
            ),
            Outcome::PreconditionFailed
        );
        assert_eq!(
            decide(&hdrs(&[("if-unmodified-since", &lm())]), &m, 16),
            Outcome::Full
        );
    }

    #[test]
    fn if_range() {
        let m = meta();
        let part = Outcome::Partial(vec![ByteRange { start: 0, end: 9 }]);
        for (if_range, expect_partial) in [
            ("\"abc-3e8-1\"", true),
            ("\"stale\"", false),
            ("W/\"abc-3e8-1\"", false),
            (lm().as_str(), true),
            ("Sun, 06 Nov 1994 08:49:37 GMT", false),
            ("garbage", false),
        ] {
            let got = decide(
                &hdrs(&[("range", "bytes=0-9"), ("if-range", if_range)]),
                &m,
                16,
            );
            let want = if expect_partial {
                part.clone()
            } else {
                Outcome::Full
            };
            assert_eq!(got, want, "If-Range: {if_range}");
        }
    }

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
