//! Listing and changing folders on the local backend: every name is looked up in a folder
//! handle resolved beneath the root, and every change is one `*at` call on such handles, so
//! nothing outside the root is ever read, created, renamed or removed. Blocking.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::time::SystemTime;

use rustix::fs::{AtFlags, RenameFlags};

use super::root::{shown, Root};
use crate::blocking::Watch;
use crate::storage::{Entry, EntryKind, Found, LinkEnd, Listing, MediaPath, StorageError};

fn entry(name: String, md: &std::fs::Metadata, via_link: bool) -> Entry {
    let kind = if md.is_dir() {
        EntryKind::Dir
    } else {
        EntryKind::File
    };
    Entry {
        name,
        kind,
        size: if md.is_file() { md.len() } else { 0 },
        modified: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        via_link,
        id: (kind == EntryKind::Dir).then(|| (md.dev(), md.ino())),
    }
}

/// The same from a `stat` result (a folder entry that is not a link: one `fstatat`).
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn entry_of_stat(name: String, st: &rustix::fs::Stat) -> Option<Entry> {
    let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
    let kind = if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else {
        return None;
    };
    let modified = SystemTime::UNIX_EPOCH
        .checked_add(std::time::Duration::new(
            (st.st_mtime as i64).max(0) as u64,
            (st.st_mtime_nsec as i64).clamp(0, 999_999_999) as u32,
        ))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Some(Entry {
        name,
        kind,
        size: if kind == EntryKind::File {
            st.st_size as u64
        } else {
            0
        },
        modified,
        via_link: false,
        id: (kind == EntryKind::Dir).then_some((st.st_dev as u64, st.st_ino as u64)),
    })
}

pub(super) fn stat(root: &Root, path: &MediaPath) -> Result<Option<Entry>, StorageError> {
    let dir = root.open()?;
    let Some(md) = root.stat(&dir, path)? else {
        return Ok(None);
    };
    if !md.is_dir() && !md.is_file() {
        return Ok(None);
    }
    Ok(Some(entry(
        path.name().unwrap_or("").to_string(),
        &md,
        false,
    )))
}

/// One folder entry as listings show it, or None (see [`Listing`] for the rule). A link is
/// followed beneath the root; one that leaves it is not shown, so a listing never reveals
/// what lies outside.
fn visible(
    root: &Root,
    rootdir: &File,
    folder: &File,
    dir: &MediaPath,
    name: &std::ffi::OsStr,
) -> Option<Entry> {
    let name = name.to_str()?;
    if name.starts_with('.') {
        return None;
    }
    let path = dir.join(name).ok()?;
    let own = rustix::fs::statat(folder, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    if !rustix::fs::FileType::from_raw_mode(own.st_mode).is_symlink() {
        return entry_of_stat(name.to_string(), &own);
    }
    let md = root.stat(rootdir, &path).ok()??;
    (md.is_dir() || md.is_file()).then(|| entry(name.to_string(), &md, true))
}

pub(super) fn list(root: &Root, dir: &MediaPath) -> Result<Listing, StorageError> {
    let rootdir = root.open()?;
    let folder = root.dir(&rootdir, dir)?;
    let md = folder.metadata().map_err(|e| StorageError::from_io(&e))?;
    if !md.is_dir() {
        return Err(StorageError::NotADirectory);
    }
    let names: Vec<std::ffi::OsString> = rustix::fs::Dir::read_from(&folder)
        .map_err(|e| StorageError::from_io(&e.into()))?
        .flatten()
        .map(|e| {
            use std::os::unix::ffi::OsStrExt;
            std::ffi::OsStr::from_bytes(e.file_name().to_bytes()).to_os_string()
        })
        .collect();
    let mut entries: Vec<Entry> = Vec::with_capacity(names.len());
    let mut hidden = false;
    let mut left_out = Vec::new();
    for n in names
        .iter()
        .filter(|n| n.as_encoded_bytes() != b"." && n.as_encoded_bytes() != b"..")
    {
        match visible(root, &rootdir, &folder, dir, n) {
            Some(e) => entries.push(e),
            None => {
                hidden = true;
                let n = n.to_string_lossy();
                if super::super::reportable(&n) {
                    left_out.push(n.into_owned());
                }
            }
        }
    }
    entries.sort_by(|a, b| {
        (a.kind != EntryKind::Dir, &a.name).cmp(&(b.kind != EntryKind::Dir, &b.name))
    });
    Ok(Listing {
        dir: entry(dir.name().unwrap_or("").to_string(), &md, false),
        entries,
        hidden,
        left_out,
    })
}

/// What the last name of `path` is, not following it (see [`Found`]).
pub(super) fn lookup(root: &Root, path: &MediaPath) -> Result<Found, StorageError> {
    let rootdir = root.open()?;
    let Some((parent, name)) = path.split_last() else {
        let md = rootdir.metadata().map_err(|e| StorageError::from_io(&e))?;
        return Ok(Found::Entry(entry(String::new(), &md, false)));
    };
    if name.starts_with('.') {
        return Ok(Found::Nothing);
    }
    // Writes decide by this: the folder is looked up as a write would (never out of the
    // root, whatever `allow_symlink_escape` says).
    let dir = match root.wdir(&rootdir, &parent) {
        Ok(d) => d,
        Err(StorageError::NotFound | StorageError::NotADirectory) => return Ok(Found::Nothing),
        Err(e) => return Err(e),
    };
    let name = Root::spelled(&dir, name);
    let own = match rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(Found::Nothing),
        Err(e) => return Err(StorageError::from_io(&e.into())),
    };
    if !rustix::fs::FileType::from_raw_mode(own.st_mode).is_symlink() {
        return Ok(entry_of_stat(name, &own).map_or(Found::Other, Found::Entry));
    }
    let real = match root.real_path(&rootdir, path) {
        Ok(Some(real)) => real,
        Ok(None) | Err(StorageError::OutsideRoot) => return Ok(Found::Link(LinkEnd::Outside)),
        Err(StorageError::NotFound | StorageError::NotADirectory) => {
            return Ok(Found::Link(LinkEnd::Nowhere))
        }
        Err(e) => return Err(e),
    };
    Ok(Found::Link(match root.stat(&rootdir, &real)? {
        Some(md) if md.is_dir() => LinkEnd::Dir(real),
        Some(md) if md.is_file() => LinkEnd::File(real),
        _ => LinkEnd::Nowhere,
    }))
}

pub(super) fn create_dir(root: &Root, path: &MediaPath) -> Result<(), StorageError> {
    let (parent, name) = path.split_last().ok_or(StorageError::AlreadyExists)?;
    let rootdir = root.open()?;
    let (dir, created) = root.make_dirs(&rootdir, &parent)?;
    let made = rustix::fs::mkdirat(&dir, name, rustix::fs::Mode::from_raw_mode(0o755))
        .map_err(|e| write_err(&e.into(), &shown(&parent)))
        .and_then(|()| dir.sync_all().map_err(|e| write_err(&e, &shown(&parent))));
    if made.is_err() {
        root.undo_dirs(&rootdir, &created);
    }
    made
}

/// Whether a change may take its next step: not once its caller has given up on it (it
/// answered 503), so a change never goes on unseen after that answer.
pub(super) fn go_on(w: &Watch, op: &'static str, path: &MediaPath) -> Result<(), StorageError> {
    if w.gave_up() {
        tracing::warn!(op, path = %path.to_string().escape_debug(),
            "media storage: change stopped before its next step (its request was already answered 503)");
        return Err(StorageError::Unavailable(format!(
            "{op} stopped: it did not answer in time"
        )));
    }
    Ok(())
}

pub(super) fn delete(root: &Root, path: &MediaPath, w: &Watch) -> Result<(), StorageError> {
    let (parent, name) = path
        .split_last()
        .ok_or(StorageError::PermissionDeniedAt("/".into()))?;
    let rootdir = root.open()?;
    let dir = root.wdir(&rootdir, &parent)?;
    let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| StorageError::from_io(&e.into()))?;
    let flags = if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
        // Only empty folders: deleting a tree by accident is not undoable.
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    go_on(w, "delete", path)?;
    rustix::fs::unlinkat(&dir, name, flags).map_err(|e| match e {
        rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST => StorageError::NotEmpty,
        e => write_err(&e.into(), &shown(&parent)),
    })?;
    dir.sync_all().map_err(|e| write_err(&e, &shown(&parent)))
}

/// Moves `from` to `to` in folder handles; without `overwrite` an existing `to` is never
/// replaced (`RENAME_NOREPLACE`, atomic).
pub(super) fn rename_at(
    from_dir: &File,
    from: &str,
    to_dir: &File,
    to: &str,
    overwrite: bool,
    shown_to: &str,
    w: Option<&Watch>,
) -> Result<(), StorageError> {
    let flags = if overwrite {
        RenameFlags::empty()
    } else {
        RenameFlags::NOREPLACE
    };
    match rustix::fs::renameat_with(from_dir, from, to_dir, to, flags) {
        Ok(()) => Ok(()),
        // Some filesystems (older NFS, some FUSE) do not know RENAME_NOREPLACE.
        Err(rustix::io::Errno::INVAL) if !overwrite => {
            rename_noreplace_fallback(from_dir, from, to_dir, to, shown_to, w)
        }
        Err(e) => Err(rename_err(e, shown_to)),
    }
}

fn rename_err(e: rustix::io::Errno, shown_to: &str) -> StorageError {
    match e {
        rustix::io::Errno::INVAL => {
            StorageError::Invalid("cannot move a folder into itself".into())
        }
        e => write_err(&e.into(), shown_to),
    }
}

/// No-replace without the flag: a file is hard-linked (which fails on an existing name,
/// atomically) and then unlinked from where it was; a folder (which cannot be linked) is
/// renamed after a check that the name is free.
pub(super) fn rename_noreplace_fallback(
    from_dir: &File,
    from: &str,
    to_dir: &File,
    to: &str,
    shown_to: &str,
    w: Option<&Watch>,
) -> Result<(), StorageError> {
    let st = rustix::fs::statat(from_dir, from, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| StorageError::from_io(&e.into()))?;
    if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
        rustix::fs::linkat(from_dir, from, to_dir, to, AtFlags::empty())
            .map_err(|e| write_err(&e.into(), shown_to))?;
        if w.is_some_and(Watch::gave_up) {
            // Answered 503 while the link hung: the move is taken back (the file is still
            // at its old name), never finished unseen.
            let _ = rustix::fs::unlinkat(to_dir, to, AtFlags::empty());
            return Err(StorageError::Unavailable(
                "move stopped: it did not answer in time".into(),
            ));
        }
        return rustix::fs::unlinkat(from_dir, from, AtFlags::empty())
            .map_err(|e| write_err(&e.into(), shown_to));
    }
    match rustix::fs::statat(to_dir, to, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Err(StorageError::AlreadyExists),
        Err(_) => {
            rustix::fs::renameat(from_dir, from, to_dir, to).map_err(|e| rename_err(e, shown_to))
        }
    }
}

/// A move whose caller gave up (answered 503) and that the share carried out afterwards is
/// moved back when that replaces nothing, so a move answered 503 does not happen; one that
/// replaced a file stands (the old file is gone) and the caller's bookkeeping follows it.
pub(super) fn take_back(
    (w, op): (&Watch, &'static str),
    (fdir, fname): (&File, &str),
    (tdir, tname): (&File, &str),
    overwrite: bool,
) -> Result<(), StorageError> {
    if !w.gave_up() {
        return Ok(());
    }
    if !overwrite && rename_at(tdir, tname, fdir, fname, false, fname, None).is_ok() {
        return Err(StorageError::Unavailable(format!("{op} taken back")));
    }
    Ok(())
}

/// Whether the service may add and remove names in `dir`.
fn writable(dir: &File) -> bool {
    rustix::fs::accessat(
        dir,
        ".",
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
        AtFlags::EACCESS,
    )
    .is_ok()
}

pub(super) fn rename(
    root: &Root,
    from: &MediaPath,
    to: &MediaPath,
    overwrite: bool,
    w: &Watch,
) -> Result<(), StorageError> {
    let (fparent, fname) = from.split_last().ok_or(StorageError::NotFound)?;
    let (tparent, tname) = to.split_last().ok_or(StorageError::AlreadyExists)?;
    if to.segments().starts_with(from.segments()) {
        return Err(StorageError::Invalid(
            "cannot move a folder into itself".into(),
        ));
    }
    let rootdir = root.open()?;
    let fdir = root.wdir(&rootdir, &fparent)?;
    rustix::fs::statat(&fdir, fname, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| StorageError::from_io(&e.into()))?;
    go_on(w, "move", from)?;
    let (tdir, created) = root.make_dirs(&rootdir, &tparent)?;
    let moved = go_on(w, "move", from)
        .and_then(|()| {
            rename_at(
                &fdir,
                fname,
                &tdir,
                tname,
                overwrite,
                &shown(&tparent),
                Some(w),
            )
        })
        .map_err(|e| match e {
            // Either folder may be the one the service cannot write: name the right one.
            StorageError::PermissionDeniedAt(_) if !writable(&fdir) => {
                StorageError::PermissionDeniedAt(shown(&fparent))
            }
            e => e,
        })
        .and_then(|()| take_back((w, "move"), (&fdir, fname), (&tdir, tname), overwrite))
        .and_then(|()| tdir.sync_all().map_err(|e| write_err(&e, &shown(&tparent))))
        .and_then(|()| fdir.sync_all().map_err(|e| write_err(&e, &shown(&fparent))));
    if moved.is_err() {
        root.undo_dirs(&rootdir, &created);
    }
    moved
}

/// The error a failed write means, naming the folder (relative to the media root).
pub(crate) fn write_err(e: &std::io::Error, folder: &str) -> StorageError {
    use rustix::io::Errno;
    match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::NOSPC) | Some(Errno::DQUOT) => StorageError::NoSpace,
        Some(Errno::EXIST) | Some(Errno::NOTEMPTY) => StorageError::AlreadyExists,
        Some(Errno::ACCESS) | Some(Errno::PERM) => {
            StorageError::PermissionDeniedAt(folder.to_string())
        }
        Some(Errno::ROFS) => StorageError::ReadOnly,
        Some(Errno::BUSY) => StorageError::Invalid(format!(
            "'{folder}' holds a disk mounted there, or something in use: it cannot be moved or deleted"
        )),
        Some(Errno::XDEV) => StorageError::Invalid(format!(
            "'{folder}' is on another disk: a move cannot cross disks (copy the file instead)"
        )),
        _ => StorageError::from_io(e),
    }
}
