//! Reading objects: validators from HEAD (ETag, Last-Modified, size), and ranges streamed
//! from ranged GETs pinned to that ETag with `If-Match`, so every part of a multi-range
//! answer comes from the version whose validators were sent.

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use ::http::{HeaderMap, Method, StatusCode};
use futures_util::StreamExt;

use super::Inner;
use crate::storage::{ByteStream, Object, ObjectMeta, StorageError};

/// An opened object: its validators, and the means to read ranges of that version.
pub(super) struct S3Object {
    inner: Arc<Inner>,
    key: String,
    meta: ObjectMeta,
}

impl S3Object {
    pub(super) fn new(inner: Arc<Inner>, key: String, meta: ObjectMeta) -> Self {
        S3Object { inner, key, meta }
    }
}

impl Object for S3Object {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn read_range(&self, range: Range<u64>) -> ByteStream {
        if range.start >= range.end {
            return Box::pin(futures_util::stream::empty());
        }
        let inner = self.inner.clone();
        let key = self.key.clone();
        let etag = format!("\"{}\"", self.meta.etag);
        let whole = range.start == 0 && range.end >= self.meta.size;
        let opened = async move {
            let url = inner.url(&Method::GET, &key, &[], &[]);
            let bytes = format!("bytes={}-{}", range.start, range.end - 1);
            let headers = [("range", bytes.as_str()), ("if-match", etag.as_str())];
            let a = inner.send("read", Method::GET, &url, &headers).await?;
            let ok =
                a.status == StatusCode::PARTIAL_CONTENT || (a.status == StatusCode::OK && whole);
            if !ok {
                return Err(if a.status.is_success() {
                    StorageError::Io(format!("the S3 store answered {} to a range", a.status))
                } else {
                    inner.http.error("read", a).await
                });
            }
            // A different validator on the answer means another version slipped in.
            if let Some(got) = a.headers.get(::http::header::ETAG) {
                if got.to_str().ok().map(unquote) != Some(etag.trim_matches('"')) {
                    return Err(StorageError::Changed);
                }
            }
            Ok(inner.http.stream(a.body, range.end - range.start))
        };
        Box::pin(futures_util::stream::once(opened).flat_map(|r| match r {
            Ok(s) => s,
            Err(e) => Box::pin(futures_util::stream::iter([Err(e)])) as ByteStream,
        }))
    }
}

fn unquote(s: &str) -> &str {
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.trim_matches('"')
}

/// Validators from a HEAD (or GET) answer.
pub(super) fn meta_of(h: &HeaderMap) -> Result<ObjectMeta, StorageError> {
    let text = |name: ::http::header::HeaderName| h.get(name).and_then(|v| v.to_str().ok());
    let size = text(::http::header::CONTENT_LENGTH)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StorageError::Io("the S3 store sent no Content-Length".into()))?;
    let etag = text(::http::header::ETAG)
        .map(unquote)
        .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_graphic() && b != b'"'))
        .ok_or_else(|| StorageError::Io("the S3 store sent no usable ETag".into()))?
        .to_string();
    let modified = text(::http::header::LAST_MODIFIED)
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(ObjectMeta {
        size,
        modified,
        etag,
    })
}

/// S3 listings' timestamps (`2026-11-30T19:24:38.432Z`).
pub(super) fn parse_listing_time(s: &str) -> SystemTime {
    humantime::parse_rfc3339_weak(s).unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn meta_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("content-length", "10".parse().unwrap());
        h.insert("etag", "\"abc123\"".parse().unwrap());
        h.insert(
            "last-modified",
            "Sun, 13 Sep 2020 12:26:40 GMT".parse().unwrap(),
        );
        let m = meta_of(&h).unwrap();
        assert_eq!(m.size, 10);
        assert_eq!(m.etag, "abc123");
        assert_eq!(
            m.modified,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000)
        );
        h.remove("etag");
        assert!(meta_of(&h).is_err(), "no ETag, no validators");
    }

    #[test]
    fn listing_times_parse() {
        let t = parse_listing_time("2020-09-13T12:26:40.500Z");
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_600_000_000);
        assert_eq!(parse_listing_time("junk"), SystemTime::UNIX_EPOCH);
    }
}
