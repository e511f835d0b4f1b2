//! The one outer layer every request passes through: the access log and the headers every
//! answer carries, the `Host` check, the data dir's name in its errors, and the nudge to peers
//! after a note write.
//!
//! One layer, not four: axum boxes a layer's future and clones the chain of services below
//! it for every request, per layer (issue 17's profile). The order of the four steps is the
//! order the four layers had, outermost first: a refused `Host` (421) is still logged and
//! still carries the security headers; a data-dir failure is renamed before it is logged.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::auth::ConnMeta;
use super::{data_dir, host, AppState};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn edge(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    // The log line's own fields are made only when the line is written (a box at log level
    // `warn` pays for none of them); the id is also a response header, so it is always made.
    let logged = tracing::enabled!(target: "streamhub::access", tracing::Level::INFO);
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut id = String::with_capacity(16);
    crate::hex::push_u64(&mut id, state.request_ids.fetch_add(1, Ordering::Relaxed));
    // Hex digits: always a valid header value; the string moves into it uncopied.
    let id = HeaderValue::try_from(id).unwrap_or(HeaderValue::from_static("0"));
    let request_id = id.to_str().unwrap_or_default();
    // The raw path is percent-encoded ASCII (hyper refuses control bytes), so it cannot forge
    // log lines.
    let path = if logged {
        loggable_path(req.uri().path())
    } else {
        String::new()
    };
    let meta = match req.extensions().get::<ConnMeta>() {
        Some(m) => *m,
        None => {
            // In-process callers (tests) have no connection; handlers still get a ConnMeta.
            let m = ConnMeta::unknown();
            req.extensions_mut().insert(m);
            m
        }
    };
    let note_write = state.sync.is_some() && is_note_write(&req);
    // Every line logged while the request runs (an internal error's detail) names its id.
    let span = tracing::info_span!("request", id = %request_id);
    let inner = async {
        if let Some(refused) = host::refused(&state.hosts, &req) {
            return refused;
        }
        let resp = next.run(req).await;
        data_dir::named(&state, resp).await
    };
    let mut resp = inner.instrument(span).await.into_response();
    // Peers are nudged to pull after a note write that succeeded (one place, so no write
    // route can forget to).
    if note_write && resp.status().is_success() {
        if let Some(engine) = &state.sync {
            engine.local_change();
        }
    }
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, state.page_csp.clone());
    }
    if meta.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(X_REQUEST_ID, id.clone());
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    state
        .metrics
        .observe_request(route, method.as_str(), status, elapsed.as_secs_f64());
    if logged {
        let bytes = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            // JSON and the UI's files carry no header until hyper writes them: their body
            // knows its length. A body streamed as it is made (a zip) does not: 0.
            .or_else(|| http_body::Body::size_hint(resp.body()).exact())
            .unwrap_or(0);
        tracing::info!(
            target: "streamhub::access",
            request_id,
            %method,
            path,
            status,
            bytes,
            duration_ms = (elapsed.as_micros() as f64) / 1000.0,
            peer = meta.peer.to_string(),
            "request"
        );
    }
    resp
}

/// A request that changes notes (the Markdown preview changes nothing).
fn is_note_write(req: &Request) -> bool {
    let path = req.uri().path();
    path.starts_with("/api/notes")
        && path != "/api/notes/render"
        && !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The request path as logged: share-link tokens are credentials, so they are cut.
fn loggable_path(path: &str) -> String {
    match path.strip_prefix("/s/") {
        Some(rest) if !rest.is_empty() => "/s/<token>".to_string(),
        _ => path.to_string(),
    }
}
