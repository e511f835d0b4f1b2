//! The commit of a finished staged upload: folders made beneath the root at that moment,
//! then a rename into place (or, for a destination on another disk, a copy into a hidden
//! temporary name there and a rename), and an fsync of the folder.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

use rustix::fs::{AtFlags, Mode, OFlags};

use super::super::ops::rename_at;
use super::super::root::{dev_of, shown, Root};
use super::super::write_err;
use crate::storage::{MediaPath, ObjectMeta, StorageError};

/// Copies a finished staging file into `dir` under a hidden temporary name (for a destination
/// on another filesystem than the staging folder); returns that name.
fn copy_into(src: &mut File, dir: &File, shown: &str) -> Result<String, StorageError> {
    let tmp = format!(".streamhub-tmp-{}", crate::secret::random_token());
    let fd = rustix::fs::openat(
        dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| write_err(&e.into(), shown))?;
    let mut out = File::from(fd);
    let copied = src
        .seek(SeekFrom::Start(0))
        .and_then(|_| std::io::copy(src, &mut out))
        .and_then(|_| out.flush())
        .and_then(|()| out.sync_all());
    if let Err(e) = copied {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
        return Err(write_err(&e, shown));
    }
    Ok(tmp)
}

/// The commit itself (blocking): folders made beneath the root now, then the rename.
pub(super) fn commit_blocking(
    root: &Root,
    file: &mut File,
    dir: &File,
    name: &str,
    dest: &MediaPath,
    overwrite: bool,
) -> Result<ObjectMeta, StorageError> {
    let (parent, dest_name) = dest.split_last().ok_or(StorageError::IsDirectory)?;
    let shown_to = shown(&parent);
    let rootdir = root.open()?;
    let (destdir, created) = root.make_dirs(&rootdir, &parent)?;
    // The name as the folder spells it (an NFD twin made on a Mac is the same name).
    let dest_name = &Root::spelled(&destdir, dest_name);
    let result = (|| {
        if dev_of(&destdir) == dev_of(dir) {
            rename_at(dir, name, &destdir, dest_name, overwrite, &shown_to, None)?;
        } else {
            let tmp = copy_into(file, &destdir, &shown_to)?;
            if let Err(e) = rename_at(
                &destdir, &tmp, &destdir, dest_name, overwrite, &shown_to, None,
            ) {
                let _ = rustix::fs::unlinkat(&destdir, tmp.as_str(), AtFlags::empty());
                return Err(e);
            }
            let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
        }
        destdir.sync_all().map_err(|e| write_err(&e, &shown_to))?;
        committed_meta(&destdir, dest_name)
    })();
    if result.is_err() {
        root.undo_dirs(&rootdir, &created);
    }
    result
}

/// Meta of a committed file, for the upload's answer.
fn committed_meta(dir: &File, name: &str) -> Result<ObjectMeta, StorageError> {
    let fd = rustix::fs::openat(
        dir,
        name,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| StorageError::from_io(&e.into()))?;
    let md = File::from(fd)
        .metadata()
        .map_err(|e| StorageError::from_io(&e))?;
    Ok(super::super::read::meta_of(&md))
}
