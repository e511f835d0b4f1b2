//! Credentials: the `authenticate` middleware (Bearer token, HTTP Basic, session cookie →
//! `Principal`, CSRF for cookie-authenticated state changes), password checks with rate
//! limiting and bounded argon2 concurrency, the Basic cache, and the session cookie itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::{unauthorized, ConnMeta, Principal, Via, CSRF_HEADER, SESSION_COOKIE};
use crate::auth::{Accounts, AuthError, User};
use crate::blocking::run_unbounded;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::secret;

/// Shared auth state: the setup token, the login limiter, the Basic cache and a cap on
/// concurrent argon2 work (each run takes 19 MiB: `auth::hashing`).
pub struct AuthState {
    pub setup_token: Mutex<Option<String>>,
    pub limiter: crate::auth::ratelimit::LoginLimiter,
    /// One permit per argon2 run at once (`auth::hashing::parallelism`, one per core, at most
    /// 2); a permit is held until its hash ends, even when the request is gone.
    hash_slots: Arc<tokio::sync::Semaphore>,
    /// sha256(Authorization header) → (user id, stored password hash, when checked). A hit
    /// is re-validated against the stored hash (one indexed query instead of argon2), so a
    /// changed password or a deleted user stops working at once.
    basic_cache: Mutex<HashMap<Vec<u8>, (i64, String, Instant)>>,
}

const BASIC_CACHE_TTL: Duration = Duration::from_secs(300);
/// How long a request waits for a free argon2 slot before it is told to come back (503):
/// with two slots and ~0.1 s a hash, a dozen or more waiters can still be served in it, and
/// a flood is answered at once instead of piling up connections.
const HASH_WAIT: Duration = Duration::from_millis(2500);
/// Retry-After of that 503.
const HASH_RETRY_SECS: u32 = 2;
const BASIC_CACHE_MAX: usize = 1024;

impl AuthState {
    pub fn new(setup_token: Option<String>, max_failures: u32, lockout: Duration) -> Self {
        AuthState {
            setup_token: Mutex::new(setup_token),
            limiter: crate::auth::ratelimit::LoginLimiter::new(max_failures, lockout),
            hash_slots: Arc::new(tokio::sync::Semaphore::new(
                crate::auth::hashing::parallelism(),
            )),
            basic_cache: Mutex::new(HashMap::new()),
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
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

fn busy() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        format!("too many password checks at once; try again in {HASH_RETRY_SECS} s"),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(HASH_RETRY_SECS))
}

/// Runs argon2 work (`f`: a password check or a new hash) in one of the bounded slots, on the
/// blocking pool. Waits at most `HASH_WAIT` for a slot (else 503 `busy`); the slot and the
/// hash memory are held by the blocking closure, so a client that hangs up mid-hash frees
/// nothing early and cannot make more than the cap run at once. The outer error is the
/// wait's, the inner one `f`'s.
pub(super) async fn with_hash_slot<T, F>(
    state: &AppState,
    op: &'static str,
    f: F,
) -> Result<Result<T, AuthError>, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Accounts) -> Result<T, AuthError> + Send + 'static,
{
    let hold = state.accounts.hash_hold();
    let slots = Arc::clone(&state.auth.hash_slots);
    let permit = match tokio::time::timeout(HASH_WAIT, slots.acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_closed)) => return Err(busy()),
        Err(_elapsed) => {
            tracing::warn!(op, "no argon2 slot free in time; answered 503 busy");
            return Err(busy());
        }
    };
    let accounts = state.accounts.clone();
    Ok(run_unbounded(op, move || {
        let _slot = (permit, hold);
        f(&accounts)
    })
    .await)
}

/// Password check with rate limiting and bounded argon2 concurrency. The attempt is counted
/// before the hash (so the `max_failures`+1-th of many parallel attempts is refused at once,
/// not after all of them ran) and forgiven when the password is right or no slot was free.
pub(super) async fn check_password(
    state: &AppState,
    ip: IpAddr,
    name: &str,
    password: &str,
) -> Result<User, ApiError> {
    let limiter = &state.auth.limiter;
    limiter
        .reserve(ip, name, Instant::now())
        .map_err(too_many)?;
    let (n, p) = (name.to_string(), password.to_string());
    // An unknown name costs the same hash (a dummy one) and so takes a slot too.
    let result = match with_hash_slot(state, "password check", move |a| a.verify(&n, &p)).await {
        Ok(result) => result,
        Err(busy) => {
            limiter.forgive(ip, name);
            return Err(busy);
        }
    };
    match result {
        Ok(user) => {
            limiter.success(ip, name);
            Ok(user)
        }
        Err(AuthError::BadCredentials) => {
            state.metrics.login_failures.inc();
            tracing::info!(%ip, user = ?name.chars().take(64).collect::<String>(), "failed login");
            Err(unauthorized("wrong name or password"))
        }
        Err(e) => {
            limiter.forgive(ip, name);
            Err(e.into())
        }
    }
}

pub(super) fn session_cookie(headers: &HeaderMap) -> Option<String> {
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
            let user = run_unbounded("token lookup", move || accounts.token_user(&token)).await?;
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
        let found = run_unbounded("session lookup", move || accounts.session(&token)).await?;
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
    if !(meta.tls || meta.ip().is_loopback()) {
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
        let current = run_unbounded("user lookup", move || accounts.user_and_hash(id)).await?;
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
            let u = check_password(state, meta.ip(), name, password).await?;
            let accounts = state.accounts.clone();
            let id = u.id;
            if let Some((_, hash)) =
                run_unbounded("user lookup", move || accounts.user_and_hash(id)).await?
            {
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

pub(super) fn set_cookie(token: &str, max_age: i64, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(super) fn clear_cookie(tls: bool) -> HeaderValue {
    set_cookie("", 0, tls)
}

pub(super) fn csrf_error(msg: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "csrf", msg)
}
