//! `/healthz` (the process answers) and `/readyz` (it can do its job: media root readable,
//! data dir writable; the library's state is reported alongside). Both stay cheap and never touch a stalled mount without a timeout.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Admin;
use super::AppState;
use crate::blocking::{self, BlockingError};

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let media = state.storage.check().await;
    let data = data_dir_writable(&state).await;
    let ready = media.is_ok() && data.is_ok();
    let check = |r: &Result<(), String>| match r {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e }),
    };
    let media = media.map_err(|e| e.to_string());
    let mut media_json = check(&media);
    media_json["backend"] = json!(state.storage.kind());
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        // The library reports (ffmpeg missing, scan skipped) but never makes us unready:
        // serving files does not need it.
        "checks": {
            "media_root": media_json,
            "data_dir": check(&data),
            "library": super::wire::library::StatusJson::from(&state.library.status()),
        },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// How long the database size may take to read before the scrape goes on without it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the data dir takes a write; the reason names it by key (errno by name), like the
/// answers of refused writes do. Not by path: `/readyz` is open to anyone.
async fn data_dir_writable(state: &AppState) -> Result<(), String> {
    super::data_dir::probe(&state.data_dir)
        .await
        .map_err(|why| format!("data dir (server.data_dir): {why}"))
}

/// `GET /metrics` on the main listeners: admins only (scrape with an admin API token).
pub async fn metrics_admin(State(state): State<AppState>, _: Admin) -> Response {
    metrics_open(State(state)).await
}

/// `GET /metrics` on a dedicated metrics listener.
pub async fn metrics_open(State(state): State<AppState>) -> Response {
    // The values that cost I/O are refreshed only here, at scrape time.
    let up = state.storage.check().await.is_ok();
    state.metrics.storage_up.set(i64::from(up));
    let db = state.accounts.db().path().to_path_buf();
    let size = blocking::run("database size", PROBE_TIMEOUT, move || {
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        Ok::<_, BlockingError>(
            [db.into_os_string(), wal]
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum::<u64>(),
        )
    })
    .await
    // A stalled disk shows as 0 for this scrape rather than holding the scrape up.
    .unwrap_or(0);
    state.metrics.db_bytes.set(size as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
