//! What `http` asks of the library: a listing or search page, one item, a poster. Storage
//! calls carry the storage timeout, database work runs on the blocking pool under it too (a
//! hung disk gives `Stalled`, 503). A listing first checks the folder's mtime (one stat) and
//! re-reads it when it changed, so files put into the media root by hand show up at once.

use std::sync::Arc;

use super::disk;
use super::model::{to_ns, Item, Kind, ListRequest, Page};
use super::worker::{self, Job};
use super::{query, scan, Inner, Library, LibraryError};
use crate::storage::{MediaPath, StorageError};

/// A poster ready to send.
#[derive(Debug, Clone)]
pub struct Thumb {
    pub bytes: Vec<u8>,
    /// Strong validator: the poster's file name (a hash of path, size and mtime).
    pub etag: String,
}

impl Library {
    /// Runs `f` with the query connection on the blocking pool, bounded by the storage
    /// timeout (a listing's database work waits behind a scanner transaction at most).
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, LibraryError> + Send + 'static,
    ) -> Result<T, LibraryError> {
        let inner = Arc::clone(&self.inner);
        crate::blocking::run("library query", self.inner.timeout, move || f(&inner)).await
    }

    /// Re-reads folder `dir` when its mtime differs from the index's read mark. `NotFound`
    /// / `NotADirectory` when it is not a folder.
    async fn refresh_if_stale(&self, dir: &MediaPath) -> Result<(), LibraryError> {
        let found = self.inner.storage.stat(dir).await?;
        disk::is_dir(&found, dir)?;
        let cur = found.map(|e| to_ns(e.modified)).unwrap_or(0);
        let d = dir.to_string();
        let mark = self.db(move |i| query::dir_mark(&i.lock(), &d)).await?;
        if mark == Some(Some(cur)) {
            return Ok(());
        }
        let reading = self.inner.seq.reading();
        let (entries, mtime) = disk::entries(self.inner.storage.list(dir).await?);
        let dir = dir.clone();
        let applied = self
            .db(move |i| {
                // Held until applied, even if this request stops waiting.
                let reading = reading;
                let mut conn = i.lock();
                if dir.is_root() {
                    scan::guard_empty_root(&conn, &entries)?;
                }
                scan::apply_chunked(
                    &mut conn,
                    &dir,
                    disk::trusted_mtime(mtime),
                    &entries,
                    reading.at,
                    &i.seq,
                    &i.thumbs_dir,
                )?;
                Ok(())
            })
            .await;
        match applied {
            // A data dir that takes no write (read-only, full) still answers reads: from the
            // index as it is, refreshed once it is writable again.
            Err(LibraryError::DataDir(fault)) => {
                tracing::warn!(error = %fault, "library: folder not refreshed, the data dir takes no write; answering from the index");
                Ok(())
            }
            other => other,
        }
    }

    /// A folder's children, or a search under it (`req.is_search()`).
    pub async fn list(&self, req: ListRequest) -> Result<Page, LibraryError> {
        if !req.is_search() {
            self.refresh_if_stale(&req.path).await?;
        } else {
            self.freshen_for_search();
            // A search answers from the index: while the disk is away (unmounted, stalled)
            // the kept index still says what is on it. A folder that is not one is refused.
            match self.inner.storage.stat(&req.path).await {
                Ok(found) => disk::is_dir(&found, &req.path)?,
                Err(StorageError::Unavailable(_) | StorageError::Stalled { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.db(move |i| query::page(&i.lock(), &req)).await
    }

    /// One file or folder with all its metadata.
    pub async fn item(&self, path: &MediaPath) -> Result<Item, LibraryError> {
        let (parent, _) = path.split_last().ok_or(LibraryError::NotFound)?;
        self.refresh_if_stale(&parent).await.map_err(|e| match e {
            LibraryError::NotADirectory => LibraryError::NotFound,
            e => e,
        })?;
        let p = path.to_string();
        self.db(move |i| query::item(&i.lock(), &p)?.ok_or(LibraryError::NotFound))
            .await
    }

    /// The poster file of `item`, if made.
    async fn read_thumb(&self, item: &Item) -> Result<Option<Thumb>, LibraryError> {
        let Some(name) = item.thumb.clone() else {
            return Ok(None);
        };
        self.db(move |i| {
            Ok(std::fs::read(i.thumbs_dir.join(&name))
                .ok()
                .map(|bytes| Thumb {
                    bytes,
                    etag: name.trim_end_matches(".jpg").to_string(),
                }))
        })
        .await
    }

    /// Makes the poster of `path` now (and probes it first if needed, for the frame time).
    async fn make_thumb_now(&self, path: &MediaPath) -> Result<(), LibraryError> {
        let p = path.to_string();
        let job = self
            .db(move |i| {
                let conn = i.lock();
                let item = query::item(&conn, &p)?.ok_or(LibraryError::NotFound)?;
                let id: i64 =
                    conn.query_row("SELECT id FROM media WHERE path = ?1", [&p], |r| r.get(0))?;
                Ok(Job {
                    id,
                    path: item.path.clone(),
                    size: i64::try_from(item.size).unwrap_or(i64::MAX),
                    mtime_ns: item.mtime_ns,
                    class: item.class,
                    duration: item.duration,
                    need_probe: i.tools().ffprobe && !item.probed,
                    need_thumb: true,
                })
            })
            .await?;
        worker::run_job(&self.inner, job).await
    }

    /// The poster of `path`, made now when missing and ffmpeg is there (one at a time).
    /// `NoThumbnail` says why there is none.
    pub async fn thumbnail(&self, path: &MediaPath) -> Result<Thumb, LibraryError> {
        let no = |why: &str| Err(LibraryError::NoThumbnail(why.to_string()));
        let item = self.item(path).await?;
        if item.kind == Kind::Dir || !item.class.has_poster() {
            return no("not a video or image");
        }
        if let Some(t) = self.read_thumb(&item).await? {
            return Ok(t);
        }
        let inner = self.inner.clone();
        let tools = crate::blocking::run_unbounded("library tools", move || {
            Ok::<_, LibraryError>(inner.tools())
        })
        .await?;
        if !tools.ffmpeg {
            return no("ffmpeg is not installed");
        }
        if !self.inner.config.thumbnails {
            return no("thumbnails are turned off (library.thumbnails)");
        }
        if item.thumb_failed {
            return no("ffmpeg could not make a poster of this file");
        }
        let _permit = self
            .inner
            .thumb_gate
            .acquire()
            .await
            .map_err(|e| LibraryError::Task(e.to_string()))?;
        // Another request may have made it while this one waited.
        let item = self.item(path).await?;
        if let Some(t) = self.read_thumb(&item).await? {
            return Ok(t);
        }
        // ffprobe and ffmpeg are each killed after probe_timeout_secs.
        self.make_thumb_now(path).await?;
        let item = self.item(path).await?;
        match self.read_thumb(&item).await? {
            Some(t) => Ok(t),
            None => no("ffmpeg could not make a poster of this file"),
        }
    }
}

impl Library {
    /// Whether posters can be made (ffmpeg found and `library.thumbnails` on).
    pub fn can_make_thumbs(&self) -> bool {
        self.inner.thumbs_enabled()
    }

    /// How many files the index holds and their bytes (the storage page's summary).
    pub async fn totals(&self) -> Result<Totals, LibraryError> {
        self.db(|i| {
            let (files, bytes): (i64, i64) = i.lock().query_row(
                "SELECT count(*), coalesce(sum(size), 0) FROM media WHERE kind = 'file'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(Totals {
                count: u64::try_from(files).unwrap_or(0),
                bytes: u64::try_from(bytes).unwrap_or(0),
            })
        })
        .await
    }
}

/// A count of things and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub count: u64,
    pub bytes: u64,
}
