//! The one body pump: a request body into a staged [`Upload`], chunk by chunk, so memory stays
//! at the backend's few queued chunks however large the file, and a slow disk slows the client
//! (back-pressure) instead of buffering. Shared by PUT, multipart and tus.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use super::{ByteSource, StorageError, Upload};

/// How pumping a body ended.
#[derive(Debug)]
pub enum Pumped {
    /// Every byte was handed over.
    Complete,
    /// More than the allowed bytes arrived; the rest was not read.
    TooLong,
    /// The client's body broke off.
    ClientGone(String),
    /// The backend failed (its error), or took no chunk within the storage timeout.
    Failed(StorageError),
}

/// Hands `body` to `upload`, at most `max` bytes; `seen` is shown every chunk first (a
/// checksum). A backend that takes no chunk for `timeout` is `Stalled`.
pub async fn pump(
    body: &mut ByteSource,
    upload: &mut dyn Upload,
    max: u64,
    timeout: Duration,
    mut seen: impl FnMut(&Bytes),
) -> Pumped {
    let mut total: u64 = 0;
    loop {
        match body.next().await {
            Some(Ok(chunk)) => {
                total += chunk.len() as u64;
                if total > max {
                    return Pumped::TooLong;
                }
                seen(&chunk);
                match tokio::time::timeout(timeout, upload.write(chunk)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Pumped::Failed(e),
                    Err(_) => {
                        return Pumped::Failed(StorageError::Stalled {
                            op: "write",
                            secs: timeout.as_secs(),
                        })
                    }
                }
            }
            Some(Err(e)) => return Pumped::ClientGone(e.to_string()),
            None => return Pumped::Complete,
        }
    }
}
