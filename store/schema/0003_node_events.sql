-- What happened on the node outside any migration: refused peers, commands
-- forwarded by other nodes (issue 14), settled frozen copies. `kind` is a
-- short word to select on ('peer-refused', 'forwarded', ...); `peer` names
-- the other node or certificate involved, '' when none.
CREATE TABLE node_events (
  id     INTEGER PRIMARY KEY,
  at_ms  INTEGER NOT NULL,
  level  TEXT NOT NULL,      -- info, warn, error
  kind   TEXT NOT NULL,
  peer   TEXT NOT NULL DEFAULT '',
  text   TEXT NOT NULL
);
CREATE INDEX node_events_at ON node_events(at_ms);
