-- Migrations and their phases, as the agent that ran them saw them.
-- Times are wall-clock milliseconds since the epoch; ended_ms is NULL
-- while the row is still in flight.
CREATE TABLE migrations (
  id          TEXT PRIMARY KEY,
  container   TEXT NOT NULL,
  source      TEXT NOT NULL,
  target      TEXT NOT NULL,
  mode        TEXT NOT NULL,        -- stop-and-copy, incoming, ...
  reason      TEXT NOT NULL DEFAULT '',
  started_ms  INTEGER NOT NULL,
  ended_ms    INTEGER,
  result      TEXT NOT NULL,        -- running, committed, aborted, failed, in-doubt
  error       TEXT NOT NULL DEFAULT '',
  bytes       INTEGER NOT NULL DEFAULT 0,
  downtime_ms INTEGER NOT NULL DEFAULT -1,
  total_ms    INTEGER NOT NULL DEFAULT -1
);
CREATE INDEX migrations_container ON migrations(container, started_ms);
CREATE INDEX migrations_started ON migrations(started_ms);

CREATE TABLE phases (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  migration_id TEXT NOT NULL REFERENCES migrations(id) ON DELETE CASCADE,
  name         TEXT NOT NULL,
  started_ms   INTEGER NOT NULL,
  ended_ms     INTEGER,
  bytes        INTEGER NOT NULL DEFAULT 0,
  result       TEXT NOT NULL DEFAULT 'running',
  error        TEXT NOT NULL DEFAULT '',
  detail       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX phases_migration ON phases(migration_id, id);

CREATE TABLE events (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  migration_id TEXT NOT NULL REFERENCES migrations(id) ON DELETE CASCADE,
  at_ms        INTEGER NOT NULL,
  level        TEXT NOT NULL,
  text         TEXT NOT NULL
);
CREATE INDEX events_migration ON events(migration_id, id);
