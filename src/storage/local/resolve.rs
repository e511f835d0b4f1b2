//! Following a path beneath the root one name at a time, with our own rules for links.
//!
//! Every name is looked up in a folder handle already resolved beneath the root, with
//! `O_NOFOLLOW`: the kernel never follows a link for us. A link is read (`readlinkat`) and
//! its target followed here, lexically, by these rules:
//! - a relative target continues from the link's folder; `..` never goes above the root;
//! - an absolute target must name a path under the root's real path, written plainly (no
//!   `..`); the walk then restarts from the root;
//! - no name on the way may start with `.streamhub` (the staging folder, the marker are not
//!   addressable, not even through a link);
//! - at most 40 links (a loop is "not found").
//!
//! So the answer never depends on anything outside the root: nothing out there is ever looked
//! up (no oracle), and a link that leaves the root and comes back is refused like any other
//! escape. With `storage.allow_symlink_escape` an escaping link is followed by its real path
//! instead.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::storage::StorageError;

const MAX_LINKS: usize = 40;

/// Where a path leads: the folder holding its last name (`name` None: the folder itself is
/// the object), and the real path under the root (None: outside, only with escapes allowed).
pub(super) struct Located {
    pub dir: File,
    pub name: Option<String>,
    pub real: Option<Vec<String>>,
}

/// The rules of one walk.
pub(super) struct Rules<'a> {
    /// The root's real path, for absolute link targets.
    pub canon_root: &'a Path,
    /// `storage.allow_symlink_escape`.
    pub anywhere: bool,
}

fn path_dir(dir: &File, name: &str) -> Result<File, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
}

fn dup(f: &File) -> Result<File, StorageError> {
    f.try_clone().map_err(|e| StorageError::from_io(&e))
}

/// The names of a link target, or None when one is not UTF-8 (no `MediaPath` names it).
fn names_of(p: &Path) -> Option<Vec<String>> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_str().map(str::to_string)),
            Component::ParentDir => Some(Some("..".to_string())),
            _ => None,
        })
        .collect()
}

/// An absolute target's path under the root, if it plainly names one.
fn under_root(target: &Path, canon_root: &Path) -> Option<Vec<String>> {
    if target
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return None;
    }
    names_of(target.strip_prefix(canon_root).ok()?)
}

/// Another name in `dir` that is the same as `name` once both are in Unicode NFC.
pub(super) fn twin(dir: &File, name: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    let entries = rustix::fs::Dir::read_from(dir).ok()?;
    entries.flatten().find_map(|e| {
        let n = e.file_name().to_str().ok()?;
        (n != name && n.nfc().eq(name.nfc())).then(|| n.to_string())
    })
}

/// Walks `rel` (plain names) beneath `root` by the rules above. A hidden name typed by a
/// client is not found (links may still lead through one).
pub(super) fn locate(root: &File, rel: &[String], rules: &Rules) -> Result<Located, StorageError> {
    if rel.iter().any(|s| s.starts_with('.')) {
        return Err(StorageError::NotFound);
    }
    let mut stack = vec![dup(root)?];
    let mut real: Vec<String> = Vec::new();
    let mut todo: VecDeque<String> = rel.iter().cloned().collect();
    let mut links = 0;
    let escape = |real: &[String], todo: &VecDeque<String>, target: Option<&Path>| {
        if rules.anywhere {
            escaped(rules.canon_root, real, todo, target)
        } else {
            Err(StorageError::OutsideRoot)
        }
    };
    while let Some(c) = todo.pop_front() {
        if c.is_empty() || c == "." {
            continue;
        }
        if c == ".." {
            if real.pop().is_none() {
                todo.push_front(c);
                return escape(&real, &todo, None);
            }
            stack.pop();
            continue;
        }
        if c.starts_with(".streamhub") {
            return Err(StorageError::NotFound);
        }
        let cur = stack.last().ok_or(StorageError::NotFound)?;
        match rustix::fs::readlinkat(cur, c.as_str(), Vec::new()) {
            Ok(target) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(StorageError::NotFound);
                }
                let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                let names = if target.is_absolute() {
                    match under_root(&target, rules.canon_root) {
                        Some(n) => {
                            stack.truncate(1);
                            real.clear();
                            n
                        }
                        None => return escape(&real, &todo, Some(&target)),
                    }
                } else {
                    names_of(&target).ok_or(StorageError::NotFound)?
                };
                // A link does not make a hidden name public (`album -> .private`).
                if names.iter().any(|n| n.starts_with('.') && n != "..") {
                    return Err(StorageError::NotFound);
                }
                for n in names.into_iter().rev() {
                    todo.push_front(n);
                }
            }
            // Not a link.
            Err(Errno::INVAL) => {
                if todo.is_empty() {
                    real.push(c.clone());
                    return Ok(Located {
                        dir: dup(cur)?,
                        name: Some(c),
                        real: Some(real),
                    });
                }
                match path_dir(cur, &c) {
                    Ok(d) => {
                        stack.push(d);
                        real.push(c);
                    }
                    // Swapped for a link since `readlinkat`: look again (counted as a link).
                    Err(Errno::LOOP) | Err(Errno::NOTDIR) if links < MAX_LINKS => {
                        links += 1;
                        todo.push_front(c);
                    }
                    Err(Errno::NOTDIR) => return Err(StorageError::NotADirectory),
                    Err(e) => return Err(StorageError::from_io(&e.into())),
                }
            }
            Err(Errno::NOENT) => {
                // A name typed in another Unicode form than the disk's (NFD from a Mac): the
                // same name to people, so the same entry (counted as a link: no loop).
                if links < MAX_LINKS {
                    if let Some(t) = twin(cur, &c) {
                        links += 1;
                        todo.push_front(t);
                        continue;
                    }
                }
                if !todo.is_empty() {
                    return Err(StorageError::NotFound);
                }
                real.push(c.clone());
                return Ok(Located {
                    dir: dup(cur)?,
                    name: Some(c),
                    real: Some(real),
                });
            }
            Err(Errno::NOTDIR) => return Err(StorageError::NotADirectory),
            Err(e) => return Err(StorageError::from_io(&e.into())),
        }
    }
    // The path ended on a folder reached through `..` or a link: the folder is the object.
    Ok(Located {
        dir: dup(stack.last().ok_or(StorageError::NotFound)?)?,
        name: None,
        real: Some(real),
    })
}

/// With escapes allowed: where the walk would be, by its real path (links followed
/// anywhere), as a folder handle and a last name.
fn escaped(
    canon_root: &Path,
    real: &[String],
    todo: &VecDeque<String>,
    target: Option<&Path>,
) -> Result<Located, StorageError> {
    let mut at = match target {
        Some(t) => t.to_path_buf(),
        None => real.iter().fold(canon_root.to_path_buf(), |p, n| p.join(n)),
    };
    for n in todo {
        at.push(n);
    }
    let canon = at.canonicalize().map_err(|e| StorageError::from_io(&e))?;
    let (parent, name) = match (canon.parent(), canon.file_name()) {
        (Some(p), Some(n)) => (p.to_path_buf(), n.to_str().map(str::to_string)),
        _ => (canon.clone(), None),
    };
    let dir = super::root::open_dir_at(&parent).map_err(|e| StorageError::from_io(&e))?;
    Ok(Located {
        dir,
        name,
        real: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_targets_must_name_the_root_plainly() {
        let root = Path::new("/srv/media");
        assert_eq!(
            under_root(Path::new("/srv/media/a/b"), root),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(under_root(Path::new("/srv/media"), root), Some(vec![]));
        assert_eq!(under_root(Path::new("/srv/mediaX/a"), root), None);
        assert_eq!(under_root(Path::new("/root/../srv/media/a"), root), None);
        assert_eq!(under_root(Path::new("/srv/media/../media/a"), root), None);
        assert_eq!(under_root(Path::new("/etc/passwd"), root), None);
    }
}
