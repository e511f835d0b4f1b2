//! Tag counts and analytics, read from the counter tables the schema's triggers maintain
//! (`tag_counts`, `contributor_counts`, `note_daily`, `note_searches`) and from the
//! `views`/`edits` columns of `notes` through their partial indexes, so the cost follows the
//! number of tags, authors, days and `top`, not the number of notes. Counters are kept per
//! visibility scope (see `src/db/migrations/0002_notes.sql`); a reader sees
//! `scope IN (0, viewer)`.

use rusqlite::{params, Connection};

use super::read::Contributor;
use super::store::NotesStore;
use super::NoteError;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCount {
    pub tag: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// An `EventKind` name.
    pub kind: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteCount {
    pub id: String,
    pub title: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analytics {
    pub days: u32,
    pub events_per_day: Vec<DayCount>,
    pub most_viewed: Vec<NoteCount>,
    pub most_edited: Vec<NoteCount>,
    pub top_tags: Vec<TagCount>,
    pub top_contributors: Vec<Contributor>,
    /// Searches counted by `record_search` in the last `days` days.
    pub searches: i64,
}

impl NotesStore {
    /// Tags of the current notes `viewer` may see, most used first.
    pub fn tags(&self, conn: &Connection, viewer: Option<i64>) -> Result<Vec<TagCount>, NoteError> {
        tag_counts(conn, viewer, u32::MAX)
    }

    /// Counts one search (today) for analytics. A write; the HTTP layer decides when.
    pub fn record_search(&self, conn: &Connection) -> Result<(), NoteError> {
        conn.execute(
            "INSERT INTO note_searches (day, n) VALUES (?1, 1)
             ON CONFLICT (day) DO UPDATE SET n = n + 1",
            [self.now_ms() / DAY_MS],
        )?;
        Ok(())
    }

    /// Activity over the last `days` days (today included) and the `top` notes, tags and
    /// contributors, as `viewer` may see them.
    pub fn analytics(
        &self,
        conn: &Connection,
        viewer: Option<i64>,
        days: u32,
        top: u32,
    ) -> Result<Analytics, NoteError> {
        let days = days.clamp(1, 3660);
        let top = top.clamp(1, 100);
        let first_day = self.now_ms() / DAY_MS - i64::from(days) + 1;

        // note_daily PK (day, scope, kind): a range over day.
        let mut st = conn.prepare_cached(
            "SELECT date(day * 86400, 'unixepoch'), kind, sum(n) FROM note_daily
             WHERE day >= ?1 AND scope IN (0, ?2) GROUP BY day, kind ORDER BY day, kind",
        )?;
        let events_per_day = st
            .query_map(params![first_day, viewer], |r| {
                Ok(DayCount {
                    day: r.get(0)?,
                    kind: r.get(1)?,
                    count: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;

        // contributor_counts PK (scope, author).
        let mut st = conn.prepare_cached(
            "SELECT author, sum(n) AS c FROM contributor_counts WHERE scope IN (0, ?1)
             GROUP BY author ORDER BY c DESC, author LIMIT ?2",
        )?;
        let top_contributors = st
            .query_map(params![viewer, top], |r| {
                Ok(Contributor {
                    name: r.get(0)?,
                    revisions: r.get(1)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;

        let searches: i64 = conn.query_row(
            "SELECT coalesce(sum(n), 0) FROM note_searches WHERE day >= ?1",
            [first_day],
            |r| r.get(0),
        )?;

        Ok(Analytics {
            days,
            events_per_day,
            most_viewed: most(conn, viewer, top, MostBy::Views)?,
            most_edited: most(conn, viewer, top, MostBy::Edits)?,
            top_tags: tag_counts(conn, viewer, top)?,
            top_contributors,
            searches,
        })
    }
}

#[derive(Clone, Copy)]
enum MostBy {
    Views,
    Edits,
}

/// Served by the partial index `notes_views` / `notes_edits` (`deleted = 0`), walked from the
/// top; rows the viewer may not see are skipped until `top` are found.
fn most(
    conn: &Connection,
    viewer: Option<i64>,
    top: u32,
    by: MostBy,
) -> Result<Vec<NoteCount>, NoteError> {
    let sql = match by {
        MostBy::Views => {
            "SELECT id, title, views FROM notes
             WHERE deleted = 0 AND views > 0 AND (visibility = 'public' OR owner_id = ?1)
             ORDER BY views DESC LIMIT ?2"
        }
        MostBy::Edits => {
            "SELECT id, title, edits FROM notes
             WHERE deleted = 0 AND edits > 0 AND (visibility = 'public' OR owner_id = ?1)
             ORDER BY edits DESC LIMIT ?2"
        }
    };
    let mut st = conn.prepare_cached(sql)?;
    let rows = st.query_map(params![viewer, top], |r| {
        Ok(NoteCount {
            id: r.get(0)?,
            title: r.get(1)?,
            count: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// tag_counts PK (scope, tag): one range per scope, grouped.
fn tag_counts(
    conn: &Connection,
    viewer: Option<i64>,
    limit: u32,
) -> Result<Vec<TagCount>, NoteError> {
    let mut st = conn.prepare_cached(
        "SELECT tag, sum(n) AS c FROM tag_counts WHERE scope IN (0, ?1)
         GROUP BY tag HAVING c > 0 ORDER BY c DESC, tag LIMIT ?2",
    )?;
    let rows = st.query_map(params![viewer, i64::from(limit)], |r| {
        Ok(TagCount {
            tag: r.get(0)?,
            count: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The SQL of the analytics queries, for the query-plan test.
#[cfg(test)]
pub(crate) const PLANNED: &[(&str, &str)] = &[
    (
        "SELECT id, title, views FROM notes WHERE deleted = 0 AND views > 0 AND (visibility = 'public' OR owner_id = 1) ORDER BY views DESC LIMIT 10",
        "notes_views",
    ),
    (
        "SELECT id, title, edits FROM notes WHERE deleted = 0 AND edits > 0 AND (visibility = 'public' OR owner_id = 1) ORDER BY edits DESC LIMIT 10",
        "notes_edits",
    ),
    (
        "SELECT id FROM notes n WHERE n.deleted = 0 AND (n.visibility = 'public' OR n.owner_id = 1) ORDER BY n.changed_at DESC, n.nid DESC LIMIT 20",
        "notes_changed",
    ),
    (
        "SELECT day, kind, sum(n) FROM note_daily WHERE day >= 100 AND scope IN (0, 1) GROUP BY day, kind",
        "PRIMARY KEY",
    ),
    (
        "SELECT tag, sum(n) FROM tag_counts WHERE scope IN (0, 1) GROUP BY tag",
        "PRIMARY KEY",
    ),
    (
        "SELECT note FROM note_tags WHERE tag = 'x'",
        "PRIMARY KEY",
    ),
    (
        "SELECT note FROM note_revisions WHERE author = 'x' COLLATE NOCASE",
        "note_revisions_author",
    ),
];
