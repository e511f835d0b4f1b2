//! `NotesStore` writes: local edits under optimistic concurrency (`create`, `update`,
//! `delete`, `restore`, `resolve`, `merge`) and the idempotent `put_revision` that sync and
//! import use. Each runs in one `BEGIN IMMEDIATE` transaction: the revision, the recomputed
//! current state of the note (the winner, see `tree`) and the event log entry commit together.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::hlc::{Clock, Hlc, DEFAULT_MAX_SKEW_MS};
use super::merge::merge_content;
use super::model::{hex, Author, Changes, Content, Limits, Revision, Visibility};
use super::read::{self, EventKind, Note};
use super::revstore::Known;
use super::rows::{
    admit_all, append_event, conflict_leaves, current, editable, insert_note_row, insert_revision,
    leaves, refresh, Admit, Current, Leaf,
};
use super::{tree, NoteError};

/// Whether `put_revision` stored something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Inserted,
    AlreadyPresent,
}

type PhysicalClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The default of `sync.max_clock_skew_secs`, in ms (one day).
pub const DEFAULT_SYNC_MAX_SKEW_MS: u64 = 86_400_000;

/// What `commit_child` stores on top of the current revision.
struct Child<'a> {
    /// Parents besides the current revision (the leaves a delete or resolve ends).
    extra: &'a [Leaf],
    content: Content,
    deleted: bool,
    kind: EventKind,
}

/// The notes store: configuration only (limits, clock); all state is in the database, so it
/// is cheap to clone into handlers and every method takes the connection.
#[derive(Clone)]
pub struct NotesStore {
    pub(crate) limits: Limits,
    max_skew_ms: u64,
    /// Revisions from peers stamped further ahead of our physical clock are refused.
    pub(crate) sync_max_skew_ms: u64,
    physical: PhysicalClock,
}

impl std::fmt::Debug for NotesStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotesStore")
            .field("limits", &self.limits)
            .field("max_skew_ms", &self.max_skew_ms)
            .field("sync_max_skew_ms", &self.sync_max_skew_ms)
            .finish_non_exhaustive()
    }
}

impl NotesStore {
    pub fn new(limits: Limits) -> NotesStore {
        NotesStore {
            limits,
            max_skew_ms: DEFAULT_MAX_SKEW_MS,
            sync_max_skew_ms: DEFAULT_SYNC_MAX_SKEW_MS,
            physical: Arc::new(system_ms),
        }
    }

    /// Replaces the physical clock (milliseconds since the epoch); for tests.
    pub fn with_physical_clock(mut self, f: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.physical = Arc::new(f);
        self
    }

    /// How far a remote stamp may pull this node's clock ahead of physical time.
    pub fn with_max_skew_ms(mut self, ms: u64) -> Self {
        self.max_skew_ms = ms;
        self
    }

    /// How far ahead of this node's physical clock a revision pulled from a peer may be
    /// stamped (`sync.max_clock_skew_secs`); further ahead, `apply_from_peer` refuses it.
    pub fn with_sync_max_skew_ms(mut self, ms: u64) -> Self {
        self.sync_max_skew_ms = ms;
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) fn now_ms(&self) -> i64 {
        i64::try_from((self.physical)()).unwrap_or(i64::MAX)
    }

    /// This node's id (made once, by the migration that created the `node` table).
    pub fn node_id(&self, conn: &Connection) -> Result<String, NoteError> {
        Ok(conn.query_row("SELECT id FROM node WHERE singleton = 1", [], |r| r.get(0))?)
    }

    pub fn create(
        &self,
        conn: &mut Connection,
        content: Content,
        author: &Author,
    ) -> Result<Note, NoteError> {
        self.create_admitted(conn, content, author, &admit_all)
    }

    /// `create`, the new revision's stored size judged by `admit` in the same transaction.
    pub fn create_admitted(
        &self,
        conn: &mut Connection,
        content: Content,
        author: &Author,
        admit: Admit<'_>,
    ) -> Result<Note, NoteError> {
        let content = self.limits.check(content)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = self.now_ms();
        let hlc = self.stamp(&tx, now)?;
        let note_id = new_note_id()?;
        let rev = Revision::build(&note_id, &[], content, false, hlc, &author.name);
        let nid = insert_note_row(&tx, &rev, Some(author.id), now)?;
        insert_revision(&tx, nid, &rev, Some(author.id), now, None, admit)?;
        append_event(
            &tx,
            nid,
            EventKind::Created,
            Some(&rev.rev),
            Some(&author.name),
            now,
        )?;
        let note = read::load_note(&tx, &note_id, Some(author.id))?;
        tx.commit()?;
        Ok(note)
    }

    /// Applies `changes` on top of `base_rev`, which must be the current revision.
    pub fn update(
        &self,
        conn: &mut Connection,
        note_id: &str,
        base_rev: &str,
        changes: Changes,
        author: &Author,
    ) -> Result<Note, NoteError> {
        self.update_admitted(conn, note_id, base_rev, changes, author, &admit_all)
    }

    /// `update`, the new revision's stored size judged by `admit` in the same transaction.
    pub fn update_admitted(
        &self,
        conn: &mut Connection,
        note_id: &str,
        base_rev: &str,
        changes: Changes,
        author: &Author,
        admit: Admit<'_>,
    ) -> Result<Note, NoteError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cur = editable(&tx, note_id, base_rev, author)?;
        let content = self.limits.check(changes.apply(&cur.content))?;
        cur.check_visibility_change(&content, author)?;
        let child = Child {
            extra: &[],
            content,
            deleted: false,
            kind: EventKind::Edited,
        };
        self.commit_child(tx, &cur, child, author, admit)
    }

    /// Deletes the note: a tombstone revision (content kept, so it can be restored) whose
    /// parents are *all* current leaves, so the person who deletes a note with open conflicts
    /// deletes the note rather than unveiling the next conflicting version.
    pub fn delete(
        &self,
        conn: &mut Connection,
        note_id: &str,
        base_rev: &str,
        author: &Author,
    ) -> Result<Note, NoteError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cur = editable(&tx, note_id, base_rev, author)?;
        let others: Vec<Leaf> = leaves(&tx, cur.nid)?
            .into_iter()
            .filter(|l| l.rev != cur.rev)
            .collect();
        let content = cur.content.clone();
        let child = Child {
            extra: &others,
            content,
            deleted: true,
            kind: EventKind::Deleted,
        };
        self.commit_child(tx, &cur, child, author, &admit_all)
    }

    /// A new revision, child of the current one, with the content of `rev` (any revision of
    /// the note, tombstones included): title, body and tags. Never the visibility — it stays
    /// what it is now (restoring a revision from when the note was public must not publish
    /// a note its owner has made private). Undeletes a deleted note.
    pub fn restore(
        &self,
        conn: &mut Connection,
        note_id: &str,
        rev: &str,
        author: &Author,
    ) -> Result<Note, NoteError> {
        self.restore_admitted(conn, note_id, rev, author, &admit_all)
    }

    /// `restore`, the new revision's stored size judged by `admit` in the same transaction:
    /// a restore stores the old text again (as a delta against the current one), so
    /// alternating restores must not grow a member's notes past their quota.
    pub fn restore_admitted(
        &self,
        conn: &mut Connection,
        note_id: &str,
        rev: &str,
        author: &Author,
        admit: Admit<'_>,
    ) -> Result<Note, NoteError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cur = current(&tx, note_id, Some(author.id))?;
        let old = read::load_revision(&tx, note_id, rev, Some(author.id))?;
        // A private revision's text is its owner's alone: nobody else may bring it back
        // into a note they can see.
        if old.content.visibility == Visibility::Private && cur.owner_id != Some(author.id) {
            return Err(NoteError::NotFound);
        }
        let mut content = self.limits.check(old.content)?;
        content.visibility = cur.content.visibility;
        let child = Child {
            extra: &[],
            content,
            deleted: false,
            kind: EventKind::Restored,
        };
        self.commit_child(tx, &cur, child, author, admit)
    }

    /// Ends the conflicts `resolves` (leaves other than the current one) with `merged`: a
    /// revision whose parents are the current revision and those leaves. With `base_rev`, the
    /// current revision must still be that one.
    pub fn resolve(
        &self,
        conn: &mut Connection,
        note_id: &str,
        base_rev: Option<&str>,
        merged: Content,
        resolves: &[String],
        author: &Author,
    ) -> Result<Note, NoteError> {
        let merged = self.limits.check(merged)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cur = current(&tx, note_id, Some(author.id))?;
        if let Some(base) = base_rev {
            cur.expect_base(base)?;
        }
        let conflicts = conflict_leaves(&tx, &cur, resolves)?;
        cur.check_visibility_change(&merged, author)?;
        let child = Child {
            extra: &conflicts,
            content: merged,
            deleted: false,
            kind: EventKind::Resolved,
        };
        self.commit_child(tx, &cur, child, author, &admit_all)
    }

    /// Three-way merges the conflicting leaf `other` into the current revision, from their
    /// best common ancestor. Clean merges become a resolving revision whose id depends only on
    /// content and parents (every node merging the same pair makes the same one); overlapping
    /// edits give `MergeConflict` and change nothing.
    pub fn merge(
        &self,
        conn: &mut Connection,
        note_id: &str,
        other: &str,
        author: &Author,
    ) -> Result<Note, NoteError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cur = current(&tx, note_id, Some(author.id))?;
        if cur.deleted {
            return Err(NoteError::Deleted);
        }
        // An unknown revision is a 404; a known one that is not a conflicting leaf is the
        // request's mistake about `rev`.
        let theirs = read::load_revision(&tx, note_id, other, Some(author.id))?.content;
        let conflicts = conflict_leaves(&tx, &cur, std::slice::from_ref(&other.to_string()))
            .map_err(|e| match e {
                NoteError::Invalid { reason, .. } => NoteError::Invalid {
                    field: "rev",
                    reason,
                },
                other => other,
            })?;
        let graph = read::graph(&tx, cur.nid)?;
        let base = match tree::common_ancestor(&graph, &cur.rev, other) {
            Some(a) => read::load_revision(&tx, note_id, a, Some(author.id))?.content,
            None => Content {
                title: String::new(),
                body: String::new(),
                tags: Vec::new(),
                visibility: cur.content.visibility,
            },
        };
        let merged = self
            .limits
            .check(merge_content(&base, &cur.content, &theirs)?)?;
        cur.check_visibility_change(&merged, author)?;
        let child = Child {
            extra: &conflicts,
            content: merged,
            deleted: false,
            kind: EventKind::Resolved,
        };
        self.commit_child(tx, &cur, child, author, &admit_all)
    }

    /// Stores a revision made elsewhere (import; sync uses `apply_from_peer`). Idempotent: a
    /// known rev is a no-op. Parents need not be present yet; the winner is recomputed either
    /// way.
    pub fn put_revision(
        &self,
        conn: &mut Connection,
        rev: &Revision,
    ) -> Result<PutOutcome, NoteError> {
        rev.verify(&self.limits)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = self.now_ms();
        let (outcome, _) = self.store_in(&tx, rev, false, now)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Appends an event that happened outside this module (e.g. `SyncedOut`).
    pub fn record_event(
        &self,
        conn: &Connection,
        note_id: &str,
        kind: EventKind,
        rev: Option<&str>,
        actor: Option<&str>,
    ) -> Result<(), NoteError> {
        let nid: i64 = conn
            .query_row("SELECT nid FROM notes WHERE id = ?1", [note_id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or(NoteError::NotFound)?;
        append_event(conn, nid, kind, rev, actor, self.now_ms())
    }

    /// A child of the current revision (plus `child.extra` parents), its event, the new
    /// winner. Its body is stored against the current revision's, which is in hand.
    fn commit_child(
        &self,
        tx: Transaction<'_>,
        cur: &Current,
        child: Child<'_>,
        author: &Author,
        admit: Admit<'_>,
    ) -> Result<Note, NoteError> {
        let now = self.now_ms();
        let hlc = self.stamp(&tx, now)?;
        let mut parents = vec![(cur.rev.clone(), cur.gen, cur.hlc.clone())];
        parents.extend(
            child
                .extra
                .iter()
                .map(|l| (l.rev.clone(), l.gen, l.hlc.clone())),
        );
        let rev = Revision::build(
            &cur.note_id,
            &parents,
            child.content,
            child.deleted,
            hlc,
            &author.name,
        );
        if parents.len() > 1 {
            // A merge's stamp is derived from its parents; keep our clock ahead of it.
            self.observe(&tx, &rev.hlc, now)?;
        }
        let known = Known {
            rev: &cur.rev,
            body: &cur.content.body,
        };
        insert_revision(&tx, cur.nid, &rev, Some(author.id), now, Some(known), admit)?;
        refresh(&tx, cur.nid, now, Some(&rev))?;
        append_event(
            &tx,
            cur.nid,
            child.kind,
            Some(&rev.rev),
            Some(&author.name),
            now,
        )?;
        let note = read::load_note(&tx, &cur.note_id, Some(author.id))?;
        tx.commit()?;
        Ok(note)
    }

    fn load_clock(&self, conn: &Connection) -> Result<Clock, NoteError> {
        let (node, wall, logical): (String, i64, i64) = conn.query_row(
            "SELECT id, hlc_wall, hlc_logical FROM node WHERE singleton = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(Clock::new(
            node,
            u64::try_from(wall).unwrap_or(0),
            u32::try_from(logical).unwrap_or(0),
            self.max_skew_ms,
        ))
    }

    fn save_clock(conn: &Connection, clock: &Clock) -> Result<(), NoteError> {
        let (wall, logical) = clock.state();
        conn.execute(
            "UPDATE node SET hlc_wall = ?1, hlc_logical = ?2 WHERE singleton = 1",
            params![i64::try_from(wall).unwrap_or(i64::MAX), i64::from(logical)],
        )?;
        Ok(())
    }

    /// A stamp for a local change; the clock state is persisted in the same transaction.
    fn stamp(&self, conn: &Connection, now: i64) -> Result<Hlc, NoteError> {
        let mut clock = self.load_clock(conn)?;
        let hlc = clock.now(u64::try_from(now).unwrap_or(0));
        Self::save_clock(conn, &clock)?;
        Ok(hlc)
    }

    pub(crate) fn observe(
        &self,
        conn: &Connection,
        remote: &Hlc,
        now: i64,
    ) -> Result<(), NoteError> {
        let mut clock = self.load_clock(conn)?;
        clock.update(remote, u64::try_from(now).unwrap_or(0));
        Self::save_clock(conn, &clock)
    }
}

fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn new_note_id() -> Result<String, NoteError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| NoteError::Corrupt(format!("no randomness: {e}")))?;
    Ok(hex(&b))
}
