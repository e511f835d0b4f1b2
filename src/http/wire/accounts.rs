//! Accounts on the wire: users, login and `/api/me` answers, API tokens and share links
//! (`auth`'s domain values, as `docs/CONTRACT.md` describes them).

use serde::{Deserialize, Serialize};

use super::time::from_secs;
use crate::auth::shares::Share;
use crate::auth::{ApiToken, Limits, LimitsChange, NewSession, Role, User};
use crate::config::QuotasConfig;

/// A user as an admin sees it (`GET /api/users`, `POST /api/users`, `PATCH`): `limits`
/// are the ones that apply (0 = unlimited), `own_limits` the user's own (null: the
/// config's `[quotas]` default).
#[derive(Debug, Serialize)]
pub struct UserJson {
    pub created_at: String,
    pub limits: LimitsJson<u64>,
    pub name: String,
    pub own_limits: LimitsJson<Option<u64>>,
    pub role: &'static str,
}

#[derive(Debug, Serialize)]
pub struct LimitsJson<T> {
    pub media_bytes: T,
    pub notes_bytes: T,
    pub tus_uploads: T,
}

impl UserJson {
    pub fn new(u: &User, own: &Limits, defaults: &QuotasConfig) -> Self {
        let e = own.effective(defaults);
        UserJson {
            created_at: from_secs(u.created_at),
            limits: LimitsJson {
                media_bytes: e.media_bytes,
                notes_bytes: e.notes_bytes,
                tus_uploads: e.tus_uploads,
            },
            name: u.name.clone(),
            own_limits: LimitsJson {
                media_bytes: own.media_bytes,
                notes_bytes: own.notes_bytes,
                tus_uploads: own.tus_uploads,
            },
            role: u.role.as_str(),
        }
    }
}

/// `limits` in `PATCH /api/users/{name}`: a field left out is kept, `null` goes back to
/// the config default, a number (0 = unlimited) is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    #[serde(default, deserialize_with = "present")]
    media_bytes: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    notes_bytes: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    tus_uploads: Option<Option<u64>>,
}

/// A field that is there, even as `null` (serde alone cannot tell null from absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

impl From<LimitsBody> for LimitsChange {
    fn from(b: LimitsBody) -> Self {
        LimitsChange {
            media_bytes: b.media_bytes,
            tus_uploads: b.tus_uploads,
            notes_bytes: b.notes_bytes,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct UsersJson {
    pub users: Vec<UserJson>,
}

/// `POST /api/setup`: the first admin.
#[derive(Debug, Serialize)]
pub struct SetupJson {
    pub name: String,
    pub role: &'static str,
}

impl From<&User> for SetupJson {
    fn from(u: &User) -> Self {
        SetupJson {
            name: u.name.clone(),
            role: u.role.as_str(),
        }
    }
}

/// `POST /api/login`: who logged in and the CSRF token their session's writes must carry.
#[derive(Debug, Serialize)]
pub struct LoginJson {
    pub csrf_token: String,
    pub name: String,
    pub role: &'static str,
}

impl LoginJson {
    pub fn new(user: &User, session: &NewSession) -> Self {
        LoginJson {
            csrf_token: session.csrf.clone(),
            name: user.name.clone(),
            role: user.role.as_str(),
        }
    }
}

/// `GET /api/me`. `auth` is how the request authenticated (`session`, `token`, `basic`);
/// `csrf_token` is null unless it came with the session cookie.
#[derive(Debug, Serialize)]
pub struct MeJson {
    pub auth: &'static str,
    pub csrf_token: Option<String>,
    pub name: String,
    pub role: &'static str,
}

/// `POST /api/tokens`: the only answer that ever shows the token itself.
#[derive(Debug, Serialize)]
pub struct NewTokenJson {
    pub created_at: String,
    pub expires_at: Option<String>,
    pub id: i64,
    pub label: String,
    pub token: String,
}

impl NewTokenJson {
    pub fn new(t: &ApiToken, secret: String) -> Self {
        NewTokenJson {
            created_at: from_secs(t.created_at),
            expires_at: t.expires_at.map(from_secs),
            id: t.id,
            label: t.label.clone(),
            token: secret,
        }
    }
}

/// A token as listed: never the secret.
#[derive(Debug, Serialize)]
pub struct TokenJson {
    pub created_at: String,
    pub expires_at: Option<String>,
    pub id: i64,
    pub label: String,
    pub user: String,
}

impl From<&ApiToken> for TokenJson {
    fn from(t: &ApiToken) -> Self {
        TokenJson {
            created_at: from_secs(t.created_at),
            expires_at: t.expires_at.map(from_secs),
            id: t.id,
            label: t.label.clone(),
            user: t.user.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TokensJson {
    pub tokens: Vec<TokenJson>,
}

/// `POST /api/shares`.
#[derive(Debug, Serialize)]
pub struct NewShareJson {
    pub expires_at: String,
    pub id: i64,
    pub path: String,
    pub url: String,
}

impl From<&Share> for NewShareJson {
    fn from(s: &Share) -> Self {
        NewShareJson {
            expires_at: from_secs(s.expires_at),
            id: s.id,
            path: s.path.clone(),
            url: s.url.clone(),
        }
    }
}

/// A share link as listed (`GET /api/shares`).
#[derive(Debug, Serialize)]
pub struct ShareJson {
    pub created_at: String,
    pub expires_at: String,
    pub id: i64,
    pub path: String,
    pub revoked: bool,
    pub url: String,
    pub user: String,
}

impl From<&Share> for ShareJson {
    fn from(s: &Share) -> Self {
        ShareJson {
            created_at: from_secs(s.created_at),
            expires_at: from_secs(s.expires_at),
            id: s.id,
            path: s.path.clone(),
            revoked: s.revoked,
            url: s.url.clone(),
            user: s.user.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SharesJson {
    pub shares: Vec<ShareJson>,
}

/// A role in a request body: `"admin"` or `"member"`, anything else a 422 naming the field.
#[derive(Debug, Clone, Copy)]
pub struct RoleParam(pub Role);

impl<'de> Deserialize<'de> for RoleParam {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Role::parse(&s).map(RoleParam).ok_or_else(|| {
            serde::de::Error::custom(format!("role must be \"admin\" or \"member\", not {s:?}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &impl Serialize) -> String {
        serde_json::to_string(v).unwrap()
    }

    fn bob() -> User {
        User {
            id: 7,
            name: "bob".into(),
            role: Role::Member,
            created_at: 1_700_000_000,
        }
    }

    #[test]
    fn users_login_and_me_bytes() {
        let u = bob();
        assert_eq!(
            json(&UsersJson {
                users: vec![UserJson::new(
                    &u,
                    &Limits {
                        media_bytes: Some(5),
                        ..Limits::default()
                    },
                    &crate::config::Config::default().quotas
                )]
            }),
            concat!(
                r#"{"users":[{"created_at":"2023-11-14T22:13:20Z","#,
                r#""limits":{"media_bytes":5,"notes_bytes":0,"tus_uploads":20},"name":"bob","#,
                r#""own_limits":{"media_bytes":5,"notes_bytes":null,"tus_uploads":null},"#,
                r#""role":"member"}]}"#
            )
        );
        assert_eq!(
            json(&SetupJson::from(&u)),
            r#"{"name":"bob","role":"member"}"#
        );
        let s = NewSession {
            token: "t".into(),
            csrf: "c".into(),
            expires_at: 1,
        };
        assert_eq!(
            json(&LoginJson::new(&u, &s)),
            r#"{"csrf_token":"c","name":"bob","role":"member"}"#
        );
        let me = MeJson {
            auth: "token",
            csrf_token: None,
            name: "bob".into(),
            role: Role::Admin.as_str(),
        };
        assert_eq!(
            json(&me),
            r#"{"auth":"token","csrf_token":null,"name":"bob","role":"admin"}"#
        );
    }

    #[test]
    fn tokens_and_shares_bytes() {
        let t = ApiToken {
            id: 3,
            label: "cron".into(),
            user: "bob".into(),
            created_at: 10,
            expires_at: None,
        };
        assert_eq!(
            json(&NewTokenJson::new(&t, "sht_x".into())),
            r#"{"created_at":"1970-01-01T00:00:10Z","expires_at":null,"id":3,"label":"cron","token":"sht_x"}"#
        );
        assert_eq!(
            json(&TokensJson {
                tokens: vec![TokenJson::from(&t)]
            }),
            r#"{"tokens":[{"created_at":"1970-01-01T00:00:10Z","expires_at":null,"id":3,"label":"cron","user":"bob"}]}"#
        );
        let s = Share {
            id: 4,
            path: "a/b.mp4".into(),
            url: "/s/tok".into(),
            user: "bob".into(),
            created_at: 10,
            expires_at: 20,
            revoked: false,
        };
        assert_eq!(
            json(&NewShareJson::from(&s)),
            r#"{"expires_at":"1970-01-01T00:00:20Z","id":4,"path":"a/b.mp4","url":"/s/tok"}"#
        );
        assert_eq!(
            json(&SharesJson {
                shares: vec![ShareJson::from(&s)]
            }),
            r#"{"shares":[{"created_at":"1970-01-01T00:00:10Z","expires_at":"1970-01-01T00:00:20Z","id":4,"path":"a/b.mp4","revoked":false,"url":"/s/tok","user":"bob"}]}"#
        );
    }

    #[test]
    fn limits_body_tells_null_from_absent() {
        let b: LimitsBody =
            serde_json::from_str(r#"{"media_bytes":null,"tus_uploads":3}"#).unwrap();
        assert_eq!(
            LimitsChange::from(b),
            LimitsChange {
                media_bytes: Some(None),
                tus_uploads: Some(Some(3)),
                notes_bytes: None,
            }
        );
        assert!(serde_json::from_str::<LimitsBody>(r#"{"bogus":1}"#).is_err());
        assert!(serde_json::from_str::<LimitsBody>(r#"{"tus_uploads":-1}"#).is_err());
    }

    #[test]
    fn role_param_names_the_choices() {
        let r: RoleParam = serde_json::from_str(r#""admin""#).unwrap();
        assert_eq!(r.0, Role::Admin);
        let e = serde_json::from_str::<RoleParam>(r#""king""#).unwrap_err();
        assert!(e
            .to_string()
            .contains(r#"role must be "admin" or "member", not "king""#));
    }
}
