-- Full-text search over notes: FTS5 over title, body and tags, external content (`notes`),
-- with 2- and 3-character prefix indexes so `stre*` is an index read. Deleted notes are not
-- indexed; the triggers keep the index in step with `notes`.

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
