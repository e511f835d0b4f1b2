//! Per-user limits an admin sets (`streamhub user limits`, `PATCH /api/users/{name}`), kept
//! beside the account in `users` (migration 0013). A limit left unset follows the config's
//! `[quotas]` default; what is enforced, and how usage is counted, is `app::quota`'s.

use rusqlite::{params, OptionalExtension};

use super::users::user_from_row;
use super::{Accounts, AuthError, User};
use crate::config::{QuotasConfig, MAX_TUS_UPLOADS};

/// A user's own limits: `None` follows the config default, `Some(0)` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub media_bytes: Option<u64>,
    pub tus_uploads: Option<u64>,
    pub notes_bytes: Option<u64>,
}

/// The limits that apply: every one decided (0 = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub media_bytes: u64,
    pub tus_uploads: u64,
    pub notes_bytes: u64,
}

impl Limits {
    /// The limits that apply with `defaults` for those not set.
    pub fn effective(&self, defaults: &QuotasConfig) -> Effective {
        Effective {
            media_bytes: self.media_bytes.unwrap_or(defaults.media_bytes),
            tus_uploads: self.tus_uploads.unwrap_or(defaults.tus_uploads),
            notes_bytes: self.notes_bytes.unwrap_or(defaults.notes_bytes),
        }
    }
}

/// What [`Accounts::set_limits`] changes: `None` leaves a limit as it is, `Some(None)`
/// clears it (back to the default), `Some(Some(n))` sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsChange {
    pub media_bytes: Option<Option<u64>>,
    pub tus_uploads: Option<Option<u64>>,
    pub notes_bytes: Option<Option<u64>>,
}

impl LimitsChange {
    pub fn is_empty(&self) -> bool {
        *self == LimitsChange::default()
    }

    /// Values the database and the sums over it can hold; errors name the field.
    pub fn validate(&self) -> Result<(), AuthError> {
        let too_big = |field: &'static str, max: u64| AuthError::Invalid {
            field,
            reason: format!("must be between 0 (unlimited) and {max}"),
        };
        for (field, v) in [
            ("media_bytes", self.media_bytes),
            ("notes_bytes", self.notes_bytes),
        ] {
            if v.flatten().is_some_and(|n| n > i64::MAX as u64) {
                return Err(too_big(field, i64::MAX as u64));
            }
        }
        if self
            .tus_uploads
            .flatten()
            .is_some_and(|n| n > MAX_TUS_UPLOADS)
        {
            return Err(too_big("tus_uploads", MAX_TUS_UPLOADS));
        }
        Ok(())
    }
}

/// A stored limit: the columns hold what `validate` let through, so a negative value can
/// only be a hand edit; it reads as "not set" rather than as a huge number.
fn limit(v: Option<i64>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok())
}

fn limits_from_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Limits> {
    Ok(Limits {
        media_bytes: limit(r.get(first)?),
        tus_uploads: limit(r.get(first + 1)?),
        notes_bytes: limit(r.get(first + 2)?),
    })
}

const SELECT: &str = "SELECT id, name, role, created_at, \
     media_bytes_limit, tus_uploads_limit, notes_bytes_limit FROM users";

impl Accounts {
    /// A user's own limits by id (`None`: no such user any more).
    pub fn limits_by_id(&self, id: i64) -> Result<Option<Limits>, AuthError> {
        Ok(self.db.with(|c| {
            c.query_row(&format!("{SELECT} WHERE id = ?1"), [id], |r| {
                limits_from_row(r, 4)
            })
            .optional()
        })?)
    }

    /// A user and its own limits, by name.
    pub fn limits_of(&self, name: &str) -> Result<(User, Limits), AuthError> {
        let row = self.db.with(|c| {
            c.query_row(&format!("{SELECT} WHERE name = ?1"), [name], |r| {
                Ok((user_from_row(r)?, limits_from_row(r, 4)?))
            })
            .optional()
        })?;
        row.ok_or_else(|| AuthError::NoSuchUser(name.to_string()))
    }

    /// Every user with its own limits, by name.
    pub fn list_users_with_limits(&self) -> Result<Vec<(User, Limits)>, AuthError> {
        self.db.with(|c| {
            let mut st = c.prepare(&format!("{SELECT} ORDER BY name COLLATE NOCASE"))?;
            let rows = st.query_map([], |r| Ok((user_from_row(r)?, limits_from_row(r, 4)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Changes a user's own limits in one statement; returns the user and its limits now.
    pub fn set_limits(
        &self,
        name: &str,
        change: LimitsChange,
    ) -> Result<(User, Limits), AuthError> {
        change.validate()?;
        let (user, mut limits) = self.limits_of(name)?;
        for (slot, new) in [
            (&mut limits.media_bytes, change.media_bytes),
            (&mut limits.tus_uploads, change.tus_uploads),
            (&mut limits.notes_bytes, change.notes_bytes),
        ] {
            if let Some(v) = new {
                *slot = v;
            }
        }
        // Validated above: every value fits an i64.
        let db = |v: Option<u64>| v.map(|n| n.min(i64::MAX as u64) as i64);
        let changed = self.db.with(|c| {
            c.execute(
                "UPDATE users SET media_bytes_limit = ?1, tus_uploads_limit = ?2, \
                 notes_bytes_limit = ?3 WHERE id = ?4",
                params![
                    db(limits.media_bytes),
                    db(limits.tus_uploads),
                    db(limits.notes_bytes),
                    user.id
                ],
            )
        })?;
        if changed == 0 {
            // Deleted between the read and the write.
            return Err(AuthError::NoSuchUser(name.to_string()));
        }
        Ok((user, limits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::config::Config;

    fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::db::Db::open(dir.path()).expect("db");
        (dir, Accounts::new(db))
    }

    #[test]
    fn effective_takes_defaults_for_unset_limits() {
        let d = Config::default().quotas;
        let own = Limits {
            media_bytes: Some(5),
            tus_uploads: None,
            notes_bytes: Some(0),
        };
        assert_eq!(
            own.effective(&d),
            Effective {
                media_bytes: 5,
                tus_uploads: d.tus_uploads,
                notes_bytes: 0
            }
        );
    }

    #[test]
    fn set_clear_and_validate_limits() {
        let (_dir, a) = accounts();
        a.add_user("bob", "password1", Role::Member).expect("add");
        let change = LimitsChange {
            media_bytes: Some(Some(1000)),
            tus_uploads: Some(Some(2)),
            ..LimitsChange::default()
        };
        let (_, l) = a.set_limits("BOB", change).expect("set");
        assert_eq!(l.media_bytes, Some(1000));
        assert_eq!(l.tus_uploads, Some(2));
        assert_eq!(l.notes_bytes, None);
        let clear = LimitsChange {
            media_bytes: Some(None),
            ..LimitsChange::default()
        };
        let (user, l) = a.set_limits("bob", clear).expect("clear");
        assert_eq!(l.media_bytes, None);
        assert_eq!(l.tus_uploads, Some(2), "untouched");
        assert_eq!(a.limits_by_id(user.id).expect("read"), Some(l));
        let bad = LimitsChange {
            tus_uploads: Some(Some(MAX_TUS_UPLOADS + 1)),
            ..LimitsChange::default()
        };
        assert!(matches!(
            a.set_limits("bob", bad),
            Err(AuthError::Invalid {
                field: "tus_uploads",
                ..
            })
        ));
        assert!(matches!(
            a.set_limits("nobody", LimitsChange::default()),
            Err(AuthError::NoSuchUser(_))
        ));
    }
}
