-- What the rebalancer decided, and why (issue 17): one row per container
-- it considered in a pass. `action` is move, stay or skip; scores are the
-- placement's before and after the move (NULL when not computed);
-- migration_id names the move it started ('' when none).
CREATE TABLE decisions (
  id            INTEGER PRIMARY KEY,
  at_ms         INTEGER NOT NULL,
  container     TEXT NOT NULL,
  from_node     TEXT NOT NULL,
  to_node       TEXT NOT NULL DEFAULT '',
  action        TEXT NOT NULL,
  reason        TEXT NOT NULL DEFAULT '',
  score_before  REAL,
  score_after   REAL,
  migration_id  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX decisions_at ON decisions(at_ms);
