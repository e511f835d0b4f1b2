//! Writing to the bucket: uploads as S3 multipart uploads buffered one part at a time (the
//! object appears only at CompleteMultipartUpload; a failed or dropped upload is aborted),
//! folders as zero-byte `name/` markers, delete, and rename as copy (`copy`) + delete.
//!
//! No-overwrite: not every S3 server has conditional writes, so commits and renames to one
//! name are serialised on this node (`locks::NameLocks`) and the name is checked with a
//! HEAD under that lock. Two nodes sharing a bucket can still race (docs/CONTRACT.md).

use std::sync::Arc;
use std::time::Duration;

use ::http::{Method, StatusCode};
use bytes::Bytes;

use super::stream::PartStream;
use super::Inner;
use crate::storage::{EntryKind, MediaPath, ObjectMeta, StorageError, Upload, UploadOptions};

impl Inner {
    /// Time for one request carrying `bytes`: the storage timeout plus 1 s per MiB, so a
    /// 16 MiB part on a slow link is not called stalled.
    pub(super) fn timeout_for(&self, bytes: usize) -> Duration {
        self.http.timeout + Duration::from_secs((bytes >> 20) as u64)
    }

    /// Where `dest` may be written: no file on the way, not a folder, and (without
    /// `overwrite`) not there yet.
    pub(super) async fn check_dest(
        &self,
        dest: &MediaPath,
        overwrite: bool,
    ) -> Result<(), StorageError> {
        let (parent, _) = dest.split_last().ok_or(StorageError::IsDirectory)?;
        let mut so_far = MediaPath::root();
        for seg in parent.segments() {
            so_far = so_far
                .join(seg)
                .map_err(|e| StorageError::Invalid(e.to_string()))?;
            if self.head(&self.key(&so_far)).await?.is_some() {
                return Err(StorageError::AlreadyExists);
            }
        }
        if self.head(&self.key(dest)).await?.is_some() {
            return if overwrite {
                Ok(())
            } else {
                Err(StorageError::AlreadyExists)
            };
        }
        if self.dir_exists(dest).await? {
            return Err(StorageError::IsDirectory);
        }
        Ok(())
    }

    pub(super) async fn put(
        &self,
        key: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<(), StorageError> {
        let url = self.url(&Method::PUT, key, &[], headers);
        let timeout = self.timeout_for(body.len());
        let a = self
            .http
            .send_timed("write", Method::PUT, &url, headers, body, timeout)
            .await?;
        if !a.status.is_success() {
            return Err(self.http.error("write", a).await);
        }
        let _ = self.http.small_body("write", a.body).await;
        Ok(())
    }

    async fn delete_key(&self, key: &str) -> Result<(), StorageError> {
        let url = self.url(&Method::DELETE, key, &[], &[]);
        let a = self.send("delete", Method::DELETE, &url, &[]).await?;
        if !a.status.is_success() && a.status != StatusCode::NOT_FOUND {
            return Err(self.http.error("delete", a).await);
        }
        Ok(())
    }
}

pub(super) async fn begin(
    inner: Arc<Inner>,
    dest: &MediaPath,
    opts: UploadOptions,
) -> Result<Box<dyn Upload>, StorageError> {
    inner.check_dest(dest, opts.overwrite).await?;
    if opts.resumable {
        return super::resumable::begin(inner, dest, opts.on_durable).await;
    }
    // The upload's own key until commit: a multipart upload is invisible until completed,
    // so it is created at the destination name itself.
    let key = inner.key(dest);
    let upload_id = inner.create_multipart(&key).await?;
    Ok(Box::new(S3Upload {
        buf: Vec::new(),
        expected: opts.expected,
        part: None,
        inner,
        object: key,
        upload_id,
        etags: Vec::new(),
        written: 0,
        done: false,
    }))
}

struct S3Upload {
    inner: Arc<Inner>,
    /// The object it becomes (its destination's key).
    object: String,
    upload_id: String,
    /// At most one part, sent when full: the memory an upload of unknown length holds.
    buf: Vec<u8>,
    /// The announced length: then parts are streamed to the store as they arrive (`part`)
    /// and nothing is buffered.
    expected: Option<u64>,
    part: Option<PartStream>,
    etags: Vec<String>,
    written: u64,
    /// Completed or aborted: nothing left to clean up.
    done: bool,
}

impl S3Upload {
    fn next_number(&self) -> Result<u16, StorageError> {
        u16::try_from(self.etags.len() + 1)
            .ok()
            .filter(|n| *n <= 10_000)
            .ok_or_else(|| StorageError::Invalid("more than 10,000 parts".into()))
    }

    /// Streams `chunk` on into the parts of an upload of announced length `total`.
    async fn stream(&mut self, mut chunk: Bytes, total: u64) -> Result<(), StorageError> {
        while !chunk.is_empty() {
            if self.part.is_none() {
                let len = self.inner.part_size.min(total - self.written);
                if len == 0 {
                    return Err(StorageError::Invalid(format!(
                        "more bytes than the {total} announced"
                    )));
                }
                let n = self.next_number()?;
                let inner = self.inner.clone();
                let part = PartStream::start(inner, &self.object, &self.upload_id, n, len);
                self.part = Some(part);
            }
            let Some(part) = self.part.as_mut() else {
                continue;
            };
            let piece = chunk.split_to((part.left() as usize).min(chunk.len()));
            let n = piece.len() as u64;
            part.push(piece).await?;
            self.written += n;
            if part.left() == 0 {
                let timeout = self.inner.timeout_for(1 << 20);
                let etag = part.finish(timeout).await?;
                self.part = None;
                self.etags.push(etag);
            }
        }
        Ok(())
    }

    async fn send_part(&mut self, body: Bytes) -> Result<(), StorageError> {
        let etag = self
            .inner
            .upload_part(&self.object, &self.upload_id, self.etags.len(), body)
            .await?;
        self.etags.push(etag);
        Ok(())
    }

    async fn abort(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        abort(&self.inner, &self.object, &self.upload_id).await;
    }
}

pub(super) async fn abort(inner: &Inner, key: &str, upload_id: &str) {
    if let Err(e) = inner.abort_upload(key, upload_id).await {
        tracing::warn!(key, error = %e, "could not abort an S3 multipart upload");
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Dropped mid-way (the request was cancelled): the parts already sent are billed
        // storage until aborted. The abort is one short request; it cannot be awaited in
        // `drop`, so it runs on its own (bounded by the storage timeout).
        let inner = self.inner.clone();
        let key = std::mem::take(&mut self.object);
        let id = std::mem::take(&mut self.upload_id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { abort(&inner, &key, &id).await });
        }
    }
}

#[async_trait::async_trait]
impl Upload for S3Upload {
    fn key(&self) -> &str {
        &self.upload_id
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if let Some(total) = self.expected {
            let res = self.stream(chunk, total).await;
            if res.is_err() {
                self.part = None;
                self.abort().await;
            }
            return res;
        }
        let part = self.inner.part_size as usize;
        if self.buf.capacity() == 0 {
            // One allocation of the part's size, not a doubling series of copies.
            self.buf.reserve_exact(part);
        }
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let take = (part - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == part {
                let body = Bytes::from(std::mem::take(&mut self.buf));
                if let Err(e) = self.send_part(body).await {
                    self.abort().await;
                    return Err(e);
                }
            }
        }
        self.written += chunk.len() as u64;
        Ok(())
    }

    async fn finish(&mut self) -> Result<u64, StorageError> {
        if let Some(total) = self.expected {
            if self.written != total {
                self.part = None;
                self.abort().await;
                return Err(StorageError::ClientGone(format!(
                    "{} of the {total} bytes announced",
                    self.written
                )));
            }
            return Ok(self.written);
        }
        // The last part may be short. An empty object has no part at all (S3 servers differ
        // on an empty part: Garage refuses it); `commit` writes it with a plain PUT.
        if !self.buf.is_empty() {
            let body = Bytes::from(std::mem::take(&mut self.buf));
            if let Err(e) = self.send_part(body).await {
                self.abort().await;
                return Err(e);
            }
        }
        Ok(self.written)
    }

    async fn commit(
        mut self: Box<Self>,
        dest: &MediaPath,
        overwrite: bool,
    ) -> Result<ObjectMeta, StorageError> {
        let key = self.inner.key(dest);
        if key != self.object {
            self.abort().await;
            return Err(StorageError::Invalid(
                "an S3 upload is committed to the name it was begun for".into(),
            ));
        }
        let inner = self.inner.clone();
        let _guard = inner.name_locks.lock(&key).await;
        if let Err(e) = inner.check_dest(dest, overwrite).await {
            self.abort().await;
            return Err(e);
        }
        if self.etags.is_empty() {
            self.abort().await;
            return inner.put_empty(&key).await;
        }
        let etags: Vec<&str> = self.etags.iter().map(String::as_str).collect();
        if let Err(e) = inner.complete(&key, &self.upload_id, &etags).await {
            self.abort().await;
            return Err(e);
        }
        self.done = true;
        inner.head(&key).await?.ok_or(StorageError::Changed)
    }

    async fn close(mut self: Box<Self>) {
        self.abort().await;
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
    StorageError::Io(format!(
        "deleted {deleted} objects of '{path}' before: {e}; the rest is still there: \
         delete again to finish"
    ))
}

/// A folder: a zero-byte `name/` marker, so an empty folder exists.
pub(super) async fn create_dir(inner: &Inner, path: &MediaPath) -> Result<(), StorageError> {
    if path.is_root() || path.is_hidden() {
        return Err(StorageError::AlreadyExists);
    }
    let key = inner.dir_key(path);
    let _guard = inner.name_locks.lock(&inner.key(path)).await;
    if inner.dir_exists(path).await? || inner.head(&inner.key(path)).await?.is_some() {
        return Err(StorageError::AlreadyExists);
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

/// Copy + delete. A file moves whole; a folder moves object by object, and a failure half
/// way says how many moved and where each part is.
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
    if inner.stat(to).await?.is_some() {
        return Err(StorageError::AlreadyExists);
    }
    inner.check_dest(to, false).await?;
    let (src, dst) = (inner.dir_key(from), inner.dir_key(to));
    let keys = inner.keys_under(&src).await?;
    for (moved, (key, size)) in keys.iter().enumerate() {
        let target = format!("{dst}{}", &key[src.len()..]);
        let step = async {
            inner.copy(key, &target, *size).await?;
            inner.delete_key(key).await
        };
        if let Err(e) = step.await {
            return Err(StorageError::Io(format!(
                "moved {moved} of {} objects of '{from}' to '{to}' before: {e}; the moved ones \
                 are under '{to}', the rest still under '{from}'",
                keys.len()
            )));
        }
    }
    keep_parent(inner, from).await
}
