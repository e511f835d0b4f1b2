//! Accounts: users (argon2id passwords), login sessions, API tokens and share links, stored in
//! the database. Plain blocking code over [`Db`] — the HTTP layer calls it on the blocking pool
//! and the `streamhub user …` CLI calls it directly.
//!
//! Invariant: secrets (session ids, API tokens) are stored only as SHA-256 hashes; an unknown
//! user name costs the same argon2 work as a wrong password.

pub mod ratelimit;
pub mod shares;

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::db::{Db, DbError};
use crate::secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    fn parse(s: &str) -> Role {
        if s == "admin" {
            Role::Admin
        } else {
            Role::Member
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("wrong name or password")]
    BadCredentials,
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("no user named {0}")]
    NoSuchUser(String),
    #[error("cannot delete the last admin")]
    LastAdmin,
    #[error("not found")]
    NotFound,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for AuthError {
    fn from(e: rusqlite::Error) -> Self {
        AuthError::Db(DbError::Sql(e))
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn validate_name(name: &str) -> Result<(), AuthError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid {
            field: "name",
            reason: "1 to 64 characters of A-Z a-z 0-9 . _ -".to_string(),
        })
    }
}

pub fn validate_password(pw: &str) -> Result<(), AuthError> {
    let n = pw.chars().count();
    if n < 8 {
        return Err(AuthError::Invalid {
            field: "password",
            reason: "at least 8 characters".to_string(),
        });
    }
    if n > 1024 {
        return Err(AuthError::Invalid {
            field: "password",
            reason: "at most 1024 characters".to_string(),
        });
    }
    Ok(())
}

fn hash_password(pw: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&secret::random_bytes()[..16])
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

fn verify_password(pw: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .and_then(|h| Argon2::default().verify_password(pw.as_bytes(), &h))
        .is_ok()
}

/// A hash to verify against when the user does not exist, so that case takes as long.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&secret::random_token()).unwrap_or_default())
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        role: Role::parse(&r.get::<_, String>(2)?),
        created_at: r.get(3)?,
    })
}

/// An API token as listed (never the secret itself).
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub label: String,
    pub user: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// A login session: what the cookie holds and the CSRF token bound to it.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
    pub expires_at: i64,
}

#[derive(Clone)]
pub struct Accounts {
    db: Db,
}

impl Accounts {
    pub fn new(db: Db) -> Self {
        Accounts { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn user_count(&self) -> Result<i64, AuthError> {
        Ok(self
            .db
            .with(|c| c.query_row("SELECT count(*) FROM users", [], |r| r.get(0)))?)
    }

    pub fn add_user(&self, name: &str, password: &str, role: Role) -> Result<User, AuthError> {
        validate_name(name)?;
        validate_password(password)?;
        let hash = hash_password(password)?;
        let now = now_secs();
        self.db.with(|c| {
            let res = c.execute(
                "INSERT INTO users (name, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, hash, role.as_str(), now],
            );
            match res {
                Ok(_) => Ok(User {
                    id: c.last_insert_rowid(),
                    name: name.to_string(),
                    role,
                    created_at: now,
                }),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(AuthError::UserExists(name.to_string()))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    pub fn set_password(&self, name: &str, password: &str) -> Result<(), AuthError> {
        validate_password(password)?;
        let hash = hash_password(password)?;
        self.db.with(|c| {
            let tx = c.transaction()?;
            let id: Option<i64> = tx
                .query_row("SELECT id FROM users WHERE name = ?1", [name], |r| r.get(0))
                .optional()?;
            let Some(id) = id else {
                return Err(AuthError::NoSuchUser(name.to_string()));
            };
            tx.execute(
                "UPDATE users SET password_hash = ?1 WHERE id = ?2",
                params![hash, id],
            )?;
            // A new password ends the sessions started with the old one.
            tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Deletes a user with its sessions, tokens and share links.
    pub fn delete_user(&self, name: &str) -> Result<(), AuthError> {
        self.db.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let row: Option<(i64, String)> = tx
                .query_row("SELECT id, role FROM users WHERE name = ?1", [name], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let Some((id, role)) = row else {
                return Err(AuthError::NoSuchUser(name.to_string()));
            };
            if role == "admin" {
                let admins: i64 =
                    tx.query_row("SELECT count(*) FROM users WHERE role = 'admin'", [], |r| {
                        r.get(0)
                    })?;
                if admins <= 1 {
                    return Err(AuthError::LastAdmin);
                }
            }
            tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
            tx.commit()?;
            Ok(())
        })
    }

    pub fn list_users(&self) -> Result<Vec<User>, AuthError> {
        self.db.with(|c| {
            let mut st = c.prepare(
                "SELECT id, name, role, created_at FROM users ORDER BY name COLLATE NOCASE",
            )?;
            let rows = st.query_map([], user_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Checks a name and password. Slow on purpose (argon2id); run on the blocking pool.
    pub fn verify(&self, name: &str, password: &str) -> Result<User, AuthError> {
        let row: Option<(User, String)> = self.db.with(|c| {
            c.query_row(
                "SELECT id, name, role, created_at, password_hash FROM users WHERE name = ?1",
                [name],
                |r| Ok((user_from_row(r)?, r.get(4)?)),
            )
            .optional()
        })?;
        match row {
            Some((user, hash)) if verify_password(password, &hash) => Ok(user),
            Some(_) => Err(AuthError::BadCredentials),
            None => {
                let _ = verify_password(password, dummy_hash());
                Err(AuthError::BadCredentials)
            }
        }
    }

    /// A user and its stored password hash, by id (for re-validating cached credentials).
    pub fn user_and_hash(&self, id: i64) -> Result<Option<(User, String)>, AuthError> {
        Ok(self.db.with(|c| {
            c.query_row(
                "SELECT id, name, role, created_at, password_hash FROM users WHERE id = ?1",
                [id],
                |r| Ok((user_from_row(r)?, r.get(4)?)),
            )
            .optional()
        })?)
    }

    pub fn create_session(&self, user: &User, ttl_secs: i64) -> Result<NewSession, AuthError> {
        let token = secret::random_token();
        let csrf = secret::random_token();
        let now = now_secs();
        let expires_at = now + ttl_secs;
        self.db.with(|c| {
            // Expired sessions are swept whenever a new one starts.
            c.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
            c.execute(
                "INSERT INTO sessions (id_hash, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![secret::hash(&token), user.id, csrf, now, expires_at],
            )?;
            Ok::<_, AuthError>(())
        })?;
        Ok(NewSession {
            token,
            csrf,
            expires_at,
        })
    }

    /// The user and CSRF token of a live session.
    pub fn session(&self, token: &str) -> Result<Option<(User, String)>, AuthError> {
        let now = now_secs();
        Ok(self.db.with(|c| {
            c.query_row(
                "SELECT u.id, u.name, u.role, u.created_at, s.csrf FROM sessions s
                 JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?1 AND s.expires_at > ?2",
                params![secret::hash(token), now],
                |r| Ok((user_from_row(r)?, r.get(4)?)),
            )
            .optional()
        })?)
    }

    pub fn end_session(&self, token: &str) -> Result<(), AuthError> {
        self.db.with(|c| {
            c.execute(
                "DELETE FROM sessions WHERE id_hash = ?1",
                [secret::hash(token)],
            )
        })?;
        Ok(())
    }

    /// A new API token; the secret is returned once and only its hash is kept.
    pub fn create_token(
        &self,
        user: &User,
        label: &str,
        expires_in: Option<i64>,
    ) -> Result<(ApiToken, String), AuthError> {
        let secret = format!("sht_{}", secret::random_token());
        let now = now_secs();
        let expires_at = expires_in.map(|s| now + s);
        let id = self.db.with(|c| {
            c.execute(
                "INSERT INTO api_tokens (token_hash, user_id, label, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![secret::hash(&secret), user.id, label, now, expires_at],
            )?;
            Ok::<_, AuthError>(c.last_insert_rowid())
        })?;
        Ok((
            ApiToken {
                id,
                label: label.to_string(),
                user: user.name.clone(),
                created_at: now,
                expires_at,
            },
            secret,
        ))
    }

    pub fn token_user(&self, token: &str) -> Result<Option<User>, AuthError> {
        let now = now_secs();
        Ok(self.db.with(|c| {
            c.query_row(
                "SELECT u.id, u.name, u.role, u.created_at FROM api_tokens t
                 JOIN users u ON u.id = t.user_id
                 WHERE t.token_hash = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)",
                params![secret::hash(token), now],
                user_from_row,
            )
            .optional()
        })?)
    }

    /// Tokens of `owner`, or everyone's when `owner` is None.
    pub fn list_tokens(&self, owner: Option<i64>) -> Result<Vec<ApiToken>, AuthError> {
        self.db.with(|c| {
            let mut st = c.prepare(
                "SELECT t.id, t.label, u.name, t.created_at, t.expires_at FROM api_tokens t
                 JOIN users u ON u.id = t.user_id
                 WHERE ?1 IS NULL OR t.user_id = ?1 ORDER BY t.id",
            )?;
            let rows = st.query_map([owner], |r| {
                Ok(ApiToken {
                    id: r.get(0)?,
                    label: r.get(1)?,
                    user: r.get(2)?,
                    created_at: r.get(3)?,
                    expires_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Deletes a token `by` may manage (its own; any for an admin). Others' look missing.
    pub fn delete_token(&self, id: i64, by: &User) -> Result<(), AuthError> {
        let n = self.db.with(|c| {
            c.execute(
                "DELETE FROM api_tokens WHERE id = ?1 AND (?2 OR user_id = ?3)",
                params![id, by.is_admin(), by.id],
            )
        })?;
        if n == 0 {
            return Err(AuthError::NotFound);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        (dir, Accounts::new(db))
    }

    #[test]
    fn users_passwords_and_sessions() {
        let (_d, a) = accounts();
        let bob = a.add_user("bob", "correct horse", Role::Member).unwrap();
        assert!(matches!(
            a.add_user("BOB", "whatever12", Role::Member),
            Err(AuthError::UserExists(_))
        ));
        assert_eq!(a.verify("bob", "correct horse").unwrap().name, "bob");
        assert!(matches!(
            a.verify("bob", "wrong"),
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            a.verify("nobody", "x"),
            Err(AuthError::BadCredentials)
        ));
        let s = a.create_session(&bob, 60).unwrap();
        assert_eq!(a.session(&s.token).unwrap().unwrap().1, s.csrf);
        a.set_password("bob", "battery staple").unwrap();
        assert!(
            a.session(&s.token).unwrap().is_none(),
            "password change ends sessions"
        );
        assert!(a.verify("bob", "battery staple").is_ok());
    }

    #[test]
    fn validation() {
        let (_d, a) = accounts();
        for name in ["", "a b", "x/y", &"n".repeat(65)] {
            assert!(matches!(
                a.add_user(name, "longenough", Role::Member),
                Err(AuthError::Invalid { field: "name", .. })
            ));
        }
        assert!(matches!(
            a.add_user("ok", "short", Role::Member),
            Err(AuthError::Invalid {
                field: "password",
                ..
            })
        ));
    }

    #[test]
    fn tokens_expire_and_are_scoped() {
        let (_d, a) = accounts();
        let admin = a.add_user("root", "password1", Role::Admin).unwrap();
        let bob = a.add_user("bob", "password2", Role::Member).unwrap();
        let (t, secret) = a.create_token(&bob, "script", None).unwrap();
        assert_eq!(a.token_user(&secret).unwrap().unwrap().name, "bob");
        assert!(a.token_user("sht_nope").unwrap().is_none());
        let (_, expired) = a.create_token(&bob, "old", Some(-1)).unwrap();
        assert!(a.token_user(&expired).unwrap().is_none());
        assert_eq!(a.list_tokens(Some(admin.id)).unwrap().len(), 0);
        assert_eq!(a.list_tokens(None).unwrap().len(), 2);
        let (_, admin_secret) = a.create_token(&admin, "a", None).unwrap();
        let admin_tok = a.list_tokens(Some(admin.id)).unwrap()[0].id;
        assert!(matches!(
            a.delete_token(admin_tok, &bob),
            Err(AuthError::NotFound)
        ));
        assert!(a.token_user(&admin_secret).unwrap().is_some());
        a.delete_token(t.id, &admin).unwrap();
        assert!(a.token_user(&secret).unwrap().is_none());
    }

    #[test]
    fn last_admin_stays_and_delete_cascades() {
        let (_d, a) = accounts();
        a.add_user("root", "password1", Role::Admin).unwrap();
        let bob = a.add_user("bob", "password2", Role::Member).unwrap();
        let (_, secret) = a.create_token(&bob, "t", None).unwrap();
        assert!(matches!(a.delete_user("root"), Err(AuthError::LastAdmin)));
        a.delete_user("bob").unwrap();
        assert!(a.token_user(&secret).unwrap().is_none());
        assert!(matches!(
            a.delete_user("bob"),
            Err(AuthError::NoSuchUser(_))
        ));
    }
}
