//! API tokens (`sht_…`): made once and shown once, stored only as their SHA-256; optional
//! expiry; listed and deleted by their owner or an admin.

use rusqlite::{params, OptionalExtension};

use super::users::user_from_row;
use super::{now_secs, Accounts, AuthError, User};
use crate::secret;

/// An API token as listed (never the secret itself).
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: i64,
    pub label: String,
    pub user: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

impl Accounts {
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
