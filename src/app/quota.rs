//! Quotas on what a user writes on this box (issue 12): media bytes, unfinished resumable
//! uploads, and the free-disk reserve every upload must leave. The limits are the config's
//! `[quotas]` defaults over each user's own (`auth::Limits`); usage is counted from the
//! database at the start of each upload, so nothing here has to be kept in step with writes.
//!
//! What counts against `media_bytes`: the user's files in the library index, their entries
//! in the trash (still on the disk) and the announced length of their unfinished tus uploads
//! (announcing is what reserves: 3,000 uploads announcing 60 GB each must not all be taken).
//! Only writes made here are judged; revisions that arrive from peers by sync never come
//! through this module.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::auth::{now_secs, Accounts, Effective, User};
use crate::blocking;
use crate::config::QuotasConfig;
use crate::db::DbError;

/// An upload refused by a quota (403 `quota_exceeded`); the message names the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaExceeded {
    #[error(
        "you have {limit} unfinished resumable uploads, the most allowed (quota tus_uploads): \
         finish or delete one first"
    )]
    TusUploads { limit: u64 },
    #[error(
        "this upload would take your media over its quota: {used} of {limit} bytes used \
         (files, trash and unfinished uploads; quota media_bytes){}",
        adding.map(|n| format!(", {n} more asked")).unwrap_or_default()
    )]
    MediaBytes {
        used: u64,
        adding: Option<u64>,
        limit: u64,
    },
    #[error(
        "this edit would take your notes over their quota: {used} of {limit} bytes used \
         (every revision you wrote here; quota notes_bytes), {adding} more asked"
    )]
    NotesBytes { used: u64, adding: u64, limit: u64 },
}

/// What a user has on this box now, as the quotas count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Files, trash entries and unfinished uploads' announced lengths.
    pub media_bytes: u64,
    /// Unfinished, unexpired tus uploads.
    pub tus_uploads: u64,
}

/// Judges one new upload of `adding` bytes (None: not announced) against `limits`. Returns
/// how many bytes the media quota leaves (None: unlimited), which caps a body whose length
/// was not announced.
pub fn judge(
    limits: &Effective,
    usage: &Usage,
    adding: Option<u64>,
    new_tus: bool,
) -> Result<Option<u64>, QuotaExceeded> {
    if new_tus && limits.tus_uploads != 0 && usage.tus_uploads >= limits.tus_uploads {
        return Err(QuotaExceeded::TusUploads {
            limit: limits.tus_uploads,
        });
    }
    if limits.media_bytes == 0 {
        return Ok(None);
    }
    let left = limits.media_bytes.saturating_sub(usage.media_bytes);
    // Nothing left refuses even a body of unknown length: it could only fail later.
    let refused = match adding {
        Some(n) => n > left,
        None => left == 0,
    };
    if refused {
        return Err(QuotaExceeded::MediaBytes {
            used: usage.media_bytes,
            adding,
            limit: limits.media_bytes,
        });
    }
    Ok(Some(left))
}

/// What an upload may go ahead with.
#[derive(Debug)]
pub struct Admission {
    /// Bytes the user's media quota still allows (None: unlimited).
    pub room: Option<u64>,
    /// The user's media usage and limit when judged (for the message of a body that
    /// outgrows `room`).
    pub used: u64,
    pub limit: u64,
    /// The announced bytes of a one-shot upload (PUT, multipart file), counted against the
    /// user's quota while it runs: the index knows it only once it is committed.
    pub hold: Option<Hold>,
    /// Free space the disk must keep besides this upload: the configured reserve plus what
    /// unfinished uploads (everyone's) have announced and not written yet.
    pub reserve: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error(transparent)]
    Exceeded(#[from] QuotaExceeded),
    /// The usage could not be counted (database, pool).
    #[error("quota usage: {0}")]
    Count(String),
    /// The usage could not be counted because of the data dir's state.
    #[error("quota usage: the data dir: {0}")]
    DataDir(crate::db::DataDirFault),
}

impl From<DbError> for QuotaError {
    fn from(e: DbError) -> Self {
        match e.fault() {
            Some(fault) => QuotaError::DataDir(fault),
            None => QuotaError::Count(e.to_string()),
        }
    }
}

impl From<blocking::BlockingError> for QuotaError {
    fn from(e: blocking::BlockingError) -> Self {
        QuotaError::Count(e.to_string())
    }
}

/// Cheap handle: the accounts (limits, usage) and the config's defaults.
#[derive(Clone)]
pub struct Quotas(Arc<QuotasParts>);

pub struct QuotasParts {
    accounts: Accounts,
    defaults: QuotasConfig,
    /// Held from the count to the new upload's row, so parallel creations cannot all pass
    /// the same count (tus creation is short: a file made, a row written).
    tus_gate: tokio::sync::Mutex<()>,
    /// Per user: announced bytes of one-shot uploads running now (see [`Hold`]).
    in_flight: Mutex<HashMap<i64, u64>>,
}

/// Bytes of a running one-shot upload, counted until dropped (after the index has it, or
/// when the upload fails), so parallel uploads of one user cannot each pass the same count.
#[derive(Debug)]
pub struct Hold {
    quotas: Quotas,
    user: i64,
    bytes: u64,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut map = self.quotas.in_flight();
        if let Some(n) = map.get_mut(&self.user) {
            *n = n.saturating_sub(self.bytes);
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Quotas")
    }
}

impl Quotas {
    pub fn new(accounts: Accounts, defaults: QuotasConfig) -> Self {
        Quotas(Arc::new(QuotasParts {
            accounts,
            defaults,
            tus_gate: tokio::sync::Mutex::new(()),
            in_flight: Mutex::default(),
        }))
    }

    /// A poisoned lock still holds valid counts (plain integers).
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<i64, u64>> {
        self.0.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Taken by a tus creation for the time from [`Quotas::admit`] to its row being written.
    pub async fn tus_gate(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.0.tus_gate.lock().await
    }

    /// Judges a new upload by `who` of `adding` bytes (None: not announced).
    pub async fn admit(
        &self,
        who: &User,
        adding: Option<u64>,
        new_tus: bool,
    ) -> Result<Admission, QuotaError> {
        let (accounts, id, defaults) = (self.0.accounts.clone(), who.id, self.0.defaults.clone());
        let (limits, usage, pending): (Effective, Usage, u64) =
            blocking::run_unbounded("quota usage", move || -> Result<_, QuotaError> {
                let own = accounts
                    .limits_by_id(id)
                    .map_err(|e| match e {
                        crate::auth::AuthError::Db(d) => QuotaError::from(d),
                        e => QuotaError::Count(e.to_string()),
                    })?
                    .unwrap_or_default();
                let (usage, pending) = accounts
                    .db()
                    .with(|c| count(c, id, now_secs()))
                    .map_err(DbError::from)?;
                Ok((own.effective(&defaults), usage, pending))
            })
            .await?;
        // Judged and counted under one lock, so two parallel uploads see each other.
        let mut usage = usage;
        let (room, hold) = {
            let mut map = self.in_flight();
            let running = map.get(&who.id).copied().unwrap_or(0);
            usage.media_bytes = usage.media_bytes.saturating_add(running);
            let room = judge(&limits, &usage, adding, new_tus)?;
            // tus uploads are counted by their row. A body of unknown length may grow to
            // `room`, so it holds all of `room` while it runs: parallel ones of one user
            // each judged on the same count went past the quota together (the attack run:
            // ten chunked PUTs, 1.4 MB stored against 1 MB). The others are refused meanwhile.
            let holding = match adding {
                Some(n) if !new_tus => n,
                None => room.unwrap_or(0),
                Some(_) => 0,
            };
            let hold = (holding > 0 && limits.media_bytes != 0).then(|| {
                *map.entry(who.id).or_default() += holding;
                Hold {
                    quotas: self.clone(),
                    user: who.id,
                    bytes: holding,
                }
            });
            (room, hold)
        };
        Ok(Admission {
            hold,
            room,
            used: usage.media_bytes,
            limit: limits.media_bytes,
            reserve: self.0.defaults.min_free_bytes.saturating_add(pending),
        })
    }
}

/// Judges a new note revision of `adding` bytes by `user` against their `notes_bytes`
/// limit, counting what every revision they wrote here takes in storage (`stored_bytes`:
/// title, tags and the body as stored — a delta against its parent when that is smaller,
/// see `notes::revstore`; history is kept, so each edit adds its change). Runs on the
/// write's own transaction (`NotesStore::create_admitted`/`update_admitted`), once the new
/// revision's stored size is known, so the count and the write cannot interleave. Only creating and editing notes through
/// the API call this: revisions that arrive from peers by sync are never judged.
pub fn check_notes(
    conn: &Connection,
    user: i64,
    defaults: &QuotasConfig,
    adding: u64,
) -> rusqlite::Result<Result<(), QuotaExceeded>> {
    use rusqlite::OptionalExtension;
    let own: Option<Option<i64>> = conn
        .query_row(
            "SELECT notes_bytes_limit FROM users WHERE id = ?1",
            [user],
            |r| r.get(0),
        )
        .optional()?;
    let limit = own
        .flatten()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(defaults.notes_bytes);
    if limit == 0 {
        return Ok(Ok(()));
    }
    let used: i64 = conn.query_row(
        "SELECT COALESCE(SUM(stored_bytes), 0) FROM note_revisions WHERE author_id = ?1",
        [user],
        |r| r.get(0),
    )?;
    let used = u64::try_from(used).unwrap_or(0);
    if used.saturating_add(adding) > limit {
        return Ok(Err(QuotaExceeded::NotesBytes {
            used,
            adding,
            limit,
        }));
    }
    Ok(Ok(()))
}

/// `owner`'s usage, and the bytes all unfinished uploads still announce. Blocking.
fn count(c: &Connection, owner: i64, now: i64) -> rusqlite::Result<(Usage, u64)> {
    let files: i64 = c.query_row(
        "SELECT COALESCE(SUM(size), 0) FROM media WHERE owner = ?1 AND kind = 'file'",
        [owner],
        |r| r.get(0),
    )?;
    let trash: i64 = c.query_row(
        "SELECT COALESCE(SUM(size), 0) FROM trash WHERE owner = ?1",
        [owner],
        |r| r.get(0),
    )?;
    let (uploads, announced): (i64, i64) = c.query_row(
        "SELECT count(*), COALESCE(SUM(length), 0) FROM tus_uploads \
         WHERE owner = ?1 AND completed_at IS NULL AND expires_at > ?2",
        rusqlite::params![owner, now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let pending: i64 = c.query_row(
        "SELECT COALESCE(SUM(MAX(length - upload_offset, 0)), 0) FROM tus_uploads \
         WHERE completed_at IS NULL AND expires_at > ?1",
        [now],
        |r| r.get(0),
    )?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok((
        Usage {
            media_bytes: n(files)
                .saturating_add(n(trash))
                .saturating_add(n(announced)),
            tus_uploads: n(uploads),
        },
        n(pending),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(media: u64, tus: u64) -> Effective {
        Effective {
            media_bytes: media,
            tus_uploads: tus,
            notes_bytes: 0,
        }
    }

    #[tokio::test]
    async fn parallel_uploads_of_one_user_count_each_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let accounts = Accounts::new(crate::db::Db::open(dir.path()).expect("db"));
        let bob = accounts
            .add_user("bob", "password1", crate::auth::Role::Member)
            .expect("add");
        let amy = accounts
            .add_user("amy", "password1", crate::auth::Role::Member)
            .expect("add");
        let change = crate::auth::LimitsChange {
            media_bytes: Some(Some(100)),
            ..Default::default()
        };
        accounts.set_limits("bob", change).expect("limit");
        accounts.set_limits("amy", change).expect("limit");
        let q = Quotas::new(accounts, crate::config::Config::default().quotas);
        let first = q.admit(&bob, Some(60), false).await.expect("fits");
        assert!(matches!(
            q.admit(&bob, Some(60), false).await,
            Err(QuotaError::Exceeded(QuotaExceeded::MediaBytes {
                used: 60,
                ..
            }))
        ));
        // Another user's running upload does not count for bob, nor bob's for her.
        let _hers = q.admit(&amy, Some(60), false).await.expect("hers");
        drop(first);
        q.admit(&bob, Some(60), false).await.expect("fits again");
        // A body of unknown length may take all that is left, so it holds all of it while
        // it runs (the attack run's ten parallel chunked PUTs stored 1.4x the quota).
        let open = q.admit(&amy, None, false).await.expect("unknown length");
        assert_eq!(open.room, Some(40));
        assert!(matches!(
            q.admit(&amy, None, false).await,
            Err(QuotaError::Exceeded(_))
        ));
        assert!(q.admit(&amy, Some(1), false).await.is_err());
        drop(open);
        assert_eq!(
            q.admit(&amy, None, false).await.expect("again").room,
            Some(40)
        );
    }

    #[test]
    fn unlimited_takes_anything() {
        let u = Usage {
            media_bytes: u64::MAX,
            tus_uploads: 1_000,
        };
        assert_eq!(judge(&limits(0, 0), &u, Some(u64::MAX), true), Ok(None));
    }

    #[test]
    fn tus_count_is_checked_only_for_new_tus_uploads() {
        let u = Usage {
            media_bytes: 0,
            tus_uploads: 3,
        };
        assert_eq!(
            judge(&limits(0, 3), &u, Some(1), true),
            Err(QuotaExceeded::TusUploads { limit: 3 })
        );
        assert_eq!(judge(&limits(0, 3), &u, Some(1), false), Ok(None));
        assert_eq!(judge(&limits(0, 4), &u, Some(1), true), Ok(None));
    }

    #[test]
    fn media_bytes_counts_what_is_announced() {
        let u = Usage {
            media_bytes: 60,
            tus_uploads: 0,
        };
        assert_eq!(judge(&limits(100, 0), &u, Some(40), false), Ok(Some(40)));
        let err = judge(&limits(100, 0), &u, Some(41), true).unwrap_err();
        assert_eq!(
            err,
            QuotaExceeded::MediaBytes {
                used: 60,
                adding: Some(41),
                limit: 100
            }
        );
        assert!(err.to_string().contains("60 of 100 bytes"), "{err}");
        // Unknown length: allowed while anything is left, capped by what is left.
        assert_eq!(judge(&limits(100, 0), &u, None, false), Ok(Some(40)));
        let full = Usage {
            media_bytes: 100,
            tus_uploads: 0,
        };
        assert!(judge(&limits(100, 0), &full, None, false).is_err());
        assert!(judge(&limits(100, 0), &full, Some(0), false).is_ok());
    }
}
