//! The sync API (`streamhub-sync/1`), served only on HTTPS connections that negotiated the
//! sync ALPN with a client certificate (`server.rs` picks the router per connection). Thin:
//! the membership handshake is `sync::session`, the feed and the store are `notes`. `start`
//! (called by `Service::serve`) makes the engine and what the listeners need for it.
//!
//! Before membership is proved, every route but `hello` and `auth` answers the same 403, so
//! a node outside the cluster learns nothing (no note ids, no counts) and can write nothing.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::error::ApiError;
use super::json::{read_limited, ApiJson};
use crate::db::Db;
use crate::notes::model::valid_rev;
use crate::notes::{NoteError, NotesStore};
use crate::sync::session::{Me, Session, SessionError};
use crate::sync::wire::{Auth, Hello, RevsReply, RevsRequest, MAX_PAGE, MAX_REVS_PER_REQUEST};
use crate::sync::{state, Engine};

/// The most bytes of revisions one `revs` answer carries (at least one revision).
const MAX_REVS_BYTES: usize = 4 * 1024 * 1024;
/// The largest `hello` or `auth` body (a few hundred bytes in fact). Small, and read under
/// the body deadline like every API body: before membership a peer is anybody.
const MAX_HANDSHAKE_BYTES: usize = 4 * 1024;
/// The largest `revs` request: 1000 ids of 64 hex digits in JSON.
const MAX_REVS_REQUEST_BYTES: usize = 96 * 1024;

/// What the sync handlers share.
pub struct SyncApi {
    pub me: Me,
    pub db: Db,
    pub notes: NotesStore,
    pub engine: Engine,
}

/// Replication, when this node is in a cluster (`sync.cluster_key`) and serves HTTPS (sync
/// connections share the HTTPS listeners): the engine that pulls from peers, and what the
/// listeners need to accept peers' connections. None otherwise (logged).
pub fn start(
    config: &crate::config::Config,
    identity: &crate::sync::NodeIdentity,
    state: &mut super::AppState,
    tasks: &crate::tasks::TaskSet,
) -> Option<Arc<super::server::SyncAccept>> {
    let key = config.cluster_key()?;
    if config.server.tls_listen.is_empty() {
        tracing::warn!(
            "sync.cluster_key is set but server.tls_listen is empty: replication runs over \
             HTTPS, so this node will not sync"
        );
        return None;
    }
    let me = crate::sync::session::Me {
        id: identity.id().to_string(),
        name: state.peers.node_name().to_string(),
        key,
    };
    let configs = crate::sync::tlsconf::server_config(identity)
        .and_then(|s| crate::sync::tlsconf::client_config(identity).map(|c| (s, c)));
    let (server, client) = match configs {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up TLS for sync; this node will not sync");
            return None;
        }
    };
    let db = state.accounts.db().clone();
    let engine = crate::sync::Engine::new(
        me.clone(),
        client,
        db.clone(),
        state.notes.clone(),
        state.peers.clone(),
        std::time::Duration::from_secs(config.sync.interval_secs.max(1)),
    );
    state.parts_mut().sync = Some(engine.clone());
    let run = engine.clone();
    tasks.spawn("sync", move |cancel| run.run(cancel));
    let api = Arc::new(SyncApi {
        me,
        db,
        notes: state.notes.clone(),
        engine,
    });
    Some(Arc::new(super::server::SyncAccept {
        config: server,
        app: router(api),
    }))
}

type St = State<Arc<SyncApi>>;
type Conn = Extension<Arc<Session>>;

pub fn router(api: Arc<SyncApi>) -> Router {
    Router::new()
        .route("/sync/v1/hello", post(hello))
        .route("/sync/v1/auth", post(auth))
        .route("/sync/v1/changes", get(changes))
        .route("/sync/v1/revs", post(revs))
        .route("/sync/v1/nudge", post(nudge))
        .fallback(|| async { refused() })
        .with_state(api)
}

/// The one answer to anything not allowed.
fn refused() -> ApiError {
    ApiError::forbidden("not a member of this cluster")
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Api(_) => {
                ApiError::new(StatusCode::CONFLICT, "api_version", e.to_string())
            }
            SessionError::BadRequest(m) => ApiError::bad_request("bad_request", m),
            SessionError::Forbidden => refused(),
        }
    }
}

async fn hello(
    State(api): St,
    Extension(s): Conn,
    ApiJson(hello): ApiJson<Hello, MAX_HANDSHAKE_BYTES>,
) -> Result<Response, ApiError> {
    Ok(Json(s.hello(&api.me, &hello)?).into_response())
}

async fn auth(
    State(api): St,
    Extension(s): Conn,
    ApiJson(auth): ApiJson<Auth, MAX_HANDSHAKE_BYTES>,
) -> Result<Response, ApiError> {
    let name = s.auth(&api.me, &auth)?;
    let id = s.peer_id().to_string();
    tracing::info!(peer = %name, node_id = %id, "a peer proved membership");
    let now = crate::sync::unix_ms();
    api.db
        .call(move |c| state::remember(c, &id, &name, now).map_err(NoteError::from))
        .await
        .map_err(ApiError::from)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ChangesQuery {
    #[serde(default)]
    since: i64,
    limit: Option<usize>,
    /// The instance the puller's checkpoint belongs to: when it is this one and nothing
    /// came after `since`, the answer is an empty 204 (an idle cluster's rounds cost a few
    /// hundred bytes).
    instance: Option<String>,
}

async fn changes(
    State(api): St,
    Extension(s): Conn,
    q: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    s.member()?;
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_request", e.body_text()))?;
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let since = q.since.max(0);
    let notes = api.notes.clone();
    let page = api
        .db
        .call(move |c| notes.changes(c, since, limit))
        .await
        .map_err(ApiError::from)?;
    let unchanged = page.changes.is_empty()
        && page.max_seq == since
        && q.instance.as_deref() == Some(page.instance.as_str());
    if unchanged {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Json(page).into_response())
}

async fn revs(State(api): St, Extension(s): Conn, req: Request) -> Result<Response, ApiError> {
    // Membership first: the body is read only for a member.
    let name = s.member()?;
    let body = read_limited(req, MAX_REVS_REQUEST_BYTES).await?;
    let req: RevsRequest = super::json::parse(&body)?;
    if req.revs.len() > MAX_REVS_PER_REQUEST {
        return Err(ApiError::bad_request(
            "bad_request",
            format!("revs: at most {MAX_REVS_PER_REQUEST} per request"),
        ));
    }
    if req.revs.iter().any(|r| !valid_rev(r)) {
        return Err(ApiError::bad_request(
            "bad_request",
            "revs: malformed revision id",
        ));
    }
    let notes = api.notes.clone();
    let peer = format!("{name} ({})", &s.peer_id()[..8]);
    let revs = api
        .db
        .call(move |c| notes.for_peer(c, &req.revs, &peer, MAX_REVS_BYTES))
        .await
        .map_err(|e: NoteError| ApiError::from(e))?;
    Ok(Json(RevsReply { revs }).into_response())
}

async fn nudge(State(api): St, Extension(s): Conn) -> Result<Response, ApiError> {
    s.member()?;
    api.engine.pull_now(s.peer_id());
    Ok(StatusCode::NO_CONTENT.into_response())
}
