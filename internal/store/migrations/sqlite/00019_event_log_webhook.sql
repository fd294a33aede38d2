-- The durable event log and webhooks (packages webhook and store).
-- event_log holds the server's events (package events) in the order they
-- were appended: id grows with every event, site_id is the endpoint's site
-- when the event was logged (NULL: none), data the event's JSON payload.
-- Rows older than the retention are pruned. A webhook is a user's
-- subscription to the events it may see: url, topics (a JSON array of
-- topic names), secret (sealed with the server's secret key), optional
-- endpoint and site filters; failures counts consecutive failed delivery
-- attempts. webhook_delivery logs each attempt.
-- migrations/postgres/00019_event_log_webhook.sql is the same change for
-- PostgreSQL.

-- +goose Up
CREATE TABLE event_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    time      INTEGER NOT NULL,
    topic     TEXT    NOT NULL,
    endpoint  TEXT    NOT NULL DEFAULT '',
    site_id   INTEGER,
    data      TEXT    NOT NULL DEFAULT 'null'
);
CREATE INDEX event_log_time ON event_log (time);

CREATE TABLE webhook (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url         TEXT    NOT NULL,
    topics      TEXT    NOT NULL DEFAULT '[]',
    secret_enc  BLOB    NOT NULL,
    endpoint    TEXT    NOT NULL DEFAULT '',
    site_id     INTEGER REFERENCES site (id) ON DELETE CASCADE,
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    failures    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX webhook_user ON webhook (user_id);

CREATE TABLE webhook_delivery (
    id           INTEGER PRIMARY KEY,
    webhook_id   INTEGER NOT NULL REFERENCES webhook (id) ON DELETE CASCADE,
    time         INTEGER NOT NULL,
    event_id     INTEGER NOT NULL,
    topic        TEXT    NOT NULL,
    attempt      INTEGER NOT NULL,
    status_code  INTEGER NOT NULL DEFAULT 0,
    duration_ms  INTEGER NOT NULL DEFAULT 0,
    error        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX webhook_delivery_webhook ON webhook_delivery (webhook_id, id);
CREATE INDEX webhook_delivery_time ON webhook_delivery (time);

-- +goose Down
DROP TABLE webhook_delivery;
DROP TABLE webhook;
DROP TABLE event_log;
