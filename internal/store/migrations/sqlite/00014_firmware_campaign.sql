-- Firmware campaigns (package fwupdate): an image rolled out to a set of
-- endpoints chosen when the campaign is made, with a concurrency cap, a
-- start rate and a retry policy. firmware_campaign_device is each
-- endpoint's progress in the campaign; firmware_update.campaign_id names
-- the campaign an update was started by, so that its end steps the
-- campaign.
-- migrations/postgres/00014_firmware_campaign.sql is the same change for
-- PostgreSQL.

-- +goose Up
CREATE TABLE firmware_campaign (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL DEFAULT '',
    firmware_id      INTEGER REFERENCES firmware (id) ON DELETE SET NULL,
    version          TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    method           TEXT    NOT NULL DEFAULT '',
    protocol         TEXT    NOT NULL DEFAULT '',
    concurrency      INTEGER NOT NULL,
    rate_per_minute  INTEGER NOT NULL,
    max_retries      INTEGER NOT NULL,
    retry_delay_ms   INTEGER NOT NULL,
    selection        TEXT    NOT NULL DEFAULT '{}',
    next_start_at    INTEGER NOT NULL DEFAULT 0,
    created_by       INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER
);
CREATE INDEX firmware_campaign_firmware ON firmware_campaign (firmware_id);

CREATE TABLE firmware_campaign_device (
    campaign_id  INTEGER NOT NULL REFERENCES firmware_campaign (id) ON DELETE CASCADE,
    endpoint_id  INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
    state        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    update_id    INTEGER REFERENCES firmware_update (id) ON DELETE SET NULL,
    error        TEXT    NOT NULL DEFAULT '',
    next_try_at  INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, endpoint_id)
);
CREATE INDEX firmware_campaign_device_state ON firmware_campaign_device (campaign_id, state, next_try_at);
CREATE INDEX firmware_campaign_device_update ON firmware_campaign_device (update_id) WHERE update_id IS NOT NULL;

ALTER TABLE firmware_update ADD COLUMN campaign_id INTEGER REFERENCES firmware_campaign (id) ON DELETE SET NULL;

-- +goose Down
ALTER TABLE firmware_update DROP COLUMN campaign_id;
DROP TABLE firmware_campaign_device;
DROP TABLE firmware_campaign;
