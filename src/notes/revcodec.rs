//! How a revision's body is stored, pure: in full (a *keyframe*) or as a delta against
//! another revision's body, each either as it is or deflated, whichever is smaller.
//! `notes::revstore` picks the base and keeps the chains short; this module only turns
//! bytes into bytes and back. Measured against the alternatives in `docs/PERFORMANCE.md`
//! ("Note revision storage").
//!
//! A delta is the common prefix and suffix of base and body and what lies between them:
//! `prefix: u64 LE, suffix: u64 LE, middle bytes`. That is the exact change for the usual
//! edit (one place typed into, a line appended, a tombstone that keeps the text), costs two
//! linear scans to make and one splice to apply. Two distant changes in one save cost the
//! span between them (deflated), and a rewrite is stored as a keyframe.

use miniz_oxide::deflate::compress_to_vec;
use miniz_oxide::inflate::decompress_to_vec_with_limit;

/// The storage form of a body: the `note_revisions.body_form` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The UTF-8 text itself (every revision stored before migration 0014).
    Text = 0,
    /// The text, deflated.
    Deflated = 1,
    /// A delta against the base revision's body.
    Delta = 2,
    /// A delta, deflated.
    DeflatedDelta = 3,
}

impl Form {
    pub fn from_i64(v: i64) -> Option<Form> {
        match v {
            0 => Some(Form::Text),
            1 => Some(Form::Deflated),
            2 => Some(Form::Delta),
            3 => Some(Form::DeflatedDelta),
            _ => None,
        }
    }

    pub fn is_delta(self) -> bool {
        matches!(self, Form::Delta | Form::DeflatedDelta)
    }
}

/// A body in its storage form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub form: Form,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("stored body does not inflate")]
    Inflate,
    #[error("stored delta is malformed")]
    BadDelta,
    #[error("a delta needs its base body")]
    NoBase,
}

/// Deflate level: 1 is within a few percent of 6 on note text at a third of the time
/// (`docs/PERFORMANCE.md`), and an edit's cost is what a user waits for.
const LEVEL: u8 = 1;
/// Below this, deflate's header and block overhead leave nothing to gain.
const MIN_DEFLATE: usize = 64;
/// Nothing we stored inflates past this; a larger result means a corrupt row, not a note.
const MAX_INFLATED: usize = 256 << 20;
const HEADER: usize = 16;

/// The body as a keyframe: deflated when that is smaller.
pub fn full(body: &str) -> Encoded {
    smaller(Form::Text, Form::Deflated, body.as_bytes().to_vec())
}

/// The body as a delta against `base` (deflated when that is smaller).
pub fn delta(base: &str, body: &str) -> Encoded {
    let (a, b) = (base.as_bytes(), body.as_bytes());
    let prefix = common_prefix(a, b);
    let suffix = common_prefix_rev(&a[prefix..], &b[prefix..]);
    let middle = &b[prefix..b.len() - suffix];
    let mut data = Vec::with_capacity(HEADER + middle.len());
    data.extend_from_slice(&(prefix as u64).to_le_bytes());
    data.extend_from_slice(&(suffix as u64).to_le_bytes());
    data.extend_from_slice(middle);
    smaller(Form::Delta, Form::DeflatedDelta, data)
}

/// The body bytes `enc` stands for; `base` is the base revision's body, needed for deltas.
pub fn decode(form: Form, data: &[u8], base: Option<Vec<u8>>) -> Result<Vec<u8>, CodecError> {
    match form {
        Form::Text => Ok(data.to_vec()),
        Form::Deflated => inflate(data),
        Form::Delta => apply(base.ok_or(CodecError::NoBase)?, data),
        Form::DeflatedDelta => apply(base.ok_or(CodecError::NoBase)?, &inflate(data)?),
    }
}

/// Applies a delta in place: an append (suffix 0) moves no byte of the base.
fn apply(mut base: Vec<u8>, delta: &[u8]) -> Result<Vec<u8>, CodecError> {
    if delta.len() < HEADER {
        return Err(CodecError::BadDelta);
    }
    let num = |r: std::ops::Range<usize>| -> Result<usize, CodecError> {
        let b: [u8; 8] = delta[r].try_into().map_err(|_| CodecError::BadDelta)?;
        usize::try_from(u64::from_le_bytes(b)).map_err(|_| CodecError::BadDelta)
    };
    let (prefix, suffix) = (num(0..8)?, num(8..16)?);
    if prefix.checked_add(suffix).is_none_or(|n| n > base.len()) {
        return Err(CodecError::BadDelta);
    }
    let end = base.len() - suffix;
    base.splice(prefix..end, delta[HEADER..].iter().copied());
    Ok(base)
}

fn smaller(plain: Form, deflated: Form, data: Vec<u8>) -> Encoded {
    if data.len() >= MIN_DEFLATE {
        let packed = compress_to_vec(&data, LEVEL);
        if packed.len() < data.len() {
            return Encoded {
                form: deflated,
                data: packed,
            };
        }
    }
    Encoded { form: plain, data }
}

fn inflate(data: &[u8]) -> Result<Vec<u8>, CodecError> {
    decompress_to_vec_with_limit(data, MAX_INFLATED).map_err(|_| CodecError::Inflate)
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    // Eight bytes at a time first: a 1 MiB body is compared in well under a millisecond.
    let mut n = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        if x != y {
            break;
        }
        n += 8;
    }
    n + a[n..]
        .iter()
        .zip(&b[n..])
        .take_while(|(x, y)| x == y)
        .count()
}

fn common_prefix_rev(a: &[u8], b: &[u8]) -> usize {
    let mut n = 0;
    for (x, y) in a.rchunks_exact(8).zip(b.rchunks_exact(8)) {
        if x != y {
            break;
        }
        n += 8;
    }
    n + a[..a.len() - n]
        .iter()
        .rev()
        .zip(b[..b.len() - n].iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(base: &str, body: &str) -> Encoded {
        let d = delta(base, body);
        let back = decode(d.form, &d.data, Some(base.as_bytes().to_vec())).unwrap();
        assert_eq!(back, body.as_bytes(), "delta {base:?} -> {body:?}");
        let f = full(body);
        assert_eq!(decode(f.form, &f.data, None).unwrap(), body.as_bytes());
        d
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
        fn text(&mut self, n: usize) -> String {
            const ALPHABET: [&str; 8] = ["a", "b", " ", "\n", "é", "日本", "🎬", "z"];
            (0..n).map(|_| ALPHABET[self.below(8)]).collect()
        }
    }

    /// Random edits at char boundaries: insert, delete, replace, append, clear.
    fn edit(rng: &mut Rng, s: &str) -> String {
        let chars: Vec<char> = s.chars().collect();
        let i = rng.below(chars.len() + 1);
        let j = (i + rng.below(20)).min(chars.len());
        let before: String = chars[..i].iter().collect();
        let after: String = chars[j..].iter().collect();
        match rng.below(5) {
            0 => format!(
                "{before}{}{}",
                rng.text(10),
                chars[i..].iter().collect::<String>()
            ),
            1 => format!("{before}{after}"),
            2 => format!("{before}{}{after}", rng.text(5)),
            3 => format!("{s}{}", rng.text(30)),
            _ => String::new(),
        }
    }

    #[test]
    fn random_edits_round_trip() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut body = String::new();
        for _ in 0..3000 {
            let next = edit(&mut rng, &body);
            round(&body, &next);
            body = next;
        }
    }

    #[test]
    fn edge_cases_round_trip() {
        round("", "");
        round("", "new");
        round("old", "");
        round("same", "same");
        round("aaaa", "aa");
        round("aa", "aaaa");
        // A change inside a multi-byte character's bytes still gives the exact text back.
        round("é", "è");
        round("日本語", "日本人");
        round("🎬x", "🎥x");
    }

    #[test]
    fn a_typical_edit_costs_its_size() {
        let base: String = (0..20_000)
            .map(|i| format!("line {i} of the note\n"))
            .collect();
        let appended = format!("{base}one more line\n");
        assert!(round(&base, &appended).data.len() < 64);
        let middle = base.replacen("line 10000 ", "LINE 10000 ", 1);
        assert!(round(&base, &middle).data.len() < 64);
        // A rewrite is as large as the text (the store keeps the keyframe then).
        let rewrite = base.to_uppercase();
        assert!(round(&base, &rewrite).data.len() > full(&rewrite).data.len() / 2);
    }

    #[test]
    fn compressible_text_is_deflated_small_text_is_not() {
        let big = "the same words again ".repeat(1000);
        let f = full(&big);
        assert_eq!(f.form, Form::Deflated);
        assert!(f.data.len() < big.len() / 10);
        assert_eq!(full("short").form, Form::Text);
    }

    #[test]
    fn corrupt_data_is_an_error_not_a_panic() {
        assert_eq!(
            decode(Form::Deflated, b"\xff\xff", None),
            Err(CodecError::Inflate)
        );
        assert_eq!(
            decode(Form::Delta, b"short", Some(vec![])),
            Err(CodecError::BadDelta)
        );
        let mut d = vec![];
        d.extend_from_slice(&5u64.to_le_bytes());
        d.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            decode(Form::Delta, &d, Some(b"abc".to_vec())),
            Err(CodecError::BadDelta)
        );
        assert_eq!(decode(Form::Delta, &d, None), Err(CodecError::NoBase));
        assert_eq!(Form::from_i64(4), None);
    }
}
