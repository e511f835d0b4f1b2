//! Subtitles for the player: which files beside a video are its subtitle tracks
//! ([`sidecar`]), and their text as WebVTT, the only format browsers' `<track>` reads
//! ([`to_webvtt`]: SubRip converted, WebVTT checked and passed through). Pure functions over
//! names and bytes: no I/O, no panics on any input (fuzzed: `fuzz/fuzz_targets/srt.rs`).
//!
//! Text that is not UTF-8 is decoded as Windows-1252 (what most old `.srt` files are in);
//! UTF-16 with a byte-order mark is understood too.

/// The largest subtitle file served (bytes); larger ones are refused, not truncated.
pub const MAX_BYTES: u64 = 2 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Srt,
    Vtt,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Srt => "srt",
            Format::Vtt => "vtt",
        }
    }

    /// The format a file name's extension says (case-insensitive).
    pub fn of(name: &str) -> Option<Format> {
        let (stem, ext) = name.rsplit_once('.')?;
        if stem.is_empty() {
            return None;
        }
        if ext.eq_ignore_ascii_case("srt") {
            Some(Format::Srt)
        } else if ext.eq_ignore_ascii_case("vtt") {
            Some(Format::Vtt)
        } else {
            None
        }
    }
}

/// A subtitle file found beside a video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// The subtitle file's name (in the video's folder).
    pub name: String,
    /// What a player shows: the language tag, the extra part of the name, or the stem.
    pub label: String,
    /// A language tag when the name carries one (`movie.en.srt`, `movie.pt-BR.srt`).
    pub lang: Option<String>,
    pub format: Format,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubtitleError {
    #[error("a .vtt file must start with WEBVTT")]
    NotWebVtt,
}

/// Whether `s` looks like a BCP 47 language tag: a 2–3 letter language, then subtags of
/// 2–8 letters or digits (`en`, `pt-BR`, `zh-Hant`, `es-419`).
fn is_lang(s: &str) -> bool {
    let mut parts = s.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok
        && parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The track `candidate` is for the video named `video`, if it is one: same stem, then
/// optionally `.<something>`, then `.srt` or `.vtt` (`movie.srt`, `movie.en.vtt`,
/// `movie.pt-BR.srt`, `movie.forced.srt`).
pub fn sidecar(video: &str, candidate: &str) -> Option<Track> {
    let (stem, _) = video.rsplit_once('.').filter(|(s, _)| !s.is_empty())?;
    let format = Format::of(candidate)?;
    let (base, _) = candidate.rsplit_once('.')?;
    let rest = base.strip_prefix(stem)?;
    let (label, lang) = if rest.is_empty() {
        (stem.to_string(), None)
    } else {
        let extra = rest.strip_prefix('.').filter(|e| !e.is_empty())?;
        let lang = is_lang(extra).then(|| extra.to_string());
        (extra.to_string(), lang)
    };
    Some(Track {
        name: candidate.to_string(),
        label,
        lang,
        format,
    })
}

/// Windows-1252's 0x80–0x9F; the five holes map to the same C1 code point (as browsers do).
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

fn cp1252(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => CP1252_HIGH[usize::from(b - 0x80)],
            _ => char::from(b),
        })
        .collect()
}

fn utf16(bytes: &[u8], little: bool) -> String {
    let units = bytes.chunks_exact(2).map(|c| {
        if little {
            u16::from_le_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], c[1]])
        }
    });
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// Subtitle bytes as text: UTF-8 (a BOM dropped), UTF-16 with a BOM, else Windows-1252.
pub fn decode(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8_lossy(rest).into_owned();
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return utf16(rest, true);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return utf16(rest, false);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => cp1252(bytes),
    }
}

/// A file's bytes as WebVTT text: SubRip converted, WebVTT checked (it must start with
/// `WEBVTT`) and passed through decoded.
pub fn to_webvtt(format: Format, bytes: &[u8]) -> Result<String, SubtitleError> {
    let text = decode(bytes);
    match format {
        Format::Srt => Ok(srt_to_vtt(&text)),
        Format::Vtt => {
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            let rest = text
                .strip_prefix("WEBVTT")
                .ok_or(SubtitleError::NotWebVtt)?;
            match rest.chars().next() {
                None | Some(' ' | '\t' | '\n' | '\r') => Ok(text.to_string()),
                Some(_) => Err(SubtitleError::NotWebVtt),
            }
        }
    }
}

/// `H:MM:SS,mmm` (or `.mmm`, or without hours) as WebVTT's `HH:MM:SS.mmm`.
fn timestamp(s: &str) -> Option<String> {
    let s = s.trim();
    let (clock, frac) = match s.rsplit_once([',', '.']) {
        Some((c, f)) => (c, f),
        None => (s, "0"),
    };
    let digits = |p: &str| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(frac) {
        return None;
    }
    let parts: Vec<&str> = clock.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [h, m, s] => (*h, *m, *s),
        [m, s] => ("0", *m, *s),
        _ => return None,
    };
    if !(digits(h) && digits(m) && digits(sec)) {
        return None;
    }
    let (h, m, sec): (u64, u64, u64) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?);
    if m >= 60 || sec >= 60 {
        return None;
    }
    // A fraction: "5" is 500 ms, "1234" is 123 ms.
    let mut ms: String = frac.chars().take(3).collect();
    while ms.len() < 3 {
        ms.push('0');
    }
    Some(format!("{h:02}:{m:02}:{sec:02}.{ms}"))
}

/// A SubRip timing line (`00:00:01,600 --> 00:00:04,200`, maybe with SRT's position
/// extras after it) as a WebVTT one.
fn timing(line: &str) -> Option<String> {
    let (a, b) = line.split_once("-->")?;
    let start = timestamp(a)?;
    let end = timestamp(b.split_whitespace().next()?)?;
    Some(format!("{start} --> {end}"))
}

fn is_number(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())
}

/// SubRip text as WebVTT: a header, each cue's number kept as its identifier, commas in
/// timestamps made dots, any line ending (CRLF, CR, LF) read, missing blank lines between
/// cues tolerated, anything before the first timing line dropped. Cue text is kept as it is
/// (`<i>`, `<b>` are WebVTT tags too), except that `-->` cannot appear in it (`--&gt;`).
pub fn srt_to_vtt(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = normalized.split('\n').collect();
    let mut out = String::with_capacity(normalized.len() + 16);
    out.push_str("WEBVTT\n");
    let mut in_cue = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        // A cue starts at a timing line, or at a number whose next line is one.
        let (id, time) = if let Some(t) = timing(line) {
            (None, Some(t))
        } else if is_number(line) {
            match lines.get(i + 1).and_then(|l| timing(l)) {
                Some(t) => {
                    i += 1;
                    (Some(line.trim()), Some(t))
                }
                None => (None, None),
            }
        } else {
            (None, None)
        };
        if let Some(t) = time {
            out.push('\n');
            if let Some(id) = id {
                out.push_str(id);
                out.push('\n');
            }
            out.push_str(&t);
            out.push('\n');
            in_cue = true;
        } else if line.trim().is_empty() {
            in_cue = false;
        } else if in_cue {
            // `>` as its character reference: the text shows the same, and no arrow is left.
            out.push_str(&line.replace("-->", "--&gt;"));
            out.push('\n');
        }
        i += 1;
    }
    out
}

#[cfg(test)]
#[path = "subtitles_tests.rs"]
mod tests;
