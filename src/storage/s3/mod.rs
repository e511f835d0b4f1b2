//! The S3 backend: media in a bucket of an S3-compatible object store (Garage, MinIO, Ceph
//! RGW, AWS), under `s3.prefix`. `sign` presigns every request (SigV4 in the query string),
//! `http` carries it over hyper, `xml` reads the answers. A file is an object `prefix + path`; a folder is a key prefix
//! `prefix + path + "/"`, and an empty folder exists through a zero-byte marker object of
//! that name (what `create_dir` writes), so folders behave as on disk.
//!
//! Invariant: every object key is built by [`Inner::key`] / [`Inner::dir_key`] from a
//! validated `MediaPath`, so no key leaves `s3.prefix`; ranges of one opened object are read
//! with `If-Match` on its ETag, so a replaced object fails the read (`Changed`) instead of
//! mixing versions.

mod body;
mod copy;
mod http;
mod identity;
mod list;
mod locks;
mod multipart;
mod pool;
mod read;
mod resumable;
mod sign;
mod staging;
mod stream;
mod tree;
mod write;
mod xml;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ::http::Method;
use bytes::Bytes;

use super::{
    Entry, EntryKind, Found, Listing, MediaPath, Object, ObjectMeta, OnDurable, ProbeSource, Space,
    Storage, StorageError, Upload, UploadOptions,
};
use crate::config::S3Config;
use http::Http;
use sign::Signer;

/// How long the URLs streamhub signs for its own requests stay valid: long enough for a
/// slow answer, short enough to be useless if one leaked into a log.
const REQUEST_URL_SECS: u64 = 15 * 60;
/// How long a presigned URL given to ffprobe/ffmpeg stays valid.
const PROBE_URL_SECS: u64 = 60 * 60;
/// How long a storage check's answer is reused by `/readyz` and `/metrics`.
const CHECK_TTL: Duration = Duration::from_secs(2);

pub(super) struct Inner {
    bucket: String,
    signer: Signer,
    http: Http,
    /// Empty, or `a/b/`.
    prefix: String,
    part_size: u64,
    name_locks: locks::NameLocks,
    /// This node's resumable-upload state (`<data_dir>/s3-staging`, see `staging`).
    staging: PathBuf,
    /// The records (`staging`) of one-shot uploads running now: the sweep leaves them alone.
    oneshots: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Whether one-shot uploads are recorded at all (`track_uploads`).
    tracked: std::sync::atomic::AtomicBool,
    /// Redirect mode (`s3.redirect`): what signs the URLs clients are sent to (on
    /// `s3.public_endpoint`, with the same keys), and how long those stay valid.
    public: Option<(Signer, u64)>,
}

/// The S3 backend; cheap to share.
#[derive(Clone)]
pub struct S3Storage {
    inner: Arc<Inner>,
}

impl S3Storage {
    /// A backend for `[s3]` (already validated), keeping resumable uploads' local state in
    /// `data_dir/s3-staging`. Makes no request: `check` does.
    pub fn new(
        config: &S3Config,
        timeout: Duration,
        data_dir: &std::path::Path,
    ) -> Result<Self, StorageError> {
        let secret = config
            .secret()
            .map_err(|e| StorageError::Invalid(e.to_string()))?;
        let signer_for = |endpoint: &str| {
            Signer::new(
                endpoint,
                &config.bucket,
                &config.region,
                config.path_style,
                &config.access_key_id,
                &secret,
            )
        };
        let signer = signer_for(&config.endpoint)?;
        let public = if config.redirect {
            let endpoint = match config.public_endpoint.as_str() {
                "" => &config.endpoint,
                e => e,
            };
            Some((signer_for(endpoint)?, config.redirect_expiry_secs))
        } else {
            None
        };
        Ok(S3Storage {
            inner: Arc::new(Inner {
                bucket: config.bucket.clone(),
                http: Http::new(&signer, timeout, &config.bucket)?,
                signer,
                prefix: config.key_prefix(),
                part_size: config.part_size(),
                name_locks: locks::NameLocks::default(),
                staging: data_dir.join("s3-staging"),
                oneshots: Default::default(),
                tracked: Default::default(),
                public,
            }),
        })
    }

    /// Records one-shot uploads in the data dir until they are completed or aborted, so the
    /// tus sweep aborts those a crash or an outage left (`write`). Only the service does:
    /// a `storage copy` run beside it shares its data dir, and the service's sweep would
    /// take that process's running uploads for a dead one's.
    pub fn track_uploads(&self) {
        (self.inner.tracked).store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The start-up check: the endpoint answers, the bucket exists and the credentials may
    /// list it. Errors name the config key to fix.
    pub async fn check_at_start(&self) -> Result<(), StorageError> {
        self.inner.check().await.map_err(|e| match e {
            StorageError::Stalled { secs, .. } => StorageError::Unavailable(format!(
                "the S3 endpoint {} (s3.endpoint) did not answer within {secs} s",
                self.inner.signer.authority
            )),
            e => e,
        })
    }
}

impl Inner {
    fn key(&self, path: &MediaPath) -> String {
        format!("{}{}", self.prefix, path)
    }

    /// The prefix of everything in folder `dir` (for the root: `s3.prefix` itself).
    fn dir_key(&self, dir: &MediaPath) -> String {
        if dir.is_root() {
            self.prefix.clone()
        } else {
            format!("{}{}/", self.prefix, dir)
        }
    }

    /// A URL for one request of streamhub's own, presigned with `headers` (which the
    /// request must then carry).
    fn url(
        &self,
        method: &Method,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> String {
        let (m, now) = (method.as_str(), SystemTime::now());
        self.signer
            .presign(m, key, query, headers, REQUEST_URL_SECS, now)
    }

    /// Sends a signed request with no body.
    async fn send(
        &self,
        op: &'static str,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<http::Answer, StorageError> {
        self.http.send(op, method, url, headers, Bytes::new()).await
    }

    async fn check(&self) -> Result<(), StorageError> {
        let mut query = vec![("list-type", "2"), ("max-keys", "1")];
        if !self.prefix.is_empty() {
            query.push(("prefix", self.prefix.as_str()));
        }
        let url = self.url(&Method::GET, "", &query, &[]);
        let a = self.send("check", Method::GET, &url, &[]).await?;
        if a.status.is_success() {
            return Ok(());
        }
        Err(match self.http.error("check", a).await {
            // A 404 of the listing itself can only be the bucket.
            StorageError::NotFound => self
                .http
                .error_of(::http::StatusCode::NOT_FOUND, "NoSuchBucket"),
            e => e,
        })
    }

    /// The object at `key` (HEAD), or None.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        let url = self.url(&Method::HEAD, key, &[], &[]);
        let a = self.send("stat", Method::HEAD, &url, &[]).await?;
        if a.status == ::http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !a.status.is_success() {
            return Err(self.http.error("stat", a).await);
        }
        read::meta_of(&a.headers).map(Some)
    }
}

fn file_entry(path: &MediaPath, meta: &ObjectMeta) -> Entry {
    Entry {
        name: path.name().unwrap_or("").to_string(),
        kind: EntryKind::File,
        size: meta.size,
        modified: meta.modified,
        via_link: false,
        id: None,
    }
}

fn dir_entry(name: &str, modified: SystemTime) -> Entry {
    Entry {
        name: name.to_string(),
        kind: EntryKind::Dir,
        size: 0,
        modified,
        via_link: false,
        id: None,
    }
}

#[async_trait::async_trait]
impl Storage for S3Storage {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.check_at_start().await
    }

    /// The check is a request to the store: a scrape or probe flood reuses a recent answer.
    fn check_ttl(&self) -> Duration {
        CHECK_TTL
    }

    fn direct_url(
        &self,
        path: &MediaPath,
        head: bool,
        response: &[(&str, &str)],
    ) -> Option<String> {
        let (signer, secs) = self.inner.public.as_ref()?;
        let method = if head { "HEAD" } else { "GET" };
        let key = self.inner.key(path);
        Some(signer.presign(method, &key, response, &[], *secs, SystemTime::now()))
    }

    fn direct_origin(&self) -> Option<String> {
        self.inner.public.as_ref().map(|(s, _)| s.origin())
    }

    /// S3 has no capacity to ask for: the bucket is reported as unlimited (the
    /// `[quotas]` per-user limits still apply), as documented in CONTRACT.md.
    async fn space(&self) -> Result<Space, StorageError> {
        self.inner.check().await?;
        let unlimited = i64::MAX as u64;
        Ok(Space {
            free: unlimited,
            total: unlimited,
        })
    }

    async fn open(&self, path: &MediaPath) -> Result<Arc<dyn Object>, StorageError> {
        if path.is_hidden() {
            return Err(StorageError::NotFound);
        }
        if path.is_root() {
            return Err(StorageError::IsDirectory);
        }
        let key = self.inner.key(path);
        match self.inner.head(&key).await? {
            Some(meta) => Ok(Arc::new(read::S3Object::new(self.inner.clone(), key, meta))),
            None if self.inner.dir_exists(path).await? => Err(StorageError::IsDirectory),
            None => Err(StorageError::NotFound),
        }
    }

    async fn stat(&self, path: &MediaPath) -> Result<Option<Entry>, StorageError> {
        self.inner.stat(path).await
    }

    /// No links in a bucket: what `stat` sees.
    async fn lookup(&self, path: &MediaPath) -> Result<Found, StorageError> {
        Ok(self
            .inner
            .stat(path)
            .await?
            .map_or(Found::Nothing, Found::Entry))
    }

    async fn resumes_move(&self, from: &MediaPath, to: &MediaPath) -> Result<bool, StorageError> {
        tree::resumes_move(&self.inner, from, to).await
    }

    async fn list(&self, dir: &MediaPath) -> Result<Listing, StorageError> {
        self.inner.list(dir).await
    }

    async fn begin_upload(
        &self,
        dest: &MediaPath,
        opts: UploadOptions,
    ) -> Result<Box<dyn Upload>, StorageError> {
        write::begin(self.inner.clone(), dest, opts).await
    }

    async fn resume_upload(
        &self,
        key: &str,
        durable: u64,
        on_durable: Option<OnDurable>,
    ) -> Result<Box<dyn Upload>, StorageError> {
        resumable::resume(self.inner.clone(), key, durable, on_durable).await
    }

    async fn discard_upload(&self, key: &str) -> Result<(), StorageError> {
        resumable::discard(&self.inner, key).await
    }

    async fn upload_keys(&self) -> Result<Vec<(String, SystemTime)>, StorageError> {
        resumable::keys(&self.inner).await
    }

    async fn create_dir(&self, path: &MediaPath) -> Result<(), StorageError> {
        tree::create_dir(&self.inner, path).await
    }

    async fn delete(&self, path: &MediaPath) -> Result<(), StorageError> {
        tree::delete(&self.inner, path).await
    }

    async fn delete_tree(&self, path: &MediaPath) -> Result<(), StorageError> {
        tree::delete_tree(&self.inner, path).await
    }

    async fn rename(
        &self,
        from: &MediaPath,
        to: &MediaPath,
        overwrite: bool,
    ) -> Result<(), StorageError> {
        tree::rename(&self.inner, from, to, overwrite).await
    }

    /// No links in a bucket: every name is its own real path.
    async fn real_path(&self, path: &MediaPath) -> Result<Option<MediaPath>, StorageError> {
        Ok(Some(path.clone()))
    }

    /// A presigned GET the program reads with ranges; the object is checked first so a
    /// missing file is `NotFound`, not a program's failure.
    async fn probe_source(&self, path: &MediaPath) -> Result<ProbeSource, StorageError> {
        if path.is_hidden() || path.is_root() {
            return Err(StorageError::NotFound);
        }
        let key = self.inner.key(path);
        if self.inner.head(&key).await?.is_none() {
            return Err(StorageError::NotFound);
        }
        let now = SystemTime::now();
        let url = self
            .inner
            .signer
            .presign("GET", &key, &[], &[], PROBE_URL_SECS, now);
        Ok(ProbeSource::Url(url))
    }
}
