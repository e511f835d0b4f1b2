-- Small facts about this node, one row per key: the media root's volume id
-- (`media_root_volume`, see `storage::local::identity`), and later ones like it.
CREATE TABLE node_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
