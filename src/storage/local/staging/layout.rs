//! Where this node stages: its own folder `<node-id>/` inside every `.streamhub-staging/`, so
//! several nodes can serve one shared media folder (NFS/SMB) and each one's start-up clean
//! and sweeps touch only what it staged itself. Also the one-time move from the previous
//! layout (files directly in `.streamhub-staging/` and `.streamhub-staging/resumable/`).
//!
//! A resumable upload's key stays `resumable/<token>.upload`, relative to the node's staging
//! folder: moving an old upload into the node folder is then a single rename, with nothing
//! to change in the database, so no crash can leave a row and its data disagreeing.

use std::fs::File;

use rustix::fs::AtFlags;

use super::super::ops::rename_at;
use super::{open_subdir, RESUMABLE_DIR, STAGING_DIR};
use crate::storage::StorageError;

/// The name of this node's folder inside staging folders: the node id (lowercase hex, as
/// `sync::NodeIdentity::id` gives it). Only hex digits, so it can never be `resumable`, a
/// `.part` file's name, a hidden name or a path, and never differs from another id by case
/// alone (SMB shares are case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDir(String);

impl NodeDir {
    pub fn new(id: &str) -> Result<Self, StorageError> {
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if id.is_empty() || id.len() > 64 || !id.bytes().all(hex) {
            return Err(StorageError::Invalid(format!(
                "node id '{}' is not 1 to 64 lowercase hex digits",
                id.escape_debug()
            )));
        }
        Ok(NodeDir(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// This node's staging folder in `parent` (the root, or the deepest existing destination
/// folder on another filesystem): `.streamhub-staging/<node-id>/`, both opened without
/// following links.
pub(super) fn node_staging(
    parent: &File,
    node: &NodeDir,
    create: bool,
) -> Result<File, StorageError> {
    let staging = open_subdir(parent, STAGING_DIR, create)?;
    open_subdir(&staging, node.as_str(), create)
}

/// What the start-up tidy did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(in crate::storage::local) struct Tidied {
    /// One-shot parts removed (this node's, and the previous layout's).
    pub removed: usize,
    /// Resumable uploads of the previous layout moved into this node's folder.
    pub moved: usize,
}

/// At start, in the root's staging folder: removes the one-shot parts a crash left in this
/// node's folder and in the previous layout's place (before per-node folders, sharing a
/// folder between nodes was documented as uncoordinated, so those can only be ours), and
/// moves the previous layout's resumable uploads into this node's folder. Another node's
/// folder is never opened. Best effort: what fails now is retried at the next start (and a
/// resumable upload is also moved when it is resumed).
pub(in crate::storage::local) fn tidy(rootdir: &File, node: &NodeDir) -> Tidied {
    let mut done = Tidied::default();
    let Ok(staging) = open_subdir(rootdir, STAGING_DIR, false) else {
        return done;
    };
    done.removed += remove_parts(&staging);
    if let Ok(own) = open_subdir(&staging, node.as_str(), false) {
        done.removed += remove_parts(&own);
    }
    let Ok(old) = open_subdir(&staging, RESUMABLE_DIR, false) else {
        return done;
    };
    let Ok(rd) = rustix::fs::Dir::read_from(&old) else {
        return done;
    };
    let names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().ok().map(str::to_string))
        .filter(|n| n.ends_with(".upload"))
        .collect();
    if names.is_empty() {
        let _ = rustix::fs::unlinkat(&staging, RESUMABLE_DIR, AtFlags::REMOVEDIR);
        return done;
    }
    let Ok(own) =
        node_staging(rootdir, node, true).and_then(|own| open_subdir(&own, RESUMABLE_DIR, true))
    else {
        return done;
    };
    for name in &names {
        if move_one(&old, &own, name).is_ok() {
            done.moved += 1;
        }
    }
    // Gone once empty; if anything is left (a file that would not move), it stays for the
    // next start.
    let _ = rustix::fs::unlinkat(&staging, RESUMABLE_DIR, AtFlags::REMOVEDIR);
    done
}

/// Removes this node's staging folder when nothing is left in it (for a one-off writer such
/// as `storage copy`, whose folder would otherwise stay behind empty). `.streamhub-staging`
/// itself stays: a service sharing the root may be about to create its own folder in it.
pub(in crate::storage::local) fn release(rootdir: &File, node: &NodeDir) {
    if let Ok(staging) = open_subdir(rootdir, STAGING_DIR, false) {
        // Not empty (a part still there): kept, and tidied by the next run.
        let _ = rustix::fs::unlinkat(&staging, node.as_str(), AtFlags::REMOVEDIR);
    }
}

/// The previous layout's `resumable/` folder, if there is one (never through a link).
fn old_resumable(rootdir: &File) -> Option<File> {
    open_subdir(rootdir, STAGING_DIR, false)
        .and_then(|s| open_subdir(&s, RESUMABLE_DIR, false))
        .ok()
}

/// The previous layout holds a resumable upload `name`.
pub(super) fn has_old(rootdir: &File, name: &str) -> bool {
    old_resumable(rootdir)
        .is_some_and(|old| rustix::fs::statat(&old, name, AtFlags::SYMLINK_NOFOLLOW).is_ok())
}

/// Moves the previous layout's resumable upload `name` into this node's `resumable/`
/// folder, for an upload resumed before the start-up move could run (the root was away at
/// start). `Ok(false)` when the previous layout has no such upload.
pub(super) fn adopt(rootdir: &File, own: &File, name: &str) -> Result<bool, StorageError> {
    let Some(old) = old_resumable(rootdir) else {
        return Ok(false);
    };
    match move_one(&old, own, name) {
        Ok(()) => Ok(true),
        Err(StorageError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes the previous layout's copy of a resumable upload's data, if any. Best effort:
/// what stays is moved into this node's folder at the next start and swept from there.
pub(super) fn discard_old(rootdir: &File, name: &str) {
    if let Some(old) = old_resumable(rootdir) {
        let _ = rustix::fs::unlinkat(&old, name, AtFlags::empty());
    }
}

/// One rename, never replacing: the upload is in exactly one of the two places at every
/// moment. Where the filesystem lacks `RENAME_NOREPLACE` the move is link + unlink; a crash
/// between the two leaves both names on one file, which the next attempt finishes by
/// dropping the old name.
fn move_one(old: &File, own: &File, name: &str) -> Result<(), StorageError> {
    match rename_at(old, name, own, name, false, STAGING_DIR, None) {
        Err(StorageError::AlreadyExists) if same_file(old, own, name) => {
            match rustix::fs::unlinkat(old, name, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
                Err(e) => Err(super::write_err(&e.into(), STAGING_DIR)),
            }
        }
        Err(StorageError::AlreadyExists) => {
            tracing::warn!(
                upload = name,
                "a resumable upload of the previous staging layout has a namesake in this \
                 node's folder; left where it is"
            );
            Err(StorageError::AlreadyExists)
        }
        r => r,
    }
}

fn same_file(a: &File, b: &File, name: &str) -> bool {
    let stat = |d: &File| rustix::fs::statat(d, name, AtFlags::SYMLINK_NOFOLLOW).ok();
    match (stat(a), stat(b)) {
        (Some(x), Some(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

/// Removes the `*.part` files (one-shot uploads a crash left) directly in `dir`.
fn remove_parts(dir: &File) -> usize {
    let Ok(rd) = rustix::fs::Dir::read_from(dir) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| e.file_name().to_bytes().ends_with(b".part"))
        .filter(|e| rustix::fs::unlinkat(dir, e.file_name(), AtFlags::empty()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_dirs_are_hex_names_only() {
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(NodeDir::new(&id).unwrap().as_str(), id);
        for bad in [
            "",
            "resumable",
            "..",
            "a/b",
            ".hidden",
            "ABCDEF",
            "x.part",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(NodeDir::new(bad), Err(StorageError::Invalid(_))),
                "{bad:?} accepted"
            );
        }
    }
}
