//! `/healthz` (the process answers) and `/readyz` (it can do its job: media root readable,
//! data dir writable; the library's state is reported alongside). Both stay cheap and never touch a stalled mount without a timeout.

use std::time::{Duration, Instant};

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

/// The last answer of `Storage::check`, shared by `/readyz` and `/metrics`: callers that
/// arrive while a check runs wait for it instead of starting their own, and an answer is
/// reused for the backend's `check_ttl`, so a probe or scrape flood never becomes a flood of
/// requests to the store. A check itself is bounded by `storage.timeout_secs`.
#[derive(Default)]
pub struct StorageHealth {
    last: tokio::sync::Mutex<Option<LastCheck>>,
}

#[derive(Clone)]
struct LastCheck {
    started: Instant,
    took: Duration,
    result: Result<(), String>,
}

impl StorageHealth {
    async fn get(&self, state: &AppState) -> LastCheck {
        let asked = Instant::now();
        let mut last = self.last.lock().await;
        if let Some(l) = last.as_ref() {
            if l.started >= asked || l.started.elapsed() < state.storage.check_ttl() {
                return l.clone();
            }
        }
        let started = Instant::now();
        let result = state.storage.check().await.map_err(|e| e.to_string());
        let took = started.elapsed();
        let (up, labels) = (result.is_ok(), storage_labels(state));
        let m = &state.metrics;
        m.storage_up.get_or_create(&labels).set(i64::from(up));
        m.storage_check_seconds
            .get_or_create(&labels)
            .set(took.as_secs_f64());
        if !up {
            m.storage_check_failures.get_or_create(&labels).inc();
        }
        last.insert(LastCheck {
            started,
            took,
            result,
        })
        .clone()
    }
}

fn storage_labels(state: &AppState) -> crate::metrics::BackendLabels {
    crate::metrics::BackendLabels {
        backend: state.storage.kind().to_string(),
    }
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let checked = state.storage_health.get(&state).await;
    let media = checked.result.clone();
    let data = data_dir_writable(&state).await;
    let ready = media.is_ok() && data.is_ok();
    let check = |r: &Result<(), String>| match r {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e }),
    };
    let mut media_json = check(&media);
    media_json["backend"] = json!(state.storage.kind());
    media_json["checked_ms"] = json!(checked.took.as_millis() as u64);
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
    state.storage_health.get(&state).await;
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
