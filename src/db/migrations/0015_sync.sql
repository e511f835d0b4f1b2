-- Replication of public notes between the nodes of a cluster (issue 13).
--
-- `note_revisions.stub`: 1 for a revision known only as a *stub*: a peer's private revision,
-- of which only note id, rev id, parents, gen, hlc and deleted travel. Its row has an empty
-- title and body (an empty keyframe), tags `[]`, visibility `private`, author `""`, no
-- author_id; its id cannot be checked against content, so no reader rebuilds it
-- (`notes::read` skips stubs, `rows::refresh` writes a stub winner's placeholder). A note
-- whose winner is a stub is private and has no local owner: hidden from every user.
--
-- `note_revisions_public (note) WHERE public and not a stub`: "was this note ever public
-- here?", asked for every row of the changes feed (`notes::feed`): a never-public note sends
-- nothing at all.
--
-- `sync_peers`: the peers this node has accepted (node_id = SHA-256 of the peer's sync
-- certificate) and the pull checkpoint per peer: the peer's `instance` (its `node.id`,
-- which changes when its database is replaced) and the last `seq` of its changes feed
-- stored here, advanced in the transaction that stores the revisions (`notes::apply`).
-- Times are unix ms; `behind` = the peer's max seq - `seq` at the last pull.
ALTER TABLE note_revisions ADD COLUMN stub INTEGER NOT NULL DEFAULT 0 CHECK (stub IN (0, 1));
CREATE INDEX note_revisions_public ON note_revisions(note)
    WHERE visibility = 'public' AND stub = 0;

CREATE TABLE sync_peers (
    node_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    instance TEXT NOT NULL DEFAULT '',
    seq INTEGER NOT NULL DEFAULT 0,
    first_seen INTEGER NOT NULL,
    last_sync INTEGER,
    last_error TEXT,
    behind INTEGER NOT NULL DEFAULT 0
);
