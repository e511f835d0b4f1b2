-- The notes event log (created, edited, viewed, …) and its per-day counters by scope, which
-- keep analytics cheap; a view event also bumps `notes.views`.

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
