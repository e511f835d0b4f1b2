//! Times on the wire: RFC 3339 strings in UTC everywhere (users, tokens, shares, notes,
//! revisions, events, the library), `2026-11-30T02:48:42Z`, with milliseconds
//! (`…42.123Z`) where the source keeps them. Never an internal stamp (a note's HLC is for
//! sync, not for people), never bare epoch numbers a client would have to guess the unit of.

use std::time::{Duration, UNIX_EPOCH};

/// 9999-12-31T23:59:59Z: RFC 3339 has four-digit years, so a stamp from a broken clock is
/// clamped rather than formatted into something clients cannot parse.
const MAX_SECS: u64 = 253_402_300_799;

/// Seconds since the epoch (accounts, tokens, shares).
pub fn from_secs(secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0).min(MAX_SECS));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Milliseconds since the epoch (notes, revisions, events).
pub fn from_millis(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0).min(MAX_SECS * 1000 + 999);
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_with_the_precision_the_source_has() {
        assert_eq!(from_secs(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(from_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(from_secs(-5), "1970-01-01T00:00:00Z");
        assert_eq!(from_secs(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(from_millis(i64::MAX), "9999-12-31T23:59:59.999Z");
    }
}
