-- `tus_uploads.staged` becomes the storage backend's key of the staging file instead of its
-- absolute path: the part after the first `/.streamhub-staging/`, e.g.
-- `/srv/media/.streamhub-staging/resumable/<token>.upload` → `resumable/<token>.upload`.
-- A key does not change when the media root is mounted elsewhere, and a backend that is not a
-- local folder has no path to give. Rows without that folder in their path are not ours to
-- guess at and stay as they are.

UPDATE tus_uploads
SET staged = substr(staged, instr(staged, '/.streamhub-staging/') + length('/.streamhub-staging/'))
WHERE instr(staged, '/.streamhub-staging/') > 0;
