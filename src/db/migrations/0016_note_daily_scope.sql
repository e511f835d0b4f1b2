-- Events per day (`note_daily`, 0005) were counted in the scope a note had when each event
-- happened, and stayed there: a note made private kept showing its past views and edits in
-- everyone's analytics. Now a note's events follow it: they count in the scope it has now.

-- What is counted so far, rebuilt from the event log (never pruned) with each note's scope
-- now. A deleted user's private notes have no owner: scope -1, which nobody reads.
DELETE FROM note_daily;
INSERT INTO note_daily (day, scope, kind, n)
SELECT e.at / 86400000,
       coalesce((SELECT CASE WHEN visibility = 'public' THEN 0 ELSE coalesce(owner_id, -1) END
                 FROM notes WHERE nid = e.note), -1),
       e.kind, count(*)
FROM note_events e WHERE true
GROUP BY 1, 2, 3;

-- And from now on: a note that changes scope takes its events along.
CREATE TRIGGER notes_daily_scope AFTER UPDATE OF visibility ON notes
WHEN (CASE WHEN old.visibility = 'public' THEN 0 ELSE coalesce(old.owner_id, -1) END)
  <> (CASE WHEN new.visibility = 'public' THEN 0 ELSE coalesce(new.owner_id, -1) END)
BEGIN
    UPDATE note_daily SET n = n - (
        SELECT count(*) FROM note_events e
        WHERE e.note = new.nid AND e.at / 86400000 = note_daily.day
          AND e.kind = note_daily.kind)
    WHERE scope = (CASE WHEN old.visibility = 'public' THEN 0
                        ELSE coalesce(old.owner_id, -1) END)
      AND EXISTS (SELECT 1 FROM note_events e
                  WHERE e.note = new.nid AND e.at / 86400000 = note_daily.day
                    AND e.kind = note_daily.kind);
    DELETE FROM note_daily
    WHERE scope = (CASE WHEN old.visibility = 'public' THEN 0
                        ELSE coalesce(old.owner_id, -1) END)
      AND n <= 0;
    INSERT INTO note_daily (day, scope, kind, n)
    SELECT e.at / 86400000,
           CASE WHEN new.visibility = 'public' THEN 0 ELSE coalesce(new.owner_id, -1) END,
           e.kind, count(*)
    FROM note_events e WHERE e.note = new.nid
    GROUP BY 1, 3
    ON CONFLICT (day, scope, kind) DO UPDATE SET n = n + excluded.n;
END;
