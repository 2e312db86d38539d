-- What changed, for the live stream (GET /api/v1/events): one row per event, ids ever increasing
-- and visible in id order (PostgreSQL writers take a transaction lock before they insert, so ids
-- commit in order), kept for a bounded window so that a client that reconnects with
-- Last-Event-ID gets what it missed.
CREATE TABLE events (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    kind                TEXT NOT NULL,
    data                TEXT NOT NULL,
    created_at          TIMESTAMP NOT NULL
);
CREATE INDEX events_workspace ON events (workspace_id, id);
CREATE INDEX events_created ON events (created_at);
