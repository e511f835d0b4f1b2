-- Note revisions stored so an edit costs the size of the change (issue 12): a body is kept
-- in full (a keyframe) or as a delta against its base revision's body, plain or deflated
-- (`notes::revstore`, `notes::revcodec`). Every row written before this migration holds its
-- text in full (form 0) and stays as it is: readable byte for byte, with no base.
--
-- `body_form`: 0 text, 1 deflated text, 2 delta, 3 deflated delta. `body_base`: the
-- revision a delta applies to (a parent, same note; NULL for a keyframe). `body_depth`:
-- deltas between this body and its keyframe (bounded by `revstore::MAX_CHAIN`).
-- `body_chain`: the stored bytes read to rebuild this body (its keyframe and the deltas up
-- to it; bounded by `revstore::chain_budget`).
-- `stored_bytes`: title + tags + stored body, what the `notes_bytes` quota counts; for old
-- rows the same sum it counted before.
ALTER TABLE note_revisions ADD COLUMN body_form INTEGER NOT NULL DEFAULT 0
    CHECK (body_form BETWEEN 0 AND 3);
ALTER TABLE note_revisions ADD COLUMN body_base TEXT;
ALTER TABLE note_revisions ADD COLUMN body_depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE note_revisions ADD COLUMN body_chain INTEGER NOT NULL DEFAULT 0;
ALTER TABLE note_revisions ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE note_revisions SET body_chain = length(CAST(body AS BLOB)),
    stored_bytes = length(CAST(title AS BLOB)) + length(CAST(body AS BLOB))
        + length(CAST(tags AS BLOB));
