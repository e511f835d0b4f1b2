//! The data dir's state in answers: `/readyz`'s probe, and the layer that names the data dir
//! (and what the file system says is wrong with it) in an answer whose cause was a refused
//! database write. The error mappings (`http::error`) know neither the directory nor the
//! errno; this layer has the state, so a read-only, full or failing data dir reads as such.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use axum::response::Response;

use super::error::{data_dir_message, DataDirFailure};
use super::AppState;
use crate::blocking;
use crate::db::DataDirFault;
use crate::storage::errno_message;

/// How long a probe may take before the answer is "not answering" (a stalled disk).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a file can be made in the data dir: `Err` is what the file system says (errno by
/// name), or that it did not answer in time.
pub async fn probe(dir: &Path) -> Result<(), String> {
    // One name per probe: refused requests probe at the same time, and one probe removing
    // another's file would report ENOENT as the data dir's state.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        ".readyz-probe-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let dir = dir.to_path_buf();
    blocking::run("writing a probe file", PROBE_TIMEOUT, move || {
        let p = dir.join(name);
        Ok(std::fs::write(&p, b"ok")
            .and_then(|_| std::fs::remove_file(&p))
            .map_err(|e| errno_message(&e)))
    })
    .await
    .unwrap_or_else(|e: blocking::BlockingError| Err(e.to_string()))
}

/// Rewrites the message of an answer marked [`DataDirFailure`] so it names the data dir and
/// the file system's reason (a probe): "read-only file system" rather than SQLite's "disk
/// I/O error". Status, code and headers stay as the error mapping made them.
pub async fn named(state: &AppState, resp: Response) -> Response {
    let Some(DataDirFailure(fault)) = resp.extensions().get::<DataDirFailure>().copied() else {
        return resp;
    };
    let reason = match fault {
        // No probe can tell more about a lock held by another writer.
        DataDirFault::Busy => return resp,
        _ => probe(&state.data_dir).await.err(),
    };
    let reason = reason.unwrap_or_else(|| fault.to_string());
    tracing::warn!(data_dir = %state.data_dir.display(), %reason, "data dir cannot be written");
    let (mut parts, body) = resp.into_parts();
    // The body is the small JSON `ApiError` made; its code is kept.
    let code = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => serde_json::from_slice::<serde_json::Value>(&b)
            .ok()
            .and_then(|v| v.get("error").and_then(|c| c.as_str()).map(str::to_owned)),
        Err(_) => None,
    }
    .unwrap_or_else(|| "data_dir_unavailable".to_string());
    let body = serde_json::json!({
        "error": code,
        // The key, not the path: answers go to anyone, and the log has the path.
        "message": data_dir_message(None, fault, &reason),
    });
    let bytes = body.to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}
