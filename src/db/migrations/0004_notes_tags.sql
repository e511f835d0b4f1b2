-- Tags and contributors, counted per visibility scope (see 0002_notes.sql) so tag counts and
-- top contributors are a read of a few rows; the triggers keep them in step with `notes` and
-- `note_revisions`.

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
