//! What `http` asks of the library: a listing or search page, one item, a poster. Each runs
//! on the blocking pool under the storage timeout (a hung disk gives `Stalled`, 503). A listing
//! first checks the folder's mtime (one stat) and re-reads it when it changed, so files put
//! into the media root by hand show up at once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::fsview;
use super::model::{Item, Kind, ListRequest, Page};
use super::worker::{self, Job};
use super::{query, scan, Inner, Library, LibraryError};
use crate::storage::MediaPath;

/// A poster ready to send.
#[derive(Debug, Clone)]
pub struct Thumb {
    pub bytes: Vec<u8>,
    /// Strong validator: the poster's file name (a hash of path, size and mtime).
    pub etag: String,
}

impl Inner {
    /// Re-reads folder `dir` when its mtime differs from the index's read mark.
    fn refresh_if_stale(
        &self,
        canon: &Path,
        real: &Path,
        md: &std::fs::Metadata,
        dir: &MediaPath,
    ) -> Result<(), LibraryError> {
        let cur = fsview::mtime_ns(md);
        let mark = query::dir_mark(&self.lock(), &dir.to_string())?;
        if mark == Some(Some(cur)) {
            return Ok(());
        }
        let read_seq = self.seq.next();
        let entries = fsview::read_entries(canon, real, dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => LibraryError::PermissionDenied,
            std::io::ErrorKind::NotFound => LibraryError::NotFound,
            _ => LibraryError::Io(e.to_string()),
        })?;
        let mut conn = self.lock();
        if dir.is_root() {
            scan::guard_empty_root(&conn, &entries)?;
        }
        scan::apply_chunked(
            &mut conn,
            dir,
            fsview::trusted_mtime(cur),
            &entries,
            read_seq,
            &self.seq,
            &self.thumbs_dir,
        )?;
        Ok(())
    }

    fn list(&self, req: &ListRequest) -> Result<Page, LibraryError> {
        let canon = fsview::canonical_root(&self.root)?;
        let (real, md) = fsview::resolve_dir(&canon, &req.path)?;
        if req.query.is_none() {
            self.refresh_if_stale(&canon, &real, &md, &req.path)?;
        }
        query::page(&self.lock(), req)
    }

    fn item(&self, path: &MediaPath) -> Result<Item, LibraryError> {
        let (parent, _) = path.split_last().ok_or(LibraryError::NotFound)?;
        let canon = fsview::canonical_root(&self.root)?;
        let (real, md) = fsview::resolve_dir(&canon, &parent).map_err(|e| match e {
            LibraryError::NotADirectory => LibraryError::NotFound,
            e => e,
        })?;
        self.refresh_if_stale(&canon, &real, &md, &parent)?;
        query::item(&self.lock(), &path.to_string())?.ok_or(LibraryError::NotFound)
    }

    fn read_thumb(&self, item: &Item) -> Option<Thumb> {
        let name = item.thumb.as_ref()?;
        let bytes = std::fs::read(self.thumbs_dir.join(name)).ok()?;
        Some(Thumb {
            bytes,
            etag: name.trim_end_matches(".jpg").to_string(),
        })
    }

    /// Makes the poster of `path` now (and probes it first if needed, for the frame time).
    fn make_thumb_now(&self, path: &MediaPath) -> Result<(), LibraryError> {
        let canon = fsview::canonical_root(&self.root)?;
        let job = {
            let conn = self.lock();
            let item = query::item(&conn, &path.to_string())?.ok_or(LibraryError::NotFound)?;
            let id: i64 = conn.query_row(
                "SELECT id FROM media WHERE path = ?1",
                [path.to_string()],
                |r| r.get(0),
            )?;
            Job {
                id,
                path: item.path.clone(),
                size: i64::try_from(item.size).unwrap_or(i64::MAX),
                mtime_ns: item.mtime_ns,
                class: item.class,
                duration: item.duration,
                need_probe: self.tools().ffprobe && !item.probed,
                need_thumb: true,
            }
        };
        let out = worker::work(self, &canon, &job);
        worker::store(&self.lock(), &job, &out, &self.thumbs_dir)
    }
}

impl Library {
    /// Runs `f` on the blocking pool, bounded by `limit`.
    async fn blocking<T: Send + 'static>(
        &self,
        limit: Duration,
        f: impl FnOnce(&Inner) -> Result<T, LibraryError> + Send + 'static,
    ) -> Result<T, LibraryError> {
        let inner = Arc::clone(&self.inner);
        match tokio::time::timeout(limit, tokio::task::spawn_blocking(move || f(&inner))).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(LibraryError::Task(e.to_string())),
            Err(_) => Err(LibraryError::Stalled(limit.as_secs())),
        }
    }

    /// A folder's children (`req.query` None) or a search under it.
    pub async fn list(&self, req: ListRequest) -> Result<Page, LibraryError> {
        self.blocking(self.inner.timeout, move |i| i.list(&req))
            .await
    }

    /// `list` on the calling thread (benchmarks, tests). Blocking.
    pub fn list_blocking(&self, req: &ListRequest) -> Result<Page, LibraryError> {
        self.inner.list(req)
    }

    /// One file or folder with all its metadata.
    pub async fn item(&self, path: &MediaPath) -> Result<Item, LibraryError> {
        let path = path.clone();
        self.blocking(self.inner.timeout, move |i| i.item(&path))
            .await
    }

    /// The poster of `path`, made now when missing and ffmpeg is there (one at a time).
    /// `NoThumbnail` says why there is none.
    pub async fn thumbnail(&self, path: &MediaPath) -> Result<Thumb, LibraryError> {
        let no = |why: &str| Err(LibraryError::NoThumbnail(why.to_string()));
        let item = self.item(path).await?;
        if item.kind == Kind::Dir || !item.class.has_poster() {
            return no("not a video or image");
        }
        let read = |item: Item| self.blocking(self.inner.timeout, move |i| Ok(i.read_thumb(&item)));
        if let Some(t) = read(item.clone()).await? {
            return Ok(t);
        }
        let inner = self.inner.clone();
        let tools = tokio::task::spawn_blocking(move || inner.tools())
            .await
            .map_err(|e| LibraryError::Task(e.to_string()))?;
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
        if let Some(t) = read(item).await? {
            return Ok(t);
        }
        // ffprobe and ffmpeg are each killed after probe_timeout_secs.
        let limit = Duration::from_secs(2 * self.inner.config.probe_timeout_secs + 5);
        let p = path.clone();
        self.blocking(limit, move |i| i.make_thumb_now(&p)).await?;
        let item = self.item(path).await?;
        match read(item).await? {
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
}
