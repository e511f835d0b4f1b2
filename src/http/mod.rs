//! HTTP: routes, handlers and the connection server. The only module that knows HTTP types;
//! handlers translate requests into calls on domain modules (`storage`, `range`, `app`) and
//! back.

pub mod acked;
pub mod auth;
pub mod budget;
pub mod clients;
mod conditional;
pub mod data_dir;
pub mod edge;
pub mod error;
pub mod health;
pub mod host;
pub mod idle;
pub mod info;
pub mod json;
pub mod library;
pub mod markdown;
pub mod media;
pub mod media_policy;
pub mod notes;
pub mod peers;
pub mod pool;
pub mod positions;
pub mod sendfile;
pub mod server;
pub mod share_dir;
pub mod shares;
pub mod stall;
pub mod storage_state;
pub mod subtitles;
pub mod sync_api;
pub mod trash;
pub mod tus;
pub mod ui;
pub mod upload;
pub mod wire;
pub mod zip;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::http::HeaderValue;
use axum::middleware;
use axum::routing::{delete, get, head, post, put};
use axum::Router;

use crate::auth::Accounts;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::storage::Storage;
use auth::AuthState;
use error::ApiError;

/// What every request shares, behind one `Arc` ([`AppState`]): axum's middleware layers and
/// extractors clone the state several times per request, and one reference count is what
/// that should cost (a reading of the five layers counts about 40 clones per request, each
/// of 16 handles and two path copies, before this was one `Arc`).
#[derive(Clone)]
pub struct AppParts {
    pub storage: Arc<dyn Storage>,
    pub config: Arc<Config>,
    /// Shared, not owned: the state is cloned for every request.
    pub data_dir: Arc<std::path::Path>,
    pub accounts: Accounts,
    pub auth: Arc<AuthState>,
    pub metrics: Arc<Metrics>,
    pub notes: crate::notes::NotesStore,
    pub library: crate::library::Library,
    /// Writing media: uploads, folders, moves, deletes (with the ownership rules).
    pub files: crate::app::Files,
    /// Resumable (tus) uploads.
    pub resumable: crate::app::Resumable,
    /// Resume positions (per user).
    pub positions: crate::positions::Positions,
    /// Per-process request counter for `x-request-id` and the access log.
    pub request_ids: Arc<AtomicU64>,
    /// The LAN peers this node knows of (none unless the service starts discovery).
    pub peers: crate::peers::Peers,
    /// Replication (None: no cluster key, or an in-process server without it).
    pub sync: Option<crate::sync::Engine>,
    /// The page-wide CSP ([`page_csp`]).
    pub page_csp: HeaderValue,
    /// The last storage check, shared by `/readyz` and `/metrics`.
    pub storage_health: Arc<health::StorageHealth>,
    /// The names this box answers to (`Host`).
    pub hosts: host::HostPolicy,
}

/// The shared state handlers get (`State<AppState>`): one `Arc`, read through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl AppState {
    /// For the start-up steps that fill in a part before the router takes the state (the
    /// peers, replication); copies the parts only if the state was shared already.
    pub fn parts_mut(&mut self) -> &mut AppParts {
        Arc::make_mut(&mut self.0)
    }

    /// Assembles the state every handler shares from the service's parts (the service, and
    /// in-process tests that bring their own storage backend).
    pub fn new(
        config: Arc<Config>,
        storage: Arc<dyn Storage>,
        db: crate::db::Db,
        library: crate::library::Library,
        tus: Arc<crate::tus::Tus>,
        setup_token: Option<String>,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        let timeout = config.storage_timeout();
        // One `Accounts` (it shares argon2's buffers across clones).
        let accounts = Accounts::new(db.clone());
        let quotas = crate::app::Quotas::new(accounts.clone(), config.quotas.clone());
        let files = crate::app::Files::new(
            storage.clone(),
            library.clone(),
            metrics.clone(),
            quotas,
            config.uploads.max_bytes,
            timeout,
            config.storage.trash_days,
        );
        let resumable = crate::app::Resumable::new(
            tus,
            files.clone(),
            storage.clone(),
            metrics.clone(),
            timeout,
        );
        AppState(Arc::new(AppParts {
            page_csp: page_csp(storage.direct_origin().as_deref()),
            hosts: host_policy(&config),
            storage_health: Arc::default(),
            storage,
            data_dir: Arc::from(config.server.data_dir.as_path()),
            positions: crate::positions::Positions::new(db.clone()),
            accounts,
            auth: Arc::new(AuthState::new(
                setup_token,
                config.auth.login_max_failures,
                std::time::Duration::from_secs(config.auth.login_lockout_secs),
            )),
            metrics,
            notes: crate::notes::NotesStore::new(crate::notes::Limits {
                title_chars: config.notes.max_title_chars,
                body_bytes: config.notes.max_body_bytes,
                tags: config.notes.max_tags,
                tag_chars: config.notes.max_tag_chars,
            })
            .with_sync_max_skew_ms(config.sync.max_clock_skew_secs.saturating_mul(1000)),
            library,
            files,
            resumable,
            request_ids: Arc::default(),
            peers: crate::peers::Peers::disabled(),
            sync: None,
            config,
        }))
    }
}

pub fn router(state: AppState) -> Router {
    let media = get(media::get_media)
        .head(media::get_media)
        .put(upload::put_media)
        .delete(trash::delete_media)
        .fallback(|| async { ApiError::method_not_allowed("GET, HEAD, PUT, DELETE") });
    let share = get(shares::fetch)
        .head(shares::fetch)
        .fallback(|| async { ApiError::method_not_allowed("GET, HEAD") });
    let share_under = get(shares::fetch_under)
        .head(shares::fetch_under)
        .fallback(|| async { ApiError::method_not_allowed("GET, HEAD") });
    Router::new()
        .route("/media/", media.clone())
        .route("/media/{*path}", media)
        .route("/s/{token}", share)
        .route("/s/{token}/", share_under.clone())
        .route("/s/{token}/{*rest}", share_under)
        .route("/api/library", get(library::list))
        .route("/api/library/item", get(library::item))
        .route("/api/library/thumb", get(library::thumb))
        .route("/api/library/zip", get(zip::download))
        .route("/api/library/status", get(library::status))
        .route("/api/library/subtitles", get(subtitles::tracks))
        .route("/api/library/vtt", get(subtitles::vtt))
        .route("/api/library/rescan", post(library::rescan))
        .route("/api/library/folder", post(upload::create_folder))
        .route("/api/library/move", post(upload::move_entry))
        .route("/api/trash", get(trash::list).delete(trash::empty))
        .route("/api/trash/{id}", axum::routing::delete(trash::purge))
        .route("/api/trash/{id}/restore", post(trash::restore))
        // Per-file limits are enforced by storage (uploads.max_bytes) while streaming.
        .route(
            "/api/upload",
            post(upload::upload_multipart).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/api/tus", post(tus::create).options(tus::options))
        .route("/api/tus/", post(tus::create).options(tus::options))
        .route(
            "/api/tus/{id}",
            head(tus::head)
                .patch(tus::patch)
                .delete(tus::terminate)
                .options(tus::options),
        )
        .route("/api/info", get(info::info))
        .route("/api/config", get(info::config))
        .route("/api/storage", get(storage_state::storage))
        .route("/api/peers", get(peers::list))
        .route("/api/peers/{id}/sync", post(peers::sync_now))
        .route("/api/positions", put(positions::save).get(positions::get))
        .route("/api/setup", post(auth::setup))
        .route("/api/login", post(auth::login))
        .route("/api/logout", post(auth::logout))
        .route("/api/me", get(auth::me))
        .route(
            "/api/tokens",
            post(auth::create_token).get(auth::list_tokens),
        )
        .route("/api/tokens/{id}", delete(auth::delete_token))
        .route("/api/users", get(auth::list_users).post(auth::create_user))
        .route(
            "/api/users/{name}",
            delete(auth::delete_user).patch(auth::change_user),
        )
        .route("/api/shares", post(shares::create).get(shares::list))
        .route("/api/shares/{id}", delete(shares::revoke))
        .route("/api/notes", post(notes::create).get(notes::search))
        .route(
            "/api/notes/{id}",
            get(notes::get_note)
                .put(notes::update)
                .delete(notes::delete),
        )
        .route("/api/notes/render", post(markdown::preview))
        .route("/api/notes/{id}/html", get(markdown::note_html))
        .route("/api/notes/{id}/revisions", get(notes::revisions))
        .route("/api/notes/{id}/revisions/{rev}", get(notes::revision))
        .route("/api/notes/{id}/restore", post(notes::restore))
        .route("/api/notes/{id}/resolve", post(notes::resolve))
        .route("/api/notes/{id}/merge", post(notes::merge))
        .route("/api/notes/{id}/events", get(notes::events))
        .route("/api/tags", get(notes::tags))
        .route("/api/analytics", get(notes::analytics))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics_admin))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .merge(ui::routes())
        // Outside `authenticate`: a refused host is logged, a session lookup refused by the
        // data dir is named too.
        .layer(middleware::from_fn_with_state(state.clone(), edge::edge))
        .with_state(state)
}

/// `server.allowed_hosts` plus the names this box is known by.
fn host_policy(config: &Config) -> host::HostPolicy {
    let mut known: Vec<String> = crate::tls::host_name().into_iter().collect();
    if let Some(h) = config
        .server
        .public_url
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
    {
        known.push(h);
    }
    host::HostPolicy::new(&config.server.allowed_hosts, &known)
}

/// The router of a dedicated metrics listener (`server.metrics_listen`): `/metrics` only, no
/// login — reachability is the operator's choice of address.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics_open))
        .fallback(|| async { ApiError::not_found("only /metrics is served here") })
        .with_state(state)
}

/// Bytes to escape in one URL path segment (RFC 3986 pchar allows the rest).
pub const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Bytes to escape in an RFC 8187 ext-value (`filename*=UTF-8''…`): all but attr-char.
pub const RFC8187_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// The page-wide policy: nothing inline, nothing framed. Media responses set their own,
/// stricter sandbox policy.
const CSP: &str = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// [`CSP`], and in S3 redirect mode the store's public origin for what is redirected there
/// (players and images; posters and thumbnails stay on our origin): nothing else may load
/// from it.
fn page_csp(direct_origin: Option<&str>) -> HeaderValue {
    let csp = match direct_origin {
        Some(o) => format!("{CSP}; media-src 'self' {o}; img-src 'self' {o}"),
        None => CSP.to_string(),
    };
    // The origin comes from a validated endpoint (no spaces or control bytes); the plain
    // policy is the fallback all the same.
    HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(CSP))
}
