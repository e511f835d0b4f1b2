-- The media index. One row per file or folder under the media root (the root itself is the
-- row with the empty path and no parent). `dir_mtime_ns` is the folder's mtime when its
-- entries were last read into the index (NULL: never, or too recent to trust — see
-- `library::fsview::trusted_mtime`). `seq` orders writes: the scanner never overwrites or
-- deletes a row written after it read the disk (an upload recorded while a scan is running
-- keeps its owner). Names are searched through an FTS5 trigram index (substring,
-- case-insensitive).

CREATE TABLE media (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    parent TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('file', 'dir')),
    size INTEGER NOT NULL DEFAULT 0,
    mtime_ns INTEGER NOT NULL DEFAULT 0,
    dir_mtime_ns INTEGER,
    content_type TEXT,
    media TEXT NOT NULL CHECK (media IN ('video', 'audio', 'image', 'other', 'dir')),
    duration REAL,
    video_codec TEXT,
    audio_codec TEXT,
    width INTEGER,
    height INTEGER,
    probed_at INTEGER,
    probe_error TEXT,
    thumb TEXT,
    thumb_state TEXT CHECK (thumb_state IN ('ok', 'failed')),
    owner INTEGER REFERENCES users(id) ON DELETE SET NULL,
    seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX media_parent_name ON media(parent, name);
CREATE INDEX media_class ON media(media);
CREATE INDEX media_name ON media(name);
CREATE INDEX media_owner ON media(owner) WHERE owner IS NOT NULL;
CREATE INDEX media_unprobed ON media(media) WHERE probed_at IS NULL AND kind = 'file';
CREATE VIRTUAL TABLE media_fts USING fts5(
    name, content = 'media', content_rowid = 'id', tokenize = 'trigram'
);
CREATE TRIGGER media_fts_ai AFTER INSERT ON media BEGIN
    INSERT INTO media_fts(rowid, name) VALUES (new.id, new.name);
END;
CREATE TRIGGER media_fts_ad AFTER DELETE ON media BEGIN
    INSERT INTO media_fts(media_fts, rowid, name) VALUES ('delete', old.id, old.name);
END;
CREATE TRIGGER media_fts_au AFTER UPDATE OF name ON media BEGIN
    INSERT INTO media_fts(media_fts, rowid, name) VALUES ('delete', old.id, old.name);
    INSERT INTO media_fts(rowid, name) VALUES (new.id, new.name);
END;
INSERT INTO media (path, parent, name, kind, media) VALUES ('', NULL, '', 'dir', 'dir');
