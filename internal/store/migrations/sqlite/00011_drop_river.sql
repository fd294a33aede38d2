-- The job queue no longer uses River (github.com/riverqueue/river): its
-- tables, created by River's own migrator in databases of earlier
-- versions, are dropped; the pending delivery reminders they held were
-- carried over to the job table by 00011. A database that never had them
-- is unchanged. Going down does not bring them back: the earlier version
-- recreates them itself.
-- migrations/postgres/00011_drop_river.sql is the same change for PostgreSQL.

-- +goose Up
DROP TABLE IF EXISTS river_client_queue;
DROP TABLE IF EXISTS river_client;
DROP TABLE IF EXISTS river_job;
DROP TABLE IF EXISTS river_leader;
DROP TABLE IF EXISTS river_migration;
DROP TABLE IF EXISTS river_queue;
DROP TABLE IF EXISTS river_notification;

-- +goose Down
SELECT 1;
