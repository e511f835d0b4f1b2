//! The incoming side of replication: `apply_from_peer` stores a batch pulled from a peer and
//! advances that peer's checkpoint (`sync::state`) in the same transaction, so a crash never
//! leaves revisions stored with the checkpoint behind them or ahead of them. `store_in` is
//! the one way a revision made elsewhere is stored (`put_revision` — import — uses it too).
//!
//! A bad item never aborts the batch: it is refused with a reason, the rest is stored, and
//! the checkpoint stays where it was (the next pull asks again; storing is idempotent), with
//! the first reason as the peer's `last_error`. Only a database failure aborts the batch, and
//! then nothing of it is stored.

use std::borrow::Cow;
use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::feed::WireRev;
use super::model::Revision;
use super::read::EventKind;
use super::rows::{
    admit_all, append_event, check_generation, insert_note_row, insert_revision, insert_stub,
    leaves, refresh,
};
use super::store::{NotesStore, PutOutcome};
use super::NoteError;
use crate::sync::state;

/// Where a batch comes from: the peer, its feed's instance id, the last seq of the feed the
/// batch covers and the feed's highest seq.
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    pub peer_id: &'a str,
    /// The peer's node name (what its own revisions' authors are qualified with).
    pub peer_name: &'a str,
    pub instance: &'a str,
    pub through_seq: i64,
    pub max_seq: i64,
}

/// What `apply_from_peer` did with a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// New revisions stored (full and stubs).
    pub stored: usize,
    /// Revisions already here.
    pub present: usize,
    /// Merge revisions made by the automatic merge (`automerge`).
    pub merged: usize,
    /// (rev, reason) of each item not stored.
    pub refused: Vec<(String, String)>,
}

impl NotesStore {
    /// Stores `items` (pulled from `cursor.peer_id`) in one immediate transaction: each one
    /// checked (`Revision::verify`, `Stub::verify`, the generation, the clock skew) and
    /// stored idempotently; then the notes it changed are merged where that is automatic
    /// (`merge_conflicts`, same transaction); then the checkpoint: advanced to
    /// `cursor.through_seq` when nothing was refused, else left with the first refusal as
    /// the peer's last error.
    pub fn apply_from_peer(
        &self,
        conn: &mut Connection,
        cursor: &Cursor<'_>,
        items: &[WireRev],
    ) -> Result<Applied, NoteError> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = self.now_ms();
        let mut applied = Applied::default();
        // Ordered, so merges happen in the same order on every node.
        let mut touched = BTreeSet::new();
        for item in items {
            let checked = self.check_item(item, now, cursor);
            let (rev, stub) = match checked {
                Ok(r) => r,
                Err(reason) => {
                    applied.refused.push((item.rev().to_string(), reason));
                    continue;
                }
            };
            let sp = tx.savepoint()?;
            match self.store_in(&sp, &rev, stub, now) {
                Ok((PutOutcome::Inserted, nid)) => {
                    sp.commit()?;
                    applied.stored += 1;
                    touched.insert(nid);
                }
                Ok((PutOutcome::AlreadyPresent, _)) => {
                    sp.commit()?;
                    applied.present += 1;
                }
                Err(NoteError::Db(e)) => return Err(NoteError::Db(e)),
                // Dropping the savepoint rolls back whatever the item wrote.
                Err(e) => applied
                    .refused
                    .push((item.rev().to_string(), e.to_string())),
            }
        }
        for nid in touched {
            let sp = tx.savepoint()?;
            match self.merge_conflicts(&sp, nid, now) {
                Ok(n) => {
                    sp.commit()?;
                    applied.merged += n;
                }
                Err(NoteError::Db(e)) => return Err(NoteError::Db(e)),
                Err(e) => tracing::warn!(error = %e, "automatic merge skipped"),
            }
        }
        match applied.refused.first() {
            None => state::advance(
                &tx,
                cursor.peer_id,
                cursor.instance,
                cursor.through_seq,
                cursor.max_seq.saturating_sub(cursor.through_seq),
                now,
            )?,
            Some((_, reason)) => state::refused(&tx, cursor.peer_id, reason, now)?,
        }
        tx.commit()?;
        Ok(applied)
    }

    /// An item as the revision row to store (a stub's placeholder) and whether it is a stub,
    /// or why it is refused.
    fn check_item<'a>(
        &self,
        item: &'a WireRev,
        now: i64,
        cursor: &Cursor<'_>,
    ) -> Result<(Cow<'a, Revision>, bool), String> {
        let now = u64::try_from(now).unwrap_or(0);
        let wall = item.hlc().wall_ms;
        if wall > now.saturating_add(self.sync_max_skew_ms) {
            return Err(format!(
                "stamped {} ahead of this node's clock (sync.max_clock_skew_secs = {})",
                duration(wall - now),
                self.sync_max_skew_ms / 1000
            ));
        }
        match item {
            WireRev::Full(r) => {
                r.verify(&self.limits).map_err(|e| e.to_string())?;
                Ok((attributed(r, cursor), false))
            }
            WireRev::Stub(s) => s
                .verify()
                .map(|()| (Cow::Owned(s.placeholder()), true))
                .map_err(|e| e.to_string()),
        }
    }

    /// Stores a checked revision from elsewhere (a stub's placeholder when `stub`) inside the
    /// caller's transaction; returns what happened and the note's row id. A known rev is
    /// present (same id ⇒ same content, so a full revision over a stored stub of the same id
    /// cannot differ from it); a known rev of another note is refused. Events: `synced_in`
    /// for a full revision, `conflict` when the note's leaves grow past one.
    pub(crate) fn store_in(
        &self,
        tx: &Connection,
        rev: &Revision,
        stub: bool,
        now: i64,
    ) -> Result<(PutOutcome, i64), NoteError> {
        let known: Option<(String, i64)> = tx
            .query_row(
                "SELECT n.id, n.nid FROM note_revisions r JOIN notes n ON n.nid = r.note
                 WHERE r.rev = ?1",
                [&rev.rev],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((owner_note, nid)) = known {
            if owner_note != rev.note_id {
                return Err(NoteError::BadRevision(
                    "revision belongs to another note".into(),
                ));
            }
            return Ok((PutOutcome::AlreadyPresent, nid));
        }
        check_generation(tx, rev)?;
        self.observe(tx, &rev.hlc, now)?;
        let nid: Option<i64> = tx
            .query_row("SELECT nid FROM notes WHERE id = ?1", [&rev.note_id], |r| {
                r.get(0)
            })
            .optional()?;
        let (nid, leaves_before) = match nid {
            Some(nid) => (nid, leaves(tx, nid)?.len()),
            None => (insert_note_row(tx, rev, None, now)?, 0),
        };
        if stub {
            insert_stub(tx, nid, rev, now)?;
        } else {
            insert_revision(tx, nid, rev, None, now, None, &admit_all)?;
        }
        let leaves_after = refresh(tx, nid, now, (!stub).then_some(rev))?;
        if !stub {
            append_event(
                tx,
                nid,
                EventKind::SyncedIn,
                Some(&rev.rev),
                Some(&rev.author),
                now,
            )?;
        }
        if leaves_after > 1 && leaves_after > leaves_before {
            append_event(tx, nid, EventKind::Conflict, Some(&rev.rev), None, now)?;
        }
        Ok((PutOutcome::Inserted, nid))
    }
}

/// Accounts are per node, so a revision made on the peer itself (its stamp's node is the
/// peer's instance) is shown as `author@peer-name` here. The author is not part of the
/// revision's id, so this changes nothing that is checked; a revision relayed by the peer
/// already carries the name its origin was given on the first hop.
fn attributed<'a>(r: &'a Revision, cursor: &Cursor<'_>) -> Cow<'a, Revision> {
    // A merge's stamp is its greatest parent's successor, not its maker's: not attributable
    // by the stamp (and the automatic merge's author is the same on every node).
    let merge = r.parents.len() > 1;
    if merge
        || r.author.contains('@')
        || r.hlc.node != cursor.instance
        || cursor.peer_name.is_empty()
    {
        return Cow::Borrowed(r);
    }
    let mut author = String::new();
    for c in r
        .author
        .chars()
        .chain(std::iter::once('@'))
        .chain(cursor.peer_name.chars())
    {
        // `Revision::verify` allows 64 characters.
        if author.chars().count() == 64 {
            break;
        }
        author.push(c);
    }
    let mut owned = r.clone();
    owned.author = author;
    Cow::Owned(owned)
}

/// `ms` in the largest whole unit that fits: "3652 days", "5 hours", "1 minute".
fn duration(ms: u64) -> String {
    let (n, unit) = match ms {
        86_400_000.. => (ms / 86_400_000, "day"),
        3_600_000.. => (ms / 3_600_000, "hour"),
        60_000.. => (ms / 60_000, "minute"),
        _ => (ms / 1000, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(super::duration(3652 * 86_400_000 + 5), "3652 days");
        assert_eq!(super::duration(86_400_000), "1 day");
        assert_eq!(super::duration(5 * 3_600_000 + 59_000), "5 hours");
        assert_eq!(super::duration(61_000), "1 minute");
        assert_eq!(super::duration(999), "0 seconds");
    }
}
