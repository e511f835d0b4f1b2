//! `MediaPath`: a validated path relative to the media root. Every way a client can name a
//! file (URL path, query parameter) goes through here, so traversal is refused in one place.

use std::fmt;

use percent_encoding::percent_decode_str;

/// Longest path we accept, in bytes (Linux PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single name, in bytes (NAME_MAX).
pub const MAX_NAME_BYTES: usize = 255;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path segment '..' or '.' is not allowed")]
    DotSegment,
    #[error("empty path segment (a leading, trailing or double slash) is not allowed")]
    EmptySegment,
    #[error("encoded slash or backslash is not allowed in a name")]
    Separator,
    #[error("control characters and NUL are not allowed in a path")]
    Control,
    #[error("path is not valid UTF-8 after decoding")]
    NotUtf8,
    #[error("bad percent-encoding in path")]
    BadEncoding,
    #[error("path or name too long")]
    TooLong,
    #[error("names starting with '.streamhub' are reserved")]
    Reserved,
    #[error("name '{0}' is not allowed for a new file or folder: {1}")]
    BadNewName(String, &'static str),
}

/// Device names Windows (and so SMB clients of the same disk) cannot open, as Microsoft
/// lists them (COM/LPT with 0–9 and the superscript digits), plus the console and clock
/// devices.
const WINDOWS_RESERVED: &[&str] = &[
    "con",
    "prn",
    "aux",
    "nul",
    "com0",
    "com1",
    "com2",
    "com3",
    "com4",
    "com5",
    "com6",
    "com7",
    "com8",
    "com9",
    "com\u{b9}",
    "com\u{b2}",
    "com\u{b3}",
    "lpt0",
    "lpt1",
    "lpt2",
    "lpt3",
    "lpt4",
    "lpt5",
    "lpt6",
    "lpt7",
    "lpt8",
    "lpt9",
    "lpt\u{b9}",
    "lpt\u{b2}",
    "lpt\u{b3}",
    "conin$",
    "conout$",
    "clock$",
];

/// A relative path under the media root: zero or more plain names, no `.`/`..`, no separators
/// inside names, no control characters. The empty path is the root itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaPath {
    segments: Vec<String>,
}

impl MediaPath {
    pub fn root() -> Self {
        MediaPath {
            segments: Vec::new(),
        }
    }

    /// From the raw (still percent-encoded) URL path after `/media/`. Each segment is
    /// decoded exactly once, after splitting, so `%2F` can never become a separator.
    pub fn from_url(raw: &str) -> Result<Self, PathError> {
        if raw.len() > MAX_PATH_BYTES * 3 {
            return Err(PathError::TooLong);
        }
        if raw.is_empty() {
            return Ok(Self::root());
        }
        let mut segments = Vec::new();
        for seg in raw.split('/') {
            if !valid_escapes(seg) {
                return Err(PathError::BadEncoding);
            }
            let decoded = percent_decode_str(seg)
                .decode_utf8()
                .map_err(|_| PathError::NotUtf8)?;
            segments.push(decoded.into_owned());
        }
        Self::from_segments(segments)
    }

    /// From an already-decoded path such as a query parameter (`a/b/c`, relative to the media
    /// root; the empty string is the root). One trailing slash is tolerated; a leading slash
    /// (an absolute path) is refused like any other empty segment.
    pub fn from_decoded(path: &str) -> Result<Self, PathError> {
        let trimmed = match path.strip_suffix('/') {
            Some(t) if !t.is_empty() => t,
            _ => path,
        };
        if trimmed.is_empty() {
            return Ok(Self::root());
        }
        Self::from_segments(trimmed.split('/').map(str::to_string).collect())
    }

    /// A `path` the API was given (query parameter or JSON field): relative to the media root,
    /// where one leading slash also means the root (`/` is the root, `/films/a.mp4` is
    /// `films/a.mp4`), as a browser's breadcrumb or a pasted path would have it. Nothing can
    /// name a place outside the root this way: `//x` is still an empty segment.
    pub fn from_api(path: &str) -> Result<Self, PathError> {
        Self::from_decoded(path.strip_prefix('/').unwrap_or(path))
    }

    /// From names as storage found them (a link's real path), checked like any other.
    pub fn from_names(names: Vec<String>) -> Result<Self, PathError> {
        Self::from_segments(names)
    }

    fn from_segments(segments: Vec<String>) -> Result<Self, PathError> {
        let mut total = 0;
        for s in &segments {
            if s.is_empty() {
                return Err(PathError::EmptySegment);
            }
            if s == "." || s == ".." {
                return Err(PathError::DotSegment);
            }
            if s.contains(['/', '\\']) {
                return Err(PathError::Separator);
            }
            if s.chars().any(char::is_control) {
                return Err(PathError::Control);
            }
            if s.len() > MAX_NAME_BYTES {
                return Err(PathError::TooLong);
            }
            // Our staging area is not addressable from outside.
            if s.starts_with(".streamhub") {
                return Err(PathError::Reserved);
            }
            total += s.len() + 1;
        }
        if total > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        Ok(MediaPath { segments })
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// Some name on the way starts with '.': hidden. Never served or changed through the
    /// API (a `.env` or `.git` copied in by hand stays private), like the listings' rule.
    pub fn is_hidden(&self) -> bool {
        self.segments.iter().any(|s| s.starts_with('.'))
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Last name, if not the root.
    pub fn name(&self) -> Option<&str> {
        self.segments.last().map(String::as_str)
    }

    /// Lower-cased extension of the last name, for content types.
    pub fn extension(&self) -> Option<String> {
        let name = self.name()?;
        let (stem, ext) = name.rsplit_once('.')?;
        if stem.is_empty() {
            return None;
        }
        Some(ext.to_ascii_lowercase())
    }

    /// Parent folder and last name; None for the root.
    pub fn split_last(&self) -> Option<(MediaPath, &str)> {
        let (last, parent) = self.segments.split_last()?;
        Some((
            MediaPath {
                segments: parent.to_vec(),
            },
            last.as_str(),
        ))
    }

    /// The path a new file or folder gets: every name in Unicode NFC (so "é" typed on a Mac
    /// and on Linux is one file), and every name on the way must be one every client can use
    /// — no leading dot (hidden), no trailing dot or space, no Windows device name — since
    /// folders on the way may be created too (a hidden folder would be readable by URL yet
    /// missing from every listing).
    pub fn for_create(&self) -> Result<MediaPath, PathError> {
        use unicode_normalization::UnicodeNormalization;
        let segments: Vec<String> = self.segments.iter().map(|s| s.nfc().collect()).collect();
        let normalized = Self::from_segments(segments)?;
        if normalized.is_root() {
            return Err(PathError::BadNewName(
                String::new(),
                "the media root exists already",
            ));
        }
        for name in normalized.segments() {
            check_new_name(name)?;
        }
        Ok(normalized)
    }

    /// `self/name` when `name` is a plain name.
    pub fn join(&self, name: &str) -> Result<Self, PathError> {
        let mut segments = self.segments.clone();
        segments.push(name.to_string());
        Self::from_segments(segments)
    }
}

impl fmt::Display for MediaPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("/"))
    }
}

/// A name every client can use for something new.
fn check_new_name(name: &str) -> Result<(), PathError> {
    let bad = |why| Err(PathError::BadNewName(name.to_string(), why));
    if name.starts_with('.') {
        return bad("names starting with '.' would be hidden");
    }
    // Any white space, not only ' ': a no-break or ideographic space looks the same.
    if name.ends_with('.') || name.ends_with(char::is_whitespace) {
        return bad("names ending in '.' or a space break Windows clients");
    }
    if name.starts_with(char::is_whitespace) {
        return bad("names starting with a space are lost by many clients");
    }
    if name.chars().any(invisible) {
        return bad("invisible or direction-changing characters make names look like others");
    }
    // Windows ignores spaces before the extension: "nul .txt" is the device too.
    let stem = name
        .split('.')
        .next()
        .unwrap_or("")
        .trim_end_matches(' ')
        .to_lowercase();
    if WINDOWS_RESERVED.contains(&stem.as_str()) {
        return bad("a reserved device name on Windows");
    }
    Ok(())
}

/// Characters that do not show, reorder what follows (a "gpj.exe" shown as "exe.jpg"), or
/// look like a slash: a name with one looks like another name.
pub(crate) fn invisible(c: char) -> bool {
    // Joiners (U+200C, U+200D) and variation selectors stay: scripts and emoji need them.
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{180E}' | '\u{200B}'
        | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF9}'..='\u{FFFB}' | '\u{2044}' | '\u{2215}' | '\u{29F8}' | '\u{FF0F}'
        | '\u{FF3C}' | '\u{034F}' | '\u{17B4}' | '\u{17B5}' | '\u{2028}' | '\u{2029}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}'
        | '\u{2571}' | '\u{27CB}' | '\u{1735}' | '\u{2041}' | '\u{2F03}' | '\u{3033}'
        | '\u{1D23A}' | '\u{29F5}' | '\u{2216}' | '\u{FE68}')
}

/// Every `%` must start a two-hex-digit escape; `%zz` is refused rather than passed through.
fn valid_escapes(seg: &str) -> bool {
    let b = seg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths() {
        let p = MediaPath::from_url("films/My%20Film.mkv").unwrap();
        assert_eq!(p.segments(), ["films", "My Film.mkv"]);
        assert_eq!(p.extension().as_deref(), Some("mkv"));
        assert_eq!(p.to_string(), "films/My Film.mkv");
        assert!(MediaPath::from_url("").unwrap().is_root());
        let u = MediaPath::from_url("%C3%A9t%C3%A9/%E6%97%A5.mp4").unwrap();
        assert_eq!(u.segments(), ["été", "日.mp4"]);
    }

    #[test]
    fn api_paths_may_start_at_the_root() {
        assert!(MediaPath::from_api("/").unwrap().is_root());
        assert!(MediaPath::from_api("").unwrap().is_root());
        assert_eq!(
            MediaPath::from_api("/etc/passwd").unwrap().to_string(),
            "etc/passwd"
        );
        assert_eq!(MediaPath::from_api("films/").unwrap().to_string(), "films");
        for bad in ["//etc", "/../x", "/a//b", "/.."] {
            assert!(MediaPath::from_api(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn traversal_refused() {
        use PathError::*;
        for (raw, err) in [
            ("..", DotSegment),
            ("../etc/passwd", DotSegment),
            ("a/../../etc", DotSegment),
            ("%2e%2e/%2e%2e/etc/passwd", DotSegment),
            ("%2E%2E", DotSegment),
            ("./a", DotSegment),
            ("a%2Fb", Separator),
            ("..%2f..%2fsecret", Separator),
            ("a%5Cb", Separator),
            ("a\\b", Separator),
            ("%00", Control),
            ("a%0Ab", Control),
            ("/etc/passwd", EmptySegment),
            ("a//b", EmptySegment),
            ("a/", EmptySegment),
            ("%ff", NotUtf8),
            ("%zz", BadEncoding),
            ("a%", BadEncoding),
            ("a%2", BadEncoding),
        ] {
            assert_eq!(MediaPath::from_url(raw), Err(err), "{raw}");
        }
    }

    #[test]
    fn decoding_happens_once() {
        // %252e decodes to the literal name "%2e", which is a harmless file name.
        let p = MediaPath::from_url("%252e%252e").unwrap();
        assert_eq!(p.segments(), ["%2e%2e"]);
    }

    #[test]
    fn decoded_form() {
        assert!(MediaPath::from_decoded("").unwrap().is_root());
        assert_eq!(
            MediaPath::from_decoded("a/b/").unwrap().segments(),
            ["a", "b"]
        );
        assert_eq!(MediaPath::from_decoded("/"), Err(PathError::EmptySegment));
        assert_eq!(
            MediaPath::from_decoded("/etc"),
            Err(PathError::EmptySegment)
        );
        assert_eq!(MediaPath::from_decoded("../"), Err(PathError::DotSegment));
        assert_eq!(
            MediaPath::from_decoded("a\\..\\b"),
            Err(PathError::Separator)
        );
        assert_eq!(
            MediaPath::from_decoded("//etc"),
            Err(PathError::EmptySegment)
        );
    }

    #[test]
    fn staging_is_not_addressable() {
        assert_eq!(
            MediaPath::from_url(".streamhub-staging/x.part"),
            Err(PathError::Reserved)
        );
        assert_eq!(
            MediaPath::from_decoded("a/.streamhub-staging"),
            Err(PathError::Reserved)
        );
    }

    #[test]
    fn new_names() {
        let ok = MediaPath::from_decoded("films/<img src=x onerror=alert(1)>.mp4").unwrap();
        assert!(ok.for_create().is_ok());
        // NFD "é" (e + combining acute) becomes NFC
        let nfd = MediaPath::from_decoded("cafe\u{301}.txt").unwrap();
        assert_eq!(nfd.for_create().unwrap().name(), Some("caf\u{e9}.txt"));
        for bad in [
            ".hidden",
            "trail.",
            "trail ",
            "CON",
            "con.txt",
            "lpt1.mp4",
            // every name on the way, not only the last
            ".hidden/x.txt",
            "CON/x.txt",
            "trail./x.txt",
            "a/.hid/sub",
            "a/b /c",
            "COM0",
            "lpt0.txt",
            "COM\u{b9}",
            "LPT\u{b3}.txt",
            "CONIN$",
            "conout$.log",
            "CLOCK$",
            "nul .txt",
            "con .txt",
            // not portable, or looks like another name
            " lead",
            "nbsp\u{A0}",
            "wide\u{3000}",
            "\u{2003}em",
            "invoice\u{202E}fdp.exe",
            "zero\u{200B}width",
            "bom\u{FEFF}",
            "x\u{FF0F}..\u{FF0F}y",
            "dir/x\u{2215}y",
            "line\u{2028}sep",
            "a\u{2571}b",
            "tag\u{E0041}",
        ] {
            let p = MediaPath::from_decoded(bad).unwrap();
            assert!(
                matches!(p.for_create(), Err(PathError::BadNewName(..))),
                "{bad}"
            );
        }
        // Scripts and emoji that need joiners and variation selectors are fine.
        for good in [
            "famille \u{1F468}\u{200D}\u{1F469}.jpg",
            "\u{2764}\u{FE0F}.mp3",
            "میخواهم\u{200C}ها.txt",
        ] {
            assert!(
                MediaPath::from_decoded(good).unwrap().for_create().is_ok(),
                "{good}"
            );
        }
        assert!(MediaPath::root().for_create().is_err());
        let (parent, name) = MediaPath::from_decoded("a/b/c")
            .unwrap()
            .split_last()
            .map(|(p, n)| (p, n.to_string()))
            .unwrap();
        assert_eq!(
            (parent.to_string(), name.as_str()),
            ("a/b".to_string(), "c")
        );
    }

    #[test]
    fn length_limits() {
        let long = "a".repeat(256);
        assert_eq!(MediaPath::from_url(&long), Err(PathError::TooLong));
        let deep = vec!["abcdefgh"; 600].join("/");
        assert_eq!(MediaPath::from_url(&deep), Err(PathError::TooLong));
    }

    #[test]
    fn extension_rules() {
        assert_eq!(MediaPath::from_url(".bashrc").unwrap().extension(), None);
        assert_eq!(MediaPath::from_url("noext").unwrap().extension(), None);
        assert_eq!(
            MediaPath::from_url("A.B.MP4")
                .unwrap()
                .extension()
                .as_deref(),
            Some("mp4")
        );
    }
}
