-- The trash: what was deleted through streamhub, kept `storage.trash_days` in the backend's
-- trash under `key` (`<media_root>/.streamhub-trash/<key>` on local disks) until restored,
-- emptied or expired. `owner` is who owned the entry (they, and admins, may restore or
-- purge it; see below); `size` counts the bytes of the files in it (for quotas). `trash_media` keeps
-- the library's rows of everything in it (`rel` is the path under the deleted entry, '' for
-- the entry itself), so a restore brings back owners and metadata, not just bytes. `owner`
-- is set only when everything in the entry was theirs (the same rule as for deleting it).

-- AUTOINCREMENT: an id is never handed out twice, so an id a client kept (X-Trash-Id) can
-- never restore or purge a later entry.
CREATE TABLE trash (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('file', 'dir')),
    size INTEGER NOT NULL DEFAULT 0,
    owner INTEGER REFERENCES users(id) ON DELETE SET NULL,
    deleted_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    deleted_at INTEGER NOT NULL
);
CREATE INDEX trash_owner ON trash(owner);
CREATE INDEX trash_deleted_at ON trash(deleted_at);

CREATE TABLE trash_media (
    trash INTEGER NOT NULL REFERENCES trash(id) ON DELETE CASCADE,
    rel TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_type TEXT,
    media TEXT NOT NULL,
    duration REAL,
    video_codec TEXT,
    audio_codec TEXT,
    width INTEGER,
    height INTEGER,
    probed_at INTEGER,
    probe_error TEXT,
    owner INTEGER,
    PRIMARY KEY (trash, rel)
);
