-- Probe errors stored by builds before the library kept server detail out of them held
-- ffprobe's raw message or an OS error, which could name the media root's absolute path, and
-- `probe_error` is shown to anyone who may read the library. A row is probed again only when
-- its file changes, so those messages would stay: forget them, and the probe worker re-runs
-- those files (`probed_at IS NULL`) and stores today's generic messages.
UPDATE media SET probed_at = NULL, probe_error = NULL WHERE probe_error IS NOT NULL;
