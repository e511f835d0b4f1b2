//! `NotesStore` reads of one note: the note with its conflicts and contributors, its history,
//! one revision, its event log, as domain values (`http::wire::notes` is their JSON). Every query
//! takes the viewer and filters private notes inside the SQL (`visibility = 'public' OR
//! owner_id = viewer`); a non-owner also never sees a revision that was itself private, and
//! nobody sees a stub (a peer's private revision: bookkeeping without content, migration
//! 0015), not even `Viewer::Everything` — so `streamhub notes export` never writes one.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::hlc::Hlc;
use super::model::{Author, Revision, Visibility};
use super::revstore;
use super::rows::{append_event, current, leaves, rank};
use super::store::NotesStore;
use super::{NoteError, Viewer};

/// The current state of a note.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub id: String,
    /// The current (winning) revision: what an edit must name as its base.
    pub rev: String,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub visibility: Visibility,
    pub deleted: bool,
    /// Author of the current revision.
    pub author: String,
    /// Stamp of the current revision.
    pub updated: Hlc,
    /// Local times (ms since the epoch): first stored here, current revision last changed.
    pub created_at: i64,
    pub changed_at: i64,
    /// The other leaves, best first: concurrent versions nobody has resolved yet.
    pub conflicts: Vec<String>,
    pub contributors: Vec<Contributor>,
    pub views: i64,
    pub edits: i64,
    /// Local owner (creator); `None` for notes that came from another node.
    pub owner_id: Option<i64>,
    /// The owner's name: the only one who may change visibility.
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contributor {
    pub name: String,
    pub revisions: i64,
}

/// A revision in a note's history (without the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionInfo {
    pub rev: String,
    pub parents: Vec<String>,
    pub gen: u64,
    pub hlc: Hlc,
    pub title: String,
    pub visibility: Visibility,
    pub deleted: bool,
    pub author: String,
    /// No stored revision has it as a parent.
    pub leaf: bool,
    /// It is the note's current revision.
    pub current: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Created,
    Edited,
    Restored,
    Deleted,
    Viewed,
    Conflict,
    Resolved,
    SyncedIn,
    SyncedOut,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::Created,
        EventKind::Edited,
        EventKind::Restored,
        EventKind::Deleted,
        EventKind::Viewed,
        EventKind::Conflict,
        EventKind::Resolved,
        EventKind::SyncedIn,
        EventKind::SyncedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Edited => "edited",
            EventKind::Restored => "restored",
            EventKind::Deleted => "deleted",
            EventKind::Viewed => "viewed",
            EventKind::Conflict => "conflict",
            EventKind::Resolved => "resolved",
            EventKind::SyncedIn => "synced_in",
            EventKind::SyncedOut => "synced_out",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub kind: EventKind,
    pub rev: Option<String>,
    /// The user's name (or the remote author for synced-in revisions).
    pub actor: Option<String>,
    /// Local time, ms since the epoch.
    pub at: i64,
}

impl NotesStore {
    /// The note, if `viewer` may see it (deleted notes too: `deleted` says so). Read-only.
    pub fn get(
        &self,
        conn: &Connection,
        note_id: &str,
        viewer: impl Into<Viewer>,
    ) -> Result<Note, NoteError> {
        load_note(conn, note_id, viewer)
    }

    /// `get`, and a `viewed` event in the log (a write: counts towards "most viewed").
    pub fn view(
        &self,
        conn: &mut Connection,
        note_id: &str,
        viewer: Option<&Author>,
    ) -> Result<Note, NoteError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let note = load_note(&tx, note_id, viewer.map(|a| a.id))?;
        let nid: i64 = tx.query_row("SELECT nid FROM notes WHERE id = ?1", [note_id], |r| {
            r.get(0)
        })?;
        let actor = viewer.map(|a| a.name.as_str());
        append_event(
            &tx,
            nid,
            EventKind::Viewed,
            Some(&note.rev),
            actor,
            self.now_ms(),
        )?;
        tx.commit()?;
        Ok(note)
    }

    /// The history of a note, newest generation first.
    pub fn revisions(
        &self,
        conn: &Connection,
        note_id: &str,
        viewer: impl Into<Viewer>,
    ) -> Result<Vec<RevisionInfo>, NoteError> {
        let viewer = viewer.into();
        let cur = current(conn, note_id, viewer)?;
        let mut st = conn.prepare(
            "SELECT r.rev, r.parents, r.gen, r.hlc_wall, r.hlc_logical, r.hlc_node, r.title,
                    r.visibility, r.deleted, r.author,
                    NOT EXISTS (SELECT 1 FROM note_parents p WHERE p.parent = r.rev)
             FROM note_revisions r JOIN notes n ON n.nid = r.note
             WHERE r.note = ?1 AND r.stub = 0
               AND (r.visibility = 'public' OR n.owner_id = ?2 OR ?3)
             ORDER BY r.gen DESC, r.hlc_wall DESC, r.hlc_logical DESC, r.hlc_node DESC, r.rev DESC",
        )?;
        let rows = st.query_map(params![cur.nid, viewer.user(), viewer.all()], |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ),
                (
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                ),
                (
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, bool>(8)?,
                ),
                (r.get::<_, String>(9)?, r.get::<_, bool>(10)?),
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let ((rev, parents, gen), (wall, logical, node), (title, vis, deleted), (author, leaf)) =
                row?;
            out.push(RevisionInfo {
                current: rev == cur.rev,
                rev,
                parents: parse_list(&parents)?,
                gen: to_u64(gen),
                hlc: Hlc::new(to_u64(wall), to_u32(logical), node),
                title,
                visibility: parse_visibility(&vis)?,
                deleted,
                author,
                leaf,
            });
        }
        Ok(out)
    }

    /// One revision, in full.
    pub fn revision(
        &self,
        conn: &Connection,
        note_id: &str,
        rev: &str,
        viewer: impl Into<Viewer>,
    ) -> Result<Revision, NoteError> {
        load_revision(conn, note_id, rev, viewer)
    }

    /// The note's event log, newest first: at most `limit` events older than `before` (an
    /// event id, for paging).
    pub fn events(
        &self,
        conn: &Connection,
        note_id: &str,
        viewer: Option<i64>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Event>, NoteError> {
        let cur = current(conn, note_id, viewer)?;
        let mut st = conn.prepare(
            "SELECT id, kind, rev, actor, at FROM note_events
             WHERE note = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = st.query_map(
            params![cur.nid, before.unwrap_or(i64::MAX), limit.min(1000)],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, rev, actor, at) = row?;
            let kind = EventKind::parse(&kind)
                .ok_or_else(|| NoteError::Corrupt(format!("unknown event kind {kind}")))?;
            out.push(Event {
                id,
                kind,
                rev,
                actor,
                at,
            });
        }
        Ok(out)
    }

    /// Distinct authors of the note's revisions, in order of first contribution.
    pub fn contributors(
        &self,
        conn: &Connection,
        note_id: &str,
        viewer: Option<i64>,
    ) -> Result<Vec<Contributor>, NoteError> {
        contributors(conn, note_id, viewer.into())
    }
}

pub(crate) fn load_note(
    conn: &Connection,
    note_id: &str,
    viewer: impl Into<Viewer>,
) -> Result<Note, NoteError> {
    let viewer = viewer.into();
    let row = conn
        .query_row(
            "SELECT nid, rev, title, body, tags, visibility, deleted, author,
                    hlc_wall, hlc_logical, hlc_node, created_at, changed_at, views, edits, owner_id,
                    (SELECT name FROM users WHERE id = notes.owner_id)
             FROM notes WHERE id = ?1 AND (visibility = 'public' OR owner_id = ?2 OR ?3)",
            params![note_id, viewer.user(), viewer.all()],
            |r| {
                Ok((
                    (
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ),
                    (
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                    ),
                    (r.get::<_, bool>(6)?, r.get::<_, String>(7)?),
                    (
                        r.get::<_, i64>(8)?,
                        r.get::<_, i64>(9)?,
                        r.get::<_, String>(10)?,
                    ),
                    (r.get::<_, i64>(11)?, r.get::<_, i64>(12)?),
                    (
                        r.get::<_, i64>(13)?,
                        r.get::<_, i64>(14)?,
                        r.get::<_, Option<i64>>(15)?,
                        r.get::<_, Option<String>>(16)?,
                    ),
                ))
            },
        )
        .optional()?
        .ok_or(NoteError::NotFound)?;
    let (
        (nid, rev, title),
        (body, tags, vis),
        (deleted, author),
        (wall, logical, node),
        (created_at, changed_at),
        (views, edits, owner_id, owner),
    ) = row;
    let all = leaves(conn, nid)?;
    let conflicts = rank(&all)
        .map(|(_, c)| c.into_iter().map(|l| l.rev.clone()).collect())
        .unwrap_or_default();
    Ok(Note {
        id: note_id.to_string(),
        rev,
        title,
        body,
        tags: parse_tags(&tags)?,
        visibility: parse_visibility(&vis)?,
        deleted,
        author,
        updated: Hlc::new(to_u64(wall), to_u32(logical), node),
        created_at,
        changed_at,
        conflicts,
        contributors: contributors(conn, note_id, viewer)?,
        views,
        edits,
        owner_id,
        owner,
    })
}

fn contributors(
    conn: &Connection,
    note_id: &str,
    viewer: Viewer,
) -> Result<Vec<Contributor>, NoteError> {
    let cur = current(conn, note_id, viewer)?;
    let mut st = conn.prepare_cached(
        "SELECT r.author, count(*) FROM note_revisions r JOIN notes n ON n.nid = r.note
         WHERE r.note = ?1 AND (r.visibility = 'public' OR n.owner_id = ?2 OR ?3)
         GROUP BY r.author ORDER BY min(r.seq)",
    )?;
    let rows = st.query_map(params![cur.nid, viewer.user(), viewer.all()], |r| {
        Ok(Contributor {
            name: r.get(0)?,
            revisions: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One revision the viewer may see (a non-owner never sees a private revision), through
/// `revstore::revision`: its body rebuilt and its id checked.
pub(crate) fn load_revision(
    conn: &Connection,
    note_id: &str,
    rev: &str,
    viewer: impl Into<Viewer>,
) -> Result<Revision, NoteError> {
    let viewer = viewer.into();
    let cur = current(conn, note_id, viewer)?;
    let visible = conn
        .query_row(
            "SELECT 1 FROM note_revisions r JOIN notes n ON n.nid = r.note
             WHERE r.rev = ?1 AND r.note = ?2 AND r.stub = 0
               AND (r.visibility = 'public' OR n.owner_id = ?3 OR ?4)",
            params![rev, cur.nid, viewer.user(), viewer.all()],
            |_| Ok(()),
        )
        .optional()?;
    if visible.is_none() {
        return Err(NoteError::RevisionNotFound(rev.to_string()));
    }
    revstore::revision(conn, note_id, rev)
}

/// The note's revision graph: rev → (generation, parents).
pub(crate) fn graph(
    conn: &Connection,
    nid: i64,
) -> Result<HashMap<String, (u64, Vec<String>)>, NoteError> {
    let mut st = conn.prepare("SELECT rev, gen, parents FROM note_revisions WHERE note = ?1")?;
    let rows = st.query_map([nid], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let (rev, gen, parents) = row?;
        out.insert(rev, (to_u64(gen), parse_list(&parents)?));
    }
    Ok(out)
}

pub(crate) fn parse_tags(json: &str) -> Result<Vec<String>, NoteError> {
    parse_list(json)
}

fn parse_list(json: &str) -> Result<Vec<String>, NoteError> {
    serde_json::from_str(json).map_err(|e| NoteError::Corrupt(format!("bad list {json:?}: {e}")))
}

pub(crate) fn parse_visibility(s: &str) -> Result<Visibility, NoteError> {
    Visibility::parse(s).ok_or_else(|| NoteError::Corrupt(format!("bad visibility {s:?}")))
}

/// Stored integers are written from u64/u32 values, so they fit; clamp rather than panic.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}
