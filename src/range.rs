//! RFC 9110 §14 byte-range selection: parse a `Range` header value and decide, for a
//! representation of a given length, what to send. Pure, so it is unit-tested and fuzzed.
//!
//! Written here rather than taken from `http-range-header`: that crate refuses overlapping
//! ranges and reports syntax errors and unsatisfiable ranges alike, whereas streamhub must
//! coalesce overlaps (never amplify), cap the part count like nginx's `max_ranges`, and ignore
//! a malformed header (RFC 9110 §14.2 lets a server ignore Range) while answering a
//! well-formed but unsatisfiable one with 416.

/// An inclusive byte range `start..=end` within the representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// `Content-Range` value for this part of a representation of `total` bytes.
    /// Written without `fmt`: it is made for every range a player asks for.
    pub fn content_range(&self, total: u64) -> String {
        let mut s = String::with_capacity(6 + 3 * 20 + 2);
        s.push_str("bytes ");
        for (sep, n) in [("", self.start), ("-", self.end), ("/", total)] {
            s.push_str(sep);
            s.push_str(itoa::Buffer::new().format(n));
        }
        s
    }
}

/// What to send in answer to a `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeDecision {
    /// Ignore the header and send the whole representation with 200 (malformed header,
    /// another unit, or more parts than allowed).
    Full,
    /// 206 with these ranges: disjoint, non-adjacent, at most `max_ranges`, in the order the
    /// client asked for them (a merged range takes the place of its first member).
    Partial(Vec<ByteRange>),
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Ranges closer than this are merged: a gap smaller than a multipart part's own headers costs
/// more to skip than to send (RFC 9110 §14.6 allows this coalescing).
pub const COALESCE_GAP: u64 = 80;

/// Hard cap on specs read from one header, before coalescing; past it the header is ignored.
pub const MAX_SPECS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-` or `first-last` (last already saturated at u64::MAX).
    From { first: u64, last: Option<u64> },
    /// `-suffix`
    Suffix(u64),
}

/// Decides how to answer `Range: header` for a representation of `len` bytes.
///
/// Overlapping ranges, and ranges closer than [`COALESCE_GAP`], are merged, so the parts are
/// disjoint and never add up to more than the file.
pub fn evaluate(header: &str, len: u64, max_ranges: usize) -> RangeDecision {
    let Some(specs) = parse(header) else {
        return RangeDecision::Full;
    };
    // (range, position of the spec in the header)
    let mut ranges: Vec<(ByteRange, usize)> = specs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| resolve(*s, len).map(|r| (r, i)))
        .collect();
    if ranges.is_empty() {
        return RangeDecision::Unsatisfiable;
    }
    ranges.sort_unstable_by_key(|(r, _)| r.start);
    let mut merged: Vec<(ByteRange, usize)> = Vec::with_capacity(ranges.len());
    for (r, i) in ranges {
        match merged.last_mut() {
            Some((last, first)) if r.start <= last.end.saturating_add(1 + COALESCE_GAP) => {
                last.end = last.end.max(r.end);
                *first = (*first).min(i);
            }
            _ => merged.push((r, i)),
        }
    }
    if merged.len() > max_ranges.max(1) {
        return RangeDecision::Full;
    }
    // RFC 9110 §15.3.7.2: parts SHOULD come in the order they were asked for.
    merged.sort_unstable_by_key(|(_, i)| *i);
    RangeDecision::Partial(merged.into_iter().map(|(r, _)| r).collect())
}

/// Satisfiable part of one spec, clamped to the representation.
fn resolve(spec: Spec, len: u64) -> Option<ByteRange> {
    match spec {
        Spec::From { first, last } => {
            if first >= len {
                return None;
            }
            let end = last.unwrap_or(u64::MAX).min(len - 1);
            Some(ByteRange { start: first, end })
        }
        Spec::Suffix(n) => {
            if n == 0 || len == 0 {
                return None;
            }
            Some(ByteRange {
                start: len.saturating_sub(n),
                end: len - 1,
            })
        }
    }
}

/// `bytes=<spec>[, <spec>]...` → specs; `None` when the header is malformed or another unit.
fn parse(header: &str) -> Option<Vec<Spec>> {
    let (unit, set) = header.trim().split_once('=')?;
    if !unit.trim_end().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for item in set.split(',') {
        let item = item.trim_matches([' ', '\t']);
        // RFC 9110 §5.6.1: empty list elements are allowed and ignored.
        if item.is_empty() {
            continue;
        }
        if specs.len() == MAX_SPECS {
            return None;
        }
        specs.push(parse_spec(item)?);
    }
    if specs.is_empty() {
        return None;
    }
    Some(specs)
}

fn parse_spec(item: &str) -> Option<Spec> {
    let (first, last) = item.split_once('-')?;
    if first.is_empty() {
        return Some(Spec::Suffix(digits(last)?));
    }
    let first = digits(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(digits(last)?)
    };
    if let Some(l) = last {
        // §14.1.1: a last-pos below the first-pos makes the spec (and so the header) invalid.
        if l < first {
            return None;
        }
    }
    Some(Spec::From { first, last })
}

/// `1*DIGIT` as u64, saturating: a position past u64::MAX is past any file's end anyway.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeDecision::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    fn eval(h: &str, len: u64) -> RangeDecision {
        evaluate(h, len, 16)
    }

    #[test]
    fn single_forms() {
        assert_eq!(eval("bytes=0-99", 1000), Partial(vec![r(0, 99)]));
        assert_eq!(eval("bytes=100-", 1000), Partial(vec![r(100, 999)]));
        assert_eq!(eval("bytes=-100", 1000), Partial(vec![r(900, 999)]));
        assert_eq!(eval("bytes=999-999", 1000), Partial(vec![r(999, 999)]));
    }

    #[test]
    fn last_pos_past_end_is_clamped() {
        assert_eq!(eval("bytes=10-5000", 1000), Partial(vec![r(10, 999)]));
        assert_eq!(
            eval("bytes=0-18446744073709551615", 1000),
            Partial(vec![r(0, 999)])
        );
        assert_eq!(
            eval("bytes=0-99999999999999999999999999", 1000),
            Partial(vec![r(0, 999)])
        );
    }

    #[test]
    fn suffix_longer_than_file_is_whole_file() {
        assert_eq!(eval("bytes=-5000", 1000), Partial(vec![r(0, 999)]));
        assert_eq!(
            eval("bytes=-18446744073709551615", 10),
            Partial(vec![r(0, 9)])
        );
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(eval("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(eval("bytes=18446744073709551615-", 1000), Unsatisfiable);
        assert_eq!(eval("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(eval("bytes=5000-6000, 7000-", 1000), Unsatisfiable);
    }

    #[test]
    fn empty_file_is_always_unsatisfiable() {
        assert_eq!(eval("bytes=0-", 0), Unsatisfiable);
        assert_eq!(eval("bytes=-1", 0), Unsatisfiable);
        assert_eq!(eval("bytes=0-0", 0), Unsatisfiable);
    }

    #[test]
    fn unsatisfiable_parts_are_dropped_when_others_fit() {
        assert_eq!(eval("bytes=5000-6000, 0-9", 1000), Partial(vec![r(0, 9)]));
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes=abc",
            "bytes=5-2",
            "bytes=1-2-3",
            "bytes=--1",
            "bytes=+1-2",
            "bytes=-",
            "bytes=0x10-",
            "items=0-1",
            "bytes 0-1",
            "bytes=0-1, x",
            "bytes=١-٢",
        ] {
            assert_eq!(eval(h, 1000), Full, "{h:?}");
        }
    }

    #[test]
    fn whitespace_case_and_empty_elements_are_tolerated() {
        assert_eq!(
            eval("Bytes = 0-1 ,\t, 200-201", 1000),
            Partial(vec![r(0, 1), r(200, 201)])
        );
        assert_eq!(eval("bytes=0-1,,", 1000), Partial(vec![r(0, 1)]));
    }

    #[test]
    fn multi_range_in_request_order_and_coalesced() {
        assert_eq!(
            eval("bytes=500-599,0-99", 1000),
            Partial(vec![r(500, 599), r(0, 99)])
        );
        // a merged range takes the place of its earliest member
        assert_eq!(
            eval("bytes=900-949,500-549,0-99,520-600", 1000),
            Partial(vec![r(900, 949), r(500, 600), r(0, 99)])
        );
        // overlapping
        assert_eq!(eval("bytes=0-499,100-999", 1000), Partial(vec![r(0, 999)]));
        // adjacent and within the gap
        assert_eq!(eval("bytes=0-9,10-19", 1000), Partial(vec![r(0, 19)]));
        assert_eq!(eval("bytes=0-9,50-59", 1000), Partial(vec![r(0, 59)]));
        assert_eq!(
            eval("bytes=0-9,200-209", 1000),
            Partial(vec![r(0, 9), r(200, 209)])
        );
    }

    #[test]
    fn repeated_whole_file_requests_never_amplify() {
        let h = format!("bytes={}", vec!["0-"; 500].join(","));
        assert_eq!(eval(&h, 1000), Partial(vec![r(0, 999)]));
        let h = format!("bytes={}", vec!["-1000"; 500].join(","));
        assert_eq!(eval(&h, 1000), Partial(vec![r(0, 999)]));
    }

    #[test]
    fn too_many_parts_sends_whole_file() {
        let specs: Vec<String> = (0..17)
            .map(|i| format!("{}-{}", i * 200, i * 200))
            .collect();
        let h = format!("bytes={}", specs.join(","));
        assert_eq!(eval(&h, 100_000), Full);
        let h16 = format!("bytes={}", specs[..16].join(","));
        match eval(&h16, 100_000) {
            Partial(v) => assert_eq!(v.len(), 16),
            other => panic!("expected 16 parts, got {other:?}"),
        }
    }

    #[test]
    fn too_many_specs_ignored_before_any_work() {
        let h = format!("bytes={}", vec!["0-0"; MAX_SPECS + 1].join(","));
        assert_eq!(eval(&h, 10), Full);
    }

    #[test]
    fn huge_files() {
        let five_gib = 5u64 << 30;
        assert_eq!(
            eval("bytes=5368709000-", five_gib),
            Partial(vec![r(5_368_709_000, five_gib - 1)])
        );
        assert_eq!(
            r(5_368_709_000, five_gib - 1).content_range(five_gib),
            "bytes 5368709000-5368709119/5368709120"
        );
    }

    proptest::proptest! {
        #[test]
        fn invariants_hold_for_any_input(h in ".{0,200}", len in 0u64..10_000, max in 1usize..20) {
            check_invariants(&h, len, max);
        }

        #[test]
        fn invariants_hold_for_range_shaped_input(
            specs in proptest::collection::vec((proptest::option::of(0u64..12_000), proptest::option::of(0u64..12_000)), 1..40),
            len in 0u64..10_000,
            max in 1usize..20,
        ) {
            let body: Vec<String> = specs.iter().map(|(a, b)| format!(
                "{}-{}",
                a.map(|v| v.to_string()).unwrap_or_default(),
                b.map(|v| v.to_string()).unwrap_or_default()
            )).collect();
            check_invariants(&format!("bytes={}", body.join(",")), len, max);
        }
    }

    /// The properties the fuzz target also checks.
    fn check_invariants(h: &str, len: u64, max: usize) {
        if let Partial(v) = evaluate(h, len, max) {
            assert!(!v.is_empty() && v.len() <= max);
            let mut sorted = v.clone();
            sorted.sort_by_key(|p| p.start);
            let mut total = 0u64;
            for (i, p) in sorted.iter().enumerate() {
                assert!(p.start <= p.end && p.end < len);
                if i > 0 {
                    assert!(p.start > sorted[i - 1].end + 1 + COALESCE_GAP);
                }
                total += p.len();
            }
            assert!(total <= len);
        }
    }
}
