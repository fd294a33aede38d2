-- Server nodes and when each last wrote to the database: every node
-- writes its row every few seconds (Store.Heartbeat), which proves the
-- database takes writes (/healthz) and tells which nodes are alive.
-- migrations/sqlite/00009_node.sql is the same change for SQLite.

-- +goose Up
CREATE TABLE node (
    name        TEXT    NOT NULL PRIMARY KEY,
    version     TEXT    NOT NULL DEFAULT '',
    started_at  BIGINT  NOT NULL,
    seen_at     BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE node;
