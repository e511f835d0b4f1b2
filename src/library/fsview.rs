//! What the disk says: resolving a folder under the media root (with the same containment
//! rule as `storage::local`) and reading one folder's visible entries. Blocking; callers run
//! it on the scanner thread or the blocking pool.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::model::Kind;
use super::LibraryError;
use crate::storage::local::visible_entry;
use crate::storage::write::STAGING_DIR;
use crate::storage::MediaPath;

/// One visible entry of a folder on disk.
#[derive(Debug, Clone)]
pub struct DiskEntry {
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    pub mtime_ns: i64,
    /// Real path of a folder the scanner may walk into: only real folders, never symlinks
    /// (a symlinked folder is listed and refreshed on demand but not walked, so links can
    /// never make the walk loop or index something twice).
    pub walk: Option<PathBuf>,
    /// (device, inode) of a folder, for loop detection across bind mounts.
    pub dev_ino: (u64, u64),
}

pub fn mtime_ns(md: &std::fs::Metadata) -> i64 {
    md.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.mtime_nsec())
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

/// The media root with symlinks resolved; `Unavailable` when it is gone or unreadable.
pub fn canonical_root(root: &Path) -> Result<PathBuf, LibraryError> {
    let real = root
        .canonicalize()
        .map_err(|e| LibraryError::Unavailable(format!("media root {}: {e}", root.display())))?;
    let md = std::fs::metadata(&real)
        .map_err(|e| LibraryError::Unavailable(format!("media root {}: {e}", root.display())))?;
    if !md.is_dir() {
        return Err(LibraryError::Unavailable(format!(
            "media root {} is not a folder",
            root.display()
        )));
    }
    Ok(real)
}

/// The real path and metadata of folder `dir`: `NotFound` if absent, `NotADirectory` for a
/// file, `OutsideRoot` if it resolves outside the (canonical) root.
pub fn resolve_dir(
    canon_root: &Path,
    dir: &MediaPath,
) -> Result<(PathBuf, std::fs::Metadata), LibraryError> {
    let mut p = canon_root.to_path_buf();
    p.extend(dir.segments());
    let real = p.canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => LibraryError::NotFound,
        _ => LibraryError::Io(e.to_string()),
    })?;
    if !real.starts_with(canon_root) {
        return Err(LibraryError::OutsideRoot);
    }
    let md = std::fs::metadata(&real).map_err(|e| LibraryError::Io(e.to_string()))?;
    if !md.is_dir() {
        return Err(LibraryError::NotADirectory);
    }
    Ok((real, md))
}

/// The visible entries of the folder at `real` (named `dir` in the media root): no dot-files
/// (so never the staging folder), no names a `MediaPath` could not carry, no links that leave
/// the root, only regular files and folders. Entries that vanish while being read are skipped.
pub fn read_entries(
    canon_root: &Path,
    real: &Path,
    dir: &MediaPath,
) -> std::io::Result<Vec<DiskEntry>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(real)? {
        let Ok(entry) = entry else { continue };
        let Some((name, ft, md)) = visible_entry(&entry, |target| target.starts_with(canon_root))
        else {
            continue;
        };
        if name == STAGING_DIR || dir.join(&name).is_err() {
            continue;
        }
        let path = entry.path();
        let kind = if md.is_dir() { Kind::Dir } else { Kind::File };
        out.push(DiskEntry {
            name,
            kind,
            size: if kind == Kind::Dir { 0 } else { md.len() },
            mtime_ns: mtime_ns(&md),
            walk: (kind == Kind::Dir && !ft.is_symlink()).then_some(path),
            dev_ino: (md.dev(), md.ino()),
        });
    }
    Ok(out)
}
