//! What a client needs before anything else (`GET /api/info`: the box's name, version,
//! whether first-run setup is pending, the limits a page shows), and the effective
//! configuration with secrets blanked (`GET /api/config`, admins; `config::redact`).

use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;

use super::auth::{Admin, Principal};
use super::error::ApiError;
use super::wire::accounts::MeJson;
use super::AppState;
use crate::blocking::run_unbounded;

#[derive(Debug, Serialize)]
pub struct InfoJson {
    name: Option<String>,
    version: &'static str,
    setup_required: bool,
    anonymous_read: bool,
    max_upload_bytes: u64,
    tus_endpoint: &'static str,
    trash_days: u64,
    /// Whether deletes go to a trash (false: on S3, or `trash_days = 0`, they are permanent).
    trash: bool,
    /// The caller, as `/api/me` shows it; null for anonymous (not a 401, so a page's
    /// first question is never an error).
    user: Option<MeJson>,
    /// Whether LAN peers are configured (discovery running, or static peers): pages show
    /// `/api/peers` only then.
    lan_peers: bool,
}

/// `GET /api/info`: open to anyone, also when `auth.anonymous_read` is off (the login page
/// needs it). Nothing secret: the setup token itself is never shown, only whether one is
/// waiting to be used.
pub async fn info(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
) -> Result<Json<InfoJson>, ApiError> {
    let token_live = super::auth::setup_token_live(&state);
    let setup_required = if token_live {
        // A user made with the CLI meanwhile ends the setup (as `/api/setup` would say).
        let accounts = state.accounts.clone();
        run_unbounded("user count", move || accounts.user_count()).await? == 0
    } else {
        false
    };
    let c = &state.config;
    Ok(Json(InfoJson {
        name: crate::tls::host_name(),
        version: env!("CARGO_PKG_VERSION"),
        setup_required,
        anonymous_read: c.auth.anonymous_read,
        max_upload_bytes: c.uploads.max_bytes,
        tus_endpoint: "/api/tus/",
        trash_days: c.storage.trash_days,
        trash: state.storage.has_trash() && c.storage.trash_days > 0,
        user: match principal {
            Some(Extension(Principal::User { user, via, csrf })) => Some(MeJson {
                auth: via.as_str(),
                csrf_token: csrf,
                role: user.role.as_str(),
                name: user.name,
            }),
            _ => None,
        },
        lan_peers: state.peers.enabled(),
    }))
}

#[derive(Debug, Serialize)]
pub struct ConfigJson {
    config: serde_json::Value,
    redacted: Vec<String>,
}

/// `GET /api/config` (admins): the configuration the service runs with, as the TOML file
/// would spell it, secrets replaced by `"<redacted>"`.
pub async fn config(State(state): State<AppState>, _: Admin) -> Result<Json<ConfigJson>, ApiError> {
    let r = crate::config::redact::redacted(&state.config).map_err(|e| ApiError::internal(&e))?;
    Ok(Json(ConfigJson {
        config: r.config,
        redacted: r.redacted,
    }))
}
