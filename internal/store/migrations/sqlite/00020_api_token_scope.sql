-- API token scopes: a token is 'read' (GET and HEAD requests and the
-- event stream only) or 'read-write' (whatever its user may do). Tokens
-- made before scopes existed keep acting as their user: 'read-write'.
-- migrations/postgres/00020_api_token_scope.sql is the same change for
-- PostgreSQL.

-- +goose Up
ALTER TABLE api_token ADD COLUMN scope TEXT NOT NULL DEFAULT 'read-write';

-- +goose Down
ALTER TABLE api_token DROP COLUMN scope;
