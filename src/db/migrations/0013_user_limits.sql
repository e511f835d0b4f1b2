-- Per-user quotas set by an admin (`streamhub user limits`, PATCH /api/users/{name}).
-- NULL: the `[quotas]` default of the config applies; 0: unlimited.
ALTER TABLE users ADD COLUMN media_bytes_limit INTEGER;
ALTER TABLE users ADD COLUMN tus_uploads_limit INTEGER;
ALTER TABLE users ADD COLUMN notes_bytes_limit INTEGER;
-- Counting a user's unfinished uploads must not scan every upload ever made.
CREATE INDEX tus_uploads_owner ON tus_uploads(owner) WHERE completed_at IS NULL;
