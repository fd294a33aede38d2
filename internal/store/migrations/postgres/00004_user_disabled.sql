-- A disabled user keeps its name, tokens and audit history but may do
-- nothing: its API tokens are refused. disabled_at is when it was
-- disabled, NULL while enabled.
-- migrations/sqlite/00004_user_disabled.sql is the same change for SQLite.

-- +goose Up
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

-- +goose Down
ALTER TABLE users DROP COLUMN disabled_at;
