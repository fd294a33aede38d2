-- The job queue no longer uses River (github.com/riverqueue/river): its
-- tables, type and functions, created by River's own migrator in
-- databases of earlier versions, are dropped; the pending delivery
-- reminders they held were carried over to the job table by 00011. A
-- database that never had them is unchanged. Going down does not bring
-- them back: the earlier version recreates them itself.
-- migrations/sqlite/00011_drop_river.sql is the same change for SQLite.

-- +goose Up
DROP TABLE IF EXISTS river_client_queue CASCADE;
DROP TABLE IF EXISTS river_client CASCADE;
DROP TABLE IF EXISTS river_job CASCADE;
DROP TABLE IF EXISTS river_leader CASCADE;
DROP TABLE IF EXISTS river_migration CASCADE;
DROP TABLE IF EXISTS river_queue CASCADE;
DROP TABLE IF EXISTS river_notification CASCADE;
DROP FUNCTION IF EXISTS river_job_notify() CASCADE;
DROP FUNCTION IF EXISTS river_job_state_in_bitmask CASCADE;
DROP TYPE IF EXISTS river_job_state CASCADE;

-- +goose Down
SELECT 1;
