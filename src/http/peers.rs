//! `GET /api/peers` (members: a reduced view; admins: everything) and
//! `POST /api/peers/{id}/sync` (admins; 501 until replication exists).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::{Admin, Member};
use super::error::ApiError;
use super::wire::peers::{NodeJson, PeerBriefJson, PeerJson, PeersBriefJson, PeersJson};
use super::AppState;

/// The peer table: admins see ids, addresses and how each was found; members see names,
/// whether they are online and when they last synced. Anonymous callers get 401.
pub async fn list(State(state): State<AppState>, Member(user): Member) -> Response {
    let peers = state.peers.list();
    if user.is_admin() {
        Json(PeersJson {
            node: NodeJson {
                id: state.peers.node_id().to_string(),
                name: state.peers.node_name().to_string(),
            },
            peers: peers.iter().map(PeerJson::from).collect(),
        })
        .into_response()
    } else {
        Json(PeersBriefJson {
            peers: peers.iter().map(PeerBriefJson::from).collect(),
        })
        .into_response()
    }
}

/// Replication is the next step: the route exists so clients get a clear answer.
pub async fn sync_now(_: Admin, Path(_id): Path<String>) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "sync between nodes is not built yet in this version: peers are only discovered",
    )
}
