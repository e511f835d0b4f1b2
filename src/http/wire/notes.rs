//! Notes on the wire: the note (`ETag` is its `rev`), search pages, history, one revision,
//! the event log, tags and analytics — `notes`' domain values as `docs/CONTRACT.md` shows
//! them. Times are RFC 3339 (`wire::time`): a revision's time is its stamp's wall clock (the
//! HLC itself stays inside, for sync); visibility and event kinds go out as their names.

use serde::Serialize;

use super::time::from_millis;

use crate::notes::{
    Analytics, Contributor, DayCount, Event, Fragment, Note, NoteCount, Revision, RevisionInfo,
    SearchHit, SearchPage, TagCount,
};

/// A note: answers of create, get, update, delete, restore, resolve and merge (and the
/// `current` member of a 412).
#[derive(Debug, Serialize)]
pub struct NoteJson {
    pub id: String,
    pub rev: String,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub visibility: &'static str,
    pub deleted: bool,
    pub author: String,
    pub owner: Option<String>,
    pub updated: String,
    pub created_at: String,
    pub changed_at: String,
    pub conflicts: Vec<String>,
    pub contributors: Vec<ContributorJson>,
    pub views: i64,
    pub edits: i64,
}

impl From<&Note> for NoteJson {
    fn from(n: &Note) -> Self {
        NoteJson {
            id: n.id.clone(),
            rev: n.rev.clone(),
            title: n.title.clone(),
            body: n.body.clone(),
            tags: n.tags.clone(),
            visibility: n.visibility.as_str(),
            deleted: n.deleted,
            author: n.author.clone(),
            owner: n.owner.clone(),
            updated: hlc_time(&n.updated),
            created_at: from_millis(n.created_at),
            changed_at: from_millis(n.changed_at),
            conflicts: n.conflicts.clone(),
            contributors: n.contributors.iter().map(ContributorJson::from).collect(),
            views: n.views,
            edits: n.edits,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ContributorJson {
    pub name: String,
    pub revisions: i64,
}

impl From<&Contributor> for ContributorJson {
    fn from(c: &Contributor) -> Self {
        ContributorJson {
            name: c.name.clone(),
            revisions: c.revisions,
        }
    }
}

/// When a revision was made, by its author's clock (the wall part of its stamp).
fn hlc_time(h: &crate::notes::Hlc) -> String {
    from_millis(i64::try_from(h.wall_ms).unwrap_or(i64::MAX))
}

/// `GET /api/notes`: one page of search hits (or of the newest notes).
#[derive(Debug, Serialize)]
pub struct SearchPageJson {
    pub has_more: bool,
    pub items: Vec<SearchHitJson>,
    pub page: u32,
    pub per_page: u32,
}

impl From<&SearchPage> for SearchPageJson {
    fn from(p: &SearchPage) -> Self {
        SearchPageJson {
            has_more: p.has_more,
            items: p.items.iter().map(SearchHitJson::from).collect(),
            page: p.page,
            per_page: p.per_page,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SearchHitJson {
    pub author: String,
    pub changed_at: String,
    pub conflicts: i64,
    pub id: String,
    pub owner: Option<String>,
    pub rev: String,
    pub score: Option<f64>,
    pub snippet: Option<Vec<FragmentJson>>,
    pub tags: Vec<String>,
    pub title: String,
    pub updated: String,
    pub visibility: &'static str,
}

impl From<&SearchHit> for SearchHitJson {
    fn from(h: &SearchHit) -> Self {
        SearchHitJson {
            author: h.author.clone(),
            changed_at: from_millis(h.changed_at),
            conflicts: h.conflicts,
            id: h.id.clone(),
            owner: h.owner.clone(),
            rev: h.rev.clone(),
            score: h.score,
            snippet: h
                .snippet
                .as_ref()
                .map(|s| s.iter().map(FragmentJson::from).collect()),
            tags: h.tags.clone(),
            title: h.title.clone(),
            updated: hlc_time(&h.updated),
            visibility: h.visibility.as_str(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FragmentJson {
    pub hit: bool,
    pub text: String,
}

impl From<&Fragment> for FragmentJson {
    fn from(f: &Fragment) -> Self {
        FragmentJson {
            hit: f.hit,
            text: f.text.clone(),
        }
    }
}

/// `GET /api/notes/{id}/revisions`.
#[derive(Debug, Serialize)]
pub struct RevisionsJson {
    pub revisions: Vec<RevisionInfoJson>,
}

#[derive(Debug, Serialize)]
pub struct RevisionInfoJson {
    pub at: String,
    pub author: String,
    pub current: bool,
    pub deleted: bool,
    pub gen: u64,
    pub leaf: bool,
    pub parents: Vec<String>,
    pub rev: String,
    pub title: String,
    pub visibility: &'static str,
}

impl From<&RevisionInfo> for RevisionInfoJson {
    fn from(r: &RevisionInfo) -> Self {
        RevisionInfoJson {
            at: hlc_time(&r.hlc),
            author: r.author.clone(),
            current: r.current,
            deleted: r.deleted,
            gen: r.gen,
            leaf: r.leaf,
            parents: r.parents.clone(),
            rev: r.rev.clone(),
            title: r.title.clone(),
            visibility: r.visibility.as_str(),
        }
    }
}

/// `GET /api/notes/{id}/revisions/{rev}`: the full revision. Its own type rather than
/// `Revision`'s serde (the export format), so the two can evolve apart.
#[derive(Debug, Serialize)]
pub struct RevisionJson {
    pub at: String,
    pub author: String,
    pub body: String,
    pub deleted: bool,
    pub gen: u64,
    pub note_id: String,
    pub parents: Vec<String>,
    pub rev: String,
    pub tags: Vec<String>,
    pub title: String,
    pub visibility: &'static str,
}

impl From<&Revision> for RevisionJson {
    fn from(r: &Revision) -> Self {
        RevisionJson {
            at: hlc_time(&r.hlc),
            author: r.author.clone(),
            body: r.content.body.clone(),
            deleted: r.deleted,
            gen: r.gen,
            note_id: r.note_id.clone(),
            parents: r.parents.clone(),
            rev: r.rev.clone(),
            tags: r.content.tags.clone(),
            title: r.content.title.clone(),
            visibility: r.content.visibility.as_str(),
        }
    }
}

/// `GET /api/notes/{id}/events`.
#[derive(Debug, Serialize)]
pub struct EventsJson {
    pub events: Vec<EventJson>,
}

#[derive(Debug, Serialize)]
pub struct EventJson {
    pub actor: Option<String>,
    pub at: String,
    pub id: i64,
    pub kind: &'static str,
    pub rev: Option<String>,
}

impl From<&Event> for EventJson {
    fn from(e: &Event) -> Self {
        EventJson {
            actor: e.actor.clone(),
            at: from_millis(e.at),
            id: e.id,
            kind: e.kind.as_str(),
            rev: e.rev.clone(),
        }
    }
}

/// `GET /api/tags`.
#[derive(Debug, Serialize)]
pub struct TagsJson {
    pub tags: Vec<TagCountJson>,
}

#[derive(Debug, Serialize)]
pub struct TagCountJson {
    pub count: i64,
    pub tag: String,
}

impl From<&TagCount> for TagCountJson {
    fn from(t: &TagCount) -> Self {
        TagCountJson {
            count: t.count,
            tag: t.tag.clone(),
        }
    }
}

/// `GET /api/analytics`.
#[derive(Debug, Serialize)]
pub struct AnalyticsJson {
    pub days: u32,
    pub events_per_day: Vec<DayCountJson>,
    pub most_edited: Vec<NoteCountJson>,
    pub most_viewed: Vec<NoteCountJson>,
    pub searches: i64,
    pub top_contributors: Vec<ContributorJson>,
    pub top_tags: Vec<TagCountJson>,
}

impl From<&Analytics> for AnalyticsJson {
    fn from(a: &Analytics) -> Self {
        AnalyticsJson {
            days: a.days,
            events_per_day: a.events_per_day.iter().map(DayCountJson::from).collect(),
            most_edited: a.most_edited.iter().map(NoteCountJson::from).collect(),
            most_viewed: a.most_viewed.iter().map(NoteCountJson::from).collect(),
            searches: a.searches,
            top_contributors: a
                .top_contributors
                .iter()
                .map(ContributorJson::from)
                .collect(),
            top_tags: a.top_tags.iter().map(TagCountJson::from).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DayCountJson {
    pub count: i64,
    pub day: String,
    pub kind: String,
}

impl From<&DayCount> for DayCountJson {
    fn from(d: &DayCount) -> Self {
        DayCountJson {
            count: d.count,
            day: d.day.clone(),
            kind: d.kind.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct NoteCountJson {
    pub count: i64,
    pub id: String,
    pub title: String,
}

impl From<&NoteCount> for NoteCountJson {
    fn from(n: &NoteCount) -> Self {
        NoteCountJson {
            count: n.count,
            id: n.id.clone(),
            title: n.title.clone(),
        }
    }
}

#[cfg(test)]
#[path = "notes_tests.rs"]
mod tests;
