-- Why the server holds each observation, so the API can show it:
-- origin is 'auto-observe' (the server's auto-observe policy, after the
-- device registered), 'api' (an operator's observe call), 'queue' (a
-- queued observe operation) or '' (not recorded: made before this
-- migration, or by a caller that did not say); origin_user_id is the
-- operator who asked and origin_operation_id the queued operation, NULL
-- when none (no foreign keys: they record who asked, and deleting the
-- user or the operation must neither fail nor take the observation with
-- it). attributes are the
-- notification attributes the server wrote to the observed paths before
-- the Observe, as the Write-Attributes query ("pmin=60&pmax=900"), '' when
-- none.
-- migrations/sqlite/00006_observation_origin.sql is the same change for
-- SQLite.

-- +goose Up
ALTER TABLE observation ADD COLUMN origin TEXT NOT NULL DEFAULT '';
ALTER TABLE observation ADD COLUMN origin_user_id BIGINT;
ALTER TABLE observation ADD COLUMN origin_operation_id BIGINT;
ALTER TABLE observation ADD COLUMN attributes TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE observation DROP COLUMN attributes;
ALTER TABLE observation DROP COLUMN origin_operation_id;
ALTER TABLE observation DROP COLUMN origin_user_id;
ALTER TABLE observation DROP COLUMN origin;
