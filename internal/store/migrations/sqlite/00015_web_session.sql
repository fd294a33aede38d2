-- Dashboard sessions (package web). id is the SHA-256 (hex) of the random
-- token the browser's cookie holds, so a copy of the table does not log
-- anyone in. A session ends at expires_at (the absolute timeout), or
-- when last_seen_at is older than the idle timeout; all of a user's
-- sessions are deleted when its password changes or it is disabled.
-- migrations/postgres/00015_web_session.sql is the same change for
-- PostgreSQL.

-- +goose Up
CREATE TABLE web_session (
    id            TEXT    PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX web_session_user ON web_session (user_id);
CREATE INDEX web_session_expires ON web_session (expires_at);

-- The devices page lists endpoints by name, optionally only online or
-- offline ones, a page at a time after a name (keyset paging): the name's
-- unique index serves the unfiltered list, this one the filtered.
CREATE INDEX endpoint_online_name ON endpoint (online, name);

-- The overview's queue depth counts the queued operations of all
-- endpoints: a partial index holds just those.
CREATE INDEX endpoint_operation_queued ON endpoint_operation (id) WHERE status = 'QUEUED';

-- +goose Down
DROP INDEX endpoint_operation_queued;
DROP INDEX endpoint_online_name;
DROP TABLE web_session;
