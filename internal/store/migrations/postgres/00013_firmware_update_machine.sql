-- The firmware update state machine (package fwupdate) keeps its progress
-- on the update row: the image's version (so that an update's record
-- outlives its image: firmware_id becomes NULL when the image is removed,
-- which an active update prevents), how the package is delivered (method
-- pull or push, protocol, the Package URI written), the Update Result
-- (5/0/5) it ended with and why it failed, when its state began and must
-- end, when it finished, the machine's own bookkeeping (detail, JSON) and
-- a revision that makes every write a compare-and-set.
-- migrations/sqlite/00013_firmware_update_machine.sql is the same change
-- for SQLite.

-- +goose Up
ALTER TABLE firmware_update ALTER COLUMN firmware_id DROP NOT NULL;
ALTER TABLE firmware_update DROP CONSTRAINT firmware_update_firmware_id_fkey;
ALTER TABLE firmware_update ADD CONSTRAINT firmware_update_firmware_id_fkey
    FOREIGN KEY (firmware_id) REFERENCES firmware (id) ON DELETE SET NULL;
ALTER TABLE firmware_update
    ADD COLUMN version     TEXT    NOT NULL DEFAULT '',
    ADD COLUMN method      TEXT    NOT NULL DEFAULT '',
    ADD COLUMN protocol    TEXT    NOT NULL DEFAULT '',
    ADD COLUMN package_uri TEXT    NOT NULL DEFAULT '',
    ADD COLUMN result_code INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN error       TEXT    NOT NULL DEFAULT '',
    ADD COLUMN detail      TEXT    NOT NULL DEFAULT '{}',
    ADD COLUMN rev         BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN state_at    BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN deadline    BIGINT,
    ADD COLUMN finished_at BIGINT,
    ADD COLUMN created_by  BIGINT;
UPDATE firmware_update u SET version = f.version, state_at = u.updated_at FROM firmware f WHERE f.id = u.firmware_id;

-- +goose Down
DELETE FROM firmware_update WHERE firmware_id IS NULL;
ALTER TABLE firmware_update
    DROP COLUMN version, DROP COLUMN method, DROP COLUMN protocol, DROP COLUMN package_uri,
    DROP COLUMN result_code, DROP COLUMN error, DROP COLUMN detail, DROP COLUMN rev,
    DROP COLUMN state_at, DROP COLUMN deadline, DROP COLUMN finished_at, DROP COLUMN created_by;
ALTER TABLE firmware_update DROP CONSTRAINT firmware_update_firmware_id_fkey;
ALTER TABLE firmware_update ADD CONSTRAINT firmware_update_firmware_id_fkey
    FOREIGN KEY (firmware_id) REFERENCES firmware (id);
ALTER TABLE firmware_update ALTER COLUMN firmware_id SET NOT NULL;
