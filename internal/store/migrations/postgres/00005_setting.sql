-- Installation-wide settings: one value per name, owned by the package
-- that writes it. The first is "secret_key_check", the fingerprint of the
-- secret key the stored PSK keys are sealed with (see package credential).
-- migrations/sqlite/00005_setting.sql is the same change for SQLite.

-- +goose Up
CREATE TABLE setting (
    name        TEXT   NOT NULL PRIMARY KEY,
    value       TEXT   NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- +goose Down
DROP TABLE setting;
