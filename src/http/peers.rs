//! `GET /api/peers` (members: a reduced view; admins: everything) and
//! `POST /api/peers/{id}/sync` (admins: start a round now).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::{Admin, Member};
use super::error::ApiError;
use super::wire::peers::{
    NodeJson, OtherJson, PeerBriefJson, PeerJson, PeersBriefJson, PeersJson, SyncView,
};
use super::AppState;
use crate::peers::Source;

/// The peer table: admins see ids, addresses, how each was found and replication's state;
/// members see names, whether they are online and when they last synced. Anonymous callers
/// get 401.
pub async fn list(State(state): State<AppState>, Member(user): Member) -> Response {
    let peers = state.peers.list();
    let stored = match &state.sync {
        Some(_) => state
            .accounts
            .db()
            .call(|c| crate::sync::state::list(c))
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let views: Vec<SyncView> = peers
        .iter()
        .map(|p| {
            // The same view the control socket shows (`streamhub peers`).
            let live = state.peers.status(p);
            let id =
                p.id.clone()
                    .or_else(|| live.as_ref().and_then(|l| l.id.clone()));
            SyncView {
                stored: id.and_then(|id| stored.iter().find(|s| s.node_id == id).cloned()),
                live,
            }
        })
        .collect();
    if user.is_admin() {
        Json(PeersJson {
            node: NodeJson {
                id: state.peers.node_id().to_string(),
                name: state.peers.node_name().to_string(),
            },
            peers: peers
                .iter()
                .zip(&views)
                .map(|(p, v)| PeerJson::from(p).with_sync(v))
                .collect(),
            other_clusters: state
                .peers
                .others()
                .into_iter()
                .map(|o| OtherJson {
                    id: o.id,
                    name: o.name,
                })
                .collect(),
        })
        .into_response()
    } else {
        Json(PeersBriefJson {
            peers: peers
                .iter()
                .zip(&views)
                .map(|(p, v)| PeerBriefJson::from(p).with_sync(v, p.source == Source::Static))
                .collect(),
        })
        .into_response()
    }
}

/// Starts a round with the peer `key` names now (202); the answer does not wait for it: its result
/// shows in `GET /api/peers`.
pub async fn sync_now(
    State(state): State<AppState>,
    _: Admin,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let Some(engine) = &state.sync else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_in_cluster",
            "this node is in no cluster (sync.cluster_key is empty, or there is no HTTPS \
             listener): there is nothing to sync with",
        ));
    };
    // The id, a unique prefix of it (the CLI shows 8 digits) or a unique name.
    let id = match state.peers.find(&key) {
        Ok(id) => id,
        Err(e @ crate::peers::FindError::NotFound) => {
            return Err(ApiError::not_found(e.to_string()))
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ambiguous",
                e.to_string(),
            ))
        }
    };
    if !crate::sync::is_node_id(&id) || !engine.pull_now(&id) {
        return Err(ApiError::not_found(
            "no such peer (GET /api/peers lists their ids and names)",
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"status": "started", "peer": id})),
    )
        .into_response())
}
