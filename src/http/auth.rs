//! Who is asking: the `authenticate` middleware turns a request's credentials (Bearer token,
//! HTTP Basic, session cookie) into a [`Principal`], enforces CSRF for cookie-authenticated
//! state changes, and the handlers here run login, logout, setup, tokens and users.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use serde::Deserialize;

use super::error::ApiError;
use super::json::ApiJson;
use super::wire::accounts::{
    LoginJson, MeJson, NewTokenJson, RoleParam, SetupJson, TokenJson, TokensJson, UserJson,
    UsersJson,
};
use super::AppState;
use crate::auth::{AuthError, Role, User};
use crate::secret;

pub const SESSION_COOKIE: &str = "streamhub_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Facts about the connection a request came in on, set by `http::server`.
#[derive(Debug, Clone, Copy)]
pub struct ConnMeta {
    pub peer: SocketAddr,
    pub tls: bool,
}

impl ConnMeta {
    /// For requests that did not come through our server (in-process tests).
    pub fn unknown() -> Self {
        ConnMeta {
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            tls: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Session,
    Token,
    Basic,
}

#[derive(Debug, Clone)]
pub enum Principal {
    Anonymous,
    User {
        user: User,
        via: Via,
        csrf: Option<String>,
    },
}

impl Principal {
    pub fn user(&self) -> Option<&User> {
        match self {
            Principal::User { user, .. } => Some(user),
            Principal::Anonymous => None,
        }
    }

    pub fn require_user(&self) -> Result<&User, ApiError> {
        self.user().ok_or_else(|| unauthorized("log in first"))
    }

    pub fn require_admin(&self) -> Result<&User, ApiError> {
        let u = self.require_user()?;
        if u.is_admin() {
            Ok(u)
        } else {
            Err(forbidden("only an admin may do this"))
        }
    }

    /// Whose objects a listing shows: the user's own (`Some(id)`), or everyone's for an admin.
    pub fn listing_scope(&self) -> Result<Option<i64>, ApiError> {
        let user = self.require_user()?;
        Ok((!user.is_admin()).then_some(user.id))
    }

    /// Reading media and listings: anyone when `anonymous_read`, otherwise users only.
    pub fn require_read(&self, anonymous_read: bool) -> Result<(), ApiError> {
        if anonymous_read || self.user().is_some() {
            Ok(())
        } else {
            Err(unauthorized("log in to read media"))
        }
    }
}

/// Extractor: a logged-in user (member or admin); 401 otherwise.
pub struct Member(pub User);

/// Extractor: a logged-in admin; 401 when not logged in, 403 for a member.
pub struct Admin(pub User);

fn principal_of(parts: &axum::http::request::Parts) -> &Principal {
    static ANON: Principal = Principal::Anonymous;
    parts.extensions.get::<Principal>().unwrap_or(&ANON)
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Member {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        principal_of(parts).require_user().cloned().map(Member)
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        principal_of(parts).require_admin().cloned().map(Admin)
    }
}

pub fn unauthorized(msg: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg)
}

pub fn forbidden(msg: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", msg)
}

fn csrf_error(msg: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "csrf", msg)
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::BadCredentials => unauthorized("wrong name or password"),
            AuthError::Invalid { field, reason } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("{field}: {reason}"),
            ),
            AuthError::UserExists(n) => ApiError::new(
                StatusCode::CONFLICT,
                "exists",
                format!("user {n} already exists"),
            ),
            AuthError::NoSuchUser(_) | AuthError::NotFound => ApiError::not_found("not found"),
            AuthError::LastAdmin => ApiError::new(
                StatusCode::CONFLICT,
                "last_admin",
                "cannot delete the last admin",
            ),
            AuthError::Hash(_) | AuthError::Db(_) | AuthError::Blocking(_) => {
                tracing::error!(error = %e, "accounts error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

/// Shared auth state: the setup token, the login limiter, the Basic cache and a cap on
/// concurrent argon2 work (each verification takes ~19 MiB).
pub struct AuthState {
    pub setup_token: Mutex<Option<String>>,
    pub limiter: crate::auth::ratelimit::LoginLimiter,
    pub hash_slots: tokio::sync::Semaphore,
    /// sha256(Authorization header) → (user id, stored password hash, when checked). A hit
    /// is re-validated against the stored hash (one indexed query instead of argon2), so a
    /// changed password or a deleted user stops working at once.
    basic_cache: Mutex<HashMap<Vec<u8>, (i64, String, Instant)>>,
}

const BASIC_CACHE_TTL: Duration = Duration::from_secs(300);
const BASIC_CACHE_MAX: usize = 1024;

impl AuthState {
    pub fn new(setup_token: Option<String>, max_failures: u32, lockout: Duration) -> Self {
        AuthState {
            setup_token: Mutex::new(setup_token),
            limiter: crate::auth::ratelimit::LoginLimiter::new(max_failures, lockout),
            hash_slots: tokio::sync::Semaphore::new(2),
            basic_cache: Mutex::new(HashMap::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Runs blocking account work on the blocking pool (shared by the share-link handlers).
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::from(AuthError::Hash(e.to_string())))?
        .map_err(ApiError::from)
}

fn too_many(wait: Duration) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many failed logins; try again in {secs} s"),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(secs))
}

/// Password check with rate limiting and bounded argon2 concurrency.
async fn check_password(
    state: &AppState,
    ip: IpAddr,
    name: &str,
    password: &str,
) -> Result<User, ApiError> {
    state
        .auth
        .limiter
        .check(ip, name, Instant::now())
        .map_err(too_many)?;
    let _slot = state
        .auth
        .hash_slots
        .acquire()
        .await
        .map_err(|_| unauthorized("shutting down"))?;
    let accounts = state.accounts.clone();
    let (n, p) = (name.to_string(), password.to_string());
    match tokio::task::spawn_blocking(move || accounts.verify(&n, &p)).await {
        Ok(Ok(user)) => {
            state.auth.limiter.success(ip, name);
            Ok(user)
        }
        Ok(Err(AuthError::BadCredentials)) => {
            state.auth.limiter.failure(ip, name, Instant::now());
            state.metrics.login_failures.inc();
            tracing::info!(%ip, user = %name.escape_debug(), "failed login");
            Err(unauthorized("wrong name or password"))
        }
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(AuthError::Hash(e.to_string()).into()),
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    meta: ConnMeta,
) -> Result<Principal, ApiError> {
    if headers.get_all(header::AUTHORIZATION).iter().count() > 1 {
        return Err(unauthorized("more than one Authorization header"));
    }
    if let Some(authz) = headers.get(header::AUTHORIZATION) {
        let v = authz
            .to_str()
            .map_err(|_| unauthorized("malformed Authorization header"))?;
        if let Some(token) = strip_scheme(v, "Bearer") {
            let accounts = state.accounts.clone();
            let token = token.to_string();
            let user = blocking(move || accounts.token_user(&token)).await?;
            return user
                .map(|user| Principal::User {
                    user,
                    via: Via::Token,
                    csrf: None,
                })
                .ok_or_else(|| unauthorized("invalid, expired or revoked token"));
        }
        if let Some(b64) = strip_scheme(v, "Basic") {
            return basic(state, meta, v, b64).await;
        }
        return Err(unauthorized(
            "unsupported Authorization scheme (use Bearer or Basic)",
        ));
    }
    if let Some(token) = session_cookie(headers) {
        let accounts = state.accounts.clone();
        let found = blocking(move || accounts.session(&token)).await?;
        return match found {
            Some((user, csrf)) => Ok(Principal::User {
                user,
                via: Via::Session,
                csrf: Some(csrf),
            }),
            None => Err(unauthorized("session expired or ended; log in again")
                .with_header(header::SET_COOKIE, clear_cookie(meta.tls))),
        };
    }
    Ok(Principal::Anonymous)
}

async fn basic(
    state: &AppState,
    meta: ConnMeta,
    raw: &str,
    b64: &str,
) -> Result<Principal, ApiError> {
    if !(meta.tls || meta.peer.ip().is_loopback()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "basic_not_allowed",
            "HTTP Basic is only accepted over HTTPS or from this machine",
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| unauthorized("malformed Basic credentials"))?;
    let (name, password) = decoded
        .split_once(':')
        .ok_or_else(|| unauthorized("malformed Basic credentials"))?;
    let key = secret::hash(raw);
    let cached = lock(&state.auth.basic_cache)
        .get(&key)
        .filter(|(_, _, at)| at.elapsed() < BASIC_CACHE_TTL)
        .map(|(id, hash, _)| (*id, hash.clone()));
    let mut user = None;
    if let Some((id, hash)) = cached {
        let accounts = state.accounts.clone();
        let current = blocking(move || accounts.user_and_hash(id)).await?;
        match current {
            Some((u, h)) if h == hash => user = Some(u),
            _ => {
                lock(&state.auth.basic_cache).remove(&key);
            }
        }
    }
    let user = match user {
        Some(u) => u,
        None => {
            let u = check_password(state, meta.peer.ip(), name, password).await?;
            let accounts = state.accounts.clone();
            let id = u.id;
            if let Some((_, hash)) = blocking(move || accounts.user_and_hash(id)).await? {
                let mut cache = lock(&state.auth.basic_cache);
                if cache.len() >= BASIC_CACHE_MAX {
                    cache.clear();
                }
                cache.insert(key, (u.id, hash, Instant::now()));
            }
            u
        }
    };
    Ok(Principal::User {
        user,
        via: Via::Basic,
        csrf: None,
    })
}

/// Middleware: resolves the principal, enforces CSRF, and stores the principal for handlers.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let meta = req
        .extensions()
        .get::<ConnMeta>()
        .copied()
        .unwrap_or_else(ConnMeta::unknown);
    let principal = match resolve(&state, req.headers(), meta).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Principal::User {
        via: Via::Session,
        csrf: Some(csrf),
        ..
    } = &principal
    {
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = req
                .headers()
                .get(CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !secret::ct_eq(sent, csrf.as_bytes()) {
                return csrf_error("missing or wrong X-CSRF-Token header").into_response();
            }
        }
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Login and setup are not cookie-authenticated, so SameSite does not cover them: refuse a
/// browser's cross-site `Origin`.
fn check_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(csrf_error("cross-site request refused")),
    }
}

fn set_cookie(token: &str, max_age: i64, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn clear_cookie(tls: bool) -> HeaderValue {
    set_cookie("", 0, tls)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    name: String,
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    Extension(meta): Extension<ConnMeta>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    check_origin(&headers)?;
    let user = check_password(&state, meta.peer.ip(), &body.name, &body.password).await?;
    let ttl = state.config.auth.session_days as i64 * 86_400;
    let accounts = state.accounts.clone();
    let u = user.clone();
    let session = blocking(move || accounts.create_session(&u, ttl)).await?;
    let mut resp = Json(LoginJson::new(&user, &session)).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&session.token, ttl, meta.tls),
    );
    Ok(resp)
}

pub async fn logout(
    State(state): State<AppState>,
    Extension(meta): Extension<ConnMeta>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require_user()?;
    if let Some(token) = session_cookie(&headers) {
        let accounts = state.accounts.clone();
        blocking(move || accounts.end_session(&token)).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(meta.tls));
    Ok(resp)
}

pub async fn me(Extension(principal): Extension<Principal>) -> Result<Json<MeJson>, ApiError> {
    let Principal::User { user, via, csrf } = &principal else {
        return Err(unauthorized("not logged in"));
    };
    let via = match via {
        Via::Session => "session",
        Via::Token => "token",
        Via::Basic => "basic",
    };
    Ok(Json(MeJson {
        auth: via,
        csrf_token: csrf.clone(),
        name: user.name.clone(),
        role: user.role.as_str(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    token: String,
    name: String,
    password: String,
}

pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SetupBody>,
) -> Result<(StatusCode, Json<SetupJson>), ApiError> {
    check_origin(&headers)?;
    let expected = lock(&state.auth.setup_token).clone();
    let Some(expected) = expected else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_set_up",
            "an admin exists already; log in instead",
        ));
    };
    if !secret::ct_eq(body.token.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_setup_token",
            "wrong setup token (see the service log)",
        ));
    }
    let accounts = state.accounts.clone();
    let user = blocking(move || {
        if accounts.user_count()? > 0 {
            return Ok(None);
        }
        accounts
            .add_user(&body.name, &body.password, Role::Admin)
            .map(Some)
    })
    .await?;
    // The token dies with its first use, whatever raced with it.
    *lock(&state.auth.setup_token) = None;
    let Some(user) = user else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_set_up",
            "an admin exists already; log in instead",
        ));
    };
    tracing::info!(user = %user.name, "first admin created through /api/setup");
    Ok((StatusCode::CREATED, Json(SetupJson::from(&user))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    label: String,
    expires_in: Option<i64>,
}

pub async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<(StatusCode, Json<NewTokenJson>), ApiError> {
    let user = principal.require_user()?.clone();
    let label = body.label.trim().to_string();
    if label.is_empty() || label.chars().count() > 100 || label.chars().any(char::is_control) {
        return Err(AuthError::Invalid {
            field: "label",
            reason: "1 to 100 printable characters".into(),
        }
        .into());
    }
    if let Some(e) = body.expires_in {
        if !(1..=315_360_000).contains(&e) {
            return Err(AuthError::Invalid {
                field: "expires_in",
                reason: "seconds, between 1 and 315360000".into(),
            }
            .into());
        }
    }
    let accounts = state.accounts.clone();
    let (tok, secret) =
        blocking(move || accounts.create_token(&user, &label, body.expires_in)).await?;
    Ok((StatusCode::CREATED, Json(NewTokenJson::new(&tok, secret))))
}

pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<TokensJson>, ApiError> {
    let owner = principal.listing_scope()?;
    let accounts = state.accounts.clone();
    let tokens = blocking(move || accounts.list_tokens(owner)).await?;
    Ok(Json(TokensJson {
        tokens: tokens.iter().map(TokenJson::from).collect(),
    }))
}

pub async fn delete_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = principal.require_user()?.clone();
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found("no such token"))?;
    let accounts = state.accounts.clone();
    blocking(move || accounts.delete_token(id, &user)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    name: String,
    password: String,
    role: RoleParam,
}

pub async fn list_users(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<UsersJson>, ApiError> {
    principal.require_admin()?;
    let accounts = state.accounts.clone();
    let users = blocking(move || accounts.list_users()).await?;
    Ok(Json(UsersJson {
        users: users.iter().map(UserJson::from).collect(),
    }))
}

pub async fn create_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<(StatusCode, Json<UserJson>), ApiError> {
    principal.require_admin()?;
    let accounts = state.accounts.clone();
    let user = blocking(move || accounts.add_user(&body.name, &body.password, body.role.0)).await?;
    Ok((StatusCode::CREATED, Json(UserJson::from(&user))))
}

pub async fn delete_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require_admin()?;
    let accounts = state.accounts.clone();
    blocking(move || accounts.delete_user(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}
