//! HTTP: routes, handlers and the connection server. The only module that knows HTTP types;
//! handlers translate requests into calls on domain modules (`storage`, `range`) and back.

pub mod error;
pub mod health;
pub mod idle;
pub mod library;
pub mod media;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::config::Config;
use crate::storage::Storage;
use error::ApiError;

/// Cheap handles shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    pub config: Arc<Config>,
    pub data_dir: PathBuf,
}

pub fn router(state: AppState) -> Router {
    let media = get(media::get_media)
        .head(media::get_media)
        .fallback(|| async { ApiError::method_not_allowed("GET, HEAD") });
    Router::new()
        .route("/media/", media.clone())
        .route("/media/{*path}", media)
        .route("/api/library", get(library::list))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed("GET, HEAD") })
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

/// One log line per request, and headers every response carries.
async fn access_log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    // The raw path is percent-encoded ASCII (hyper refuses control bytes), so it cannot forge
    // log lines.
    let path = req.uri().path().to_string();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let mut resp = next.run(req).await.into_response();
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    tracing::info!(
        target: "streamhub::access",
        %method,
        path,
        status = resp.status().as_u16(),
        bytes,
        duration_ms = start.elapsed().as_secs_f64() * 1000.0,
        peer,
        "request"
    );
    resp
}
