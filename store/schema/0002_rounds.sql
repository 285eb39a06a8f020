-- Pre-copy rounds: one row per round of a migration (issue 4). Round 0
-- sends every present page; a later round sends what was written since the
-- previous one. A last row with pages_sent = 0 and a stop reason records
-- the scan that ended the loop.
CREATE TABLE rounds (
  migration_id          TEXT NOT NULL REFERENCES migrations(id) ON DELETE CASCADE,
  round                 INTEGER NOT NULL,
  started_ms            INTEGER NOT NULL,
  duration_ms           INTEGER NOT NULL,
  scan_us               INTEGER NOT NULL,
  processes             INTEGER NOT NULL,
  dirty_pages           INTEGER NOT NULL,     -- found by this round's scan
  pages_sent            INTEGER NOT NULL,
  bytes                 INTEGER NOT NULL,     -- on the wire: pages and pagemaps
  dirty_rate_bps        REAL NOT NULL,        -- bytes/s written since the previous scan
  send_rate_bps         REAL NOT NULL,
  predicted_downtime_ms INTEGER NOT NULL,
  stop                  TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (migration_id, round)
);
ALTER TABLE migrations ADD COLUMN tracker TEXT NOT NULL DEFAULT '';
