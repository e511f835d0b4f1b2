-- Resumable uploads (tus): the state of each upload; its bytes are in the staging file that
-- `staged` names. `upload_offset` only ever names bytes that were fsynced.

CREATE TABLE tus_uploads (
    id TEXT PRIMARY KEY,
    owner INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    dest TEXT NOT NULL,
    overwrite INTEGER NOT NULL,
    length INTEGER NOT NULL,
    upload_offset INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL,
    staged TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    completed_at INTEGER
);
CREATE INDEX tus_uploads_expiry ON tus_uploads(expires_at);
