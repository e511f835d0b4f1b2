//! Appending one PATCH body to a resumable upload: the staged data is reopened at the
//! recorded offset (bytes a crash left past it are dropped), the body is pumped in with
//! constant memory, checked against the declared length and the optional checksum, and made
//! durable before the new offset is reported.

use std::time::Duration;

use bytes::Bytes;
use sha1::Digest;

use super::proto::{Checksum, ChecksumAlgo};
use crate::storage::{pump, ByteSource, OnDurable, Pumped, Storage, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the body does not match Upload-Checksum")]
    ChecksumMismatch,
    #[error("the body goes past Upload-Length")]
    TooLong,
    /// The client stopped sending; `offset` is what is durable now.
    #[error("upload interrupted at byte {offset}")]
    ClientGone { offset: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

enum Hasher {
    None,
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(c: Option<&Checksum>) -> Self {
        match c.map(|c| c.algo) {
            None => Hasher::None,
            Some(ChecksumAlgo::Sha1) => Hasher::Sha1(sha1::Sha1::new()),
            Some(ChecksumAlgo::Sha256) => Hasher::Sha256(sha2::Sha256::new()),
        }
    }
    fn update(&mut self, b: &Bytes) {
        match self {
            Hasher::None => {}
            Hasher::Sha1(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
        }
    }
    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::None => Vec::new(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// Where one append starts and may go.
pub struct Span {
    /// The staged data's key.
    pub key: String,
    /// The recorded (durable) offset.
    pub start: u64,
    /// Upload-Length.
    pub length: u64,
}

/// Appends `body` at `span.start`, never past `span.length`. Without a checksum,
/// `progress(offset)` runs each time more is durable (record the offset there), also while
/// the body streams; with one, the body is all or nothing and the caller records the offset
/// returned. Returns the new durable offset. `timeout` bounds each storage step.
pub async fn append(
    storage: &dyn Storage,
    span: &Span,
    mut body: ByteSource,
    checksum: Option<Checksum>,
    timeout: Duration,
    progress: OnDurable,
) -> Result<u64, AppendError> {
    let on_durable = checksum.is_none().then(|| progress.clone());
    let mut staged = storage
        .resume_upload(&span.key, span.start, on_durable)
        .await?;
    let mut hasher = Hasher::new(checksum.as_ref());
    let max = span.length.saturating_sub(span.start);
    let pumped = pump(&mut body, staged.as_mut(), max, timeout, |c| {
        hasher.update(c)
    })
    .await;
    match pumped {
        Pumped::Complete => {}
        Pumped::TooLong => {
            staged.close().await;
            return Err(AppendError::TooLong);
        }
        Pumped::ClientGone(_) if checksum.is_none() => {
            // Keep what arrived: the client resumes from here.
            let offset = staged.finish().await?;
            staged.close().await;
            return Err(AppendError::ClientGone { offset });
        }
        Pumped::ClientGone(_) => {
            staged.close().await;
            return Err(AppendError::ClientGone { offset: span.start });
        }
        Pumped::Failed(e) => {
            staged.close().await;
            return Err(e.into());
        }
    }
    if let Some(c) = &checksum {
        if hasher.finish() != c.digest {
            staged.close().await;
            return Err(AppendError::ChecksumMismatch);
        }
    }
    let offset = staged.finish().await?;
    if checksum.is_some() {
        progress(offset);
    }
    staged.close().await;
    Ok(offset)
}
#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use std::sync::Mutex;

    fn body(parts: Vec<Result<&'static [u8], ()>>) -> ByteSource {
        Box::pin(futures_util::stream::iter(parts.into_iter().map(|p| {
            p.map(Bytes::from_static)
                .map_err(|()| std::io::Error::other("reset"))
        })))
    }

    use crate::storage::local::{LocalOptions, LocalStorage, NodeDir};
    use crate::storage::{MediaPath, UploadOptions};
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    struct Fx {
        _dir: tempfile::TempDir,
        storage: LocalStorage,
        key: String,
        /// The staged file on disk (to plant what a crash left, and to check the bytes).
        file: PathBuf,
    }

    /// A resumable upload whose staged data holds `content` (as a crash may leave it).
    async fn setup(content: &[u8]) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(
            dir.path(),
            LocalOptions {
                allow_symlink_escape: false,
                timeout: Duration::from_secs(5),
                chunk_size: 64 * 1024,
                node: NodeDir::new(&"a".repeat(64)).unwrap(),
            },
        );
        storage.establish(None, 0).unwrap();
        let up = storage
            .begin_upload(
                &MediaPath::from_decoded("f.bin").unwrap(),
                UploadOptions {
                    resumable: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let key = up.key().to_string();
        up.close().await;
        let file = dir
            .path()
            .join(".streamhub-staging")
            .join("a".repeat(64))
            .join(&key);
        std::fs::write(&file, content).unwrap();
        Fx {
            _dir: dir,
            storage,
            key,
            file,
        }
    }

    async fn run(
        fx: &Fx,
        start: u64,
        length: u64,
        body: ByteSource,
        checksum: Option<Checksum>,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<u64, AppendError> {
        let span = Span {
            key: fx.key.clone(),
            start,
            length,
        };
        append(
            &fx.storage,
            &span,
            body,
            checksum,
            Duration::from_secs(5),
            Arc::new(progress),
        )
        .await
    }

    #[tokio::test]
    async fn appends_at_the_recorded_offset_dropping_unacknowledged_bytes() {
        // "abc" acknowledged, "GARBAGE" left by a crash.
        let fx = setup(b"abcGARBAGE").await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let out = run(&fx, 3, 6, body(vec![Ok(b"de"), Ok(b"f")]), None, move |o| {
            s.lock().unwrap().push(o)
        })
        .await
        .unwrap();
        assert_eq!(out, 6);
        assert_eq!(std::fs::read(&fx.file).unwrap(), b"abcdef");
        assert_eq!(*seen.lock().unwrap(), vec![6]);
    }

    #[tokio::test]
    async fn a_long_append_records_durable_offsets_while_it_runs() {
        // 1 MiB every 100 ms for ~1.5 s: at least one checkpoint lands before the end, on
        // the flush thread, and every recorded offset is a prefix already written.
        let fx = setup(b"").await;
        const MIB: usize = 1 << 20;
        const CHUNKS: u64 = 15;
        let src: ByteSource = Box::pin(futures_util::stream::unfold(0u64, |i| async move {
            if i == CHUNKS {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok(Bytes::from(vec![i as u8; MIB])), i + 1))
        }));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let total = CHUNKS * MIB as u64;
        let out = run(&fx, 0, total, src, None, move |o| s.lock().unwrap().push(o))
            .await
            .unwrap();
        assert_eq!(out, total);
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() >= 2, "no checkpoint before the end: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert!(seen.iter().all(|o| o % MIB as u64 == 0), "{seen:?}");
        assert_eq!(seen.last(), Some(&total));
        let data = std::fs::read(&fx.file).unwrap();
        assert_eq!(data.len() as u64, total);
        assert!(data
            .chunks(MIB)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| *b == i as u8)));
    }

    #[tokio::test]
    async fn past_the_length_is_refused_and_nothing_kept() {
        let fx = setup(b"ab").await;
        let r = run(&fx, 2, 4, body(vec![Ok(b"cd"), Ok(b"e")]), None, |_| {}).await;
        assert!(matches!(r, Err(AppendError::TooLong)), "{r:?}");
        assert_eq!(std::fs::read(&fx.file).unwrap(), b"ab");
    }

    #[tokio::test]
    async fn interrupted_keeps_what_arrived_unless_checksummed() {
        let fx = setup(b"").await;
        let r = run(&fx, 0, 100, body(vec![Ok(b"hello"), Err(())]), None, |_| {}).await;
        assert!(
            matches!(r, Err(AppendError::ClientGone { offset: 5 })),
            "{r:?}"
        );
        assert_eq!(std::fs::read(&fx.file).unwrap(), b"hello");

        let digest = sha2::Sha256::digest(b"hello world");
        let c = Checksum {
            algo: ChecksumAlgo::Sha256,
            digest: digest.to_vec(),
        };
        let r = run(
            &fx,
            5,
            100,
            body(vec![Ok(b" wor"), Err(())]),
            Some(c),
            |_| {},
        )
        .await;
        assert!(
            matches!(r, Err(AppendError::ClientGone { offset: 5 })),
            "{r:?}"
        );
        assert_eq!(std::fs::read(&fx.file).unwrap(), b"hello");
    }

    #[tokio::test]
    async fn checksum_mismatch_discards_the_body() {
        let fx = setup(b"ab").await;
        let good = base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(b"cd"));
        let c = Checksum::parse(&format!("sha1 {good}")).unwrap();
        let r = run(&fx, 2, 10, body(vec![Ok(b"cX")]), Some(c.clone()), |_| {}).await;
        assert!(matches!(r, Err(AppendError::ChecksumMismatch)), "{r:?}");
        assert_eq!(std::fs::read(&fx.file).unwrap(), b"ab");
        let ok = run(&fx, 2, 10, body(vec![Ok(b"c"), Ok(b"d")]), Some(c), |_| {})
            .await
            .unwrap();
        assert_eq!(ok, 4);
        assert_eq!(std::fs::read(&fx.file).unwrap(), b"abcd");
    }
}
