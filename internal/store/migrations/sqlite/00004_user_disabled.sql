-- A disabled user keeps its name, tokens and audit history but may do
-- nothing: its API tokens are refused. disabled_at is when it was
-- disabled, NULL while enabled.
-- migrations/postgres/00004_user_disabled.sql is the same change for PostgreSQL.

-- +goose Up
ALTER TABLE users ADD COLUMN disabled_at INTEGER;

-- +goose Down
ALTER TABLE users DROP COLUMN disabled_at;
