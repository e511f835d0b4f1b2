//! The accounts API: login, logout, `/api/me`, first-run setup, API tokens and (admins)
//! users. Who may call each handler is the extractor it takes.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::resolve::{
    check_password, clear_cookie, csrf_error, lock, session_cookie, set_cookie, with_hash_slot,
};
use super::Via;
use super::{Admin, Caller, ConnMeta, Member};
use crate::auth::{AuthError, LimitsChange, Role, UserChange};
use crate::blocking::run_unbounded;
use crate::http::error::ApiError;
use crate::http::json::{ApiJson, ApiPath};
use crate::http::wire::accounts::{
    LimitsBody, LoginJson, MeJson, NewTokenJson, RoleParam, SetupJson, TokenJson, TokensJson,
    UserJson, UsersJson,
};
use crate::http::AppState;
use crate::secret;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    name: String,
    password: String,
}

/// Open to anyone (a logged-in caller may log in as someone else).
pub async fn login(
    State(state): State<AppState>,
    Extension(meta): Extension<ConnMeta>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    check_origin(&headers)?;
    let user = check_password(&state, meta.ip(), &body.name, &body.password).await?;
    let ttl = state.config.auth.session_days as i64 * 86_400;
    let accounts = state.accounts.clone();
    let u = user.clone();
    let session = run_unbounded("session start", move || accounts.create_session(&u, ttl)).await?;
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
    _: Member,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = session_cookie(&headers) {
        let accounts = state.accounts.clone();
        run_unbounded("session end", move || accounts.end_session(&token)).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(meta.tls));
    Ok(resp)
}

pub async fn me(caller: Caller) -> Json<MeJson> {
    Json(MeJson {
        auth: caller.via.as_str(),
        csrf_token: caller.csrf,
        role: caller.user.role.as_str(),
        name: caller.user.name,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    token: String,
    name: String,
    password: String,
}

fn already_set_up() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "already_set_up",
        "an admin exists already; log in instead",
    )
}

/// Open to anyone holding the setup token from the service log, once.
pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SetupBody>,
) -> Result<(StatusCode, Json<SetupJson>), ApiError> {
    check_origin(&headers)?;
    let expected = lock(&state.auth.setup_token).clone();
    let Some(expected) = expected else {
        return Err(already_set_up());
    };
    if !secret::ct_eq(body.token.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_setup_token",
            "wrong setup token (see the service log)",
        ));
    }
    let user = with_hash_slot(&state, "first admin", move |accounts| {
        if accounts.user_count()? > 0 {
            return Ok(None);
        }
        accounts
            .add_user(&body.name, &body.password, Role::Admin)
            .map(Some)
    })
    .await??;
    // The token dies with its first use, whatever raced with it.
    *lock(&state.auth.setup_token) = None;
    let Some(user) = user else {
        return Err(already_set_up());
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
    Member(user): Member,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<(StatusCode, Json<NewTokenJson>), ApiError> {
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
    let (tok, secret) = run_unbounded("token create", move || {
        accounts.create_token(&user, &label, body.expires_in)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(NewTokenJson::new(&tok, secret))))
}

/// Own tokens; an admin sees everyone's.
pub async fn list_tokens(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<TokensJson>, ApiError> {
    let owner = member.listing_scope();
    let accounts = state.accounts.clone();
    let tokens = run_unbounded("token list", move || accounts.list_tokens(owner)).await?;
    Ok(Json(TokensJson {
        tokens: tokens.iter().map(TokenJson::from).collect(),
    }))
}

/// The owner's or, for an admin, any; others' tokens look missing (404).
pub async fn delete_token(
    State(state): State<AppState>,
    Member(user): Member,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found("no such token"))?;
    let accounts = state.accounts.clone();
    run_unbounded("token delete", move || accounts.delete_token(id, &user)).await?;
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
    _: Admin,
) -> Result<Json<UsersJson>, ApiError> {
    let accounts = state.accounts.clone();
    let users = run_unbounded("user list", move || accounts.list_users_with_limits()).await?;
    let defaults = &state.config.quotas;
    Ok(Json(UsersJson {
        users: users
            .iter()
            .map(|(u, l)| UserJson::new(u, l, defaults))
            .collect(),
    }))
}

pub async fn create_user(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<(StatusCode, Json<UserJson>), ApiError> {
    let user = with_hash_slot(&state, "user add", move |a| {
        a.add_user(&body.name, &body.password, body.role.0)
    })
    .await??;
    let own = crate::auth::Limits::default();
    Ok((
        StatusCode::CREATED,
        Json(UserJson::new(&user, &own, &state.config.quotas)),
    ))
}

pub async fn delete_user(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let accounts = state.accounts.clone();
    run_unbounded("user delete", move || accounts.delete_user(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeUserBody {
    role: Option<RoleParam>,
    password: Option<String>,
    current_password: Option<String>,
    limits: Option<LimitsBody>,
}

fn wrong_password() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "wrong_password",
        "the current password is wrong",
    )
}

/// `PATCH /api/users/{name}`: an admin changes anyone's role or password; a member changes
/// only their own password, proving the current one (checked like a login: rate-limited).
/// A new password ends the user's other login sessions (the caller's own session is kept
/// when it is theirs); API tokens stay.
pub async fn change_user(
    State(state): State<AppState>,
    Extension(meta): Extension<ConnMeta>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ChangeUserBody>,
) -> Result<Json<UserJson>, ApiError> {
    let me = &caller.user;
    let own = me.name.eq_ignore_ascii_case(&name);
    let limits = LimitsChange::from(body.limits.unwrap_or_default());
    if body.role.is_none() && body.password.is_none() && limits.is_empty() {
        return Err(AuthError::Invalid {
            field: "role",
            reason: "give a role, a password or limits to change".into(),
        }
        .into());
    }
    if !me.is_admin() {
        if !own {
            return Err(ApiError::forbidden("only an admin may change another user"));
        }
        if body.role.is_some() {
            return Err(ApiError::forbidden("only an admin may change roles"));
        }
        if !limits.is_empty() {
            return Err(ApiError::forbidden("only an admin may change limits"));
        }
        let Some(current) = body.current_password.as_deref() else {
            return Err(AuthError::Invalid {
                field: "current_password",
                reason: "required to change your own password".into(),
            }
            .into());
        };
        // Rate-limited like a login: a stolen session cannot guess its way to the password.
        match check_password(&state, meta.ip(), &me.name, current).await {
            Ok(_) => {}
            Err(e) if e.status == StatusCode::UNAUTHORIZED => return Err(wrong_password()),
            Err(e) => return Err(e),
        }
    }
    if let Some(pw) = body.password.as_deref() {
        crate::auth::validate_password(pw)?;
    }
    // Checked before anything changes, so a bad limit leaves role and password alone.
    limits.validate()?;
    // The caller's own session survives a change of their own password.
    let keep_session = (own && caller.via == Via::Session)
        .then(|| session_cookie(&headers))
        .flatten();
    let change = UserChange {
        role: body.role.map(|r| r.0),
        password: body.password,
        keep_session,
    };
    let user = if change.password.is_some() {
        // Hashing a new password is argon2 work: it takes one of the bounded slots.
        with_hash_slot(&state, "user change", move |a| a.change_user(&name, change)).await??
    } else {
        let accounts = state.accounts.clone();
        run_unbounded("user change", move || accounts.change_user(&name, change)).await?
    };
    let accounts = state.accounts.clone();
    let (user, own) = run_unbounded("user limits", move || {
        if limits.is_empty() {
            accounts.limits_of(&user.name)
        } else {
            accounts.set_limits(&user.name, limits)
        }
    })
    .await?;
    tracing::info!(user = %user.name, by = %me.name, "user changed");
    Ok(Json(UserJson::new(&user, &own, &state.config.quotas)))
}
