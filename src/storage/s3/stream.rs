//! A part of a multipart upload streamed to the store while the client sends it. Used when
//! the upload's length is announced (a PUT with `Content-Length`), so every part's length
//! is known before its first byte: no part is held in memory, and receiving from the client
//! overlaps sending to the store (buffering a part first made the client wait for each
//! part's upload in turn).

use std::sync::Arc;
use std::time::Duration;

use ::http::{HeaderMap, Method};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::Inner;
use crate::storage::StorageError;

/// Chunks in flight between the client's body and the store's connection.
const QUEUE: usize = 4;

pub(super) struct PartStream {
    tx: Option<mpsc::Sender<Bytes>>,
    left: u64,
    answer: tokio::task::JoinHandle<Result<String, StorageError>>,
}

impl PartStream {
    /// Starts part `number` (from 1) of `len` bytes of upload `upload_id` of `object`.
    pub(super) fn start(
        inner: Arc<Inner>,
        object: &str,
        upload_id: &str,
        number: u16,
        len: u64,
    ) -> Self {
        let number = number.to_string();
        let query = [("partNumber", number.as_str()), ("uploadId", upload_id)];
        let url = inner.url(&Method::PUT, object, &query, &[]);
        let (tx, rx) = mpsc::channel(QUEUE);
        let answer = tokio::spawn(async move {
            let a = inner.http.send_stream("upload", &url, len, rx).await?;
            if !a.status.is_success() {
                return Err(inner.http.error("upload", a).await);
            }
            part_etag(&a.headers)
        });
        PartStream {
            tx: Some(tx),
            left: len,
            answer,
        }
    }

    /// Bytes the part still needs.
    pub(super) fn left(&self) -> u64 {
        self.left
    }

    /// Hands on `b` (at most [`left`](Self::left) bytes); waits while the store takes
    /// bytes more slowly than the client sends them (the caller bounds that wait).
    pub(super) async fn push(&mut self, b: Bytes) -> Result<(), StorageError> {
        let n = b.len() as u64;
        let sent = match &self.tx {
            Some(tx) if n <= self.left => tx.send(b).await.is_ok(),
            _ => return Err(StorageError::Io("more bytes than the part holds".into())),
        };
        if !sent {
            // The request ended before its body did: its answer says why.
            return Err(self
                .answer(Duration::from_secs(1))
                .await
                .err()
                .unwrap_or_else(|| StorageError::Io("the S3 store ended the part early".into())));
        }
        self.left -= n;
        Ok(())
    }

    /// The part's ETag once the store has all of it, waiting at most `timeout`.
    pub(super) async fn finish(&mut self, timeout: Duration) -> Result<String, StorageError> {
        self.answer(timeout).await
    }

    async fn answer(&mut self, timeout: Duration) -> Result<String, StorageError> {
        self.tx = None;
        match tokio::time::timeout(timeout, &mut self.answer).await {
            Err(_) => Err(StorageError::Stalled {
                op: "upload",
                secs: timeout.as_secs(),
            }),
            Ok(Err(join)) => Err(StorageError::Io(format!("the part upload failed: {join}"))),
            Ok(Ok(r)) => r,
        }
    }
}

impl Drop for PartStream {
    /// An unfinished part's request is cut: the store never completes a short part.
    fn drop(&mut self) {
        self.answer.abort();
    }
}

/// The ETag an UploadPart answer gives the part (CompleteMultipartUpload names it).
pub(super) fn part_etag(headers: &HeaderMap) -> Result<String, StorageError> {
    headers
        .get(::http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| StorageError::Io("the S3 store sent no part ETag".into()))
}
