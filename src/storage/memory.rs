//! An in-memory backend: the second implementation of [`Storage`] that proves the boundary.
//! The library, PUT, multipart and tus tests run against it through the trait alone
//! (`tests/storage_boundary.rs`), and tests use it to inject faults a real disk cannot be made
//! to show on demand (a folder that fails to list). Not for production: nothing survives a
//! restart.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;

use super::{
    ByteStream, Entry, EntryKind, Found, Listing, MediaPath, Object, ObjectMeta, OnDurable,
    ProbeSource, Space, Storage, StorageError, Upload, UploadOptions,
};

/// The size this backend pretends to have, so free space shrinks as files are added.
pub const CAPACITY: u64 = 1 << 30;

#[derive(Default)]
struct State {
    files: BTreeMap<String, (Bytes, ObjectMeta)>,
    /// Every folder but the root.
    dirs: BTreeSet<String>,
    /// Resumable uploads' durable bytes, by key, and when they were last written.
    staged: BTreeMap<String, (Vec<u8>, SystemTime)>,
    failing: HashSet<String>,
    version: u64,
}

/// The in-memory backend; clones share the same contents.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
}

fn parent_of(p: &str) -> &str {
    p.rsplit_once('/').map(|(a, _)| a).unwrap_or("")
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a file (and its folders) in place, as if copied in by hand.
    pub fn insert(&self, path: &str, bytes: &[u8]) {
        let mut s = self.lock();
        let p = MediaPath::from_decoded(path).expect("a valid test path");
        let mut so_far = MediaPath::root();
        if let Some((parent, _)) = p.split_last() {
            for seg in parent.segments() {
                so_far = so_far.join(seg).expect("valid");
                s.dirs.insert(so_far.to_string());
            }
        }
        s.version += 1;
        let meta = meta(bytes.len(), s.version);
        s.files
            .insert(p.to_string(), (Bytes::copy_from_slice(bytes), meta));
    }

    /// Makes listing `dir` fail from now on (an unreadable folder).
    pub fn fail_listing(&self, dir: &str) {
        self.lock().failing.insert(dir.to_string());
    }

    /// The bytes of a file, if there.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.lock().files.get(path).map(|(b, _)| b.to_vec())
    }

    /// Keys of resumable uploads' data.
    pub fn staged_keys(&self) -> Vec<String> {
        self.lock().staged.keys().cloned().collect()
    }
}

fn meta(size: usize, version: u64) -> ObjectMeta {
    ObjectMeta {
        size: size as u64,
        modified: SystemTime::now(),
        etag: format!("m{version:x}-{size:x}"),
    }
}

fn file_entry(name: &str, m: &ObjectMeta) -> Entry {
    Entry {
        name: name.to_string(),
        kind: EntryKind::File,
        size: m.size,
        modified: m.modified,
        via_link: false,
        id: None,
    }
}

fn dir_entry(name: &str) -> Entry {
    Entry {
        name: name.to_string(),
        kind: EntryKind::Dir,
        size: 0,
        modified: SystemTime::UNIX_EPOCH,
        via_link: false,
        id: None,
    }
}

impl State {
    fn is_dir(&self, p: &str) -> bool {
        p.is_empty() || self.dirs.contains(p)
    }

    fn exists(&self, p: &str) -> bool {
        self.is_dir(p) || self.files.contains_key(p)
    }

    /// Folders of `dir` that are missing, outermost first; `AlreadyExists` for a file on the
    /// way.
    fn missing_dirs(&self, dir: &MediaPath) -> Result<Vec<String>, StorageError> {
        let mut so_far = MediaPath::root();
        let mut missing = Vec::new();
        for seg in dir.segments() {
            so_far = so_far
                .join(seg)
                .map_err(|e| StorageError::Invalid(e.to_string()))?;
            let p = so_far.to_string();
            if self.files.contains_key(&p) {
                return Err(StorageError::AlreadyExists);
            }
            if !self.dirs.contains(&p) {
                missing.push(p);
            }
        }
        Ok(missing)
    }

    fn check_dest(&self, dest: &MediaPath, overwrite: bool) -> Result<(), StorageError> {
        let (parent, _) = dest.split_last().ok_or(StorageError::IsDirectory)?;
        self.missing_dirs(&parent)?;
        let d = dest.to_string();
        if self.is_dir(&d) {
            return Err(StorageError::IsDirectory);
        }
        if self.files.contains_key(&d) && !overwrite {
            return Err(StorageError::AlreadyExists);
        }
        Ok(())
    }
}

struct MemObject {
    bytes: Bytes,
    meta: ObjectMeta,
}

impl Object for MemObject {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn read_range(&self, range: Range<u64>) -> ByteStream {
        let end = range.end.min(self.bytes.len() as u64) as usize;
        let start = (range.start as usize).min(end);
        let part = self.bytes.slice(start..end);
        Box::pin(futures_util::stream::iter(
            part.chunks(64 * 1024)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        ))
    }
}

struct MemUpload {
    store: MemoryStorage,
    key: String,
    resumable: bool,
    buf: Vec<u8>,
    on_durable: Option<OnDurable>,
}

#[async_trait::async_trait]
impl Upload for MemUpload {
    fn key(&self) -> &str {
        &self.key
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }

    async fn finish(&mut self) -> Result<u64, StorageError> {
        let len = self.buf.len() as u64;
        if self.resumable {
            self.store
                .lock()
                .staged
                .insert(self.key.clone(), (self.buf.clone(), SystemTime::now()));
        }
        if let Some(f) = &self.on_durable {
            f(len);
        }
        Ok(len)
    }

    async fn commit(
        mut self: Box<Self>,
        dest: &MediaPath,
        overwrite: bool,
    ) -> Result<ObjectMeta, StorageError> {
        self.finish().await?;
        let mut s = self.store.lock();
        s.check_dest(dest, overwrite)?;
        let (parent, _) = dest.split_last().ok_or(StorageError::IsDirectory)?;
        for d in s.missing_dirs(&parent)? {
            s.dirs.insert(d);
        }
        s.version += 1;
        let m = meta(self.buf.len(), s.version);
        let bytes = Bytes::from(std::mem::take(&mut self.buf));
        s.files.insert(dest.to_string(), (bytes, m.clone()));
        s.staged.remove(&self.key);
        Ok(m)
    }

    async fn close(self: Box<Self>) {}
}

#[async_trait::async_trait]
impl Storage for MemoryStorage {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn check(&self) -> Result<(), StorageError> {
        Ok(())
    }

    async fn space(&self) -> Result<Space, StorageError> {
        let used: u64 = self.lock().files.values().map(|(_, m)| m.size).sum();
        Ok(Space {
            free: CAPACITY.saturating_sub(used),
            total: CAPACITY,
        })
    }

    async fn open(&self, path: &MediaPath) -> Result<Arc<dyn Object>, StorageError> {
        if path.is_hidden() {
            return Err(StorageError::NotFound);
        }
        let s = self.lock();
        let p = path.to_string();
        if s.is_dir(&p) {
            return Err(StorageError::IsDirectory);
        }
        let (bytes, meta) = s.files.get(&p).ok_or(StorageError::NotFound)?;
        Ok(Arc::new(MemObject {
            bytes: bytes.clone(),
            meta: meta.clone(),
        }))
    }

    async fn lookup(&self, path: &MediaPath) -> Result<Found, StorageError> {
        // No links here: what `stat` sees.
        Ok(self.stat(path).await?.map_or(Found::Nothing, Found::Entry))
    }

    async fn stat(&self, path: &MediaPath) -> Result<Option<Entry>, StorageError> {
        if path.is_hidden() {
            return Ok(None);
        }
        let s = self.lock();
        let p = path.to_string();
        let name = path.name().unwrap_or("");
        if s.is_dir(&p) {
            return Ok(Some(dir_entry(name)));
        }
        Ok(s.files.get(&p).map(|(_, m)| file_entry(name, m)))
    }

    async fn list(&self, dir: &MediaPath) -> Result<Listing, StorageError> {
        if dir.is_hidden() {
            return Err(StorageError::NotFound);
        }
        let s = self.lock();
        let d = dir.to_string();
        if s.failing.contains(&d) {
            return Err(StorageError::PermissionDenied);
        }
        if !s.is_dir(&d) {
            return Err(if s.files.contains_key(&d) {
                StorageError::NotADirectory
            } else {
                StorageError::NotFound
            });
        }
        let name_in = |p: &str| -> Option<String> {
            (parent_of(p) == d && !p.is_empty())
                .then(|| p.rsplit('/').next().unwrap_or(p).to_string())
        };
        let hidden = s
            .dirs
            .iter()
            .chain(s.files.keys())
            .filter_map(|p| name_in(p))
            .any(|n| n.starts_with('.'));
        let child = |p: &str| name_in(p).filter(|n| !n.starts_with('.'));
        let mut entries: Vec<Entry> = s
            .dirs
            .iter()
            .filter_map(|p| child(p).map(|n| dir_entry(&n)))
            .collect();
        entries.extend(
            s.files
                .iter()
                .filter_map(|(p, (_, m))| child(p).map(|n| file_entry(&n, m))),
        );
        Ok(Listing {
            dir: dir_entry(dir.name().unwrap_or("")),
            entries,
            hidden,
            left_out: Vec::new(),
        })
    }

    async fn begin_upload(
        &self,
        dest: &MediaPath,
        opts: UploadOptions,
    ) -> Result<Box<dyn Upload>, StorageError> {
        self.lock().check_dest(dest, opts.overwrite)?;
        let key = format!("resumable/{}.upload", crate::secret::random_token());
        if opts.resumable {
            self.lock()
                .staged
                .insert(key.clone(), (Vec::new(), SystemTime::now()));
        }
        Ok(Box::new(MemUpload {
            store: self.clone(),
            key,
            resumable: opts.resumable,
            buf: Vec::new(),
            on_durable: opts.on_durable,
        }))
    }

    async fn resume_upload(
        &self,
        key: &str,
        durable: u64,
        on_durable: Option<OnDurable>,
    ) -> Result<Box<dyn Upload>, StorageError> {
        let (mut buf, _) = self
            .lock()
            .staged
            .get(key)
            .cloned()
            .ok_or(StorageError::UploadGone)?;
        if (buf.len() as u64) < durable {
            return Err(StorageError::UploadGone);
        }
        buf.truncate(durable as usize);
        Ok(Box::new(MemUpload {
            store: self.clone(),
            key: key.to_string(),
            resumable: true,
            buf,
            on_durable,
        }))
    }

    async fn discard_upload(&self, key: &str) -> Result<(), StorageError> {
        self.lock().staged.remove(key);
        Ok(())
    }

    async fn upload_keys(&self) -> Result<Vec<(String, SystemTime)>, StorageError> {
        Ok(self
            .lock()
            .staged
            .iter()
            .map(|(k, (_, t))| (k.clone(), *t))
            .collect())
    }

    async fn create_dir(&self, path: &MediaPath) -> Result<(), StorageError> {
        let mut s = self.lock();
        let p = path.to_string();
        if path.is_root() || s.exists(&p) {
            return Err(StorageError::AlreadyExists);
        }
        for d in s.missing_dirs(path)? {
            s.dirs.insert(d);
        }
        Ok(())
    }

    async fn delete(&self, path: &MediaPath) -> Result<(), StorageError> {
        let mut s = self.lock();
        let p = path.to_string();
        if s.files.remove(&p).is_some() {
            return Ok(());
        }
        if !s.dirs.contains(&p) {
            return Err(StorageError::NotFound);
        }
        let prefix = format!("{p}/");
        if s.dirs.iter().any(|d| d.starts_with(&prefix))
            || s.files.keys().any(|f| f.starts_with(&prefix))
        {
            return Err(StorageError::NotEmpty);
        }
        s.dirs.remove(&p);
        Ok(())
    }

    async fn rename(
        &self,
        from: &MediaPath,
        to: &MediaPath,
        overwrite: bool,
    ) -> Result<(), StorageError> {
        if to.segments().starts_with(from.segments()) {
            return Err(StorageError::Invalid(
                "cannot move a folder into itself".into(),
            ));
        }
        let mut s = self.lock();
        let (f, t) = (from.to_string(), to.to_string());
        if !s.exists(&f) || from.is_root() {
            return Err(StorageError::NotFound);
        }
        if s.exists(&t) && !overwrite {
            return Err(StorageError::AlreadyExists);
        }
        let (tparent, _) = to.split_last().ok_or(StorageError::AlreadyExists)?;
        for d in s.missing_dirs(&tparent)? {
            s.dirs.insert(d);
        }
        let moved = |p: &str| -> Option<String> {
            if p == f {
                Some(t.clone())
            } else {
                p.strip_prefix(&format!("{f}/"))
                    .map(|rest| format!("{t}/{rest}"))
            }
        };
        let files: Vec<(String, String)> = s
            .files
            .keys()
            .filter_map(|p| moved(p).map(|n| (p.clone(), n)))
            .collect();
        for (old, new) in files {
            if let Some(v) = s.files.remove(&old) {
                s.files.insert(new, v);
            }
        }
        let dirs: Vec<(String, String)> = s
            .dirs
            .iter()
            .filter_map(|p| moved(p).map(|n| (p.clone(), n)))
            .collect();
        for (old, new) in dirs {
            s.dirs.remove(&old);
            s.dirs.insert(new);
        }
        Ok(())
    }

    async fn real_path(&self, path: &MediaPath) -> Result<Option<MediaPath>, StorageError> {
        // No links in memory: a path is where it is.
        Ok(Some(path.clone()))
    }

    async fn probe_source(&self, _path: &MediaPath) -> Result<ProbeSource, StorageError> {
        Ok(ProbeSource::Unsupported)
    }
}
