//! A folder as a zip archive, built while it is sent. [`zip_folder`] checks the folder first
//! (a missing folder, a file, a hidden name or an unavailable root is an error before
//! anything is sent) and returns a byte stream that walks the folder through [`Storage`] —
//! one listing at a time, one open file at a time, in the storage's own chunks — framed by
//! `cerniera`: STORE (media is already compressed, and a Pi's CPU is slow), data descriptors
//! (no seeking back), Zip64 records only where a size, an offset or the entry count needs
//! them, UTF-8 names (flag bit 11) relative to the folder, mtimes from storage.
//!
//! Invariant: media is reached only through `Storage` (`list`, `open`, `read_range`), so a
//! second backend zips the same way; nothing here touches a filesystem path.
//! Invariant: memory does not grow with the bytes sent: the stream is pulled by the
//! consumer, and a file's bytes go from storage to the consumer chunk by chunk, unbuffered
//! (no read-ahead here beyond the storage's own). What does grow is per-entry metadata
//! (~200 bytes an entry at the end), hence [`MAX_ENTRIES`].
//! Invariant: a failure after the first byte ends the stream with an error, never with a
//! shorter archive that looks whole; dropping the stream stops the walk and closes the file.

use std::borrow::Cow;
use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cerniera::{FileTimes, InvalidZipPath, MsDosDateTime, ZipEntry, ZipPath, ZipWriter};
use futures_util::{Stream, TryStreamExt};

use crate::storage::{Entry, EntryKind, MediaPath, PathError, Storage, StorageError};

/// Folders deeper than this below the zipped folder end the archive with an error (the
/// scanner's own depth bound); a link cannot make a walk deep, as links are not entered.
pub const MAX_DEPTH: usize = 64;

/// More entries than this end the archive with an error: every entry's central-directory
/// record is kept until the end (about 200 bytes with its name, so this caps that at about
/// 40 MiB per download on a 1 GiB board). Past 65,535 entries the archive is Zip64.
pub const MAX_ENTRIES: u64 = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Path(#[from] PathError),
    /// The path names a file: it is downloaded from `/media/`, not zipped.
    #[error("not a folder")]
    NotAFolder,
    /// A folder or file inside failed (to list, open or read) once the archive had begun.
    #[error("{path}: {source}")]
    Entry { path: String, source: StorageError },
    #[error("more than {MAX_ENTRIES} files and folders")]
    TooManyEntries,
    #[error("folders nested more than {MAX_DEPTH} deep")]
    TooDeep,
    /// A name the zip format cannot carry (never expected: names are checked by `MediaPath`).
    #[error("cannot name '{0}' in a zip archive")]
    Name(String),
}

/// The archive's bytes, in order; an `Err` item means the archive is broken off there.
pub type ZipStream = Pin<Box<dyn Stream<Item = Result<Bytes, ZipError>> + Send>>;

type Content = Pin<Box<dyn Stream<Item = Result<Bytes, ZipError>> + Send>>;

/// Starts zipping `dir`: checks it is a visible folder (listing it), then returns the stream
/// that walks and reads the rest as it is consumed.
pub async fn zip_folder(storage: Arc<dyn Storage>, dir: &MediaPath) -> Result<ZipStream, ZipError> {
    if dir.is_hidden() {
        return Err(StorageError::NotFound.into());
    }
    let listing = match storage.list(dir).await {
        Ok(l) => l,
        // A file, or a path through one: only the first is "not a folder".
        Err(StorageError::NotADirectory) => {
            return Err(match storage.stat(dir).await? {
                Some(e) if e.kind == EntryKind::File => ZipError::NotAFolder,
                _ => StorageError::NotFound.into(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let mut walk = Walk {
        storage,
        stack: Vec::new(),
        visited: HashSet::new(),
        count: 0,
    };
    if let Some(id) = listing.dir.id {
        walk.visited.insert(id);
    }
    walk.stack.push(Level {
        dir: dir.clone(),
        prefix: String::new(),
        depth: 0,
        entries: listing.entries.into_iter(),
    });
    let entries = futures_util::stream::try_unfold(walk, |mut walk| async move {
        Ok(walk.next().await?.map(|entry| (entry, walk)))
    });
    Ok(Box::pin(ZipWriter::new(entries)))
}

/// One folder being walked: what is left of its listing.
struct Level {
    dir: MediaPath,
    /// Its path inside the archive, with a trailing `/` (empty for the zipped folder).
    prefix: String,
    depth: usize,
    entries: std::vec::IntoIter<Entry>,
}

/// A depth-first walk (each folder's entry, then what it holds), listing a folder only
/// when its turn comes.
struct Walk {
    storage: Arc<dyn Storage>,
    stack: Vec<Level>,
    /// Folders entered, by backend identity: a bind mount met twice is not entered twice.
    visited: HashSet<(u64, u64)>,
    count: u64,
}

impl Walk {
    async fn next(&mut self) -> Result<Option<ZipEntry<Content>>, ZipError> {
        loop {
            let Some(level) = self.stack.last_mut() else {
                return Ok(None);
            };
            let Some(entry) = level.entries.next() else {
                self.stack.pop();
                continue;
            };
            // Listings show no hidden names; this is the rule itself, whatever the backend.
            if entry.name.starts_with('.') {
                continue;
            }
            self.count += 1;
            if self.count > MAX_ENTRIES {
                return Err(ZipError::TooManyEntries);
            }
            let path = level.dir.join(&entry.name)?;
            let name = format!("{}{}", level.prefix, zip_name(&entry.name));
            let depth = level.depth + 1;
            match entry.kind {
                EntryKind::Dir => {
                    // A link to a folder is listed, never entered (as the scanner does): it
                    // shows as an empty folder, and nothing is read twice or in a loop.
                    let enter =
                        !entry.via_link && entry.id.is_none_or(|id| self.visited.insert(id));
                    if enter {
                        if depth > MAX_DEPTH {
                            return Err(ZipError::TooDeep);
                        }
                        let listing = self.storage.list(&path).await.map_err(at(&path))?;
                        self.stack.push(Level {
                            dir: path,
                            prefix: format!("{name}/"),
                            depth,
                            entries: listing.entries.into_iter(),
                        });
                    }
                    let zpath = zip_path(format!("{name}/"))?;
                    let entry = ZipEntry::directory(zpath, file_times(entry.modified))
                        .map_err(name_error)?;
                    return Ok(Some(entry));
                }
                EntryKind::File => {
                    // Size and mtime from the open file: the bytes sent are that version's.
                    let object = self.storage.open(&path).await.map_err(at(&path))?;
                    let meta = object.meta();
                    let times = file_times(meta.modified);
                    let content: Content =
                        Box::pin(object.read_range(0..meta.size).map_err(at(&path)));
                    let entry =
                        ZipEntry::file(zip_path(name)?, times, content).map_err(name_error)?;
                    return Ok(Some(entry));
                }
            }
        }
    }
}

/// What failed, and where (relative to the media root, as the log names files).
fn at(path: &MediaPath) -> impl Fn(StorageError) -> ZipError {
    let path = path.to_string();
    move |source| ZipError::Entry {
        path: path.clone(),
        source,
    }
}

fn zip_path(name: String) -> Result<ZipPath, ZipError> {
    ZipPath::new(name).map_err(name_error)
}

fn name_error(e: InvalidZipPath) -> ZipError {
    ZipError::Name(e.into_inner().into_owned())
}

/// A name as the archive carries it. `:` is legal on Linux but names a drive or an NTFS
/// stream to Windows extractors, so zip writers refuse it; it becomes U+FF1A (fullwidth
/// colon), which looks the same and every system can store.
pub fn zip_name(name: &str) -> Cow<'_, str> {
    if name.contains(':') {
        Cow::Owned(name.replace(':', "\u{FF1A}"))
    } else {
        Cow::Borrowed(name)
    }
}

/// 1980-01-01T00:00:00Z and 2107-12-31T23:59:58Z: what MS-DOS date fields can hold.
const DOS_FIRST: u64 = 315_532_800;
const DOS_LAST: u64 = 4_354_819_198;

/// An entry's times: the MS-DOS fields in UTC (clamped to their range), and the exact
/// second as the Unix extended-timestamp field where it fits (1970–2106), which Info-ZIP
/// and most extractors prefer.
pub fn file_times(t: SystemTime) -> FileTimes {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, mo, d, h, mi, s) = civil_utc(secs.clamp(DOS_FIRST, DOS_LAST));
    let dos = MsDosDateTime::new(y, mo, d, h, mi, s).unwrap_or_default();
    match u32::try_from(secs) {
        Ok(unix) => FileTimes::new(dos, unix),
        Err(_) => FileTimes::dos_only(dos),
    }
}

/// Seconds since 1970 (at most year 2107) as UTC year, month, day, hour, minute, second
/// (Howard Hinnant's days-to-civil).
fn civil_utc(secs: u64) -> (u16, u16, u16, u16, u16, u16) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let n = |v: u64| u16::try_from(v).unwrap_or(u16::MAX);
    (
        n(year),
        n(month),
        n(day),
        n(rem / 3600),
        n(rem % 3600 / 60),
        n(rem % 60),
    )
}

#[cfg(test)]
#[path = "zip_tests.rs"]
mod tests;
