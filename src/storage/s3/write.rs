//! Writing to the bucket: uploads as S3 multipart uploads buffered one part at a time (the
//! object appears only at CompleteMultipartUpload; a failed or dropped upload is aborted, and
//! recorded in `staging` until then, so one the store could not abort is aborted later),
//! and the checks of a destination name shared with `tree`.
//!
//! No-overwrite: not every S3 server has conditional writes, so commits and renames to one
//! name are serialised on this node (`locks::NameLocks`) and the name is checked with a
//! HEAD under that lock. Two nodes sharing a bucket can still race (docs/CONTRACT.md).

use std::sync::Arc;
use std::time::Duration;

use ::http::Method;
use bytes::Bytes;

use super::staging::{self, Manifest};
use super::stream::PartStream;
use super::Inner;
use crate::storage::{MediaPath, ObjectMeta, StorageError, Upload, UploadOptions};

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
        // A key is bytes: the name in the other Unicode form (NFD, as a Mac writes it) would
        // be a second file of the same name, which the local backend refuses too. Even with
        // `overwrite`: writing this spelling would leave both.
        for twin in twins(dest) {
            if self.head(&self.key(&twin)).await?.is_some() || self.dir_exists(&twin).await? {
                return Err(StorageError::AlreadyExists);
            }
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
}

/// `path` spelt wholly in NFC and wholly in NFD, where that differs from `path`.
pub(super) fn twins(path: &MediaPath) -> Vec<MediaPath> {
    use unicode_normalization::UnicodeNormalization;
    let name = path.to_string();
    if name.is_ascii() {
        return Vec::new();
    }
    let forms: [String; 2] = [name.nfc().collect(), name.nfd().collect()];
    forms
        .iter()
        .filter(|f| **f != name)
        .filter_map(|f| MediaPath::from_decoded(f).ok())
        .collect()
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
    let record = match record(&inner, &key, &upload_id).await {
        Ok(r) => r,
        Err(e) => {
            abort(&inner, &key, &upload_id).await;
            return Err(e);
        }
    };
    Ok(Box::new(S3Upload {
        record,
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

/// Records one-shot upload `upload_id` of `object` in this node's staging (see `staging`),
/// durably, so that a crash or an abort the store does not answer leaves something the sweep
/// aborts later. The record's key is among the running ones until `forget`.
/// Empty when uploads are not tracked (`S3Storage::track_uploads`).
async fn record(inner: &Inner, object: &str, upload_id: &str) -> Result<String, StorageError> {
    if !inner.tracked.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(String::new());
    }
    let key = staging::new_oneshot_key()?;
    running(inner).insert(key.clone());
    let m = Manifest {
        object: object.to_string(),
        upload_id: upload_id.to_string(),
        parts: Vec::new(),
    };
    let (root, k) = (inner.staging.clone(), key.clone());
    match inner
        .fs(move || staging::create(&root, &k, &m).map(drop))
        .await
    {
        Ok(()) => Ok(key),
        Err(e) => {
            running(inner).remove(&key);
            Err(e)
        }
    }
}

fn running(inner: &Inner) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
    inner.oneshots.lock().unwrap_or_else(|p| p.into_inner())
}

/// One-shot upload `record` is over: its record goes when the store has ended the upload
/// (`ended`: completed or aborted), else it stays for the sweep to abort.
async fn forget(inner: &Inner, record: &str, ended: bool) {
    if record.is_empty() {
        return;
    }
    if ended {
        let (root, k) = (inner.staging.clone(), record.to_string());
        if let Err(e) = inner.fs(move || staging::remove(&root, &k)).await {
            tracing::warn!(error = %e, "cannot remove an S3 upload's record");
        }
    }
    running(inner).remove(record);
}

struct S3Upload {
    inner: Arc<Inner>,
    /// Its record in this node's staging (empty: not tracked).
    record: String,
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

    /// Aborts after part error `e`, and says what it was. A store that dropped the upload
    /// (`UploadDropped`) may answer a part before reading its body and close the
    /// connection, so the answer is lost: a cut connection is checked with a ListParts.
    async fn fail(&mut self, e: StorageError) -> StorageError {
        let e = match e {
            StorageError::Unavailable(_) => {
                match self.inner.list_parts(&self.object, &self.upload_id).await {
                    Err(StorageError::UploadDropped) => StorageError::UploadDropped,
                    _ => e,
                }
            }
            e => e,
        };
        self.abort().await;
        e
    }

    async fn abort(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let ended = abort(&self.inner, &self.object, &self.upload_id).await;
        forget(&self.inner, &self.record, ended).await;
    }
}

/// Whether the upload is gone from the store.
pub(super) async fn abort(inner: &Inner, key: &str, upload_id: &str) -> bool {
    match inner.abort_upload(key, upload_id).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(key, error = %e, "could not abort an S3 multipart upload");
            false
        }
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
        let record = std::mem::take(&mut self.record);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let ended = abort(&inner, &key, &id).await;
                forget(&inner, &record, ended).await;
            });
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
            if let Err(e) = res {
                self.part = None;
                return Err(self.fail(e).await);
            }
            return Ok(());
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
                    return Err(self.fail(e).await);
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
                return Err(self.fail(e).await);
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
        forget(&inner, &self.record, true).await;
        inner.head(&key).await?.ok_or(StorageError::Changed)
    }

    async fn close(mut self: Box<Self>) {
        self.abort().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twins_are_the_other_unicode_forms() {
        let p = |s: &str| MediaPath::from_decoded(s).unwrap();
        assert!(twins(&p("a/plain.txt")).is_empty());
        assert_eq!(
            twins(&p("d\u{e9}j\u{e0}/caf\u{e9}")),
            [p("de\u{301}ja\u{300}/cafe\u{301}")]
        );
        assert_eq!(twins(&p("cafe\u{301}")), [p("caf\u{e9}")]);
    }
}
