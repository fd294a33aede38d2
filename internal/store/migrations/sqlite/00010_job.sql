-- The job table: durable work of any kind (package jobs), claimed by the
-- workers of any node. A row is a job waiting (available, due at run_at)
-- or being run (running, locked by a node since locked_at); a finished
-- job is deleted. At most one job waits per (kind, unique_key) when the
-- key is not empty ("one delivery reminder per endpoint").
-- migrations/postgres/00010_job.sql is the same change for PostgreSQL.

-- +goose Up
CREATE TABLE job (
    id            INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL,
    unique_key    TEXT    NOT NULL DEFAULT '',
    args          TEXT    NOT NULL DEFAULT '{}',
    state         TEXT    NOT NULL DEFAULT 'available' CHECK (state IN ('available', 'running')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    run_at        INTEGER NOT NULL,
    locked_by     TEXT    NOT NULL DEFAULT '',
    locked_at     INTEGER,
    last_error    TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);
CREATE INDEX job_due ON job (state, run_at, id);
CREATE UNIQUE INDEX job_waiting_key ON job (kind, unique_key) WHERE state = 'available' AND unique_key <> '';

-- The delivery reminders of the job queue this table replaces (River's,
-- dropped by 00012): one for every endpoint with operations pending, due
-- now, so that nothing queued before the upgrade waits for its device's
-- next wake-up more than it did.
INSERT INTO job (kind, unique_key, args, max_attempts, run_at, created_at)
SELECT 'deliver_operations', CAST(p.endpoint_id AS TEXT),
       json_object('endpoint_id', p.endpoint_id, 'endpoint', e.name), 10,
       CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER)
FROM (SELECT DISTINCT endpoint_id FROM endpoint_operation WHERE status IN ('QUEUED', 'SENDING')) p
JOIN endpoint e ON e.id = p.endpoint_id;

-- +goose Down
DROP TABLE job;
