//! Community notes, the domain layer: notes as trees of immutable, content-addressed revisions
//! (sync-ready, see `../shared/DESIGN.md` "Notes and sync"), the current note as the
//! deterministic winner of its leaves, conflicts kept and resolvable, full-text search, tags,
//! a per-note event log and analytics. Plain blocking code over a `rusqlite::Connection`; the
//! HTTP layer calls it inside `Db::call`. Knows nothing of HTTP.
//!
//! Invariants:
//! - a private note is visible only to its owner: every read takes the viewer's user id and
//!   filters inside the SQL (search, listing, tags, analytics, revisions, events);
//! - revisions are immutable and idempotent to store (`put_revision` of a known rev is a no-op);
//! - the winner is a pure function of the stored revisions (`tree`), never of arrival order;
//! - only public notes leave the node (`feed`): a private revision of a published note goes
//!   out as a stub, a never-public note not at all.

mod apply;
mod automerge;
pub mod feed;
pub mod hlc;
pub mod markdown;
pub mod merge;
pub mod model;
mod read;
pub mod revcodec;
mod revstore;
mod rows;
mod search;
mod snippet;
mod stats;
mod store;
pub mod tree;

#[cfg(test)]
mod apply_tests;
#[cfg(test)]
mod feed_tests;
#[cfg(test)]
mod revstore_tests;
#[cfg(test)]
mod search_tests;
#[cfg(test)]
mod stats_tests;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod sync_tests;
#[cfg(test)]
pub(crate) mod testutil;

pub use apply::{Applied, Cursor};
pub use automerge::AUTO_MERGE_AUTHOR;
pub use feed::{Change, ChangesPage, Stub, WireRev};
pub use hlc::{Clock, Hlc};
pub use merge::MergeConflict;
pub use model::{Author, Changes, Content, Limits, Revision, Visibility};
pub use read::{Contributor, Event, EventKind, Note, RevisionInfo};
pub use rows::Admit;
pub use search::{fts_query, Fragment, SearchHit, SearchPage, SearchQuery};
pub use stats::{Analytics, DayCount, NoteCount, TagCount};
pub use store::{NotesStore, PutOutcome, DEFAULT_SYNC_MAX_SKEW_MS};

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// No such note, or one the viewer may not see (private notes look missing).
    #[error("note not found")]
    NotFound,
    #[error("revision {0} not found")]
    RevisionNotFound(String),
    /// The edit was based on a revision that is no longer the current one.
    #[error("stale revision: the current revision is {current_rev}")]
    Stale { current_rev: String },
    #[error("the note is deleted; restore it first")]
    Deleted,
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{field}: longer than {max}")]
    TooLong { field: &'static str, max: usize },
    #[error("{0}")]
    Forbidden(&'static str),
    /// A revision from elsewhere that does not check out (hash, parents, limits).
    #[error("bad revision: {0}")]
    BadRevision(String),
    /// An automatic merge found edits that overlap; a person has to resolve them.
    #[error("edits overlap in {}", fields.join(", "))]
    MergeConflict { fields: Vec<&'static str> },
    #[error("corrupt notes data: {0}")]
    Corrupt(String),
    /// Over the writer's notes quota (judged by `app::quota`, the message names the limit).
    #[error("{0}")]
    QuotaExceeded(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for NoteError {
    fn from(e: rusqlite::Error) -> Self {
        NoteError::Db(DbError::Sql(e))
    }
}

impl From<MergeConflict> for NoteError {
    fn from(c: MergeConflict) -> Self {
        NoteError::MergeConflict { fields: c.fields }
    }
}

/// Whose private notes a read may see. People read as a user or as nobody
/// (`Option<i64>` converts): public notes and their own private ones. `Everything` is for the
/// offline `streamhub notes export`, which must write every note — a private note whose owner
/// was deleted has no owner (`ON DELETE SET NULL`), so no user matches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    User(Option<i64>),
    Everything,
}

impl From<Option<i64>> for Viewer {
    fn from(user: Option<i64>) -> Self {
        Viewer::User(user)
    }
}

impl Viewer {
    /// The user id bound in `owner_id = ?` (none for `Everything`).
    pub(crate) fn user(self) -> Option<i64> {
        match self {
            Viewer::User(u) => u,
            Viewer::Everything => None,
        }
    }

    /// Bound in `OR ?`: true lifts the private-note filter.
    pub(crate) fn all(self) -> bool {
        self == Viewer::Everything
    }
}
