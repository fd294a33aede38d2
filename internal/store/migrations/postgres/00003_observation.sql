-- The observations the server holds on devices, so that a restart keeps
-- them: one row per Observe request the server made, found by its CoAP
-- token (1 to 8 bytes, unique across devices). registration_id is the
-- registration the observation was made on; a row whose registration is
-- no longer its endpoint's live one is stale. paths is the observed path,
-- or the paths of a composite observation, as canonical path strings
-- separated by single spaces ("/3303/0/5700 /3/0/7"); format is the
-- content format requested (Accept).
-- migrations/sqlite/00003_observation.sql is the same change for SQLite.

-- +goose Up
CREATE TABLE observation (
    token            BYTEA   NOT NULL PRIMARY KEY CHECK (octet_length(token) BETWEEN 1 AND 8),
    endpoint_id      BIGINT  NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
    registration_id  TEXT    NOT NULL,
    paths            TEXT    NOT NULL,
    composite        BOOLEAN NOT NULL DEFAULT FALSE,
    format           INTEGER NOT NULL CHECK (format BETWEEN 0 AND 65535),
    created_at       BIGINT  NOT NULL
);
CREATE INDEX observation_registration ON observation (registration_id);
CREATE INDEX observation_endpoint ON observation (endpoint_id);

-- +goose Down
DROP TABLE observation;
