//! Resumable (tus) uploads to S3: one S3 multipart upload per tus upload, with the bytes not
//! yet making a whole part kept in this node's data dir (`staging`), since a part is all or
//! nothing while a tus PATCH keeps what arrived.
//!
//! Step order (why a `kill -9` anywhere is safe, docs/ARCHITECTURE.md): bytes are appended
//! to the tail, fsynced about once a second and only then reported (`on_durable`, the
//! database offset). A full part is sent only once the database offset covers it (fsync +
//! report first), then recorded in the manifest, then the tail is rotated. A crash after the
//! send leaves an unrecorded part that is sent again under the same number; after the record,
//! a tail starting before the recorded end, whose start `reopen` skips. Without progress
//! reports (a tus body with a checksum: all or nothing) no part is sent while the body
//! streams: the tail grows and later bodies or the commit send it.

use std::any::Any;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::staging::{self, Manifest};
use super::{write, Inner};
use crate::blocking;
use crate::storage::{MediaPath, ObjectMeta, OnDurable, StorageError, Upload};

const SYNC_INTERVAL: Duration = Duration::from_secs(1);

type Job = Box<dyn FnOnce() -> Result<Box<dyn Any + Send>, StorageError> + Send>;

impl Inner {
    /// Runs staging file work on the blocking pool.
    pub(super) async fn fs<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, StorageError> + Send + 'static,
    {
        // Type-erased: one instance of the pool's machinery for every staging call, not one
        // per call site (binary size).
        let job: Job = Box::new(move || f().map(|t| Box::new(t) as Box<dyn Any + Send>));
        let any = blocking::run("s3 staging", self.http.timeout, job).await?;
        any.downcast::<T>()
            .map(|t| *t)
            .map_err(|_| StorageError::Io("s3 staging: a result of another type".into()))
    }
}

pub(super) async fn begin(
    inner: Arc<Inner>,
    dest: &MediaPath,
    on_durable: Option<OnDurable>,
) -> Result<Box<dyn Upload>, StorageError> {
    let object = inner.key(dest);
    if object.contains(['\n', '\r']) {
        return Err(StorageError::Invalid(
            "a resumable upload's name cannot hold a line break on S3".into(),
        ));
    }
    let upload_id = inner.create_multipart(&object).await?;
    let key = staging::new_key()?;
    let manifest = Manifest {
        object,
        upload_id,
        parts: Vec::new(),
    };
    let (root, k, m) = (inner.staging.clone(), key.clone(), manifest.clone());
    let tail = match inner.fs(move || staging::create(&root, &k, &m)).await {
        Ok(t) => t,
        Err(e) => {
            write::abort(&inner, &manifest.object, &manifest.upload_id).await;
            return Err(e);
        }
    };
    let dir = inner.staging.join(&key);
    Ok(Box::new(S3Resumable::new(
        inner, key, dir, manifest, tail, 0, 0, on_durable,
    )))
}

pub(super) async fn resume(
    inner: Arc<Inner>,
    key: &str,
    durable: u64,
    on_durable: Option<OnDurable>,
) -> Result<Box<dyn Upload>, StorageError> {
    let (root, k) = (inner.staging.clone(), key.to_string());
    let r = inner
        .fs(move || staging::reopen(&root, &k, durable))
        .await?;
    let dir = staging::dir_of(&inner.staging, key)?;
    Ok(Box::new(S3Resumable::new(
        inner,
        key.to_string(),
        dir,
        r.manifest,
        r.tail,
        r.tail_start,
        durable,
        on_durable,
    )))
}

/// Aborts the multipart upload this node recorded for `key`, then forgets it. Only ever an
/// UploadId from this node's own manifest: other nodes' uploads in a shared bucket are
/// never touched. When the abort fails the folder stays, so the sweep tries again.
pub(super) async fn discard(inner: &Inner, key: &str) -> Result<(), StorageError> {
    let (root, k) = (inner.staging.clone(), key.to_string());
    let manifest = match inner.fs(move || staging::manifest_of(&root, &k)).await {
        Err(StorageError::UploadGone) => return Ok(()),
        m => m?,
    };
    if let Some(m) = manifest {
        inner.abort_upload(&m.object, &m.upload_id).await?;
    }
    let (root, k) = (inner.staging.clone(), key.to_string());
    inner.fs(move || staging::remove(&root, &k)).await
}

/// This node's staged uploads for the sweep. A one-shot upload's record is left out while
/// its upload runs, and otherwise (its abort failed, or the process died) reported as old
/// as can be, so the next pass aborts it whatever the orphan age.
pub(super) async fn keys(inner: &Inner) -> Result<Vec<(String, SystemTime)>, StorageError> {
    let root = inner.staging.clone();
    let mut keys = inner.fs(move || staging::keys(&root)).await?;
    let live = inner.oneshots.lock().unwrap_or_else(|p| p.into_inner());
    keys.retain(|(k, _)| !live.contains(k));
    for (k, modified) in keys.iter_mut() {
        if staging::is_oneshot(k) {
            *modified = SystemTime::UNIX_EPOCH;
        }
    }
    Ok(keys)
}

struct S3Resumable {
    inner: Arc<Inner>,
    key: String,
    dir: PathBuf,
    manifest: Manifest,
    tail: Arc<File>,
    /// Upload offset of the tail file's first byte (at or before the recorded parts' end).
    tail_start: u64,
    /// Upload offset of the end of what was written.
    end: u64,
    /// What is fsynced (and reported).
    synced: u64,
    last_sync: Instant,
    on_durable: Option<OnDurable>,
}

impl S3Resumable {
    #[allow(clippy::too_many_arguments)]
    fn new(
        inner: Arc<Inner>,
        key: String,
        dir: PathBuf,
        manifest: Manifest,
        tail: File,
        tail_start: u64,
        end: u64,
        on_durable: Option<OnDurable>,
    ) -> Self {
        S3Resumable {
            inner,
            key,
            dir,
            manifest,
            tail: Arc::new(tail),
            tail_start,
            end,
            synced: end,
            last_sync: Instant::now(),
            on_durable,
        }
    }

    /// Makes the tail durable, then reports the new offset (the order the step-order
    /// invariant needs: never a reported byte that is not on disk).
    async fn sync(&mut self) -> Result<(), StorageError> {
        let (tail, dir, end) = (self.tail.clone(), self.dir.clone(), self.end);
        let report = self.on_durable.clone();
        self.inner
            .fs(move || {
                staging::sync(&tail, &dir)?;
                if let Some(r) = report {
                    r(end);
                }
                Ok(())
            })
            .await?;
        self.synced = end;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Sends the tail's first whole part, records it, and rotates the tail when nothing is
    /// left in it.
    async fn flush_part(&mut self) -> Result<(), StorageError> {
        let part = self.inner.part_size;
        let done = self.manifest.parts_len();
        if self.synced < done + part {
            self.sync().await?;
        }
        let (tail, dir, at) = (self.tail.clone(), self.dir.clone(), done - self.tail_start);
        let body = self
            .inner
            .fs(move || staging::read_at(&tail, at, part as usize, &dir))
            .await?;
        let m = &self.manifest;
        let etag = self
            .inner
            .upload_part(&m.object, &m.upload_id, m.parts.len(), Bytes::from(body))
            .await?;
        let mut next = self.manifest.clone();
        next.parts.push((part, etag));
        let (dir, m) = (self.dir.clone(), next.clone());
        self.inner
            .fs(move || staging::write_manifest(&dir, &m))
            .await?;
        self.manifest = next;
        let done = done + part;
        if self.end == done {
            let (dir, old) = (self.dir.clone(), self.tail_start);
            let f = self
                .inner
                .fs(move || staging::rotate(&dir, old, done))
                .await?;
            self.tail = Arc::new(f);
            self.tail_start = done;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Upload for S3Resumable {
    fn key(&self) -> &str {
        &self.key
    }

    async fn write(&mut self, mut chunk: Bytes) -> Result<(), StorageError> {
        let part = self.inner.part_size;
        let reporting = self.on_durable.is_some();
        while !chunk.is_empty() {
            let live = self.end - self.manifest.parts_len();
            if reporting && live >= part {
                self.flush_part().await?;
                continue;
            }
            let room = if reporting { part - live } else { u64::MAX };
            let piece = chunk.split_to(room.min(chunk.len() as u64) as usize);
            let n = piece.len() as u64;
            let (tail, dir) = (self.tail.clone(), self.dir.clone());
            self.inner
                .fs(move || staging::append(&tail, &piece, &dir))
                .await?;
            self.end += n;
        }
        if reporting && self.last_sync.elapsed() >= SYNC_INTERVAL {
            self.sync().await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<u64, StorageError> {
        if self.synced != self.end {
            self.sync().await?;
        }
        Ok(self.end)
    }

    /// Sends what the tail holds as the last parts and completes the multipart upload under
    /// the name lock, after the no-overwrite HEAD. On failure the staged state is kept (parts
    /// sent here are not recorded: a retry sends them again under the same numbers).
    async fn commit(
        self: Box<Self>,
        dest: &MediaPath,
        overwrite: bool,
    ) -> Result<ObjectMeta, StorageError> {
        let inner = self.inner.clone();
        let key = inner.key(dest);
        let m = &self.manifest;
        if key != m.object {
            return Err(StorageError::Invalid(
                "an S3 upload is committed to the name it was begun for".into(),
            ));
        }
        let _guard = inner.name_locks.lock(&key).await;
        inner.check_dest(dest, overwrite).await?;
        let meta = if self.end == 0 {
            inner.abort_upload(&key, &m.upload_id).await?;
            inner.put_empty(&key).await?
        } else {
            let mut etags: Vec<String> = m.parts.iter().map(|(_, e)| e.clone()).collect();
            let mut at = m.parts_len();
            while at < self.end {
                let n = inner.part_size.min(self.end - at);
                let (tail, dir, off) = (self.tail.clone(), self.dir.clone(), at - self.tail_start);
                let body = inner
                    .fs(move || staging::read_at(&tail, off, n as usize, &dir))
                    .await?;
                let etag = inner
                    .upload_part(&key, &m.upload_id, etags.len(), Bytes::from(body))
                    .await?;
                etags.push(etag);
                at += n;
            }
            let refs: Vec<&str> = etags.iter().map(String::as_str).collect();
            inner.complete(&key, &m.upload_id, &refs).await?;
            inner.head(&key).await?.ok_or(StorageError::Changed)?
        };
        let (root, k) = (inner.staging.clone(), self.key.clone());
        if let Err(e) = inner.fs(move || staging::remove(&root, &k)).await {
            tracing::warn!(upload = %self.key, error = %e, "cannot remove an S3 upload's staging");
        }
        Ok(meta)
    }

    /// Nothing to let go of: bytes past the durable offset are cut by the next `resume`.
    async fn close(self: Box<Self>) {}
}
