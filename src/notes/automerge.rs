//! The automatic merge after a pull: a note's conflicting leaves that merge cleanly
//! (`merge::merge_content`, from their best common ancestor, as `NotesStore::merge` does)
//! become one merge revision. Its id depends only on content and parents
//! (`Revision::build` with two parents derives the stamp from them; the author is not
//! hashed), so every node that holds the same leaves makes the same revision and they
//! converge without sending it. Overlapping edits are left as a visible conflict, and so is
//! a delete (a tombstone leaf is never merged away), a note with a stub leaf or a stub or
//! missing base (no text to merge from), and a deleted note.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::merge::merge_content;
use super::model::Revision;
use super::read::{self, EventKind};
use super::revstore::{self, Known};
use super::rows::{admit_all, append_event, insert_revision, leaves, rank, refresh, Leaf};
use super::store::NotesStore;
use super::{tree, NoteError};

/// The author of automatic merges: the same name on every node (it is not hashed anyway).
pub const AUTO_MERGE_AUTHOR: &str = "streamhub";

impl NotesStore {
    /// Merges what merges cleanly among the note's conflicting leaves (see the module
    /// documentation); true when a merge revision was made.
    pub fn auto_merge(&self, conn: &mut Connection, note_id: &str) -> Result<bool, NoteError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let nid: i64 = tx
            .query_row("SELECT nid FROM notes WHERE id = ?1", [note_id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or(NoteError::NotFound)?;
        let now = self.now_ms();
        let merged = self.merge_conflicts(&tx, nid, now)?;
        tx.commit()?;
        Ok(merged > 0)
    }

    /// Inside the caller's transaction: merges the winner with each conflicting leaf, best
    /// first, while that is clean; returns the number of merge revisions stored. Each merge
    /// ends one leaf, so this stops.
    pub(crate) fn merge_conflicts(
        &self,
        tx: &Connection,
        nid: i64,
        now: i64,
    ) -> Result<usize, NoteError> {
        let note_id: String =
            tx.query_row("SELECT id FROM notes WHERE nid = ?1", [nid], |r| r.get(0))?;
        let mut merged = 0;
        loop {
            let all = leaves(tx, nid)?;
            if all.len() < 2 || all.iter().any(|l| l.stub) {
                return Ok(merged);
            }
            let Some((winner, conflicts)) = rank(&all) else {
                return Ok(merged);
            };
            if winner.deleted {
                return Ok(merged);
            }
            let graph = read::graph(tx, nid)?;
            let mut next = None;
            for other in conflicts.into_iter().filter(|l| !l.deleted) {
                next = self.clean_merge(tx, &note_id, &graph, winner, other)?;
                if next.is_some() {
                    break;
                }
            }
            let Some((rev, winner_body)) = next else {
                return Ok(merged);
            };
            let exists: bool = tx
                .prepare_cached("SELECT 1 FROM note_revisions WHERE rev = ?1")?
                .exists([&rev.rev])?;
            if exists {
                // Cannot be (it would have ended both leaves); never loop on it.
                return Ok(merged);
            }
            self.observe(tx, &rev.hlc, now)?;
            let known = Known {
                rev: &winner.rev,
                body: &winner_body,
            };
            insert_revision(tx, nid, &rev, None, now, Some(known), &admit_all)?;
            refresh(tx, nid, now, Some(&rev))?;
            append_event(
                tx,
                nid,
                EventKind::Resolved,
                Some(&rev.rev),
                Some(AUTO_MERGE_AUTHOR),
                now,
            )?;
            merged += 1;
        }
    }

    /// The merge revision of `winner` and `other` and the winner's body, when their base is
    /// a stored revision with content and their edits do not overlap.
    fn clean_merge(
        &self,
        tx: &Connection,
        note_id: &str,
        graph: &std::collections::HashMap<String, (u64, Vec<String>)>,
        winner: &Leaf,
        other: &Leaf,
    ) -> Result<Option<(Revision, String)>, NoteError> {
        let Some(base) = tree::common_ancestor(graph, &winner.rev, &other.rev) else {
            return Ok(None);
        };
        let base_is_stub: bool = tx
            .query_row(
                "SELECT stub FROM note_revisions WHERE rev = ?1",
                [base],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(true);
        if base_is_stub {
            return Ok(None);
        }
        let base = revstore::revision(tx, note_id, base)?;
        let ours = revstore::revision(tx, note_id, &winner.rev)?;
        let theirs = revstore::revision(tx, note_id, &other.rev)?;
        let Ok(content) = merge_content(&base.content, &ours.content, &theirs.content) else {
            return Ok(None);
        };
        let Ok(content) = self.limits.check(content) else {
            return Ok(None);
        };
        let parents = [
            (winner.rev.clone(), winner.gen, winner.hlc.clone()),
            (other.rev.clone(), other.gen, other.hlc.clone()),
        ];
        // Two parents: the stamp is derived from theirs, the one passed here is ignored.
        let rev = Revision::build(
            note_id,
            &parents,
            content,
            false,
            ours.hlc.clone(),
            AUTO_MERGE_AUTHOR,
        );
        Ok(Some((rev, ours.content.body)))
    }
}
