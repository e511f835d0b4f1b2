//! Users: names, roles and argon2id password hashes (add, list, change password, delete,
//! verify). Verification is slow on purpose and costs the same for an unknown name.

use std::sync::OnceLock;

use rusqlite::{params, OptionalExtension};

use super::hashing::HashMemory;
use super::{now_secs, Accounts, AuthError, Role, User};
use crate::secret;

pub fn validate_name(name: &str) -> Result<(), AuthError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        // `.` and `..` would be rewritten out of every URL that names the user.
        && !name.bytes().all(|b| b == b'.');
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid {
            field: "name",
            reason: "1 to 64 characters of A-Z a-z 0-9 . _ -, not only dots".to_string(),
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

/// A hash to verify against when the user does not exist, so that case takes as long (made
/// once, with the same parameters as every new hash).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        HashMemory::new(1)
            .hash(&secret::random_token())
            .unwrap_or_default()
    })
}

/// What [`Accounts::change_user`] changes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub password: Option<String>,
    /// A session (its cookie token) a password change does not end.
    pub keep_session: Option<String>,
}

pub(super) fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        role: Role::from_db(&r.get::<_, String>(2)?),
        created_at: r.get(3)?,
    })
}

impl Accounts {
    pub fn user_count(&self) -> Result<i64, AuthError> {
        Ok(self
            .db
            .with(|c| c.query_row("SELECT count(*) FROM users", [], |r| r.get(0)))?)
    }

    pub fn add_user(&self, name: &str, password: &str, role: Role) -> Result<User, AuthError> {
        validate_name(name)?;
        validate_password(password)?;
        let hash = self.argon.hash(password)?;
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
        let hash = self.argon.hash(password)?;
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

    /// Changes a user's role and/or password in one transaction (see [`UserChange`]).
    /// Demoting the last admin is `LastAdmin` and changes nothing. A new password ends the
    /// user's login sessions except `keep_session` (the caller's own, when changing their own
    /// password); API tokens are kept.
    pub fn change_user(&self, name: &str, change: UserChange) -> Result<User, AuthError> {
        let hash = match &change.password {
            Some(pw) => {
                validate_password(pw)?;
                Some(self.argon.hash(pw)?)
            }
            None => None,
        };
        self.db.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let user: Option<User> = tx
                .query_row(
                    "SELECT id, name, role, created_at FROM users WHERE name = ?1",
                    [name],
                    user_from_row,
                )
                .optional()?;
            let Some(mut user) = user else {
                return Err(AuthError::NoSuchUser(name.to_string()));
            };
            if let Some(role) = change.role {
                if user.role == Role::Admin && role != Role::Admin {
                    ensure_another_admin(&tx)?;
                }
                tx.execute(
                    "UPDATE users SET role = ?1 WHERE id = ?2",
                    params![role.as_str(), user.id],
                )?;
                user.role = role;
            }
            if let Some(hash) = hash {
                tx.execute(
                    "UPDATE users SET password_hash = ?1 WHERE id = ?2",
                    params![hash, user.id],
                )?;
                let keep = change.keep_session.as_deref().map(secret::hash);
                tx.execute(
                    "DELETE FROM sessions WHERE user_id = ?1 AND (?2 IS NULL OR id_hash != ?2)",
                    params![user.id, keep],
                )?;
            }
            tx.commit()?;
            Ok(user)
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
                ensure_another_admin(&tx)?;
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
            Some((user, hash)) if self.argon.verify(password, &hash) => Ok(user),
            Some(_) => Err(AuthError::BadCredentials),
            None => {
                let _ = self.argon.verify(password, dummy_hash());
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
}

/// Refuses to take away the last admin (the box would have no one to run it).
fn ensure_another_admin(tx: &rusqlite::Transaction<'_>) -> Result<(), AuthError> {
    let admins: i64 = tx.query_row("SELECT count(*) FROM users WHERE role = 'admin'", [], |r| {
        r.get(0)
    })?;
    if admins <= 1 {
        return Err(AuthError::LastAdmin);
    }
    Ok(())
}
