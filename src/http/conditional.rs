//! RFC 9110 §13.2.2 for a stored file: preconditions first, then Range and If-Range. Pure:
//! the decision from the request's headers and the object's validators.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, HeaderValue};
use headers::{ETag, HeaderMapExt, IfMatch, IfModifiedSince, IfNoneMatch, IfUnmodifiedSince};

use crate::range::{self, ByteRange, RangeDecision};
use crate::storage::ObjectMeta;

/// What to answer, decided from the request headers and the object's validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    NotModified,
    PreconditionFailed,
    Full,
    Partial(Vec<ByteRange>),
    Unsatisfiable,
}

/// [`decide_at`] now.
#[cfg(test)]
pub fn decide(headers: &HeaderMap, meta: &ObjectMeta, max_ranges: usize) -> Outcome {
    decide_at(headers, meta, max_ranges, SystemTime::now())
}

/// RFC 9110 §13.2.2: If-Match, else If-Unmodified-Since (412); If-None-Match, else
/// If-Modified-Since (304); then Range, honoured only when If-Range (if any) matches.
/// `now`: when the answer is made (whether the file's date is a strong validator).
pub fn decide_at(
    headers: &HeaderMap,
    meta: &ObjectMeta,
    max_ranges: usize,
    now: SystemTime,
) -> Outcome {
    // Parsed only for a request that compares entity-tags (most players send none).
    let etag = || strong_etag(meta);
    if let Some(im) = headers.typed_get::<IfMatch>() {
        if !etag().as_ref().is_some_and(|e| im.precondition_passes(e)) {
            return Outcome::PreconditionFailed;
        }
    } else if let Some(ius) = headers.typed_get::<IfUnmodifiedSince>() {
        if !ius.precondition_passes(meta.modified) {
            return Outcome::PreconditionFailed;
        }
    }
    if let Some(inm) = headers.typed_get::<IfNoneMatch>() {
        if etag().as_ref().is_some_and(|e| !inm.precondition_passes(e)) {
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
        if !if_range_matches(if_range, meta, now) {
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

/// §13.1.5: an entity-tag must match strongly; a date must equal Last-Modified exactly and
/// be strong ([`strong_date`]).
fn if_range_matches(value: &HeaderValue, meta: &ObjectMeta, now: SystemTime) -> bool {
    let Ok(v) = value.to_str() else { return false };
    let v = v.trim();
    if v.starts_with('"') {
        return v.len() == meta.etag.len() + 2 && v[1..v.len() - 1] == meta.etag;
    }
    if v.starts_with("W/") {
        return false;
    }
    match httpdate::parse_http_date(v) {
        Ok(date) => date == whole_seconds(meta.modified) && strong_date(meta.modified, now),
        Err(_) => false,
    }
}

/// Whether a file's date, at one-second resolution, is a strong validator at `now` (RFC
/// 9110 §8.8.2.2): only once its second is over can no later change share it. Before, two
/// versions written within one second have one date, and a download resumed with
/// `If-Range: <date>` would join them (attack pass of stop 35). Such a date is not sent as
/// `Last-Modified` either, so no client holds a date that could match a later version.
/// Two seconds, not one: FAT keeps modification times in 2 s steps, so a change in the
/// second after a file's date can still be stamped with that date there.
pub fn strong_date(modified: SystemTime, now: SystemTime) -> bool {
    now >= whole_seconds(modified) + TIMESTAMP_STEP
}

/// The coarsest step a media filesystem stores modification times in (FAT's).
const TIMESTAMP_STEP: Duration = Duration::from_secs(2);

/// HTTP dates have one-second resolution.
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
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
    fn a_date_within_its_own_second_is_weak() {
        let m = meta();
        let lm = lm();
        let h = hdrs(&[("range", "bytes=0-9"), ("if-range", &lm)]);
        let within = m.modified + Duration::from_millis(900);
        assert_eq!(
            decide_at(&h, &m, 16, within),
            Outcome::Full,
            "a change later in the same second would share the date"
        );
        assert!(!strong_date(m.modified, within));
        let next = m.modified + Duration::from_secs(1);
        assert!(
            !strong_date(m.modified, next),
            "FAT stamps the next second too"
        );
        let after = m.modified + Duration::from_secs(2);
        assert!(strong_date(m.modified, after));
        assert!(matches!(decide_at(&h, &m, 16, after), Outcome::Partial(_)));
        // A date in the future (a clock set back) is never strong.
        assert!(!strong_date(
            m.modified,
            m.modified - Duration::from_secs(5)
        ));
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
}
