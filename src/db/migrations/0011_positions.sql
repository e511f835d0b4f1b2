-- Resume positions: where each user stopped in a video or audio file (`positions`), so
-- the player can resume it and the home page can list "continue watching". `path` is the
-- media path the player played (relative to the media root); rows follow moves and renames
-- made through streamhub (`positions::Positions::move_under`), as share links do.
-- `updated_at` is milliseconds since the epoch, strictly increasing per user (newest first
-- is an exact order). At most `positions::MAX_PER_USER` rows per user: older ones go.
CREATE TABLE positions (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    position REAL NOT NULL,
    duration REAL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, path)
) WITHOUT ROWID;
-- "Continue watching": a user's newest first.
CREATE INDEX positions_recent ON positions(user_id, updated_at);
-- Moves look rows up by path, whoever they belong to.
CREATE INDEX positions_path ON positions(path);
