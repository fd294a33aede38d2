-- The firmware update state machine (package fwupdate) keeps its progress
-- on the update row: the image's version (so that an update's record
-- outlives its image: firmware_id becomes NULL when the image is removed,
-- which an active update prevents), how the package is delivered (method
-- pull or push, protocol, the Package URI written), the Update Result
-- (5/0/5) it ended with and why it failed, when its state began and must
-- end, when it finished, the machine's own bookkeeping (detail, JSON) and
-- a revision that makes every write a compare-and-set.
-- SQLite cannot change a foreign key in place: the table is rebuilt.
-- migrations/postgres/00013_firmware_update_machine.sql is the same change
-- for PostgreSQL.

-- +goose Up
CREATE TABLE firmware_update_new (
    id             INTEGER PRIMARY KEY,
    endpoint_id    INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
    firmware_id    INTEGER REFERENCES firmware (id) ON DELETE SET NULL,
    version        TEXT    NOT NULL DEFAULT '',
    state          TEXT    NOT NULL,
    result         TEXT    NOT NULL DEFAULT '',
    active         INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    operation_ids  TEXT    NOT NULL DEFAULT '[]',
    method         TEXT    NOT NULL DEFAULT '',
    protocol       TEXT    NOT NULL DEFAULT '',
    package_uri    TEXT    NOT NULL DEFAULT '',
    result_code    INTEGER NOT NULL DEFAULT 0,
    error          TEXT    NOT NULL DEFAULT '',
    detail         TEXT    NOT NULL DEFAULT '{}',
    rev            INTEGER NOT NULL DEFAULT 0,
    state_at       INTEGER NOT NULL DEFAULT 0,
    deadline       INTEGER,
    finished_at    INTEGER,
    created_by     INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
INSERT INTO firmware_update_new (id, endpoint_id, firmware_id, version, state, result, active, operation_ids,
                                 state_at, created_at, updated_at)
SELECT u.id, u.endpoint_id, u.firmware_id, COALESCE(f.version, ''), u.state, u.result, u.active, u.operation_ids,
       u.updated_at, u.created_at, u.updated_at
FROM firmware_update u LEFT JOIN firmware f ON f.id = u.firmware_id;
DROP TABLE firmware_update;
ALTER TABLE firmware_update_new RENAME TO firmware_update;
CREATE UNIQUE INDEX firmware_update_active ON firmware_update (endpoint_id) WHERE active;
CREATE INDEX firmware_update_endpoint ON firmware_update (endpoint_id, id);
CREATE INDEX firmware_update_firmware ON firmware_update (firmware_id);

-- +goose Down
DELETE FROM firmware_update WHERE firmware_id IS NULL;
CREATE TABLE firmware_update_old (
    id             INTEGER PRIMARY KEY,
    endpoint_id    INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
    firmware_id    INTEGER NOT NULL REFERENCES firmware (id),
    state          TEXT    NOT NULL,
    result         TEXT    NOT NULL DEFAULT '',
    active         INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    operation_ids  TEXT    NOT NULL DEFAULT '[]',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
INSERT INTO firmware_update_old (id, endpoint_id, firmware_id, state, result, active, operation_ids, created_at, updated_at)
SELECT id, endpoint_id, firmware_id, state, result, active, operation_ids, created_at, updated_at FROM firmware_update;
DROP TABLE firmware_update;
ALTER TABLE firmware_update_old RENAME TO firmware_update;
CREATE UNIQUE INDEX firmware_update_active ON firmware_update (endpoint_id) WHERE active;
CREATE INDEX firmware_update_endpoint ON firmware_update (endpoint_id, id);
CREATE INDEX firmware_update_firmware ON firmware_update (firmware_id);
