//! Share links: a signed, expiring, revocable grant to read exactly one stored path. The token
//! is `base64url(id ‖ HMAC-SHA256(key, "share:" ‖ id)[..16])`, so it cannot be forged or
//! pointed at another file: the path comes from the database row, never from the URL.

use rusqlite::{params, OptionalExtension};

use super::{now_secs, Accounts, AuthError, User};
use crate::secret;

/// A share link as stored and listed.
#[derive(Debug, Clone)]
pub struct Share {
    pub id: i64,
    pub path: String,
    pub url: String,
    pub user: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// Forged, malformed, or unknown: indistinguishable on purpose.
    #[error("no such share link")]
    NotFound,
    #[error("this share link has expired")]
    Expired,
    #[error("this share link was revoked")]
    Revoked,
}

impl Accounts {
    /// The signing key, made on first use and kept in the database.
    fn share_key(&self) -> Result<Vec<u8>, AuthError> {
        self.db().with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO secrets (name, value) VALUES ('share_key', ?1)",
                [secret::random_bytes().to_vec()],
            )?;
            Ok(c.query_row(
                "SELECT value FROM secrets WHERE name = 'share_key'",
                [],
                |r| r.get(0),
            )?)
        })
    }

    fn share_token(&self, key: &[u8], id: i64) -> String {
        let mut raw = id.to_be_bytes().to_vec();
        raw.extend_from_slice(&sign(key, id));
        secret::b64(&raw)
    }

    pub fn create_share(&self, by: &User, path: &str, expires_in: i64) -> Result<Share, AuthError> {
        let key = self.share_key()?;
        let now = now_secs();
        let expires_at = now + expires_in;
        let id = self.db().with(|c| {
            c.execute(
                "INSERT INTO shares (user_id, path, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![by.id, path, now, expires_at],
            )?;
            Ok::<_, AuthError>(c.last_insert_rowid())
        })?;
        Ok(Share {
            id,
            path: path.to_string(),
            url: format!("/s/{}", self.share_token(&key, id)),
            user: by.name.clone(),
            created_at: now,
            expires_at,
            revoked: false,
        })
    }

    /// Shares of `owner`, or everyone's when None.
    pub fn list_shares(&self, owner: Option<i64>) -> Result<Vec<Share>, AuthError> {
        let key = self.share_key()?;
        let rows: Vec<(i64, String, String, i64, i64, bool)> = self.db().with(|c| {
            let mut st = c.prepare(
                "SELECT s.id, s.path, u.name, s.created_at, s.expires_at, s.revoked_at IS NOT NULL
                 FROM shares s JOIN users u ON u.id = s.user_id
                 WHERE ?1 IS NULL OR s.user_id = ?1 ORDER BY s.id",
            )?;
            let rows = st.query_map([owner], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, path, user, created_at, expires_at, revoked)| Share {
                id,
                url: format!("/s/{}", self.share_token(&key, id)),
                path,
                user,
                created_at,
                expires_at,
                revoked,
            })
            .collect())
    }

    /// Revokes a share `by` may manage (its own; any for an admin). Others' look missing.
    pub fn revoke_share(&self, id: i64, by: &User) -> Result<(), AuthError> {
        let n = self.db().with(|c| {
            c.execute(
                "UPDATE shares SET revoked_at = ?1
                 WHERE id = ?2 AND revoked_at IS NULL AND (?3 OR user_id = ?4)",
                params![now_secs(), id, by.is_admin(), by.id],
            )
        })?;
        if n == 0 {
            return Err(AuthError::NotFound);
        }
        Ok(())
    }

    /// A file or folder moved through streamhub keeps its links: every share of `from` or of
    /// something under it follows it to `to`. Returns how many links moved.
    pub fn move_shares(&self, from: &str, to: &str) -> Result<usize, AuthError> {
        Ok(self.db().with(|c| {
            // '/' + 1 is '0': the bounds select exactly the paths under `from/`.
            c.execute(
                "UPDATE shares SET path = ?2 || substr(path, length(?1) + 1)
                 WHERE path = ?1 OR (path > ?1 || '/' AND path < ?1 || '0')",
                params![from, to],
            )
        })?)
    }

    /// The stored path a share token grants, after checking signature, expiry and revocation.
    pub fn resolve_share(&self, token: &str) -> Result<Result<String, ShareError>, AuthError> {
        let Some(raw) = secret::unb64(token) else {
            return Ok(Err(ShareError::NotFound));
        };
        if raw.len() != 24 {
            return Ok(Err(ShareError::NotFound));
        }
        let mut id_bytes = [0u8; 8];
        id_bytes.copy_from_slice(&raw[..8]);
        let id = i64::from_be_bytes(id_bytes);
        let key = self.share_key()?;
        if !secret::ct_eq(&raw[8..], &sign(&key, id)) {
            return Ok(Err(ShareError::NotFound));
        }
        let row: Option<(String, i64, bool)> = self.db().with(|c| {
            c.query_row(
                "SELECT path, expires_at, revoked_at IS NOT NULL FROM shares WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
        })?;
        Ok(match row {
            None => Err(ShareError::NotFound),
            Some((_, _, true)) => Err(ShareError::Revoked),
            Some((_, exp, _)) if exp <= now_secs() => Err(ShareError::Expired),
            Some((path, _, _)) => Ok(path),
        })
    }
}

fn sign(key: &[u8], id: i64) -> [u8; 16] {
    let mut msg = b"share:".to_vec();
    msg.extend_from_slice(&id.to_be_bytes());
    let full = secret::hmac(key, &msg);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::db::Db;

    #[test]
    fn share_lifecycle_and_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let a = Accounts::new(Db::open(dir.path()).unwrap());
        let bob = a.add_user("bob", "password1", Role::Member).unwrap();
        let eve = a.add_user("eve", "password2", Role::Member).unwrap();
        let s = a.create_share(&bob, "films/a.mkv", 60).unwrap();
        let token = s.url.trim_start_matches("/s/").to_string();
        assert_eq!(
            a.resolve_share(&token).unwrap(),
            Ok("films/a.mkv".to_string())
        );

        // flip one character of the signature part
        let mut chars: Vec<char> = token.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let forged: String = chars.into_iter().collect();
        assert_eq!(a.resolve_share(&forged).unwrap(), Err(ShareError::NotFound));
        assert_eq!(
            a.resolve_share("garbage").unwrap(),
            Err(ShareError::NotFound)
        );
        assert_eq!(a.resolve_share("").unwrap(), Err(ShareError::NotFound));

        assert!(matches!(
            a.revoke_share(s.id, &eve),
            Err(AuthError::NotFound)
        ));
        a.revoke_share(s.id, &bob).unwrap();
        assert_eq!(a.resolve_share(&token).unwrap(), Err(ShareError::Revoked));

        let old = a.create_share(&bob, "x", -1).unwrap();
        let t = old.url.trim_start_matches("/s/").to_string();
        assert_eq!(a.resolve_share(&t).unwrap(), Err(ShareError::Expired));
        assert_eq!(a.list_shares(Some(eve.id)).unwrap().len(), 0);
        assert_eq!(a.list_shares(None).unwrap().len(), 2);
    }
}
