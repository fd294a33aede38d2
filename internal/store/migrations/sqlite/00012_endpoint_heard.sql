-- When each device was last heard from by any server node otherwise than
-- by a Register or Update: a Send, a notification, a DTLS session that
-- moved to a new address. Every node writes the devices it heard from
-- since its last write at a bounded rate (Store.SetHeard, called by
-- registry.Registry.WriteSeen), so that another node sees a device's
-- liveness. It is a table of its own so that these frequent writes touch
-- one narrow row, not the endpoint's; endpoint.last_seen stays the time
-- of the last Register or Update, from which the registration's lifetime
-- runs (its expiry).
-- migrations/postgres/00012_endpoint_heard.sql is the same change for
-- PostgreSQL.

-- +goose Up
CREATE TABLE endpoint_heard (
    endpoint_id INTEGER NOT NULL PRIMARY KEY REFERENCES endpoint (id) ON DELETE CASCADE,
    heard_at    INTEGER NOT NULL
);

-- +goose Down
DROP TABLE endpoint_heard;
