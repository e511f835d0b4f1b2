//! Resume positions: where each user stopped in a video or audio file (migration
//! `0011_positions.sql`), for the player's "resume" and the home page's "continue watching".
//! Plain blocking code over [`Db`] (the HTTP layer runs it on the blocking pool). Entries
//! follow moves made through streamhub ([`Positions::move_under`], called where share links
//! follow them) and are dropped with a permanent delete.
//!
//! Invariant: a user sees and changes only their own rows; at most [`MAX_PER_USER`] rows per
//! user (the oldest go); a finished position ([`is_finished`]) removes the row.

use rusqlite::{params, OptionalExtension};

use crate::db::{Db, DbError};

/// Rows kept per user; saving one more drops the oldest.
pub const MAX_PER_USER: i64 = 1000;

/// How many "continue watching" rows a listing gives.
pub const RECENT: i64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum PositionError {
    #[error("{field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    /// The blocking task that ran the work failed.
    #[error(transparent)]
    Blocking(#[from] crate::blocking::BlockingError),
}

impl From<rusqlite::Error> for PositionError {
    fn from(e: rusqlite::Error) -> Self {
        PositionError::Db(DbError::Sql(e))
    }
}

/// One saved position.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub path: String,
    /// Seconds from the start.
    pub position: f64,
    /// Seconds, when the player knew it.
    pub duration: Option<f64>,
    /// Milliseconds since the epoch.
    pub updated_at: i64,
}

/// Whether `position` is close enough to the end to count as watched: within the last 5 %
/// of the duration, or within the last 30 s of anything long enough that 30 s is under 10 %
/// of it (so a one-minute clip is not finished half-way).
pub fn is_finished(position: f64, duration: Option<f64>) -> bool {
    match duration {
        Some(d) if d > 0.0 => {
            let margin = (0.05 * d).max(30f64.min(0.1 * d));
            position >= d - margin
        }
        _ => false,
    }
}

/// Checks a position and duration as a client sent them.
pub fn validate(position: f64, duration: Option<f64>) -> Result<(), PositionError> {
    if !position.is_finite() || position < 0.0 {
        return Err(PositionError::Invalid {
            field: "position",
            reason: "seconds, a finite number >= 0",
        });
    }
    if let Some(d) = duration {
        if !d.is_finite() || d <= 0.0 {
            return Err(PositionError::Invalid {
                field: "duration",
                reason: "seconds, a finite number > 0, or null",
            });
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Position> {
    Ok(Position {
        path: r.get(0)?,
        position: r.get(1)?,
        duration: r.get(2)?,
        updated_at: r.get(3)?,
    })
}

/// Names streamhub keeps for itself (the trash): rows pointed there by a delete wait for a
/// restore and are never listed.
const HIDDEN: &str = ".streamhub";

/// The positions store: a cheap handle over the database.
#[derive(Clone)]
pub struct Positions {
    db: Db,
}

impl Positions {
    pub fn new(db: Db) -> Self {
        Positions { db }
    }

    /// Saves where `user` is in `path`; a finished position removes the row instead.
    /// Returns whether a row is kept.
    pub fn save(
        &self,
        user: i64,
        path: &str,
        position: f64,
        duration: Option<f64>,
    ) -> Result<bool, PositionError> {
        validate(position, duration)?;
        self.db.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if is_finished(position, duration) {
                tx.execute(
                    "DELETE FROM positions WHERE user_id = ?1 AND path = ?2",
                    params![user, path],
                )?;
                tx.commit()?;
                return Ok(false);
            }
            // Strictly increasing per user, so "newest first" is exact within a millisecond.
            let last: Option<i64> = tx.query_row(
                "SELECT max(updated_at) FROM positions WHERE user_id = ?1",
                [user],
                |r| r.get(0),
            )?;
            let at = now_ms().max(last.map_or(i64::MIN, |l| l.saturating_add(1)));
            tx.execute(
                "INSERT INTO positions (user_id, path, position, duration, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (user_id, path) DO UPDATE SET position = excluded.position,
                     duration = excluded.duration, updated_at = excluded.updated_at",
                params![user, path, position, duration, at],
            )?;
            tx.execute(
                "DELETE FROM positions WHERE user_id = ?1 AND path NOT IN (
                     SELECT path FROM positions WHERE user_id = ?1
                     ORDER BY updated_at DESC LIMIT ?2)",
                params![user, MAX_PER_USER],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// `user`'s position in `path`.
    pub fn get(&self, user: i64, path: &str) -> Result<Option<Position>, PositionError> {
        Ok(self.db.with(|c| {
            c.query_row(
                "SELECT path, position, duration, updated_at FROM positions
                 WHERE user_id = ?1 AND path = ?2",
                params![user, path],
                row,
            )
            .optional()
        })?)
    }

    /// `user`'s newest positions, at most [`RECENT`].
    pub fn recent(&self, user: i64) -> Result<Vec<Position>, PositionError> {
        self.db.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT path, position, duration, updated_at FROM positions
                 WHERE user_id = ?1 AND substr(path, 1, 10) <> ?2
                 ORDER BY updated_at DESC LIMIT ?3",
            )?;
            let rows = st.query_map(params![user, HIDDEN, RECENT], row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Everyone's positions in `from` or under it now name the same place under `to` (a
    /// move or rename; a delete points them into the trash and a restore back). A row that
    /// would collide with one already at the new place replaces it. Returns the rows moved.
    pub fn move_under(&self, from: &str, to: &str) -> Result<usize, PositionError> {
        Ok(self.db.with(|c| {
            // '/' + 1 is '0': the bounds select exactly the paths under `from/`.
            c.execute(
                "UPDATE OR REPLACE positions SET path = ?2 || substr(path, length(?1) + 1)
                 WHERE path = ?1 OR (path > ?1 || '/' AND path < ?1 || '0')",
                params![from, to],
            )
        })?)
    }

    /// Drops everyone's positions in `path` or under it (a permanent delete).
    pub fn forget_under(&self, path: &str) -> Result<usize, PositionError> {
        Ok(self.db.with(|c| {
            c.execute(
                "DELETE FROM positions WHERE path = ?1 OR (path > ?1 || '/' AND path < ?1 || '0')",
                [path],
            )
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Accounts, Role};

    fn store() -> (tempfile::TempDir, Positions, i64, i64) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let a = Accounts::new(db.clone());
        let alice = a.add_user("alice", "password1", Role::Member).unwrap();
        let bob = a.add_user("bob", "password2", Role::Member).unwrap();
        (dir, Positions::new(db), alice.id, bob.id)
    }

    #[test]
    fn finished_near_the_end() {
        assert!(!is_finished(10.0, None));
        assert!(!is_finished(1e9, None), "no duration: never finished");
        // A two-hour film: the last 5 % (6 min) count as watched.
        assert!(is_finished(7200.0 - 359.0, Some(7200.0)));
        assert!(!is_finished(7200.0 - 400.0, Some(7200.0)));
        // Ten minutes: 30 s.
        assert!(is_finished(571.0, Some(600.0)));
        assert!(!is_finished(560.0, Some(600.0)));
        // A one-minute clip: 6 s, not half of it.
        assert!(!is_finished(30.0, Some(60.0)));
        assert!(is_finished(55.0, Some(60.0)));
        assert!(is_finished(70.0, Some(60.0)), "past the end");
    }

    #[test]
    fn bad_numbers_are_refused() {
        for (p, d) in [
            (-1.0, None),
            (f64::NAN, None),
            (f64::INFINITY, None),
            (1.0, Some(0.0)),
            (1.0, Some(f64::NAN)),
            (1.0, Some(-5.0)),
        ] {
            assert!(validate(p, d).is_err(), "{p} {d:?}");
        }
        assert!(validate(0.0, None).is_ok());
    }

    #[test]
    fn save_get_list_per_user() {
        let (_d, s, alice, bob) = store();
        assert!(s.save(alice, "films/a.mkv", 12.5, Some(3600.0)).unwrap());
        assert!(s.save(alice, "films/b.mkv", 1.0, None).unwrap());
        assert!(s.save(bob, "films/a.mkv", 99.0, Some(3600.0)).unwrap());
        let a = s.get(alice, "films/a.mkv").unwrap().unwrap();
        assert_eq!((a.position, a.duration), (12.5, Some(3600.0)));
        assert_eq!(s.get(bob, "films/a.mkv").unwrap().unwrap().position, 99.0);
        assert!(s.get(bob, "films/b.mkv").unwrap().is_none());
        let recent: Vec<String> = s
            .recent(alice)
            .unwrap()
            .into_iter()
            .map(|p| p.path)
            .collect();
        assert_eq!(recent, ["films/b.mkv", "films/a.mkv"]);
        // Saving again moves it to the front; finishing removes it.
        s.save(alice, "films/a.mkv", 20.0, Some(3600.0)).unwrap();
        assert_eq!(s.recent(alice).unwrap()[0].path, "films/a.mkv");
        assert!(!s.save(alice, "films/a.mkv", 3590.0, Some(3600.0)).unwrap());
        assert!(s.get(alice, "films/a.mkv").unwrap().is_none());
        assert!(s.get(bob, "films/a.mkv").unwrap().is_some());
    }

    #[test]
    fn rows_are_capped_and_listing_is_bounded() {
        let (_d, s, alice, _) = store();
        for i in 0..(MAX_PER_USER + 5) {
            s.save(alice, &format!("f/{i}.mp4"), 1.0, None).unwrap();
        }
        let n: i64 =
            s.db.with(|c| c.query_row("SELECT count(*) FROM positions", [], |r| r.get(0)))
                .unwrap();
        assert_eq!(n, MAX_PER_USER);
        assert!(
            s.get(alice, "f/0.mp4").unwrap().is_none(),
            "the oldest went"
        );
        assert!(s.get(alice, "f/5.mp4").unwrap().is_some());
        let recent = s.recent(alice).unwrap();
        assert_eq!(recent.len() as i64, RECENT);
        assert_eq!(recent[0].path, format!("f/{}.mp4", MAX_PER_USER + 4));
    }

    #[test]
    fn rows_follow_moves_and_go_with_deletes() {
        let (_d, s, alice, bob) = store();
        s.save(alice, "a/x.mp4", 5.0, None).unwrap();
        s.save(alice, "a/sub/y.mp4", 6.0, None).unwrap();
        s.save(alice, "ab/z.mp4", 7.0, None).unwrap();
        s.save(bob, "a/x.mp4", 8.0, None).unwrap();
        s.save(bob, "b/x.mp4", 9.0, None).unwrap();
        assert_eq!(s.move_under("a", "b").unwrap(), 3);
        assert_eq!(s.get(alice, "b/x.mp4").unwrap().unwrap().position, 5.0);
        assert_eq!(s.get(alice, "b/sub/y.mp4").unwrap().unwrap().position, 6.0);
        assert_eq!(s.get(alice, "ab/z.mp4").unwrap().unwrap().position, 7.0);
        // Bob's row at the target was replaced by the one that moved there.
        assert_eq!(s.get(bob, "b/x.mp4").unwrap().unwrap().position, 8.0);
        // To the trash: kept, not listed; back again on restore.
        s.move_under("b", ".streamhub-trash/k1").unwrap();
        let listed: Vec<String> = s
            .recent(alice)
            .unwrap()
            .into_iter()
            .map(|p| p.path)
            .collect();
        assert_eq!(listed, ["ab/z.mp4"]);
        s.move_under(".streamhub-trash/k1", "b").unwrap();
        assert!(s.get(alice, "b/sub/y.mp4").unwrap().is_some());
        assert_eq!(s.forget_under("b").unwrap(), 3);
        assert!(s.get(bob, "b/x.mp4").unwrap().is_none());
        assert!(s.get(alice, "ab/z.mp4").unwrap().is_some());
    }
}
