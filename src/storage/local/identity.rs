//! The media root's identity: a marker file `.streamhub-root` holding a volume id, so an
//! unmounted disk (whose bare mount-point folder is empty) or another disk is never taken
//! for the media root — Syncthing's `.stfolder` lesson. The id is recorded in the database
//! by the service; the marker is created only while no id is recorded (a new install), never
//! again after. The root's device is not part of its identity: a share mounted again gets a
//! new device number and is the same volume when its marker is.
//!
//! While the marker is missing or different, every operation is `Unavailable` with a message
//! naming the problem; it recovers by itself when the right disk is back.

use std::fs::File;
use std::io::{Read, Write};

use super::root::{open_dir_at, Root};
use crate::storage::{errno_message, StorageError};

pub const MARKER: &str = ".streamhub-root";

/// What the root must be. `expected` None: not checked (no id could be established yet).
#[derive(Debug, Clone, Default)]
pub(crate) struct Ident {
    pub expected: Option<String>,
    /// Device of the root, taken the first time the marker matched in this run.
    pub dev: Option<u64>,
    /// The marker last read and found right: re-read only when it changes.
    pub marker: Option<Seen>,
    /// Set when start-up could not establish an id and it is not safe to go on (an empty
    /// root while the index has entries): every operation reports this.
    pub blocked: Option<String>,
}

fn unavailable(msg: String) -> StorageError {
    StorageError::Unavailable(msg)
}

/// A marker file as `stat` sees it: (device, inode, ctime in ns). A rewrite in place keeps
/// the inode but moves the ctime.
pub(crate) type Seen = (u64, u64, i64);

pub(crate) fn seen_of(st: &rustix::fs::Stat) -> Seen {
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let ctime = (st.st_ctime as i64)
        .saturating_mul(1_000_000_000)
        .saturating_add(st.st_ctime_nsec as i64);
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    (st.st_dev as u64, st.st_ino as u64, ctime)
}

/// The id in a marker's text: its last non-empty line that is not a comment.
pub(crate) fn parse_marker(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| l.len() <= 128 && l.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
}

fn read_marker(root: &File) -> Result<Option<(String, Seen)>, StorageError> {
    // Non-blocking and never through a link: a FIFO or a link planted under the marker's
    // name must not stall (or steer) the check every operation makes.
    let f = match rustix::fs::openat(
        root,
        MARKER,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::NONBLOCK
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => File::from(fd),
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(unreadable(&e.into())),
    };
    let st = rustix::fs::fstat(&f).map_err(|e| unreadable(&e.into()))?;
    if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() {
        return Err(unreadable(&std::io::Error::other("not a regular file")));
    }
    let mut text = String::new();
    f.take(4096)
        .read_to_string(&mut text)
        .map_err(|e| unreadable(&e))?;
    let id = parse_marker(&text)
        .ok_or_else(|| unavailable(format!("the media root's {MARKER} holds no volume id")))?;
    Ok(Some((id, seen_of(&st))))
}

/// The marker is there but cannot be read as one: the detail goes to the log, not to clients.
fn unreadable(e: &std::io::Error) -> StorageError {
    tracing::warn!(marker = MARKER, error = %errno_message(e), "media root marker unreadable");
    unavailable(format!(
        "the media root's {MARKER} is not a readable marker file (the server log says why)"
    ))
}

/// Writes a new marker (temporary name, fsync, rename, fsync folder).
fn write_marker(root: &File, id: &str) -> std::io::Result<()> {
    let tmp = format!("{MARKER}.tmp");
    // A new file of our own (whatever was left under the temporary name goes first).
    match rustix::fs::unlinkat(root, tmp.as_str(), rustix::fs::AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let fd = rustix::fs::openat(
        root,
        tmp.as_str(),
        rustix::fs::OFlags::WRONLY
            | rustix::fs::OFlags::CREATE
            | rustix::fs::OFlags::EXCL
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(0o644),
    )?;
    let mut f = File::from(fd);
    f.write_all(
        format!(
            "# streamhub media root: identifies this disk; do not delete (docs/DEPLOY.md)\n{id}\n"
        )
        .as_bytes(),
    )?;
    f.sync_all()?;
    rustix::fs::renameat(root, tmp.as_str(), root, MARKER)?;
    root.sync_all()
}

/// Whether the root folder has any entry besides streamhub's own.
fn is_empty(root: &File) -> bool {
    let Ok(dup) = root.try_clone() else {
        return false;
    };
    let Ok(mut dir) = rustix::fs::Dir::read_from(dup) else {
        return false;
    };
    !dir.by_ref().flatten().any(|e| {
        let n = e.file_name().to_bytes();
        n != b"." && n != b".." && !n.starts_with(b".streamhub")
    })
}

/// What start-up settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Established {
    /// The root's id (found, or just created): record it if nothing was recorded.
    Volume(String),
    /// No id could be written (a read-only root, no permission): the root runs unchecked.
    Unchecked(String),
}

impl Root {
    /// Settles the root's identity at start. `recorded`: the id in the database, if any;
    /// `indexed`: how many entries the library index holds. Blocking.
    pub fn establish(
        &self,
        recorded: Option<&str>,
        indexed: u64,
    ) -> Result<Established, StorageError> {
        if let Some(r) = recorded {
            self.with_ident(|i| i.expected = Some(r.to_string()));
        }
        let dir = match open_dir_at(self.path()) {
            Ok(d) => d,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && recorded.is_none()
                    && !self.must_be_mount =>
            {
                // A new install: the (default) media folder is made for the user.
                std::fs::create_dir_all(self.path()).map_err(|e| {
                    unavailable(format!(
                        "cannot create media root {}: {}",
                        self.path().display(),
                        errno_message(&e)
                    ))
                })?;
                open_dir_at(self.path()).map_err(|e| unavailable(errno_message(&e)))?
            }
            // A missing mount point is not mounted either.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.must_be_mount => {
                return Err(unavailable(super::mount::NOT_A_MOUNT.to_string()))
            }
            Err(e) => {
                return Err(unavailable(format!(
                    "media root: {} (is the disk mounted?)",
                    errno_message(&e)
                )))
            }
        };
        // Before anything is read or written: an unmounted root is the folder beneath.
        self.check_mount(&dir)?;
        if recorded.is_some() {
            self.verify(&dir)?;
            return Ok(Established::Volume(
                recorded.unwrap_or_default().to_string(),
            ));
        }
        if let Some((id, seen)) = read_marker(&dir)? {
            self.with_ident(|i| {
                i.expected = Some(id.clone());
                i.marker = Some(seen);
                i.dev = super::root::dev_of(&dir);
            });
            return Ok(Established::Volume(id));
        }
        if indexed > 0 && is_empty(&dir) {
            let msg = format!(
                "the media root is empty but the library index has {indexed} entries: is the \
                 disk mounted? Mount it, then restart streamhub"
            );
            self.with_ident(|i| i.blocked = Some(msg.clone()));
            return Err(unavailable(msg));
        }
        let id = crate::secret::random_token();
        match write_marker(&dir, &id) {
            Ok(()) => {
                tracing::info!(marker = MARKER, "media root: identity marker created");
                self.verify(&dir).ok();
                self.with_ident(|i| i.expected = Some(id.clone()));
                self.verify(&dir)?;
                Ok(Established::Volume(id))
            }
            Err(e) => Ok(Established::Unchecked(format!(
                "cannot write {MARKER} into the media root ({}): an unmounted disk cannot be told \
                 from an empty one",
                errno_message(&e)
            ))),
        }
    }

    fn open_for_marker(&self) -> Result<File, StorageError> {
        open_dir_at(self.path()).map_err(|e| {
            unavailable(format!(
                "media root {}: {}",
                self.path().display(),
                errno_message(&e)
            ))
        })
    }

    /// The id in the marker, if there is one. Blocking.
    pub(super) fn marker_id(&self) -> Result<Option<String>, StorageError> {
        Ok(read_marker(&self.open_for_marker()?)?.map(|(id, _)| id))
    }

    /// Writes the marker (replacing one). Blocking.
    pub(super) fn write_marker_id(&self, id: &str) -> Result<(), StorageError> {
        write_marker(&self.open_for_marker()?, id).map_err(|e| super::write_err(&e, MARKER))
    }

    fn with_ident<T>(&self, f: impl FnOnce(&mut Ident) -> T) -> T {
        f(&mut self.ident.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Checks an open root against the expected identity. Reads the marker only when it is
    /// not the one already checked (one `fstatat` otherwise).
    pub(super) fn verify(&self, dir: &File) -> Result<(), StorageError> {
        let ident = self.with_ident(|i| i.clone());
        if let Some(msg) = ident.blocked {
            return Err(unavailable(msg));
        }
        let Some(expected) = ident.expected else {
            return Ok(());
        };
        // A device other than the last one seen is no verdict by itself: a share mounted
        // again (NFS, SMB, FUSE) gets a new device number. The marker decides (it is read
        // again below, since its `Seen` includes the device).
        let dev = super::root::dev_of(dir);
        let seen = match rustix::fs::statat(dir, MARKER, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => seen_of(&st),
            Err(rustix::io::Errno::NOENT) => {
                return Err(unavailable(format!(
                    "the media root has no {MARKER}: is the disk mounted?"
                )))
            }
            Err(e) => return Err(unavailable(errno_message(&e.into()))),
        };
        if ident.marker == Some(seen) {
            return Ok(());
        }
        match read_marker(dir)? {
            Some((id, seen)) if id == expected => {
                let moved = self.with_ident(|i| {
                    let moved = i.dev.is_some() && dev.is_some() && i.dev != dev;
                    i.marker = Some(seen);
                    i.dev = dev.or(i.dev);
                    moved
                });
                if moved {
                    tracing::info!(
                        marker = MARKER,
                        "media root: mounted again on a new device, same volume marker: in use again"
                    );
                }
                Ok(())
            }
            Some((id, _)) => {
                tracing::warn!(found = %id, %expected, "media root: another volume's marker");
                Err(unavailable(
                    "the media root holds another volume's marker, not the recorded one: \
                     another disk?"
                        .to_string(),
                ))
            }
            None => Err(unavailable(format!(
                "the media root has no {MARKER}: is the disk mounted?"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_text() {
        assert_eq!(parse_marker("# c\nabc\n").as_deref(), Some("abc"));
        assert_eq!(parse_marker("# only a comment\n"), None);
        assert_eq!(parse_marker("bad id with spaces"), None);
    }
}
