//! Changing names in the bucket: folders as zero-byte `name/` markers, delete (one object or
//! a whole folder), and rename as copy (`copy`) + delete. Operations over many objects are
//! not atomic: one stopped half-way says how many objects went (`StorageError::Partial`),
//! and the same operation again finishes it.

use ::http::{Method, StatusCode};
use bytes::Bytes;

use super::Inner;
use crate::storage::{EntryKind, MediaPath, StorageError};

impl Inner {
    pub(super) async fn delete_key(&self, key: &str) -> Result<(), StorageError> {
        let url = self.url(&Method::DELETE, key, &[], &[]);
        let a = self.send("delete", Method::DELETE, &url, &[]).await?;
        if !a.status.is_success() && a.status != StatusCode::NOT_FOUND {
            return Err(self.http.error("delete", a).await);
        }
        Ok(())
    }

    /// The small object at `key`, or None.
    async fn get_small(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        let url = self.url(&Method::GET, key, &[], &[]);
        let a = self.send("stat", Method::GET, &url, &[]).await?;
        if a.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !a.status.is_success() {
            return Err(self.http.error("stat", a).await);
        }
        self.http.small_body("stat", a.body).await.map(Some)
    }
}

/// How many DELETEs a folder delete keeps in flight.
const DELETES_IN_FLIGHT: usize = 8;

/// A folder and everything under it, for good: a page of keys (≤ 1000) is listed and
/// deleted, then the next, until nothing is left. A failure half-way says how many objects
/// went; what is left is still listed, and deleting again finishes the job.
pub(super) async fn delete_tree(inner: &Inner, path: &MediaPath) -> Result<(), StorageError> {
    if path.is_root() || inner.stat(path).await?.is_none() {
        return Err(StorageError::NotFound);
    }
    let prefix = inner.dir_key(path);
    let mut deleted = 0usize;
    loop {
        let keys = match inner.key_page(&prefix).await {
            Ok(k) => k,
            Err(e) => return Err(half_way(path, deleted, e)),
        };
        if keys.is_empty() {
            break;
        }
        for chunk in keys.chunks(DELETES_IN_FLIGHT) {
            let batch = chunk.iter().map(|k| inner.delete_key(k));
            for r in futures_util::future::join_all(batch).await {
                match r {
                    Ok(()) => deleted += 1,
                    Err(e) => return Err(half_way(path, deleted, e)),
                }
            }
        }
    }
    keep_parent(inner, path).await
}

fn half_way(path: &MediaPath, deleted: usize, e: StorageError) -> StorageError {
    if deleted == 0 {
        return e;
    }
    StorageError::Partial {
        done: deleted as u64,
        message: format!(
            "deleted {deleted} objects of '{path}', then the storage failed; the rest is still \
             there: delete '{path}' again to finish"
        ),
        cause: Box::new(e),
    }
}

/// A folder: a zero-byte `name/` marker, so an empty folder exists.
pub(super) async fn create_dir(inner: &Inner, path: &MediaPath) -> Result<(), StorageError> {
    if path.is_root() || path.is_hidden() {
        return Err(StorageError::AlreadyExists);
    }
    let key = inner.dir_key(path);
    let _guard = inner.name_locks.lock(&inner.key(path)).await;
    for p in std::iter::once(path.clone()).chain(super::write::twins(path)) {
        if inner.dir_exists(&p).await? || inner.head(&inner.key(&p)).await?.is_some() {
            return Err(StorageError::AlreadyExists);
        }
    }
    // Parents exist as prefixes of the marker; a file on the way refuses it.
    let (parent, _) = path.split_last().ok_or(StorageError::AlreadyExists)?;
    let mut so_far = MediaPath::root();
    for seg in parent.segments() {
        so_far = so_far
            .join(seg)
            .map_err(|e| StorageError::Invalid(e.to_string()))?;
        if inner.head(&inner.key(&so_far)).await?.is_some() {
            return Err(StorageError::AlreadyExists);
        }
    }
    inner.put(&key, Bytes::new(), &[]).await
}

/// A file, or a folder with nothing in it but its marker.
pub(super) async fn delete(inner: &Inner, path: &MediaPath) -> Result<(), StorageError> {
    match inner.stat(path).await? {
        None => return Err(StorageError::NotFound),
        Some(e) if e.kind == EntryKind::File => inner.delete_key(&inner.key(path)).await?,
        Some(_) if path.is_root() => return Err(StorageError::NotEmpty),
        Some(_) => {
            let listing = inner.list(path).await?;
            if !listing.entries.is_empty() || listing.hidden {
                return Err(StorageError::NotEmpty);
            }
            inner.delete_key(&inner.dir_key(path)).await?
        }
    }
    keep_parent(inner, path).await
}

/// A folder exists in S3 only while something is under its prefix: when the last entry of
/// `path`'s folder went, a marker keeps the folder, as a disk would.
async fn keep_parent(inner: &Inner, path: &MediaPath) -> Result<(), StorageError> {
    let Some((parent, _)) = path.split_last() else {
        return Ok(());
    };
    if parent.is_root() || inner.dir_exists(&parent).await? {
        return Ok(());
    }
    inner.put(&inner.dir_key(&parent), Bytes::new(), &[]).await
}

/// Marks a folder a move is filling (a hidden object holding the source's prefix): a move
/// that stopped half-way may go on into its own destination, and into no other folder.
const MOVING: &str = ".streamhub-moving";

/// Whether folder `to` holds the mark of a move of `from`.
pub(super) async fn resumes_move(
    inner: &Inner,
    from: &MediaPath,
    to: &MediaPath,
) -> Result<bool, StorageError> {
    if from.is_root() || to.is_root() {
        return Ok(false);
    }
    let mark = format!("{}{MOVING}", inner.dir_key(to));
    let src = inner.dir_key(from);
    Ok(inner.get_small(&mark).await?.as_deref() == Some(src.as_bytes()))
}

/// Copy + delete. A file moves whole; a folder moves object by object, and a failure half
/// way says how many moved and where each part is; the same move again finishes it.
pub(super) async fn rename(
    inner: &Inner,
    from: &MediaPath,
    to: &MediaPath,
    overwrite: bool,
) -> Result<(), StorageError> {
    let entry = inner.stat(from).await?.ok_or(StorageError::NotFound)?;
    if from == to {
        return Ok(());
    }
    let _guard = inner.name_locks.lock(&inner.key(to)).await;
    if entry.kind == EntryKind::File {
        inner.check_dest(to, overwrite).await?;
        inner
            .copy(&inner.key(from), &inner.key(to), entry.size)
            .await?;
        inner.delete_key(&inner.key(from)).await?;
        return keep_parent(inner, from).await;
    }
    if to.segments().starts_with(from.segments()) {
        return Err(StorageError::Invalid(
            "a folder cannot move into itself".into(),
        ));
    }
    let (src, dst) = (inner.dir_key(from), inner.dir_key(to));
    let mark = format!("{dst}{MOVING}");
    if inner.stat(to).await?.is_some() {
        if !resumes_move(inner, from, to).await? {
            return Err(StorageError::AlreadyExists);
        }
    } else {
        inner.check_dest(to, false).await?;
        inner.put(&mark, Bytes::from(src.clone()), &[]).await?;
    }
    let keys = inner.keys_under(&src).await?;
    for (moved, (key, size)) in keys.iter().enumerate() {
        let target = format!("{dst}{}", &key[src.len()..]);
        let step = async {
            inner.copy(key, &target, *size).await?;
            inner.delete_key(key).await
        };
        if let Err(e) = step.await {
            return Err(StorageError::Partial {
                done: moved as u64,
                message: format!(
                    "moved {moved} of {} objects of '{from}' to '{to}', then the storage failed; \
                     the moved ones are under '{to}', the rest still under '{from}': move \
                     '{from}' to '{to}' again to finish",
                    keys.len()
                ),
                cause: Box::new(e),
            });
        }
    }
    inner.delete_key(&mark).await?;
    keep_parent(inner, from).await
}
