//! Copying a library from one backend to another (`streamhub storage copy`), through the
//! [`Storage`] trait on both sides, so every rule of the backends holds (names, links,
//! hidden files, staged uploads that appear only when committed, no overwrite).
//!
//! Invariants: a destination file is never replaced — one that is there already is skipped
//! when its SHA-256 equals the source's and reported as a conflict otherwise; every copied
//! file is read back and its SHA-256 compared with what was read from the source (a copy
//! that differs is removed and reported); a source whose validator changed while it was read
//! (rewritten in place, replaced) is never committed; an interrupted copy leaves only staged data
//! (never a visible partial file), so a re-run resumes by skipping what is done.

use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::{EntryKind, MediaPath, Object, Storage, StorageError, UploadOptions};

/// What a source holds: its files (with sizes) and its empty folders.
#[derive(Debug, Default)]
pub struct Plan {
    pub files: Vec<(MediaPath, u64)>,
    /// Folders with nothing visible in them (the others come with their files).
    pub empty_dirs: Vec<MediaPath>,
    pub total: u64,
    /// What is not copied, as the service does not serve it either (hidden names, links
    /// leading out of the library or to folders, special files, names no path can carry),
    /// each with its folder: reported, not a failure.
    pub left_out: Vec<String>,
}

/// Lists the whole source, folder by folder. Folders reached through a link are not
/// descended into (the folder itself is copied where it really is).
pub async fn walk(src: &dyn Storage) -> Result<Plan, StorageError> {
    let mut plan = Plan::default();
    let mut todo = vec![MediaPath::root()];
    while let Some(dir) = todo.pop() {
        let listing = src.list(&dir).await?;
        if listing.entries.is_empty() && !dir.is_root() {
            plan.empty_dirs.push(dir.clone());
        }
        let at = |name: &str| match dir.is_root() {
            true => name.to_string(),
            false => format!("{dir}/{name}"),
        };
        plan.left_out.extend(listing.left_out.iter().map(|n| at(n)));
        for e in listing.entries {
            let path = dir
                .join(&e.name)
                .map_err(|err| StorageError::Invalid(err.to_string()))?;
            match e.kind {
                EntryKind::Dir if !e.via_link => todo.push(path),
                EntryKind::Dir => plan
                    .left_out
                    .push(format!("{} (a link to a folder)", at(&e.name))),
                EntryKind::File => {
                    plan.total += e.size;
                    plan.files.push((path, e.size));
                }
            }
        }
    }
    plan.files
        .sort_by(|a, b| a.0.segments().cmp(b.0.segments()));
    plan.empty_dirs
        .sort_by(|a, b| a.segments().cmp(b.segments()));
    plan.left_out.sort();
    Ok(plan)
}

/// What to do with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Copy,
    /// The same bytes are at the destination already.
    Skip,
    /// Something else is at the destination under that name: left alone, reported.
    Conflict(String),
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading the source: {0}")]
    Source(StorageError),
    #[error("writing the destination: {0}")]
    Dest(StorageError),
    #[error(
        "the source changed while it was copied ({0} bytes read, {1} listed); nothing was written"
    )]
    SizeChanged(u64, u64),
    #[error("the source changed while it was copied (it was written to meanwhile); nothing was written, run the copy again once it is left alone")]
    SourceChanged,
    #[error("something else was written at this name in the destination during the copy; it was left alone (run the copy again to compare)")]
    WrittenMeanwhile,
    #[error("verification failed: the copy's SHA-256 differs from the source's (removed)")]
    Verify,
    #[error("interrupted")]
    Interrupted,
}

/// A write into the destination, where another writer taking the name (the no-overwrite
/// commit refusing, or the store ending this upload for a newer object) is said as such.
fn raced(e: StorageError) -> CopyError {
    match e {
        StorageError::AlreadyExists | StorageError::UploadDropped => CopyError::WrittenMeanwhile,
        e => CopyError::Dest(e),
    }
}

/// Whether a destination that is there (or not) is the source's file, by size, then by
/// SHA-256 of both sides (no backend keeps a content hash it could be asked for: S3 ETags
/// of multipart objects are not MD5s).
pub fn decision(dest: Option<(EntryKind, u64)>, size: u64, same: Option<bool>) -> Decision {
    match (dest, same) {
        (None, _) => Decision::Copy,
        (Some((EntryKind::Dir, _)), _) => {
            Decision::Conflict("the destination has a folder of that name".into())
        }
        (Some((_, d)), _) if d != size => Decision::Conflict(format!(
            "the destination has a different file ({d} bytes; the source has {size})"
        )),
        (Some(_), Some(true)) => Decision::Skip,
        (Some(_), _) => Decision::Conflict(
            "the destination has a different file of the same size (SHA-256 differs)".into(),
        ),
    }
}

/// Decides by looking at the destination, hashing both sides when the sizes agree.
pub async fn decide(
    src: &dyn Storage,
    dst: &dyn Storage,
    path: &MediaPath,
    size: u64,
    stop: &AtomicBool,
) -> Result<Decision, CopyError> {
    let found = dst.stat(path).await.map_err(CopyError::Dest)?;
    let dest = found.map(|e| (e.kind, e.size));
    let mut same = None;
    if matches!(dest, Some((EntryKind::File, d)) if d == size) {
        let a = hash_of(
            &*src.open(path).await.map_err(CopyError::Source)?,
            stop,
            &mut |_| {},
        )
        .await
        .map_err(CopyError::Source)?;
        let b = hash_of(
            &*dst.open(path).await.map_err(CopyError::Dest)?,
            stop,
            &mut |_| {},
        )
        .await
        .map_err(CopyError::Dest)?;
        same = Some(a.0 == b.0);
    }
    if stop.load(Ordering::Relaxed) {
        return Err(CopyError::Interrupted);
    }
    Ok(decision(dest, size, same))
}

/// The SHA-256 and length of an object's bytes.
async fn hash_of(
    obj: &dyn Object,
    stop: &AtomicBool,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<([u8; 32], u64), StorageError> {
    let mut hasher = Sha256::new();
    let mut n = 0;
    let mut stream = obj.read_range(0..obj.meta().size);
    while let Some(chunk) = stream.next().await {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let chunk = chunk?;
        hasher.update(&chunk);
        n += chunk.len() as u64;
        on_bytes(chunk.len() as u64);
    }
    Ok((hasher.finalize().into(), n))
}

/// Copies one file (not at the destination yet) through a staged upload, then reads the
/// copy back and compares SHA-256s. `on_bytes` is told of every chunk written.
pub async fn copy_file(
    src: &dyn Storage,
    dst: &dyn Storage,
    path: &MediaPath,
    stop: &AtomicBool,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<u64, CopyError> {
    let obj = src.open(path).await.map_err(CopyError::Source)?;
    let size = obj.meta().size;
    let opts = UploadOptions {
        expected: Some(size),
        ..Default::default()
    };
    let mut up = dst
        .begin_upload(path, opts)
        .await
        .map_err(CopyError::Dest)?;
    let mut hasher = Sha256::new();
    let mut stream = obj.read_range(0..size);
    let mut read = 0u64;
    let sent: Result<(), CopyError> = async {
        while let Some(chunk) = stream.next().await {
            if stop.load(Ordering::Relaxed) {
                return Err(CopyError::Interrupted);
            }
            let chunk = chunk.map_err(|e| match e {
                // A long local read checks the file's version before its last chunk.
                StorageError::Changed => CopyError::SourceChanged,
                e => CopyError::Source(e),
            })?;
            hasher.update(&chunk);
            read += chunk.len() as u64;
            let n = chunk.len() as u64;
            up.write(chunk).await.map_err(raced)?;
            on_bytes(n);
        }
        if read != size {
            return Err(CopyError::SizeChanged(read, size));
        }
        // The read-back below compares with what was read; only the source's validator
        // (inode, size, mtime / ETag) after the read tells a torn read (old head, new tail).
        let now = src.open(path).await.map_err(CopyError::Source)?;
        if now.meta() != obj.meta() {
            return Err(CopyError::SourceChanged);
        }
        up.finish().await.map_err(raced)?;
        Ok(())
    }
    .await;
    if let Err(e) = sent {
        // Staged data only: nothing of it becomes visible.
        up.close().await;
        return Err(e);
    }
    up.commit(path, false).await.map_err(raced)?;
    let want: [u8; 32] = hasher.finalize().into();
    let copy = dst.open(path).await.map_err(CopyError::Dest)?;
    let (got, n) = hash_of(&*copy, stop, &mut |_| {})
        .await
        .map_err(CopyError::Dest)?;
    if stop.load(Ordering::Relaxed) {
        return Err(CopyError::Interrupted);
    }
    if got != want || n != size {
        // Ours, just written, and wrong: it must not pass for a copy on a re-run.
        let _ = dst.delete(path).await;
        return Err(CopyError::Verify);
    }
    Ok(size)
}

/// Makes an empty folder at the destination (one that is there already is fine).
pub async fn make_dir(dst: &dyn Storage, path: &MediaPath) -> Result<(), StorageError> {
    match dst.create_dir(path).await {
        Ok(()) => Ok(()),
        Err(StorageError::AlreadyExists) => match dst.stat(path).await? {
            Some(e) if e.kind == EntryKind::Dir => Ok(()),
            _ => Err(StorageError::AlreadyExists),
        },
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        use EntryKind::*;
        assert_eq!(decision(None, 5, None), Decision::Copy);
        assert_eq!(decision(Some((File, 5)), 5, Some(true)), Decision::Skip);
        assert!(matches!(
            decision(Some((File, 5)), 5, Some(false)),
            Decision::Conflict(m) if m.contains("SHA-256")
        ));
        assert!(matches!(
            decision(Some((File, 4)), 5, None),
            Decision::Conflict(m) if m.contains("4 bytes")
        ));
        assert!(matches!(
            decision(Some((Dir, 0)), 5, None),
            Decision::Conflict(m) if m.contains("folder")
        ));
        // Same size but not hashed (it could not be read): never taken as done.
        assert!(matches!(
            decision(Some((File, 5)), 5, None),
            Decision::Conflict(_)
        ));
    }

    #[tokio::test]
    async fn copies_verifies_and_skips_between_memory_backends() {
        let src = crate::storage::memory::MemoryStorage::new();
        let dst = crate::storage::memory::MemoryStorage::new();
        let p = MediaPath::from_decoded("a/b c/é.bin").unwrap();
        src.insert("a/b c/é.bin", b"hello");
        src.create_dir(&MediaPath::from_decoded("empty").unwrap())
            .await
            .unwrap();
        let plan = walk(&src).await.unwrap();
        assert_eq!(plan.files, vec![(p.clone(), 5)]);
        assert_eq!(
            plan.empty_dirs,
            vec![MediaPath::from_decoded("empty").unwrap()]
        );
        let stop = AtomicBool::new(false);
        assert_eq!(
            decide(&src, &dst, &p, 5, &stop).await.unwrap(),
            Decision::Copy
        );
        let mut seen = 0;
        copy_file(&src, &dst, &p, &stop, &mut |n| seen += n)
            .await
            .unwrap();
        assert_eq!(seen, 5);
        assert_eq!(
            decide(&src, &dst, &p, 5, &stop).await.unwrap(),
            Decision::Skip
        );
        assert_eq!(dst.read("a/b c/é.bin").as_deref(), Some(&b"hello"[..]));
        let q = MediaPath::from_decoded("x").unwrap();
        src.insert("x", b"12345");
        dst.insert("x", b"54321");
        assert!(matches!(
            decide(&src, &dst, &q, 5, &stop).await.unwrap(),
            Decision::Conflict(_)
        ));
    }
}
