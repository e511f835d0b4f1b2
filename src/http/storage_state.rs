//! `GET /api/storage`: the state of the media storage for the home and settings pages —
//! backend, health, free and total space, the trash and the library's totals. Space comes
//! from `Storage::space` (statvfs on the blocking pool under `storage.timeout_secs`), so an
//! unmounted disk or a hung mount answers `healthy: false` with the reason, never a hang.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::auth::Member;
use super::error::ApiError;
use super::wire::time::from_secs;
use super::AppState;

#[derive(Debug, Serialize)]
pub struct CountJson {
    entries: u64,
    bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct LibraryJson {
    files: u64,
    bytes: u64,
    /// When the last scan finished (RFC 3339), null before the first.
    last_scan: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StorageJson {
    backend: &'static str,
    healthy: bool,
    error: Option<String>,
    /// null when the storage did not answer.
    free_bytes: Option<u64>,
    total_bytes: Option<u64>,
    trash: CountJson,
    library: LibraryJson,
    /// Admins only: where the media root is on this box.
    #[serde(skip_serializing_if = "Option::is_none")]
    media_root: Option<String>,
}

/// Any logged-in user; admins also see the media root's absolute path.
pub async fn storage(
    State(state): State<AppState>,
    Member(user): Member,
) -> Result<Json<StorageJson>, ApiError> {
    let (space, error) = match state.storage.space().await {
        Ok(s) => (Some(s), None),
        Err(e) => {
            tracing::warn!(error = %e, "storage state: media storage not usable");
            (None, Some(e.to_string()))
        }
    };
    let trash = state.library.trash_totals().await?;
    let library = state.library.totals().await?;
    let last_scan = state
        .library
        .status()
        .last_scan
        .and_then(|s| s.finished.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| from_secs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
    let media_root = user.is_admin().then(|| {
        let root = &state.config.storage.media_root;
        // `absolute` only joins the working directory: no filesystem access.
        std::path::absolute(root)
            .unwrap_or_else(|_| root.clone())
            .display()
            .to_string()
    });
    Ok(Json(StorageJson {
        backend: state.storage.kind(),
        healthy: error.is_none(),
        error,
        free_bytes: space.map(|s| s.free),
        total_bytes: space.map(|s| s.total),
        trash: CountJson {
            entries: trash.count,
            bytes: trash.bytes,
        },
        library: LibraryJson {
            files: library.count,
            bytes: library.bytes,
            last_scan,
        },
        media_root,
    }))
}
