-- Notes, sync-ready: the node id and clock, notes and their revision trees. Triggers in the
-- following migrations keep every derived table (FTS, tags, counters, events) in step with
-- `notes`, so no Rust path can forget one.
--
-- Visibility scopes: counters are kept per *scope*, `0` for public notes and the owner's user
-- id for private ones (`-1` when a private note has no local owner), so a reader's view is
-- `scope IN (0, viewer)` — a handful of rows, never a scan of notes.
--
-- Which index serves which query:
-- - `notes.id` UNIQUE: every lookup by note id.
-- - `notes_changed (changed_at) WHERE deleted = 0`: the listing (no `q`), newest first.
-- - `notes_views`, `notes_edits` (partial, `deleted = 0`): most viewed / most edited; the
--   planner walks the index backwards and stops after `top` visible rows.
-- - `notes_owner`: `ON DELETE SET NULL` when a user is deleted (and a user's own notes).
-- - `note_revisions.rev` UNIQUE: idempotent inserts, lookups by rev.
-- - `note_revisions_note (note, gen)`: a note's history and its leaves.
-- - `note_revisions_author (author COLLATE NOCASE, note)`: the search `author` filter and
--   `contributors`.
-- - `note_revisions_author_id`: `ON DELETE SET NULL` when a user is deleted.
-- - `note_parents (parent, child)` PK: "has this revision a child?" (leaf test).
-- - `note_tags (tag, note)` PK: the tag filter; `note_tags_note`: re-tagging one note
--   (0004_notes_tags.sql).
-- - `tag_counts (scope, tag)` PK: tag counts and top tags (0004).
-- - `contributor_counts (scope, author)` PK: top contributors (0004).
-- - `note_events_note (note, id)`: one note's event log, newest first (0005_notes_events.sql).
-- - `note_daily (day, scope, kind)` PK: events per day (a range over `day`) (0005).
-- - `note_searches (day)` PK: search count (0005).
-- - `notes_fts`: FTS5 with 2- and 3-character prefix indexes, so `stre*` is an index read
--   (0003_notes_fts.sql).

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
