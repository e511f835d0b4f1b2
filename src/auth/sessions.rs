//! Login sessions: the cookie's secret (stored only as its SHA-256) and the CSRF token bound
//! to it; expired sessions are swept when a new one starts.

use rusqlite::{params, OptionalExtension};

use super::users::user_from_row;
use super::{now_secs, Accounts, AuthError, User};
use crate::secret;

/// A login session: what the cookie holds and the CSRF token bound to it.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
    pub expires_at: i64,
}

impl Accounts {
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
}
