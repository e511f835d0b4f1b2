//! What storage says, as the index sees it: a folder's visible entries with the size and
//! mtime the index compares, which folders a walk may enter, and when a folder's mtime can be
//! trusted as "nothing changed since".

use std::time::{SystemTime, UNIX_EPOCH};

use super::model::{to_ns, Kind};
use super::LibraryError;
use crate::storage::{Entry, EntryKind, Listing, MediaPath, StorageError};

/// One visible entry of a folder.
#[derive(Debug, Clone)]
pub struct DiskEntry {
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    pub mtime_ns: i64,
    /// A real folder the scanner may walk into; never one reached through a link (it is
    /// listed and refreshed on demand but not walked, so links can never make the walk loop
    /// or index something twice).
    pub walk: bool,
    /// The backend's identity of a folder (device, inode), for loop detection across bind
    /// mounts.
    pub id: Option<(u64, u64)>,
}

impl From<Entry> for DiskEntry {
    fn from(e: Entry) -> Self {
        let kind = match e.kind {
            EntryKind::Dir => Kind::Dir,
            EntryKind::File => Kind::File,
        };
        DiskEntry {
            name: e.name,
            kind,
            size: if kind == Kind::Dir { 0 } else { e.size },
            mtime_ns: to_ns(e.modified),
            walk: kind == Kind::Dir && !e.via_link,
            id: e.id,
        }
    }
}

/// A folder's entries and its own mtime.
pub fn entries(listing: Listing) -> (Vec<DiskEntry>, i64) {
    let mtime = to_ns(listing.dir.modified);
    (
        listing.entries.into_iter().map(DiskEntry::from).collect(),
        mtime,
    )
}

/// A folder's mtime is only trusted as "nothing changed since" when it is not in the current
/// coarse clock tick: an entry added in the same tick as our read would leave the mtime as
/// it was (git's racy-timestamp problem). Recent mtimes are not recorded, so the next
/// listing reads the folder again.
pub fn trusted_mtime(mtime_ns: i64) -> Option<i64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    (now.saturating_sub(mtime_ns) > 2_000_000_000).then_some(mtime_ns)
}

impl From<StorageError> for LibraryError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound | StorageError::IsDirectory => LibraryError::NotFound,
            StorageError::NotADirectory => LibraryError::NotADirectory,
            StorageError::OutsideRoot => LibraryError::OutsideRoot,
            StorageError::PermissionDenied | StorageError::PermissionDeniedAt(_) => {
                LibraryError::PermissionDenied
            }
            StorageError::Stalled { secs, .. } => LibraryError::Stalled(secs),
            StorageError::Unavailable(m) => LibraryError::Unavailable(m),
            e => LibraryError::Io(e.to_string()),
        }
    }
}

/// The folder `dir` as a listing, for the index: `NotADirectory` for a file.
pub fn is_dir(e: &Option<Entry>, dir: &MediaPath) -> Result<(), LibraryError> {
    match e {
        Some(e) if e.kind == EntryKind::Dir => Ok(()),
        Some(_) => Err(LibraryError::NotADirectory),
        None if dir.is_root() => Err(LibraryError::Unavailable("the media root is gone".into())),
        None => Err(LibraryError::NotFound),
    }
}
