//! This node's local state of resumable uploads to S3, one folder per upload under
//! `<data_dir>/s3-staging/<key>/`: a `manifest` (the object key, the multipart UploadId, the
//! parts done with their sizes and ETags) and one `tail-<start>` file holding the bytes not yet
//! sent as a part, `<start>` being the upload offset of its first byte.
//!
//! One-shot uploads (`write`) are recorded here too, under keys starting with `o` (never a
//! hex digit, so never a tus upload's): a manifest without parts, written right after
//! CreateMultipartUpload and removed once the upload is completed or aborted. A record left
//! by a crash or by an abort the store did not answer is aborted by the tus sweep
//! (`resumable::keys` / `discard`), which only ever aborts UploadIds this node recorded.
//!
//! Invariants (docs/ARCHITECTURE.md): a part is recorded in the manifest only after it was
//! uploaded, and only once the database's offset covers it; the manifest is replaced
//! atomically (write, fsync, rename, fsync folder); a tail file is dropped only once nothing
//! in it lies past the recorded parts. So after a crash at any step the manifest and the tail
//! hold at least every acknowledged byte, and resuming cuts back to exactly those.
//! Everything here is blocking file I/O: callers run it on the blocking pool.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::storage::{errno_message, StorageError};

const MAGIC: &str = "streamhub-s3-upload 1";
const MANIFEST: &str = "manifest";

/// What the manifest records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Manifest {
    pub object: String,
    pub upload_id: String,
    /// Part `i + 1`: its size and ETag (as S3 sent it, quoted).
    pub parts: Vec<(u64, String)>,
}

impl Manifest {
    /// Bytes in the recorded parts: where the tail's live bytes begin.
    pub fn parts_len(&self) -> u64 {
        self.parts.iter().map(|(n, _)| n).sum()
    }

    pub fn to_text(&self) -> String {
        let mut s = format!("{MAGIC}\nupload-id {}\n", self.upload_id);
        for (size, etag) in &self.parts {
            s.push_str(&format!("part {size} {etag}\n"));
        }
        // Last: the key may hold spaces (never a line break: `begin` refuses those).
        s.push_str(&format!("object {}\n", self.object));
        s
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err("not a streamhub S3 upload manifest".into());
        }
        let (mut object, mut upload_id, mut parts) = (None, None, Vec::new());
        for line in lines {
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            match word {
                "upload-id" if !rest.is_empty() => upload_id = Some(rest.to_string()),
                "object" if !rest.is_empty() => object = Some(rest.to_string()),
                "part" => {
                    let (size, etag) = rest
                        .split_once(' ')
                        .filter(|(_, e)| !e.is_empty() && !e.contains(' '))
                        .ok_or_else(|| format!("bad part line '{line}'"))?;
                    let size = size
                        .parse::<u64>()
                        .map_err(|_| format!("bad part size in '{line}'"))?;
                    parts.push((size, etag.to_string()));
                }
                _ => return Err(format!("unknown line '{line}'")),
            }
        }
        Ok(Manifest {
            object: object.ok_or("no object key")?,
            upload_id: upload_id.ok_or("no upload id")?,
            parts,
        })
    }
}

/// An error of this node's own staging files, saying which and why (the bucket is fine).
fn err(what: &str, path: &Path, e: &std::io::Error) -> StorageError {
    use std::io::ErrorKind::{QuotaExceeded, StorageFull};
    if matches!(e.kind(), StorageFull | QuotaExceeded) {
        // A 507 the client can act on (free space, resume), not a failure of ours.
        tracing::warn!(file = %path.display(), error = %errno_message(e), "cannot {what} an S3 upload staging file");
        return StorageError::DataDirFull;
    }
    StorageError::Io(format!(
        "cannot {what} the S3 upload staging file {} in the data dir: {}",
        path.display(),
        errno_message(e)
    ))
}

/// The folder of upload `key`; keys are only ever letters and digits (`new_key`), so a key
/// from the database can never name anything outside `root`.
pub(super) fn dir_of(root: &Path, key: &str) -> Result<PathBuf, StorageError> {
    if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(StorageError::UploadGone);
    }
    Ok(root.join(key))
}

/// The key of a one-shot upload's record.
pub(super) fn new_oneshot_key() -> Result<String, StorageError> {
    Ok(format!("o{}", new_key()?))
}

pub(super) fn is_oneshot(key: &str) -> bool {
    key.starts_with('o')
}

pub(super) fn new_key() -> Result<String, StorageError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| StorageError::Io(format!("no randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err("sync", dir, &e))
}

/// Replaces the manifest atomically and durably.
pub(super) fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), StorageError> {
    let tmp = dir.join("manifest.tmp");
    let mut f = File::create(&tmp).map_err(|e| err("create", &tmp, &e))?;
    f.write_all(m.to_text().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| err("write", &tmp, &e))?;
    let path = dir.join(MANIFEST);
    fs::rename(&tmp, &path).map_err(|e| err("replace", &path, &e))?;
    sync_dir(dir)
}

/// An empty tail, open for appending and for reading back the parts it will hold
/// (`File::create` is write-only: a part sent from it failed with EBADF).
fn new_tail(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| err("create", path, &e))
}

fn tail_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("tail-{start}"))
}

/// Creates the folder of a new upload with its manifest and an empty tail, durably.
pub(super) fn create(root: &Path, key: &str, m: &Manifest) -> Result<File, StorageError> {
    fs::create_dir_all(root).map_err(|e| err("create", root, &e))?;
    let dir = dir_of(root, key)?;
    fs::create_dir(&dir).map_err(|e| err("create", &dir, &e))?;
    let made = (|| {
        write_manifest(&dir, m)?;
        let tail = tail_path(&dir, 0);
        let f = new_tail(&tail)?;
        sync_dir(&dir)?;
        sync_dir(root)?;
        Ok(f)
    })();
    if made.is_err() {
        let _ = fs::remove_dir_all(&dir);
    }
    made
}

/// A reopened upload: its manifest and tail, cut back to `durable` bytes in all.
pub(super) struct Reopened {
    pub manifest: Manifest,
    pub tail: File,
    pub tail_start: u64,
}

/// Reopens upload `key` cut back to `durable`: `UploadGone` when its folder is gone or it
/// cannot hold exactly the first `durable` bytes (recorded parts past `durable`, which the
/// step order never makes, or a tail shorter than `durable`).
pub(super) fn reopen(root: &Path, key: &str, durable: u64) -> Result<Reopened, StorageError> {
    let dir = dir_of(root, key)?;
    let path = dir.join(MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::UploadGone),
        Err(e) => return Err(err("read", &path, &e)),
    };
    let manifest = Manifest::parse(&text).map_err(|e| {
        StorageError::Io(format!(
            "the S3 upload manifest {} is damaged: {e}",
            path.display()
        ))
    })?;
    let tail_start = pick_tail(&dir, manifest.parts_len())?;
    let (start, done) = (tail_start, manifest.parts_len());
    let tail = tail_path(&dir, start);
    let f = OpenOptions::new()
        .read(true)
        // Appends land at the end whatever the cut-back did to the length.
        .append(true)
        .create(true)
        .open(&tail)
        .map_err(|e| err("open", &tail, &e))?;
    let len = f.metadata().map_err(|e| err("read", &tail, &e))?.len();
    let end = cut_back(done, start, len, durable)?;
    if end != len {
        f.set_len(end)
            .and_then(|()| f.sync_all())
            .map_err(|e| err("cut back", &tail, &e))?;
    }
    Ok(Reopened {
        manifest,
        tail: f,
        tail_start,
    })
}

/// The tail's new length when the upload is cut back to `durable`, given the recorded parts'
/// bytes `done` and a tail of `len` bytes starting at offset `start`.
pub(super) fn cut_back(done: u64, start: u64, len: u64, durable: u64) -> Result<u64, StorageError> {
    if durable < done || start > done || start + len < durable {
        return Err(StorageError::UploadGone);
    }
    Ok(durable - start)
}

/// The live tail among `tail-*` (the one at `done`, else the latest starting before it;
/// others are left-overs of a crash in a rotation) and removes the rest.
fn pick_tail(dir: &Path, done: u64) -> Result<u64, StorageError> {
    let rd = fs::read_dir(dir).map_err(|e| err("list", dir, &e))?;
    let starts: Vec<u64> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("tail-")?.parse().ok())
        .collect();
    let live = starts
        .iter()
        .copied()
        .filter(|s| *s <= done)
        .max()
        .unwrap_or(done);
    for s in starts.into_iter().filter(|s| *s != live) {
        let _ = fs::remove_file(tail_path(dir, s));
    }
    Ok(live)
}

/// After a part was recorded and nothing past it is in the tail: starts an empty tail at
/// `done` and drops the old one (a crash between leaves both; `pick_tail` keeps the new).
pub(super) fn rotate(dir: &Path, old: u64, done: u64) -> Result<File, StorageError> {
    let path = tail_path(dir, done);
    let f = new_tail(&path)?;
    sync_dir(dir)?;
    let _ = fs::remove_file(tail_path(dir, old));
    Ok(f)
}

/// `len` bytes of the tail from file offset `at`.
pub(super) fn read_at(f: &File, at: u64, len: usize, dir: &Path) -> Result<Vec<u8>, StorageError> {
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, at)
        .map_err(|e| err("read", dir, &e))?;
    Ok(buf)
}

pub(super) fn append(f: &File, chunk: &[u8], dir: &Path) -> Result<(), StorageError> {
    let mut w = f;
    w.write_all(chunk).map_err(|e| err("write", dir, &e))
}

pub(super) fn sync(f: &File, dir: &Path) -> Result<(), StorageError> {
    f.sync_data().map_err(|e| err("sync", dir, &e))
}

/// The manifest of upload `key`, or None when its folder is gone.
pub(super) fn manifest_of(root: &Path, key: &str) -> Result<Option<Manifest>, StorageError> {
    let path = dir_of(root, key)?.join(MANIFEST);
    match fs::read_to_string(&path) {
        Ok(t) => Manifest::parse(&t).map(Some).map_err(|e| {
            StorageError::Io(format!(
                "the S3 upload manifest {} is damaged: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err("read", &path, &e)),
    }
}

pub(super) fn remove(root: &Path, key: &str) -> Result<(), StorageError> {
    let dir = dir_of(root, key)?;
    match fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err("remove", &dir, &e)),
    }
}

/// This node's uploads: key and last write (the newest file in its folder).
pub(super) fn keys(root: &Path) -> Result<Vec<(String, SystemTime)>, StorageError> {
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err("list", root, &e)),
    };
    let mut out = Vec::new();
    for entry in rd.filter_map(|e| e.ok()) {
        let Some(key) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if dir_of(root, &key).is_err() {
            continue;
        }
        let newest = fs::read_dir(entry.path())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
            .max();
        let modified = newest
            .or_else(|| entry.metadata().ok()?.modified().ok())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        out.push((key, modified));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            object: "media/a b/c.mkv".into(),
            upload_id: "abc-123".into(),
            parts: vec![(5 << 20, "\"e1\"".into()), (5 << 20, "\"e2\"".into())],
        }
    }

    #[test]
    fn manifest_round_trips() {
        let m = manifest();
        assert_eq!(Manifest::parse(&m.to_text()).unwrap(), m);
        assert_eq!(m.parts_len(), 10 << 20);
    }

    #[test]
    fn damaged_manifests_are_refused() {
        assert!(Manifest::parse("hello\n").is_err());
        assert!(Manifest::parse(&format!("{MAGIC}\nobject x\n")).is_err());
        assert!(
            Manifest::parse(&format!("{MAGIC}\nupload-id u\npart x \"e\"\nobject o\n")).is_err()
        );
        assert!(Manifest::parse(&format!("{MAGIC}\nupload-id u\nfoo\nobject o\n")).is_err());
    }

    #[test]
    fn cut_back_keeps_exactly_the_acknowledged_bytes() {
        // Tail holds 0..7 after 10 recorded bytes; the database acknowledged 14.
        assert_eq!(cut_back(10, 10, 7, 14).unwrap(), 4);
        // A part recorded but its tail not yet rotated: the tail starts before `done`.
        assert_eq!(cut_back(10, 5, 5, 10).unwrap(), 5);
        // Bytes acknowledged but missing, or parts past the acknowledged offset: gone.
        assert!(matches!(
            cut_back(10, 10, 3, 14),
            Err(StorageError::UploadGone)
        ));
        assert!(matches!(
            cut_back(10, 10, 0, 9),
            Err(StorageError::UploadGone)
        ));
    }

    #[test]
    fn one_shot_records_are_told_from_tus_uploads() {
        for _ in 0..32 {
            assert!(!is_oneshot(&new_key().unwrap()));
            let k = new_oneshot_key().unwrap();
            assert!(is_oneshot(&k) && dir_of(Path::new("/x"), &k).is_ok());
        }
    }

    #[test]
    fn keys_are_letters_and_digits_only() {
        let root = Path::new("/x");
        assert!(dir_of(root, "ab12").is_ok());
        for bad in ["", "..", "a/b", "a.b", &"a".repeat(65)] {
            assert!(dir_of(root, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_and_rotated_tails_are_read_back_from_their_own_handle() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("s3-staging");
        let mut m = manifest();
        m.parts.clear();
        let tail = create(&root, "k2", &m).unwrap();
        append(&tail, b"0123456789", &root).unwrap();
        assert_eq!(read_at(&tail, 2, 3, &root).unwrap(), b"234");
        let tail = rotate(&root.join("k2"), 0, 10).unwrap();
        append(&tail, b"abcdef", &root).unwrap();
        append(&tail, b"gh", &root).unwrap();
        assert_eq!(read_at(&tail, 0, 8, &root).unwrap(), b"abcdefgh");
    }

    #[test]
    fn reopen_cuts_the_tail_back_and_drops_stale_tails() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("s3-staging");
        let mut m = manifest();
        m.parts.clear();
        let tail = create(&root, "k1", &m).unwrap();
        append(&tail, b"0123456789", &root).unwrap();
        assert_eq!(read_at(&tail, 0, 3, &root).unwrap(), b"012");
        // A part of 6 bytes recorded; crash before rotation.
        m.parts.push((6, "\"p\"".into()));
        write_manifest(&root.join("k1"), &m).unwrap();
        let r = reopen(&root, "k1", 8).unwrap();
        assert_eq!(r.tail_start, 0);
        assert_eq!(r.tail.metadata().unwrap().len(), 8);
        append(&r.tail, b"xy", &root).unwrap();
        assert_eq!(read_at(&r.tail, 6, 4, &root).unwrap(), b"67xy");
        // Rotated: a new empty tail at 6 and the old one both there; the new one wins.
        let rotated = rotate(&root.join("k1"), 99, 6).unwrap();
        append(&rotated, b"ab", &root).unwrap();
        assert_eq!(read_at(&rotated, 0, 2, &root).unwrap(), b"ab");
        rotated.set_len(0).unwrap();
        let r = reopen(&root, "k1", 6).unwrap();
        assert_eq!(r.tail_start, 6);
        assert!(!root.join("k1/tail-0").exists());
        assert!(matches!(
            reopen(&root, "k1", 7),
            Err(StorageError::UploadGone)
        ));
        assert!(matches!(
            reopen(&root, "nope", 0),
            Err(StorageError::UploadGone)
        ));
        assert_eq!(keys(&root).unwrap().len(), 1);
        remove(&root, "k1").unwrap();
        assert!(keys(&root).unwrap().is_empty());
    }
}
