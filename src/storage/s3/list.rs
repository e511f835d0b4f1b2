//! Listing and looking up: ListObjectsV2 with delimiter `/` (folders are common prefixes,
//! paged by continuation token), HEAD for files. A folder exists when anything is under its
//! prefix (a marker object included).

use std::time::SystemTime;

use ::http::Method;

use super::{dir_entry, file_entry, read, xml, Inner};
use crate::storage::{Entry, EntryKind, Listing, MediaPath, StorageError};

/// Most keys asked for per page (S3's own maximum).
const PAGE: usize = 1000;
/// Most entries one listing holds in memory; a larger folder is refused rather than
/// exhausting a small box.
const MAX_ENTRIES: usize = 200_000;

/// One page: object keys with (size, modified), and common prefixes.
pub(super) struct Page {
    pub files: Vec<(String, u64, SystemTime)>,
    pub dirs: Vec<String>,
    pub next: Option<String>,
}

impl Inner {
    pub(super) async fn page(
        &self,
        prefix: &str,
        delimiter: bool,
        max: usize,
        token: Option<&str>,
    ) -> Result<Page, StorageError> {
        let max = max.to_string();
        let mut query = vec![("list-type", "2"), ("max-keys", max.as_str())];
        if !prefix.is_empty() {
            query.push(("prefix", prefix));
        }
        if delimiter {
            query.push(("delimiter", "/"));
        }
        if let Some(t) = token {
            query.push(("continuation-token", t));
        }
        let url = self.url(&Method::GET, "", &query, &[]);
        let a = self.send("list", Method::GET, &url, &[]).await?;
        if !a.status.is_success() {
            return Err(match self.http.error("list", a).await {
                StorageError::NotFound => self
                    .http
                    .error_of(::http::StatusCode::NOT_FOUND, "NoSuchBucket"),
                e => e,
            });
        }
        let body = self.http.small_body("list", a.body).await?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| StorageError::Io("the S3 listing is not UTF-8".into()))?;
        let files = xml::elements(text, "Contents")
            .into_iter()
            .filter_map(|c| {
                let key = xml::field(c, "Key")?;
                let size = xml::field(c, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let modified = xml::field(c, "LastModified")
                    .map(|t| read::parse_listing_time(&t))
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                Some((key, size, modified))
            })
            .collect();
        let dirs = xml::elements(text, "CommonPrefixes")
            .into_iter()
            .filter_map(|p| xml::field(p, "Prefix"))
            .collect();
        // Only a truncated answer has a next page (some servers send an empty token).
        let truncated = xml::field(text, "IsTruncated").as_deref() == Some("true");
        let next = xml::field(text, "NextContinuationToken").filter(|t| truncated && !t.is_empty());
        Ok(Page { files, dirs, next })
    }

    /// The first page of keys under `prefix` (recursively), for deleting a folder page by page.
    pub(super) async fn key_page(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let page = self.page(prefix, false, PAGE, None).await?;
        Ok(page.files.into_iter().map(|(k, _, _)| k).collect())
    }

    /// Every key under `prefix` (recursively) with its size, for moving a folder.
    pub(super) async fn keys_under(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.page(prefix, false, PAGE, token.as_deref()).await?;
            keys.extend(page.files.into_iter().map(|(k, size, _)| (k, size)));
            if keys.len() > MAX_ENTRIES {
                return Err(StorageError::Io(format!(
                    "more than {MAX_ENTRIES} objects under '{prefix}'"
                )));
            }
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(keys),
            }
        }
    }

    /// Whether anything (a marker included) is under folder `dir`'s prefix.
    pub(super) async fn dir_exists(&self, dir: &MediaPath) -> Result<bool, StorageError> {
        if dir.is_root() {
            return Ok(true);
        }
        let p = self.page(&self.dir_key(dir), false, 1, None).await?;
        Ok(!p.files.is_empty() || !p.dirs.is_empty())
    }

    pub(super) async fn stat(&self, path: &MediaPath) -> Result<Option<Entry>, StorageError> {
        if path.is_hidden() {
            return Ok(None);
        }
        if path.is_root() {
            return Ok(Some(dir_entry("", SystemTime::UNIX_EPOCH)));
        }
        if let Some(meta) = self.head(&self.key(path)).await? {
            return Ok(Some(file_entry(path, &meta)));
        }
        let dk = self.dir_key(path);
        let p = self.page(&dk, false, 1, None).await?;
        if p.files.is_empty() && p.dirs.is_empty() {
            return Ok(None);
        }
        // The marker's time when the first key is the marker; S3 keeps no folder times.
        let modified = p
            .files
            .first()
            .filter(|(k, _, _)| *k == dk)
            .map(|(_, _, t)| *t)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(Some(dir_entry(path.name().unwrap_or(""), modified)))
    }

    pub(super) async fn list(&self, dir: &MediaPath) -> Result<Listing, StorageError> {
        if dir.is_hidden() {
            return Err(StorageError::NotFound);
        }
        let dk = self.dir_key(dir);
        let mut entries = Vec::new();
        let mut hidden = false;
        let mut left_out = Vec::new();
        let mut seen_any = false;
        let mut marker_time = SystemTime::UNIX_EPOCH;
        let mut token: Option<String> = None;
        loop {
            let page = self.page(&dk, true, PAGE, token.as_deref()).await?;
            seen_any |= !page.files.is_empty() || !page.dirs.is_empty();
            for (key, size, modified) in page.files {
                let name = &key[dk.len().min(key.len())..];
                if name.is_empty() {
                    marker_time = modified;
                    continue;
                }
                match visible(dir, name) {
                    true => entries.push(Entry {
                        name: name.to_string(),
                        kind: EntryKind::File,
                        size,
                        modified,
                        via_link: false,
                        id: None,
                    }),
                    false => {
                        hidden = true;
                        if crate::storage::reportable(name) {
                            left_out.push(name.to_string());
                        }
                    }
                }
            }
            for p in page.dirs {
                let name = p[dk.len().min(p.len())..].trim_end_matches('/');
                match visible(dir, name) {
                    true => entries.push(dir_entry(name, SystemTime::UNIX_EPOCH)),
                    false => {
                        hidden = true;
                        if crate::storage::reportable(name) {
                            left_out.push(format!("{name}/"));
                        }
                    }
                }
            }
            if entries.len() > MAX_ENTRIES {
                return Err(StorageError::Io(format!(
                    "folder '{dir}' holds more than {MAX_ENTRIES} entries"
                )));
            }
            match page.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        if !seen_any && !dir.is_root() {
            return Err(match self.head(&self.key(dir)).await? {
                Some(_) => StorageError::NotADirectory,
                None => StorageError::NotFound,
            });
        }
        // A name both a file and a folder prefix (possible in S3, impossible on disk) shows
        // as the folder; the file stays reachable by its path.
        entries.sort_by(|a, b| {
            (a.kind != EntryKind::Dir, &a.name).cmp(&(b.kind != EntryKind::Dir, &b.name))
        });
        entries.dedup_by(|b, a| a.name == b.name);
        Ok(Listing {
            dir: dir_entry(dir.name().unwrap_or(""), marker_time),
            entries,
            hidden,
            left_out,
        })
    }
}

/// A name the listing shows: not hidden, and one a `MediaPath` can carry (S3 keys may hold
/// anything, including `//` and names no client could address).
fn visible(dir: &MediaPath, name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && dir.join(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_keys_are_hidden() {
        let root = MediaPath::root();
        assert!(visible(&root, "film.mp4"));
        assert!(!visible(&root, ".streamhub-staging"));
        assert!(!visible(&root, ""));
        assert!(
            !visible(&root, "a/b"),
            "a key with an empty folder name (a//b)"
        );
    }
}
