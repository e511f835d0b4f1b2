//! Revision bodies in `note_revisions` (migration 0014): choosing each one's storage form
//! when it is inserted, and `body`, the one function that rebuilds a stored body. Revisions
//! are never pruned (replication relies on them), so an edit must cost the size of the
//! change, not of the note: a body is stored as a delta against a parent's body when that is
//! smaller than the whole (`revcodec`), else as a keyframe.
//!
//! Columns: `body_form` (`revcodec::Form`), `body` (the stored bytes: TEXT for form 0, as
//! every row written before 0014, else a BLOB), `body_base` (the revision a delta applies
//! to, always a parent of the same note; NULL for a keyframe), `body_depth` (deltas between
//! this body and its keyframe: at most `MAX_CHAIN`), `body_chain` (stored bytes read to
//! rebuild it: at most `chain_budget` of its length), `stored_bytes` (title + tags + stored
//! body, what the `notes_bytes` quota counts).
//!
//! The keyframe rule is Mercurial's revlog rule, simplified: a delta is stored while the
//! chain stays within `MAX_CHAIN` deltas and rebuilding reads at most about twice the text
//! it yields; otherwise the body is a keyframe. So small edits of a large note cost their
//! size for `MAX_CHAIN` edits in a row, and a rebuild is bounded in splices and in bytes.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use super::hlc::Hlc;
use super::model::{Content, Revision};
use super::read;
use super::revcodec::{self, Encoded, Form};
use super::NoteError;

/// The longest chain of deltas from a body to its keyframe. Rebuilding an old revision
/// applies at most this many splices to a body of at most `Limits::body_bytes`;
/// appending to a 1 MiB note stores one keyframe per this many edits (figures in
/// `docs/PERFORMANCE.md`, "Note revision storage").
pub(crate) const MAX_CHAIN: i64 = 128;

/// The stored bytes a rebuild of a body of `len` bytes may read (keyframe + deltas).
pub(crate) fn chain_budget(len: usize) -> i64 {
    i64::try_from(len.saturating_mul(2).saturating_add(4096)).unwrap_or(i64::MAX)
}

/// A delta at most 1/this of the body is kept without comparing it to a keyframe.
const SMALL_DELTA: usize = 16;

/// A body in the form it is stored in, and where.
#[derive(Debug)]
pub(crate) struct Stored {
    pub enc: Encoded,
    pub base: Option<String>,
    pub depth: i64,
    /// Bytes read to rebuild it (`body_chain`).
    pub chain: i64,
}

impl Stored {
    /// What the revision's text takes in its row, as the quota counts it.
    pub fn bytes(&self, title: &str, tags_json: &str) -> u64 {
        (title.len() + tags_json.len() + self.enc.data.len()) as u64
    }
}

/// A body already known in full, to delta against (saves rebuilding it).
pub(crate) struct Known<'a> {
    pub rev: &'a str,
    pub body: &'a str,
}

/// Chooses how to store `rev`'s body: a delta against `known` (a local edit's parent) or
/// else against the stored parent with the shortest chain, when that is smaller than a
/// keyframe and the chain stays within `MAX_CHAIN`; otherwise a keyframe. A revision whose
/// parents have not arrived yet is a keyframe.
pub(crate) fn encode(
    conn: &Connection,
    rev: &Revision,
    known: Option<Known<'_>>,
) -> Result<Stored, NoteError> {
    let body = &rev.content.body;
    let budget = chain_budget(body.len());
    let open = |c: &Chain| c.depth < MAX_CHAIN && c.bytes < budget;
    let base = match known {
        Some(k) => chain_of(conn, k.rev)?
            .filter(open)
            .map(|c| (k.rev.to_string(), c, k.body.to_string())),
        None => match shallowest_parent(conn, &rev.parents)? {
            Some((p, c)) if open(&c) => {
                let text = base_body(conn, &rev.note_id, &p)?;
                Some((p, c, text))
            }
            _ => None,
        },
    };
    let mut delta = None;
    if let Some((base_rev, chain, base_body)) = base {
        let d = revcodec::delta(&base_body, body);
        let len = i64::try_from(d.data.len()).unwrap_or(i64::MAX);
        let after = Chain {
            depth: chain.depth + 1,
            bytes: chain.bytes.saturating_add(len),
        };
        if after.bytes <= budget {
            // A delta this small beats any keyframe worth having: skip deflating the whole
            // body (the bulk of an edit's time on a large note).
            if d.data.len() <= body.len() / SMALL_DELTA {
                return Ok(stored(d, Some(base_rev), after));
            }
            delta = Some((d, base_rev, after));
        }
    }
    let full = revcodec::full(body);
    Ok(match delta {
        Some((d, base, after)) if d.data.len() < full.data.len() => stored(d, Some(base), after),
        _ => {
            let bytes = i64::try_from(full.data.len()).unwrap_or(i64::MAX);
            stored(full, None, Chain { depth: 0, bytes })
        }
    })
}

fn stored(enc: Encoded, base: Option<String>, chain: Chain) -> Stored {
    Stored {
        enc,
        base,
        depth: chain.depth,
        chain: chain.bytes,
    }
}

/// Where a stored body stands in its chain.
#[derive(Debug, Clone, Copy)]
struct Chain {
    depth: i64,
    bytes: i64,
}

/// The body of stored revision `rev`, rebuilt from its keyframe and deltas. Every reader of
/// revision content comes through here (`read::load_revision`, `rows::refresh`).
pub(crate) fn body(conn: &Connection, rev: &str) -> Result<String, NoteError> {
    let mut st = conn
        .prepare_cached("SELECT body_form, body, body_base FROM note_revisions WHERE rev = ?1")?;
    let mut deltas: Vec<(Form, Vec<u8>)> = Vec::new();
    let mut at = rev.to_string();
    let keyframe = loop {
        let row = st
            .query_row([&at], |r| {
                let bytes = match r.get_ref(1)? {
                    ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
                    _ => Vec::new(),
                };
                Ok((r.get::<_, i64>(0)?, bytes, r.get::<_, Option<String>>(2)?))
            })
            .optional()?;
        let Some((form, data, base)) = row else {
            return Err(if deltas.is_empty() {
                NoteError::RevisionNotFound(rev.to_string())
            } else {
                corrupt(rev, &format!("its base {at} is missing"))
            });
        };
        let form =
            Form::from_i64(form).ok_or_else(|| corrupt(rev, &format!("unknown form {form}")))?;
        match (form.is_delta(), base) {
            (false, _) => break (form, data),
            (true, Some(base)) if deltas.len() < MAX_CHAIN as usize => {
                deltas.push((form, data));
                at = base;
            }
            (true, Some(_)) => return Err(corrupt(rev, "its delta chain is too long")),
            (true, None) => return Err(corrupt(rev, "a delta without a base")),
        }
    };
    let mut bytes = revcodec::decode(keyframe.0, &keyframe.1, None)
        .map_err(|e| corrupt(rev, &e.to_string()))?;
    for (form, data) in deltas.iter().rev() {
        bytes =
            revcodec::decode(*form, data, Some(bytes)).map_err(|e| corrupt(rev, &e.to_string()))?;
    }
    String::from_utf8(bytes).map_err(|_| corrupt(rev, "its body is not UTF-8"))
}

/// A base's body: the note's current text when the base is the current revision (the usual
/// case for revisions arriving in order), else rebuilt.
fn base_body(conn: &Connection, note_id: &str, rev: &str) -> Result<String, NoteError> {
    // By note id (unique index): `notes.rev` has no index of its own.
    let current: Option<String> = conn
        .query_row(
            "SELECT body FROM notes WHERE id = ?1 AND rev = ?2",
            [note_id, rev],
            |r| r.get(0),
        )
        .optional()?;
    match current {
        Some(b) => Ok(b),
        None => body(conn, rev),
    }
}

fn chain_of(conn: &Connection, rev: &str) -> Result<Option<Chain>, NoteError> {
    Ok(conn
        .prepare_cached("SELECT body_depth, body_chain FROM note_revisions WHERE rev = ?1")?
        .query_row([rev], |r| {
            Ok(Chain {
                depth: r.get(0)?,
                bytes: r.get(1)?,
            })
        })
        .optional()?)
}

/// The stored parent with the shortest chain (ties: the first in id order). Stubs (a peer's
/// private revisions, migration 0015) hold no text and are never a base: a revision over
/// only stubs is a keyframe.
fn shallowest_parent(
    conn: &Connection,
    parents: &[String],
) -> Result<Option<(String, Chain)>, NoteError> {
    let mut st = conn.prepare_cached(
        "SELECT body_depth, body_chain FROM note_revisions WHERE rev = ?1 AND stub = 0",
    )?;
    let mut best: Option<(String, Chain)> = None;
    for p in parents {
        let chain = st
            .query_row([p], |r| {
                Ok(Chain {
                    depth: r.get(0)?,
                    bytes: r.get(1)?,
                })
            })
            .optional()?;
        if let Some(c) = chain {
            if best.as_ref().is_none_or(|(_, b)| c.depth < b.depth) {
                best = Some((p.clone(), c));
            }
        }
    }
    Ok(best)
}

fn corrupt(rev: &str, why: &str) -> NoteError {
    NoteError::Corrupt(format!("revision {rev}: {why}"))
}

/// Stored revision `rev` of note `note_id` in full, its body rebuilt and its id checked
/// against the rebuilt content (a mismatch is `Corrupt`, never a wrong text served). No
/// visibility filter: callers decide who may see it.
pub(crate) fn revision(conn: &Connection, note_id: &str, rev: &str) -> Result<Revision, NoteError> {
    let row = conn
        .prepare_cached(
            "SELECT parents, gen, hlc_wall, hlc_logical, hlc_node, title, tags, visibility,
                    deleted, author
             FROM note_revisions WHERE rev = ?1",
        )?
        .query_row([rev], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, i64>(1)?),
                (
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                ),
                (
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                ),
                (r.get::<_, bool>(8)?, r.get::<_, String>(9)?),
            ))
        })
        .optional()?
        .ok_or_else(|| NoteError::RevisionNotFound(rev.to_string()))?;
    let ((parents, gen), (wall, logical, node), (title, tags, vis), (deleted, author)) = row;
    let out = Revision {
        note_id: note_id.to_string(),
        rev: rev.to_string(),
        parents: read::parse_tags(&parents)?,
        gen: read::to_u64(gen),
        hlc: Hlc::new(read::to_u64(wall), read::to_u32(logical), node),
        content: Content {
            title,
            body: body(conn, rev)?,
            tags: read::parse_tags(&tags)?,
            visibility: read::parse_visibility(&vis)?,
        },
        deleted,
        author,
    };
    if out.compute_rev() != rev {
        return Err(corrupt(rev, "its content does not hash to its id"));
    }
    Ok(out)
}
