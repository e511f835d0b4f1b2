//! The bucket prefix's identity, as the local root's (`storage::local::identity`): a marker
//! object `<prefix>/.streamhub-root` holding the volume id recorded in the database, hidden
//! from listings like every `.streamhub*` name. `storage copy` copies it with the files, so
//! the id, and with it the library index and owners, follow a library moved between
//! backends. A prefix without the recorded marker (an empty bucket, another library) makes
//! every operation `Unavailable` until a restart, so the library index is never pruned
//! against the wrong (or an empty) bucket.

use ::http::{Method, StatusCode};
use bytes::Bytes;

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Inner, S3Storage};
use crate::storage::local::{parse_marker, MARKER};
use crate::storage::StorageError;

/// Bigger than any marker streamhub writes (one comment line and the id).
const MAX_MARKER: u64 = 4096;

/// How often the running service reads the marker again.
const WATCH_EVERY: Duration = Duration::from_secs(3);

/// While the storage lives: reads the marker every few seconds and blocks every request
/// (503 with the reason, `/readyz` too) while it is missing, another library's, garbage or
/// too large; a marker put back unblocks. A store that does not answer changes nothing
/// (its requests fail by themselves).
fn watch(inner: Weak<Inner>, id: String) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            let Some(inner) = inner.upgrade() else { return };
            let at = inner.location();
            let why = match inner.read_marker().await {
                Ok(Some(f)) if f == id => None,
                Ok(Some(_)) => Some(format!(
                    "{at} now holds another library's {MARKER}: media is blocked until this \
                     library's marker is back"
                )),
                Ok(None) => Some(format!(
                    "{at}{MARKER} was deleted: media is blocked until it is back (copy it from \
                     a backup, or `streamhub storage copy --marker-only`)"
                )),
                Err(StorageError::Unavailable(m)) if m.contains(MARKER) => Some(m),
                Err(_) => continue,
            };
            if let Some(w) = &why {
                tracing::warn!(problem = %w, "media bucket: identity marker");
            }
            inner.http.set_wrong_marker(why);
        }
    });
}

impl Inner {
    fn marker_key(&self) -> String {
        format!("{}{MARKER}", self.prefix)
    }

    /// The `s3://bucket/prefix` these media are at, for messages.
    pub(super) fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    async fn read_marker(&self) -> Result<Option<String>, StorageError> {
        let key = self.marker_key();
        let url = self.url(&Method::GET, &key, &[], &[]);
        let a = self.send("identity", Method::GET, &url, &[]).await?;
        if a.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !a.status.is_success() {
            return Err(self.http.error("identity", a).await);
        }
        // A marker is one short line: a huge object is not read whole.
        let len = a.headers.get(::http::header::CONTENT_LENGTH);
        let len = len.and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if len.is_none_or(|n| n > MAX_MARKER) {
            return Err(StorageError::Unavailable(format!(
                "{}{MARKER} is too large to be a marker ({} bytes): not this library's",
                self.location(),
                len.map_or("unknown".into(), |n| n.to_string())
            )));
        }
        let body = self.http.small_body("identity", a.body).await?;
        parse_marker(&String::from_utf8_lossy(&body))
            .map(Some)
            .ok_or_else(|| {
                StorageError::Unavailable(format!("{}{MARKER} holds no volume id", self.location()))
            })
    }

    /// Whether nothing but streamhub's own names is under the prefix (one listing page: a
    /// prefix with more than a page of keys is not empty).
    async fn is_empty(&self) -> Result<bool, StorageError> {
        let own = format!("{}.streamhub", self.prefix);
        let page = self.page(&self.prefix, false, 1000, None).await?;
        Ok(page.next.is_none() && page.files.iter().all(|(k, _, _)| k.starts_with(&own)))
    }
}

impl S3Storage {
    /// Another library's marker below the prefix (`<prefix>x/.streamhub-root`), as
    /// `s3://bucket/key`: prefixes must not nest, so such a prefix is never adopted (a
    /// service there would list, and could delete, that library). Pages through every key.
    pub async fn nested_marker(&self) -> Result<Option<String>, StorageError> {
        let (own, tail) = (self.inner.marker_key(), format!("/{MARKER}"));
        let mut token = None;
        loop {
            let page = (self.inner)
                .page(&self.inner.prefix, false, 1000, token.as_deref())
                .await?;
            if let Some((k, _, _)) =
                (page.files.iter()).find(|(k, _, _)| *k != own && k.ends_with(&tail))
            {
                return Ok(Some(format!("s3://{}/{k}", self.inner.bucket)));
            }
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(None),
            }
        }
    }

    /// Another library's marker above the prefix (in one of the folders holding it): a
    /// library there lists, and could delete, this one.
    async fn enclosing_marker(&self) -> Result<Option<String>, StorageError> {
        let mut up = self.inner.prefix.trim_end_matches('/');
        while !up.is_empty() {
            up = up.rfind('/').map_or("", |i| &up[..i]);
            let parent = if up.is_empty() {
                String::new()
            } else {
                format!("{up}/")
            };
            let key = format!("{parent}{MARKER}");
            if self.inner.head(&key).await?.is_some() {
                return Ok(Some(format!("s3://{}/{key}", self.inner.bucket)));
            }
        }
        Ok(None)
    }

    /// Why no marker may be created here (another library's lies below or above), if so.
    pub async fn nesting(&self) -> Result<Option<String>, StorageError> {
        let at = self.inner.location();
        if let Some(other) = self.nested_marker().await? {
            return Ok(Some(format!(
                "{at} holds another library below it ({other}): library prefixes must not nest; \
                 choose another s3.prefix"
            )));
        }
        Ok(self.enclosing_marker().await?.map(|other| {
            format!(
                "{at} lies inside another library ({other}): library prefixes must not nest; \
                 choose another s3.prefix"
            )
        }))
    }

    /// The volume id in the prefix's marker, if there is one.
    pub async fn volume_id(&self) -> Result<Option<String>, StorageError> {
        self.inner.read_marker().await
    }

    /// Writes the marker (what `storage copy` does once everything else is copied).
    pub async fn write_volume_id(&self, id: &str) -> Result<(), StorageError> {
        let text = format!(
            "# streamhub media root: identifies this library; do not delete (docs/DEPLOY.md)\n{id}\n"
        );
        self.inner
            .put(&self.inner.marker_key(), Bytes::from(text), &[])
            .await
    }

    /// Settles the identity at start, as the local root's `establish`: `recorded` is the id
    /// in the database, `indexed` how many entries the library index holds. Returns the id
    /// to record; an identity problem blocks the backend (every operation `Unavailable` with
    /// the message) and is returned too.
    pub async fn establish(
        &self,
        recorded: Option<&str>,
        indexed: u64,
    ) -> Result<String, StorageError> {
        let id = self.settle(recorded, indexed).await?;
        watch(Arc::downgrade(&self.inner), id.clone());
        Ok(id)
    }

    async fn settle(&self, recorded: Option<&str>, indexed: u64) -> Result<String, StorageError> {
        let found = self.inner.read_marker().await?;
        let at = self.inner.location();
        let problem = match (recorded, found) {
            (Some(r), Some(f)) if r == f => return Ok(f),
            (Some(_), Some(f)) => {
                tracing::warn!(found = %f, "media bucket: another volume's marker");
                format!(
                    "{at} holds another library's {MARKER}, not the one this database recorded: \
                     another bucket or prefix? Fix s3.bucket / s3.prefix, then restart streamhub"
                )
            }
            // Nothing indexed, so nothing to prune by mistake: a box that began on the
            // local disk and was pointed at a bucket before anything was stored adopts it.
            (Some(r), None) if indexed == 0 => match self.nesting().await? {
                Some(why) => why,
                None => {
                    self.write_volume_id(r).await?;
                    tracing::info!(marker = MARKER, "media bucket: identity marker created");
                    return Ok(r.to_string());
                }
            },
            (Some(_), None) => format!(
                "{at} has no {MARKER}: it is not this library's storage (an empty or another \
                 bucket or prefix?). Switching to S3 moves the library first: stop streamhub, \
                 run `streamhub storage copy --from local:<old media_root> --to {at}` \
                 (docs/DEPLOY.md, \"Moving a library\"). If the files are there already (a \
                 box switched to S3 by an older streamhub), mark it with `streamhub storage \
                 copy --marker-only --from local:<old media_root> --to {at}`; else fix \
                 s3.bucket / s3.prefix; then restart streamhub"
            ),
            (None, Some(f)) => return Ok(f),
            (None, None) if indexed > 0 && self.inner.is_empty().await? => format!(
                "{at} is empty but the library index has {indexed} entries: is this the right \
                 bucket and prefix? Fix s3.bucket / s3.prefix (or copy the library there with \
                 `streamhub storage copy`), then restart streamhub"
            ),
            (None, None) => match self.nesting().await? {
                Some(why) => why,
                None => {
                    let id = crate::secret::random_token();
                    self.write_volume_id(&id).await?;
                    tracing::info!(marker = MARKER, "media bucket: identity marker created");
                    return Ok(id);
                }
            },
        };
        self.inner.http.block(problem.clone());
        Err(StorageError::Unavailable(problem))
    }
}
