//! Row-level helpers under `NotesStore`: the current revision of a note, its leaves and
//! their ranking, recomputing the winner into `notes`, inserting notes, revisions and
//! events, and the generation check for revisions from elsewhere. Each runs inside the
//! caller's transaction.

use rusqlite::{params, Connection, OptionalExtension};

use super::hlc::Hlc;
use super::model::{Author, Content, Revision, Visibility};
use super::read::{self, EventKind};
use super::revcodec;
use super::revstore::{self, Known};
use super::{tree, NoteError, Viewer};

/// The current (winning) revision of a note the viewer may see.
pub(crate) struct Current {
    pub nid: i64,
    pub note_id: String,
    pub owner_id: Option<i64>,
    pub rev: String,
    pub gen: u64,
    pub hlc: Hlc,
    pub content: Content,
    pub deleted: bool,
}

impl Current {
    pub(crate) fn expect_base(&self, base_rev: &str) -> Result<(), NoteError> {
        if self.rev == base_rev {
            Ok(())
        } else {
            Err(NoteError::Stale {
                current_rev: self.rev.clone(),
            })
        }
    }

    /// Only the owner may change who can see a note (a member must not hide a shared note).
    pub(crate) fn check_visibility_change(
        &self,
        new: &Content,
        author: &Author,
    ) -> Result<(), NoteError> {
        if new.visibility != self.content.visibility && self.owner_id != Some(author.id) {
            return Err(NoteError::Forbidden(
                "only the owner may change a note's visibility",
            ));
        }
        Ok(())
    }
}

/// The current revision of a note that an edit based on `base_rev` may build on: still the
/// current one, and not a tombstone (restore first).
pub(crate) fn editable(
    conn: &Connection,
    note_id: &str,
    base_rev: &str,
    author: &Author,
) -> Result<Current, NoteError> {
    let cur = current(conn, note_id, Some(author.id))?;
    cur.expect_base(base_rev)?;
    if cur.deleted {
        return Err(NoteError::Deleted);
    }
    Ok(cur)
}

pub(crate) fn current(
    conn: &Connection,
    note_id: &str,
    viewer: impl Into<Viewer>,
) -> Result<Current, NoteError> {
    let viewer = viewer.into();
    let row = conn
        .query_row(
            "SELECT n.nid, n.owner_id, n.rev, r.gen, n.hlc_wall, n.hlc_logical, n.hlc_node,
                    n.title, n.body, n.tags, n.visibility, n.deleted
             FROM notes n JOIN note_revisions r ON r.rev = n.rev
             WHERE n.id = ?1 AND (n.visibility = 'public' OR n.owner_id = ?2 OR ?3)",
            params![note_id, viewer.user(), viewer.all()],
            |r| {
                Ok((
                    (
                        r.get::<_, i64>(0)?,
                        r.get(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ),
                    (
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, String>(6)?,
                    ),
                    (
                        r.get::<_, String>(7)?,
                        r.get::<_, String>(8)?,
                        r.get::<_, String>(9)?,
                    ),
                    (r.get::<_, String>(10)?, r.get::<_, bool>(11)?),
                ))
            },
        )
        .optional()?
        .ok_or(NoteError::NotFound)?;
    let ((nid, owner_id, rev, gen), (wall, logical, node), (title, body, tags), (vis, deleted)) =
        row;
    Ok(Current {
        nid,
        note_id: note_id.to_string(),
        owner_id,
        rev,
        gen: read::to_u64(gen),
        hlc: Hlc::new(read::to_u64(wall), read::to_u32(logical), node),
        content: Content {
            title,
            body,
            tags: read::parse_tags(&tags)?,
            visibility: read::parse_visibility(&vis)?,
        },
        deleted,
    })
}

/// A leaf of a note's revision tree, with what the winner rule needs.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub rev: String,
    pub gen: u64,
    pub hlc: Hlc,
    pub deleted: bool,
    /// Known only as a stub (a peer's private revision: no content here).
    pub stub: bool,
}

pub(crate) fn leaves(conn: &Connection, nid: i64) -> Result<Vec<Leaf>, NoteError> {
    let mut st = conn.prepare_cached(
        "SELECT rev, gen, hlc_wall, hlc_logical, hlc_node, deleted, stub FROM note_revisions r
         WHERE note = ?1 AND NOT EXISTS (SELECT 1 FROM note_parents p WHERE p.parent = r.rev)",
    )?;
    let rows = st.query_map([nid], |r| {
        Ok(Leaf {
            rev: r.get(0)?,
            gen: read::to_u64(r.get(1)?),
            hlc: Hlc::new(
                read::to_u64(r.get(2)?),
                read::to_u32(r.get(3)?),
                r.get::<_, String>(4)?,
            ),
            deleted: r.get(5)?,
            stub: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The winner and the conflicts, best first.
pub(crate) fn rank(leaves: &[Leaf]) -> Option<(&Leaf, Vec<&Leaf>)> {
    let cands: Vec<tree::Candidate<'_>> = leaves
        .iter()
        .map(|l| tree::Candidate {
            rev: &l.rev,
            gen: l.gen,
            hlc: &l.hlc,
            deleted: l.deleted,
        })
        .collect();
    let choice = tree::choose(&cands)?;
    Some((
        &leaves[choice.winner],
        choice.conflicts.iter().map(|&i| &leaves[i]).collect(),
    ))
}

/// The leaves named in `revs`, each of which must be a conflict of `cur`.
pub(crate) fn conflict_leaves(
    conn: &Connection,
    cur: &Current,
    revs: &[String],
) -> Result<Vec<Leaf>, NoteError> {
    if revs.is_empty() {
        return Err(NoteError::Invalid {
            field: "resolves",
            reason: "name at least one conflicting revision".into(),
        });
    }
    let all = leaves(conn, cur.nid)?;
    revs.iter()
        .map(|r| {
            all.iter()
                .find(|l| &l.rev == r && l.rev != cur.rev)
                .cloned()
                .ok_or_else(|| NoteError::Invalid {
                    field: "resolves",
                    reason: format!("{r} is not a conflicting revision of this note"),
                })
        })
        .collect()
}

/// Recomputes the winner of note `nid` into `notes`; returns the number of leaves. `fresh`
/// is a revision the caller has in hand (the one just stored): when it wins, its text is
/// not rebuilt from storage.
pub(crate) fn refresh(
    conn: &Connection,
    nid: i64,
    now: i64,
    fresh: Option<&Revision>,
) -> Result<usize, NoteError> {
    let all = leaves(conn, nid)?;
    let (winner, conflicts) =
        rank(&all).ok_or_else(|| NoteError::Corrupt(format!("note {nid} has no revisions")))?;
    let (note_id, shown): (String, String) =
        conn.query_row("SELECT id, rev FROM notes WHERE nid = ?1", [nid], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    if shown == winner.rev {
        conn.execute(
            "UPDATE notes SET conflicts = ?1 WHERE nid = ?2 AND conflicts != ?1",
            params![conflicts.len() as i64, nid],
        )?;
        return Ok(all.len());
    }
    let loaded;
    let win = match fresh.filter(|r| r.rev == winner.rev) {
        Some(r) => r,
        // A stub has no content to rebuild: the note shows its placeholder (private, no
        // local owner: hidden from everyone — the "unpublished" marker).
        None if winner.stub => {
            loaded = stub_placeholder(
                &note_id,
                &winner.rev,
                winner.gen,
                &winner.hlc,
                winner.deleted,
            );
            &loaded
        }
        None => {
            loaded = revstore::revision(conn, &note_id, &winner.rev)?;
            &loaded
        }
    };
    conn.execute(
        "UPDATE notes SET (rev, title, body, tags, visibility, deleted, author,
                           hlc_wall, hlc_logical, hlc_node, conflicts, changed_at) =
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         WHERE nid = ?13",
        params![
            win.rev,
            win.content.title,
            win.content.body,
            tags_json(&win.content.tags)?,
            win.content.visibility.as_str(),
            win.deleted,
            win.author,
            i64::try_from(win.hlc.wall_ms).unwrap_or(i64::MAX),
            i64::from(win.hlc.logical),
            win.hlc.node,
            conflicts.len() as i64,
            now,
            nid,
        ],
    )?;
    Ok(all.len())
}

/// A revision from elsewhere must fit the generations of the revisions it touches.
pub(crate) fn check_generation(conn: &Connection, rev: &Revision) -> Result<(), NoteError> {
    let mut present = 0usize;
    let mut max_parent = 0u64;
    for p in &rev.parents {
        let row: Option<(String, i64)> = conn
            .query_row(
                "SELECT n.id, r.gen FROM note_revisions r JOIN notes n ON n.nid = r.note
                 WHERE r.rev = ?1",
                [p],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((note, gen)) = row {
            if note != rev.note_id {
                return Err(NoteError::BadRevision(
                    "a parent belongs to another note".into(),
                ));
            }
            present += 1;
            max_parent = max_parent.max(read::to_u64(gen));
        }
    }
    let children_min: Option<i64> = conn.query_row(
        "SELECT min(r.gen) FROM note_parents p JOIN note_revisions r ON r.rev = p.child
         WHERE p.parent = ?1",
        [&rev.rev],
        |r| r.get(0),
    )?;
    let fits_parents = if present == rev.parents.len() {
        rev.gen == max_parent + 1
    } else {
        rev.gen > max_parent
    };
    let fits_children = children_min.is_none_or(|c| read::to_u64(c) > rev.gen);
    if fits_parents && fits_children {
        Ok(())
    } else {
        Err(NoteError::BadRevision(
            "generation does not fit its parents".into(),
        ))
    }
}

pub(crate) fn insert_note_row(
    conn: &Connection,
    rev: &Revision,
    owner: Option<i64>,
    now: i64,
) -> Result<i64, NoteError> {
    conn.execute(
        "INSERT INTO notes (id, owner_id, rev, title, body, tags, visibility, deleted, author,
                            hlc_wall, hlc_logical, hlc_node, created_at, changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
        params![
            rev.note_id,
            owner,
            rev.rev,
            rev.content.title,
            rev.content.body,
            tags_json(&rev.content.tags)?,
            rev.content.visibility.as_str(),
            rev.deleted,
            rev.author,
            i64::try_from(rev.hlc.wall_ms).unwrap_or(i64::MAX),
            i64::from(rev.hlc.logical),
            rev.hlc.node,
            now,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Judges the bytes a new revision's row will take (title, tags, stored body) before it is
/// written, inside the write's transaction: the `notes_bytes` quota (`app::quota`).
pub type Admit<'a> = &'a dyn Fn(&Connection, u64) -> Result<(), NoteError>;

/// Admits every revision (sync, import, and the edits no quota judges).
pub(crate) fn admit_all(_: &Connection, _: u64) -> Result<(), NoteError> {
    Ok(())
}

/// Stores `rev` (a no-op when known), its body in the form `revstore::encode` picks;
/// `known` is a parent whose body the caller has in hand.
pub(crate) fn insert_revision(
    conn: &Connection,
    nid: i64,
    rev: &Revision,
    author_id: Option<i64>,
    now: i64,
    known: Option<Known<'_>>,
    admit: Admit<'_>,
) -> Result<(), NoteError> {
    let stored = revstore::encode(conn, rev, known)?;
    let tags = tags_json(&rev.content.tags)?;
    let bytes = stored.bytes(&rev.content.title, &tags);
    admit(conn, bytes)?;
    let n = conn.execute(
        "INSERT INTO note_revisions (note, rev, parents, gen, hlc_wall, hlc_logical, hlc_node,
             title, body, tags, visibility, deleted, author_id, author, received_at,
             body_form, body_base, body_depth, body_chain, stored_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                 ?16, ?17, ?18, ?19, ?20)
         ON CONFLICT (rev) DO NOTHING",
        params![
            nid,
            rev.rev,
            serde_json::to_string(&rev.parents).map_err(|e| NoteError::Corrupt(e.to_string()))?,
            i64::try_from(rev.gen).unwrap_or(i64::MAX),
            i64::try_from(rev.hlc.wall_ms).unwrap_or(i64::MAX),
            i64::from(rev.hlc.logical),
            rev.hlc.node,
            rev.content.title,
            stored.enc.data,
            tags,
            rev.content.visibility.as_str(),
            rev.deleted,
            author_id,
            rev.author,
            now,
            stored.enc.form as i64,
            stored.base,
            stored.depth,
            stored.chain,
            i64::try_from(bytes).unwrap_or(i64::MAX),
        ],
    )?;
    if n == 1 {
        link_parents(conn, rev)?;
    }
    Ok(())
}

/// What a stub's row holds: the bookkeeping it carries, an empty private content, no author.
/// Its `rev` is not the hash of this content; nothing checks it (stubs are never rebuilt).
pub(crate) fn stub_placeholder(
    note_id: &str,
    rev: &str,
    gen: u64,
    hlc: &Hlc,
    deleted: bool,
) -> Revision {
    Revision {
        note_id: note_id.to_string(),
        rev: rev.to_string(),
        parents: Vec::new(),
        gen,
        hlc: hlc.clone(),
        content: Content {
            title: String::new(),
            body: String::new(),
            tags: Vec::new(),
            visibility: Visibility::Private,
        },
        deleted,
        author: String::new(),
    }
}

/// Stores a stub (`placeholder` from `stub_placeholder`, with its parents): an empty
/// keyframe body, `stub = 1`, no author. A no-op when the rev is known.
pub(crate) fn insert_stub(
    conn: &Connection,
    nid: i64,
    placeholder: &Revision,
    now: i64,
) -> Result<(), NoteError> {
    let enc = revcodec::full("");
    let chain = i64::try_from(enc.data.len()).unwrap_or(i64::MAX);
    let n = conn.execute(
        "INSERT INTO note_revisions (note, rev, parents, gen, hlc_wall, hlc_logical, hlc_node,
             title, body, tags, visibility, deleted, author_id, author, received_at,
             body_form, body_base, body_depth, body_chain, stored_bytes, stub)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '', ?8, '[]', 'private', ?9, NULL, '', ?10,
                 ?11, NULL, 0, ?12, ?12 + 2, 1)
         ON CONFLICT (rev) DO NOTHING",
        params![
            nid,
            placeholder.rev,
            serde_json::to_string(&placeholder.parents)
                .map_err(|e| NoteError::Corrupt(e.to_string()))?,
            i64::try_from(placeholder.gen).unwrap_or(i64::MAX),
            i64::try_from(placeholder.hlc.wall_ms).unwrap_or(i64::MAX),
            i64::from(placeholder.hlc.logical),
            placeholder.hlc.node,
            enc.data,
            placeholder.deleted,
            now,
            enc.form as i64,
            chain,
        ],
    )?;
    if n == 1 {
        link_parents(conn, placeholder)?;
    }
    Ok(())
}

fn link_parents(conn: &Connection, rev: &Revision) -> Result<(), NoteError> {
    let mut st =
        conn.prepare_cached("INSERT OR IGNORE INTO note_parents (parent, child) VALUES (?1, ?2)")?;
    for p in &rev.parents {
        st.execute(params![p, rev.rev])?;
    }
    Ok(())
}

pub(crate) fn tags_json(tags: &[String]) -> Result<String, NoteError> {
    serde_json::to_string(tags).map_err(|e| NoteError::Corrupt(e.to_string()))
}

pub(crate) fn append_event(
    conn: &Connection,
    nid: i64,
    kind: EventKind,
    rev: Option<&str>,
    actor: Option<&str>,
    at: i64,
) -> Result<(), NoteError> {
    conn.prepare_cached(
        "INSERT INTO note_events (note, kind, rev, actor, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![nid, kind.as_str(), rev, actor, at])?;
    Ok(())
}
