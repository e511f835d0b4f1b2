//! The outgoing side of replication: the changes feed (`changes`), the diff (`missing`) and
//! the revisions a peer may fetch (`for_peer`), with the wire types nodes exchange (JSON).
//!
//! Only public notes leave a node. A note that was never public here sends nothing at all —
//! not its id, not how many revisions it has —, and the cursor still advances past its rows.
//! A note that is or was public sends its public revisions in full and every private one
//! (or a stub stored from a peer) as a `Stub`: ids, parents, generation, stamp and deleted,
//! no title, body, tags or author. So a peer computes the same winner (the rule only reads
//! those fields) and a note turned private is hidden there (its winner is a stub), while its
//! private text never leaves.

use std::collections::HashSet;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::hlc::Hlc;
use super::model::Revision;
use super::read::{self, EventKind};
use super::revstore;
use super::rows::{append_event, stub_placeholder};
use super::store::NotesStore;
use super::NoteError;

/// A revision as a peer may know it without its content: a private revision of a public
/// note. Its id cannot be checked against content; `verify` checks the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stub {
    pub note_id: String,
    pub rev: String,
    /// Sorted.
    pub parents: Vec<String>,
    pub gen: u64,
    pub hlc: Hlc,
    pub deleted: bool,
}

impl Stub {
    /// The structural checks of `Revision::verify` that do not need content.
    pub fn verify(&self) -> Result<(), NoteError> {
        super::model::check_shape(&self.note_id, &self.rev, &self.parents, self.gen, &self.hlc)
    }

    /// The row a stub is stored as (empty private content, no author), with its parents.
    pub(crate) fn placeholder(&self) -> Revision {
        let mut r = stub_placeholder(&self.note_id, &self.rev, self.gen, &self.hlc, self.deleted);
        r.parents = self.parents.clone();
        r
    }
}

/// One revision in a batch sent to a peer: `{"kind":"full", <revision fields>}` or
/// `{"kind":"stub", <stub fields>}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum WireRev {
    Full(Revision),
    Stub(Stub),
}

impl WireRev {
    pub fn rev(&self) -> &str {
        match self {
            WireRev::Full(r) => &r.rev,
            WireRev::Stub(s) => &s.rev,
        }
    }

    pub fn note_id(&self) -> &str {
        match self {
            WireRev::Full(r) => &r.note_id,
            WireRev::Stub(s) => &s.note_id,
        }
    }

    pub fn hlc(&self) -> &Hlc {
        match self {
            WireRev::Full(r) => &r.hlc,
            WireRev::Stub(s) => &s.hlc,
        }
    }
}

/// One row of the changes feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub seq: i64,
    pub note_id: String,
    pub rev: String,
    /// The revision travels as a stub (private here, or a stub here too).
    pub stub: bool,
}

/// A page of the changes feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesPage {
    /// This database's id (`node.id`): a new one means the seqs start over.
    pub instance: String,
    /// The highest seq here (0 when there are no revisions).
    pub max_seq: i64,
    /// The seq of the last row looked at: the next `since` (filtered rows included).
    pub last_seq: i64,
    pub changes: Vec<Change>,
}

/// Rows looked at per call, as a multiple of `limit`: a long run of never-public revisions
/// costs several calls, never one unbounded one.
const SCAN_FACTOR: usize = 4;

/// `published`: the note has a public revision with content here.
const PUBLISHED: &str = "EXISTS (SELECT 1 FROM note_revisions p
                                 WHERE p.note = r.note AND p.visibility = 'public' AND p.stub = 0)";

impl NotesStore {
    /// Revisions with seq > `since`, in seq order, at most `limit` (at least 1), looking at
    /// no more than `SCAN_FACTOR * limit` rows: public ones in full, private ones and stubs
    /// of published notes as stubs, nothing of notes never public here.
    pub fn changes(
        &self,
        conn: &Connection,
        since: i64,
        limit: usize,
    ) -> Result<ChangesPage, NoteError> {
        let limit = limit.max(1);
        let scan = i64::try_from(limit.saturating_mul(SCAN_FACTOR)).unwrap_or(i64::MAX);
        let mut st = conn.prepare_cached(&format!(
            "SELECT r.seq, n.id, r.rev, r.visibility = 'public' AND r.stub = 0, {PUBLISHED}
             FROM note_revisions r JOIN notes n ON n.nid = r.note
             WHERE r.seq > ?1 ORDER BY r.seq LIMIT ?2"
        ))?;
        let mut rows = st.query(params![since, scan])?;
        let mut changes = Vec::new();
        let mut last_seq = since;
        while let Some(r) = rows.next()? {
            let (seq, note_id, rev): (i64, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let (full, published): (bool, bool) = (r.get(3)?, r.get(4)?);
            last_seq = seq;
            if published {
                changes.push(Change {
                    seq,
                    note_id,
                    rev,
                    stub: !full,
                });
                if changes.len() == limit {
                    break;
                }
            }
        }
        drop(rows);
        // Read after the scan, so it is never below `last_seq`.
        let max_seq: i64 = conn.query_row(
            "SELECT coalesce(max(seq), 0) FROM note_revisions",
            [],
            |r| r.get(0),
        )?;
        Ok(ChangesPage {
            instance: self.node_id(conn)?,
            max_seq,
            last_seq,
            changes,
        })
    }

    /// Which of `revs` this node does not have (in full or as a stub), in the order given.
    pub fn missing(&self, conn: &Connection, revs: &[String]) -> Result<Vec<String>, NoteError> {
        let mut st = conn.prepare_cached("SELECT 1 FROM note_revisions WHERE rev = ?1")?;
        let mut out = Vec::new();
        for rev in revs {
            if !st.exists([rev])? {
                out.push(rev.clone());
            }
        }
        Ok(out)
    }

    /// The revisions of `revs` a peer may have, as `changes` describes them; anything else
    /// (unknown, never-public note) is left out, indistinguishable from unknown. Stops before
    /// the JSON would pass `max_bytes` (at least one item when any qualifies). Each full
    /// revision sent gets a `synced_out` event by `peer_name`, best effort.
    pub fn for_peer(
        &self,
        conn: &Connection,
        revs: &[String],
        peer_name: &str,
        max_bytes: usize,
    ) -> Result<Vec<WireRev>, NoteError> {
        let mut st = conn.prepare_cached(&format!(
            "SELECT n.id, r.note, r.visibility = 'public' AND r.stub = 0, r.parents, r.gen,
                    r.hlc_wall, r.hlc_logical, r.hlc_node, r.deleted
             FROM note_revisions r JOIN notes n ON n.nid = r.note
             WHERE r.rev = ?1 AND {PUBLISHED}"
        ))?;
        let mut out = Vec::new();
        let mut sent_full: Vec<(i64, String)> = Vec::new();
        let mut total = 0usize;
        let mut seen = HashSet::new();
        for rev in revs {
            if !seen.insert(rev.as_str()) {
                continue;
            }
            let row = st
                .query_row([rev], |r| {
                    Ok((
                        (r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get(2)?),
                        (r.get::<_, String>(3)?, r.get::<_, i64>(4)?),
                        (
                            r.get::<_, i64>(5)?,
                            r.get::<_, i64>(6)?,
                            r.get::<_, String>(7)?,
                        ),
                        r.get::<_, bool>(8)?,
                    ))
                })
                .optional()?;
            let Some(((note_id, nid, full), (parents, gen), (wall, logical, node), deleted)) = row
            else {
                continue;
            };
            let item = if full {
                WireRev::Full(revstore::revision(conn, &note_id, rev)?)
            } else {
                WireRev::Stub(Stub {
                    note_id,
                    rev: rev.clone(),
                    parents: read::parse_tags(&parents)?,
                    gen: read::to_u64(gen),
                    hlc: Hlc::new(read::to_u64(wall), read::to_u32(logical), node),
                    deleted,
                })
            };
            let len = serde_json::to_vec(&item)
                .map_err(|e| NoteError::Corrupt(e.to_string()))?
                .len()
                + 1;
            if !out.is_empty() && total + len > max_bytes {
                break;
            }
            total += len;
            if full {
                sent_full.push((nid, rev.clone()));
            }
            out.push(item);
        }
        drop(st);
        if let Err(e) = self.log_synced_out(conn, &sent_full, peer_name) {
            tracing::warn!(peer = peer_name, error = %e, "could not log synced_out events");
        }
        Ok(out)
    }

    /// One `synced_out` event per revision, in one transaction when the caller has none.
    fn log_synced_out(
        &self,
        conn: &Connection,
        sent: &[(i64, String)],
        peer_name: &str,
    ) -> Result<(), NoteError> {
        if sent.is_empty() {
            return Ok(());
        }
        let now = self.now_ms();
        let tx = if conn.is_autocommit() {
            Some(conn.unchecked_transaction()?)
        } else {
            None
        };
        for (nid, rev) in sent {
            append_event(
                conn,
                *nid,
                EventKind::SyncedOut,
                Some(rev),
                Some(peer_name),
                now,
            )?;
        }
        if let Some(tx) = tx {
            tx.commit()?;
        }
        Ok(())
    }
}
