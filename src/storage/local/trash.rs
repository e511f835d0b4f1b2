//! The trash of the local backend: `<root>/.streamhub-trash/<key>`. A deleted file or folder
//! goes there whole by one rename in folder handles (so it vanishes, and comes back, in one
//! step), and is removed for good by a walk that never follows a link and never crosses into
//! another disk. Blocking.

use std::ffi::{CStr, CString};
use std::fs::File;

use rustix::fs::{AtFlags, Mode, OFlags};

use super::ops::{go_on, rename_at, take_back};
use super::root::{shown, Root};
use super::write_err;
use crate::blocking::Watch;
use crate::storage::{MediaPath, StorageError};

/// Hidden folder in the media root that holds what was deleted (never addressable by clients).
pub const TRASH_DIR: &str = ".streamhub-trash";
/// Deeper trees than this are not removed (a guard on the walk's recursion, far past real
/// libraries).
const MAX_DEPTH: usize = 256;

/// Keys are made by the application (hex): anything else would be a name we did not choose.
fn check_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(StorageError::Invalid("bad trash key".into()));
    }
    Ok(())
}

fn open_trash(rootdir: &File, create: bool) -> Result<File, StorageError> {
    super::root::own_subdir(
        rootdir,
        TRASH_DIR,
        create,
        StorageError::NotFound,
        TRASH_DIR,
    )
}

/// Moves `path` (its last name not followed: a link goes to the trash as a link) to the trash
/// as `key`.
pub(super) fn trash(
    root: &Root,
    path: &MediaPath,
    key: &str,
    w: &Watch,
) -> Result<(), StorageError> {
    check_key(key)?;
    let (parent, name) = path
        .split_last()
        .ok_or_else(|| StorageError::Invalid("the media root cannot be deleted".into()))?;
    let rootdir = root.open()?;
    let dir = root.wdir(&rootdir, &parent)?;
    rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| StorageError::from_io(&e.into()))?;
    // Whatever goes to the trash must be removable from it later: nothing mounted inside
    // (it would travel along, and its contents are not ours to purge).
    let cname = CString::new(name).map_err(|_| StorageError::NotFound)?;
    let mut shown_path = shown(&parent);
    if parent.is_root() {
        shown_path.clear();
    }
    walk(
        &dir,
        &cname,
        where_is(&dir, c".")?,
        0,
        false,
        &mut shown_path,
    )?;
    go_on(w, "delete", path)?;
    let bin = open_trash(&rootdir, true)?;
    go_on(w, "delete", path)?;
    rename_at(&dir, name, &bin, key, false, TRASH_DIR, Some(w)).map_err(|e| match e {
        StorageError::Invalid(m) if m.contains("another disk") => StorageError::Invalid(format!(
            "'{path}' is on another disk mounted in the media root, which the trash is not on: \
             delete it for good with ?permanent=true"
        )),
        StorageError::PermissionDeniedAt(_) => StorageError::PermissionDeniedAt(shown(&parent)),
        e => e,
    })?;
    bin.sync_all().map_err(|e| write_err(&e, TRASH_DIR))?;
    dir.sync_all().map_err(|e| write_err(&e, &shown(&parent)))
}

/// Moves trash `key` back to `to`, never replacing anything; missing folders on the way are
/// made (they are returned, for the caller to record).
pub(super) fn untrash(
    root: &Root,
    key: &str,
    to: &MediaPath,
    w: &Watch,
) -> Result<Vec<MediaPath>, StorageError> {
    check_key(key)?;
    let (tparent, tname) = to.split_last().ok_or(StorageError::AlreadyExists)?;
    let rootdir = root.open()?;
    let bin = open_trash(&rootdir, false)?;
    rustix::fs::statat(&bin, key, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| StorageError::from_io(&e.into()))?;
    go_on(w, "restore", to)?;
    let (dir, created) = root.make_dirs(&rootdir, &tparent)?;
    let moved = go_on(w, "restore", to)
        .and_then(|()| rename_at(&bin, key, &dir, tname, false, &shown(&tparent), Some(w)))
        .and_then(|()| take_back((w, "restore"), (&bin, key), (&dir, tname), false))
        .and_then(|()| dir.sync_all().map_err(|e| write_err(&e, &shown(&tparent))))
        .and_then(|()| bin.sync_all().map_err(|e| write_err(&e, TRASH_DIR)));
    if let Err(e) = moved {
        root.undo_dirs(&rootdir, &created);
        return Err(e);
    }
    Ok(created)
}

/// Removes trash `key` and everything in it. Gone already is fine (idempotent).
pub(super) fn purge(root: &Root, key: &str) -> Result<(), StorageError> {
    check_key(key)?;
    let rootdir = root.open()?;
    let bin = match open_trash(&rootdir, false) {
        Err(StorageError::NotFound) => return Ok(()),
        r => r?,
    };
    let key = CString::new(key).map_err(|_| StorageError::Invalid("bad trash key".into()))?;
    let home = where_is(&bin, c".")?;
    walk(&bin, &key, home, 0, true, &mut String::new())?;
    bin.sync_all().map_err(|e| write_err(&e, TRASH_DIR))
}

/// The keys in the trash.
pub(super) fn keys(root: &Root) -> Result<Vec<String>, StorageError> {
    let rootdir = root.open()?;
    let bin = match open_trash(&rootdir, false) {
        Err(StorageError::NotFound) => return Ok(Vec::new()),
        r => r?,
    };
    let mut out = Vec::new();
    for name in read_dir(&bin)? {
        if let Some(key) = name.to_str().ok().filter(|k| check_key(k).is_ok()) {
            out.push(key.to_string());
        }
    }
    Ok(out)
}

/// The names in `dir` (bytes, as Linux has them: a name that is not UTF-8 is still removed).
fn read_dir(dir: &File) -> Result<Vec<CString>, StorageError> {
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StorageError::from_io(&e.into()))?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd).map_err(|e| StorageError::from_io(&e.into()))? {
        let entry = entry.map_err(|e| StorageError::from_io(&e.into()))?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Which filesystem mount a name is on: its mount id (Linux 5.8+), its device, and whether
/// it is the root of a mount (a bind mount of the same disk too, which the device alone would
/// not show).
#[derive(Debug, Clone, Copy)]
struct Place {
    dir: bool,
    mnt: Option<u64>,
    dev: (u32, u32),
    mount_root: bool,
}

fn where_is(dir: &File, name: &CStr) -> Result<Place, StorageError> {
    use rustix::fs::{StatxAttributes, StatxFlags};
    let flags = if name.to_bytes() == b"." {
        AtFlags::NO_AUTOMOUNT
    } else {
        AtFlags::NO_AUTOMOUNT | AtFlags::SYMLINK_NOFOLLOW
    };
    let st = rustix::fs::statx(dir, name, flags, StatxFlags::TYPE | StatxFlags::MNT_ID)
        .map_err(|e| StorageError::from_io(&e.into()))?;
    Ok(Place {
        dir: rustix::fs::FileType::from_raw_mode(u32::from(st.stx_mode)).is_dir(),
        mnt: (st.stx_mask & StatxFlags::MNT_ID.bits() != 0).then_some(st.stx_mnt_id),
        dev: (st.stx_dev_major, st.stx_dev_minor),
        mount_root: st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
            && st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT),
    })
}

/// Walks `name` in `dir` (never following a link), refusing any folder that is another
/// mount (a disk, a bind mount, a tmpfs) before touching anything beneath it; with `remove`
/// it unlinks as it goes (contents first). `shown` tracks the path for messages.
fn walk(
    dir: &File,
    name: &CStr,
    home: Place,
    depth: usize,
    remove: bool,
    shown: &mut String,
) -> Result<(), StorageError> {
    let len = shown.len();
    if !shown.is_empty() {
        shown.push('/');
    }
    shown.push_str(&name.to_string_lossy());
    let place = match where_is(dir, name) {
        Ok(p) => p,
        Err(StorageError::NotFound) if remove => {
            shown.truncate(len);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if place.dir {
        if place.mount_root
            || place.dev != home.dev
            || (place.mnt.is_some() && place.mnt != home.mnt)
        {
            return Err(StorageError::Invalid(format!(
                "a disk or folder is mounted at '{shown}': unmount it first (nothing was deleted)"
            )));
        }
        if depth >= MAX_DEPTH {
            return Err(StorageError::Invalid(format!(
                "folders nested more than {MAX_DEPTH} deep at '{shown}': remove them by hand"
            )));
        }
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(File::from)
        .map_err(|e| write_err(&e.into(), shown))?;
        for child in read_dir(&sub)? {
            walk(&sub, &child, home, depth + 1, remove, shown)?;
        }
        if remove {
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
                .map_err(|e| write_err(&e.into(), shown))?;
        }
    } else if remove {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())
            .map_err(|e| write_err(&e.into(), shown))?;
    }
    shown.truncate(len);
    Ok(())
}
