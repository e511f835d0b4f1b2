//! The library's domain types: what an indexed entry is, how a listing or search is asked for
//! (`ListRequest`, with pure parsers for the `type` and `sort` words) and what it returns.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::LibraryError;
use crate::storage::MediaPath;

/// Longest search query accepted (characters).
pub const MAX_QUERY_CHARS: usize = 200;
/// Largest page a client may ask for.
pub const MAX_PER_PAGE: u32 = 1000;
pub const DEFAULT_PER_PAGE: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
        }
    }
}

/// The class of a file, from its content type; folders are `Dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaClass {
    Video,
    Audio,
    Image,
    Other,
    Dir,
}

impl MediaClass {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaClass::Video => "video",
            MediaClass::Audio => "audio",
            MediaClass::Image => "image",
            MediaClass::Other => "other",
            MediaClass::Dir => "dir",
        }
    }

    pub fn parse(s: &str) -> Option<MediaClass> {
        Some(match s {
            "video" => MediaClass::Video,
            "audio" => MediaClass::Audio,
            "image" => MediaClass::Image,
            "other" => MediaClass::Other,
            "dir" => MediaClass::Dir,
            _ => return None,
        })
    }

    pub fn of_content_type(ct: &str) -> MediaClass {
        if ct.starts_with("video/") {
            MediaClass::Video
        } else if ct.starts_with("audio/") {
            MediaClass::Audio
        } else if ct.starts_with("image/") {
            MediaClass::Image
        } else {
            MediaClass::Other
        }
    }

    /// Whether a poster thumbnail can be made from this class.
    pub fn has_poster(self) -> bool {
        matches!(self, MediaClass::Video | MediaClass::Image)
    }
}

/// Content type and class of a file named `path`.
pub fn classify(path: &MediaPath) -> (String, MediaClass) {
    let ct = crate::media_types::content_type(path.extension().as_deref());
    (ct.to_string(), MediaClass::of_content_type(ct))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Size,
    Mtime,
    Duration,
}

/// `None` key: folders first, then by name (the default); with a search, best matches first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sort {
    pub key: Option<SortKey>,
    pub descending: bool,
}

impl Sort {
    /// `name`, `-name`, `size`, `-size`, `mtime`, `-mtime`, `duration`, `-duration`.
    pub fn parse(s: &str) -> Option<Sort> {
        let (descending, word) = match s.strip_prefix('-') {
            Some(w) => (true, w),
            None => (false, s),
        };
        let key = match word {
            "name" => SortKey::Name,
            "size" => SortKey::Size,
            "mtime" => SortKey::Mtime,
            "duration" => SortKey::Duration,
            _ => return None,
        };
        Some(Sort {
            key: Some(key),
            descending,
        })
    }
}

/// A listing (no `query`, no `class`: the folder's direct children) or a search (`query`
/// and/or `class`: the whole subtree under the folder — "every video" means every video,
/// not the ones that happen to sit in this one folder).
#[derive(Debug, Clone)]
pub struct ListRequest {
    pub path: MediaPath,
    pub query: Option<String>,
    pub class: Option<MediaClass>,
    pub sort: Sort,
    /// 1-based.
    pub page: u32,
    pub per_page: u32,
}

/// Checks and normalises a search query: None for blank, an error for over-long ones.
pub fn clean_query(q: &str) -> Result<Option<String>, LibraryError> {
    let q = q.trim();
    if q.is_empty() {
        return Ok(None);
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(LibraryError::BadQuery(format!(
            "the search query is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    if q.chars().any(|c| c == '\0') {
        return Err(LibraryError::BadQuery(
            "the search query contains NUL".into(),
        ));
    }
    Ok(Some(q.to_string()))
}

/// A listing or search request exactly as a client sent it (query parameters).
#[derive(Debug, Clone, Default)]
pub struct RawList<'a> {
    pub q: Option<&'a str>,
    pub class: Option<&'a str>,
    pub sort: Option<&'a str>,
    pub page: Option<&'a str>,
    pub per_page: Option<&'a str>,
}

fn number(key: &str, v: Option<&str>, default: u32, max: u32) -> Result<u32, LibraryError> {
    let Some(v) = v else { return Ok(default) };
    match v.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(LibraryError::BadQuery(format!(
            "{key} must be a whole number from 1 to {max}"
        ))),
    }
}

impl ListRequest {
    /// Validates a client's parameters; every refusal says which parameter and why.
    pub fn parse(path: MediaPath, raw: &RawList<'_>) -> Result<ListRequest, LibraryError> {
        let class = match raw.class.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(MediaClass::parse(c).ok_or_else(|| {
                LibraryError::BadQuery("type must be one of video, audio, image, other, dir".into())
            })?),
        };
        let sort = match raw.sort.filter(|s| !s.is_empty()) {
            None => Sort::default(),
            Some(s) => Sort::parse(s).ok_or_else(|| {
                LibraryError::BadQuery(
                    "sort must be one of name, size, mtime, duration, each optionally with a \
                     leading '-' for descending"
                        .into(),
                )
            })?,
        };
        Ok(ListRequest {
            path,
            query: match raw.q {
                Some(q) => clean_query(q)?,
                None => None,
            },
            class,
            sort,
            // Pages past any plausible end would only make OFFSET walk the index.
            page: number("page", raw.page, 1, 1_000_000)?,
            per_page: number("per_page", raw.per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE)?,
        })
    }

    /// Whether this looks through the whole subtree rather than one folder's children.
    pub fn is_search(&self) -> bool {
        self.query.is_some() || self.class.is_some()
    }

    pub fn folder(path: MediaPath) -> Self {
        ListRequest {
            path,
            query: None,
            class: None,
            sort: Sort::default(),
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

/// One indexed file or folder with everything known about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub path: String,
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    pub mtime_ns: i64,
    pub content_type: Option<String>,
    pub class: MediaClass,
    pub duration: Option<f64>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub probed: bool,
    pub probe_error: Option<String>,
    /// Poster file name in `<data_dir>/thumbs/` once made.
    pub thumb: Option<String>,
    pub thumb_failed: bool,
    /// The user who uploaded or created it through streamhub (none: placed by hand).
    pub owner: Option<i64>,
}

impl Item {
    pub fn modified(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(self.mtime_ns).unwrap_or(0))
    }
}

#[derive(Debug, Clone)]
pub struct Page {
    pub path: String,
    pub entries: Vec<Item>,
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
}

impl Page {
    pub fn pages(&self) -> u64 {
        self.total.div_ceil(u64::from(self.per_page.max(1)))
    }
}

/// Nanoseconds since the epoch, as stored in `mtime_ns` (0 for times before it).
pub fn to_ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_words() {
        assert_eq!(Sort::parse("name").unwrap().key, Some(SortKey::Name));
        let s = Sort::parse("-duration").unwrap();
        assert_eq!((s.key, s.descending), (Some(SortKey::Duration), true));
        for bad in ["", "-", "--name", "Name", "size;drop", "rowid"] {
            assert!(Sort::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn classes() {
        let p = MediaPath::from_decoded("a/Film.MKV").unwrap();
        assert_eq!(classify(&p).1, MediaClass::Video);
        let p = MediaPath::from_decoded("song.flac").unwrap();
        assert_eq!(classify(&p).1, MediaClass::Audio);
        let p = MediaPath::from_decoded("notes.txt").unwrap();
        assert_eq!(classify(&p).1, MediaClass::Other);
        assert_eq!(MediaClass::parse("image"), Some(MediaClass::Image));
        assert_eq!(MediaClass::parse("movies"), None);
    }

    #[test]
    fn pages_round_up() {
        let p = Page {
            path: String::new(),
            entries: vec![],
            total: 201,
            page: 1,
            per_page: 100,
        };
        assert_eq!(p.pages(), 3);
    }
}
