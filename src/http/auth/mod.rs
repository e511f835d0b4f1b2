//! Who is asking, and who may call what. `authenticate` (in `resolve`) turns a request's
//! credentials into a [`Principal`]; handlers then say who may call them by the extractor
//! they take — [`Member`], [`Admin`], [`Reader`] or [`Caller`] — never by a check inside the
//! handler. `handlers` runs login, logout, setup, tokens and users.
//!
//! Account work is blocking SQLite (and argon2): it runs through
//! `crate::blocking::run_unbounded`, without a timeout, because the database lives on the
//! local data dir and a write that started must be allowed to finish.

mod handlers;
mod resolve;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::net::{IpAddr, SocketAddr};

use super::error::ApiError;
use super::AppState;
use crate::auth::User;

pub use handlers::{
    change_user, create_token, create_user, delete_token, delete_user, list_tokens, list_users,
    login, logout, me, setup,
};
pub use resolve::{authenticate, AuthState};

pub const SESSION_COOKIE: &str = "streamhub_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Facts about the connection a request came in on, set by `http::server`.
#[derive(Debug, Clone, Copy)]
pub struct ConnMeta {
    pub peer: SocketAddr,
    pub tls: bool,
}

impl ConnMeta {
    /// The peer's address as the rules see it: an IPv4 client of a dual-stack (`[::]`)
    /// listener arrives as `::ffff:a.b.c.d`, which is neither loopback to `is_loopback` nor
    /// the same rate-limit key as `a.b.c.d`; it is turned back into the IPv4 address.
    pub fn ip(&self) -> IpAddr {
        self.peer.ip().to_canonical()
    }

    /// For requests that did not come through our server (in-process tests).
    pub fn unknown() -> Self {
        ConnMeta {
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            tls: false,
        }
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Session,
    Token,
    Basic,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Session => "session",
            Via::Token => "token",
            Via::Basic => "basic",
        }
    }
}

/// Who a request comes from, as `authenticate` resolved it (a request extension). Handlers
/// take one of the extractors below instead; `http::tus` takes the principal itself, because
/// the protocol's version check must answer before the login check.
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

    /// Reading media and listings: anyone when `anonymous_read`, otherwise users only.
    pub fn require_read(&self, anonymous_read: bool) -> Result<(), ApiError> {
        if anonymous_read || self.user().is_some() {
            Ok(())
        } else {
            Err(unauthorized("log in to read media"))
        }
    }
}

fn principal_of(parts: &Parts) -> &Principal {
    // Routes outside `authenticate` (none today) would be anonymous, never an error.
    static ANON: Principal = Principal::Anonymous;
    parts.extensions.get::<Principal>().unwrap_or(&ANON)
}

/// Extractor: a logged-in user (member or admin); 401 otherwise.
pub struct Member(pub User);

impl Member {
    /// Whose objects a listing shows: the user's own (`Some(id)`), or everyone's for an admin.
    pub fn listing_scope(&self) -> Option<i64> {
        (!self.0.is_admin()).then_some(self.0.id)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Member {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        principal_of(parts).require_user().cloned().map(Member)
    }
}

/// Extractor: a logged-in admin; 401 when not logged in, 403 for a member.
pub struct Admin(pub User);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        principal_of(parts).require_admin().cloned().map(Admin)
    }
}

/// Extractor: whoever may read media, listings and notes — anyone when
/// `auth.anonymous_read`, else a logged-in user (401). Carries the user, if any: reads of
/// notes filter by the viewer.
pub struct Reader(pub Option<User>);

impl Reader {
    /// The viewer's user id, for reads that filter private data.
    pub fn viewer_id(&self) -> Option<i64> {
        self.0.as_ref().map(|u| u.id)
    }
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = principal_of(parts);
        principal.require_read(state.config.auth.anonymous_read)?;
        Ok(Reader(principal.user().cloned()))
    }
}

/// Extractor: a logged-in user with how the request authenticated (`/api/me`); 401
/// otherwise.
pub struct Caller {
    pub user: User,
    pub via: Via,
    /// The session's CSRF token, when the request came with the session cookie.
    pub csrf: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match principal_of(parts) {
            Principal::User { user, via, csrf } => Ok(Caller {
                user: user.clone(),
                via: *via,
                csrf: csrf.clone(),
            }),
            Principal::Anonymous => Err(unauthorized("not logged in")),
        }
    }
}

/// Whether the first-run setup token is still waiting to be used (`/api/info`).
pub fn setup_token_live(state: &AppState) -> bool {
    resolve::lock(&state.auth.setup_token).is_some()
}

/// 401 `unauthorized` (kept here for callers that name it through `http::auth`).
pub fn unauthorized(msg: &str) -> ApiError {
    ApiError::unauthorized(msg)
}

/// 403 `forbidden` (kept here for callers that name it through `http::auth`).
pub fn forbidden(msg: &str) -> ApiError {
    ApiError::forbidden(msg)
}
