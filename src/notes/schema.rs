//! The notes schema as SQL migrations (appended, in order, to the numbered migrations of
//! `db`): the node id and clock, notes and their revision trees, the FTS5 index, tags, the
//! event log and the counters that keep analytics cheap. Triggers keep every derived table in
//! step with `notes`, so no Rust path can forget one.
//!
//! Visibility scopes: counters are kept per *scope*, `0` for public notes and the owner's user
//! id for private ones (`-1` when a private note has no local owner), so a reader's view is
//! `scope IN (0, viewer)` — a handful of rows, never a scan of notes.
//!
//! Which index serves which query:
//! - `notes.id` UNIQUE: every lookup by note id.
//! - `notes_changed (changed_at) WHERE deleted = 0`: the listing (no `q`), newest first.
//! - `notes_views`, `notes_edits` (partial, `deleted = 0`): most viewed / most edited; the
//!   planner walks the index backwards and stops after `top` visible rows.
//! - `notes_owner`: `ON DELETE SET NULL` when a user is deleted (and a user's own notes).
//! - `note_revisions.rev` UNIQUE: idempotent inserts, lookups by rev.
//! - `note_revisions_note (note, gen)`: a note's history and its leaves.
//! - `note_revisions_author (author COLLATE NOCASE, note)`: the search `author` filter and
//!   `contributors`.
//! - `note_revisions_author_id`: `ON DELETE SET NULL` when a user is deleted.
//! - `note_parents (parent, child)` PK: "has this revision a child?" (leaf test).
//! - `note_tags (tag, note)` PK: the tag filter; `note_tags_note`: re-tagging one note.
//! - `tag_counts (scope, tag)` PK: tag counts and top tags.
//! - `contributor_counts (scope, author)` PK: top contributors.
//! - `note_events_note (note, id)`: one note's event log, newest first.
//! - `note_daily (day, scope, kind)` PK: events per day (a range over `day`).
//! - `note_searches (day)` PK: search count.
//! - `notes_fts`: FTS5 with 2- and 3-character prefix indexes, so `stre*` is an index read.

/// The notes migrations, in order. Append-only, like the rest of `db`'s migrations.
pub const MIGRATIONS: &[&str] = &[NOTES, FTS, TAGS, EVENTS];

const NOTES: &str = "
CREATE TABLE node (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    id TEXT NOT NULL,
    hlc_wall INTEGER NOT NULL DEFAULT 0,
    hlc_logical INTEGER NOT NULL DEFAULT 0
);
INSERT INTO node (singleton, id) VALUES (1, lower(hex(randomblob(16))));

CREATE TABLE notes (
    nid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    rev TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    tags TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    deleted INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    author TEXT NOT NULL,
    hlc_wall INTEGER NOT NULL,
    hlc_logical INTEGER NOT NULL,
    hlc_node TEXT NOT NULL,
    conflicts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    views INTEGER NOT NULL DEFAULT 0,
    edits INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notes_changed ON notes(changed_at) WHERE deleted = 0;
CREATE INDEX notes_views ON notes(views) WHERE deleted = 0;
CREATE INDEX notes_edits ON notes(edits) WHERE deleted = 0;
CREATE INDEX notes_owner ON notes(owner_id) WHERE owner_id IS NOT NULL;

CREATE TABLE note_revisions (
    seq INTEGER PRIMARY KEY,
    note INTEGER NOT NULL REFERENCES notes(nid),
    rev TEXT NOT NULL UNIQUE,
    parents TEXT NOT NULL,
    gen INTEGER NOT NULL,
    hlc_wall INTEGER NOT NULL,
    hlc_logical INTEGER NOT NULL,
    hlc_node TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    tags TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    deleted INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    author_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    author TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX note_revisions_note ON note_revisions(note, gen);
CREATE INDEX note_revisions_author ON note_revisions(author COLLATE NOCASE, note);
CREATE INDEX note_revisions_author_id ON note_revisions(author_id) WHERE author_id IS NOT NULL;

CREATE TABLE note_parents (
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    PRIMARY KEY (parent, child)
) WITHOUT ROWID;
";

const FTS: &str = "
CREATE VIRTUAL TABLE notes_fts USING fts5(
    title, body, tags,
    content = 'notes', content_rowid = 'nid',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);
CREATE TRIGGER notes_fts_ai AFTER INSERT ON notes WHEN new.deleted = 0 BEGIN
    INSERT INTO notes_fts (rowid, title, body, tags)
    VALUES (new.nid, new.title, new.body, new.tags);
END;
CREATE TRIGGER notes_fts_ad AFTER DELETE ON notes WHEN old.deleted = 0 BEGIN
    INSERT INTO notes_fts (notes_fts, rowid, title, body, tags)
    VALUES ('delete', old.nid, old.title, old.body, old.tags);
END;
CREATE TRIGGER notes_fts_au AFTER UPDATE OF title, body, tags, deleted ON notes BEGIN
    INSERT INTO notes_fts (notes_fts, rowid, title, body, tags)
    SELECT 'delete', old.nid, old.title, old.body, old.tags WHERE old.deleted = 0;
    INSERT INTO notes_fts (rowid, title, body, tags)
    SELECT new.nid, new.title, new.body, new.tags WHERE new.deleted = 0;
END;
";

const TAGS: &str = "
CREATE TABLE note_tags (
    tag TEXT NOT NULL,
    note INTEGER NOT NULL REFERENCES notes(nid),
    scope INTEGER NOT NULL,
    PRIMARY KEY (tag, note)
) WITHOUT ROWID;
CREATE INDEX note_tags_note ON note_tags(note);
CREATE TABLE tag_counts (
    scope INTEGER NOT NULL,
    tag TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (scope, tag)
) WITHOUT ROWID;
CREATE TABLE contributor_counts (
    scope INTEGER NOT NULL,
    author TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (scope, author)
) WITHOUT ROWID;

CREATE TRIGGER notes_tags_ai AFTER INSERT ON notes WHEN new.deleted = 0 BEGIN
    INSERT INTO note_tags (tag, note, scope)
    SELECT value, new.nid,
           CASE WHEN new.visibility = 'public' THEN 0 ELSE coalesce(new.owner_id, -1) END
    FROM json_each(new.tags);
END;
CREATE TRIGGER notes_tags_au AFTER UPDATE OF tags, deleted, visibility, owner_id ON notes BEGIN
    DELETE FROM note_tags WHERE note = old.nid;
    INSERT INTO note_tags (tag, note, scope)
    SELECT value, new.nid,
           CASE WHEN new.visibility = 'public' THEN 0 ELSE coalesce(new.owner_id, -1) END
    FROM json_each(new.tags) WHERE new.deleted = 0;
END;
CREATE TRIGGER notes_tags_ad AFTER DELETE ON notes BEGIN
    DELETE FROM note_tags WHERE note = old.nid;
END;
CREATE TRIGGER note_tags_ai AFTER INSERT ON note_tags BEGIN
    INSERT INTO tag_counts (scope, tag, n) VALUES (new.scope, new.tag, 1)
    ON CONFLICT (scope, tag) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER note_tags_ad AFTER DELETE ON note_tags BEGIN
    UPDATE tag_counts SET n = n - 1 WHERE scope = old.scope AND tag = old.tag;
    DELETE FROM tag_counts WHERE scope = old.scope AND tag = old.tag AND n <= 0;
END;

CREATE TRIGGER note_revisions_ai AFTER INSERT ON note_revisions BEGIN
    UPDATE notes SET edits = edits + 1 WHERE nid = new.note;
    INSERT INTO contributor_counts (scope, author, n)
    VALUES (
        CASE WHEN new.visibility = 'public' THEN 0
             ELSE coalesce((SELECT owner_id FROM notes WHERE nid = new.note), -1) END,
        new.author, 1)
    ON CONFLICT (scope, author) DO UPDATE SET n = n + 1;
END;
";

const EVENTS: &str = "
CREATE TABLE note_events (
    id INTEGER PRIMARY KEY,
    note INTEGER NOT NULL REFERENCES notes(nid),
    kind TEXT NOT NULL CHECK (kind IN ('created', 'edited', 'restored', 'deleted', 'viewed',
        'conflict', 'resolved', 'synced_in', 'synced_out')),
    rev TEXT,
    actor TEXT,
    at INTEGER NOT NULL
);
CREATE INDEX note_events_note ON note_events(note, id);
CREATE TABLE note_daily (
    day INTEGER NOT NULL,
    scope INTEGER NOT NULL,
    kind TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (day, scope, kind)
) WITHOUT ROWID;
CREATE TABLE note_searches (
    day INTEGER PRIMARY KEY,
    n INTEGER NOT NULL
);

CREATE TRIGGER note_events_ai AFTER INSERT ON note_events BEGIN
    INSERT INTO note_daily (day, scope, kind, n)
    VALUES (
        new.at / 86400000,
        coalesce((SELECT CASE WHEN visibility = 'public' THEN 0 ELSE coalesce(owner_id, -1) END
                  FROM notes WHERE nid = new.note), -1),
        new.kind, 1)
    ON CONFLICT (day, scope, kind) DO UPDATE SET n = n + 1;
    UPDATE notes SET views = views + 1 WHERE nid = new.note AND new.kind = 'viewed';
END;

-- A deleted user's private notes belong to nobody: drop the counters kept under their id, so
-- a later account that is given the same id does not inherit them.
CREATE TRIGGER notes_owner_gone AFTER UPDATE OF owner_id ON notes
WHEN old.owner_id IS NOT NULL AND new.owner_id IS NULL BEGIN
    DELETE FROM note_daily WHERE scope = old.owner_id;
    DELETE FROM contributor_counts WHERE scope = old.owner_id;
END;
";
