-- Endpoints an operator created before their devices registered
-- (`flownexus endpoint add`). With the register policy "known" only these
-- and endpoints with credentials may register over plain CoAP; the offline
-- retention never removes them.
-- migrations/sqlite/00008_endpoint_provisioned.sql is the same change for
-- SQLite.

-- +goose Up
ALTER TABLE endpoint ADD COLUMN provisioned BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE endpoint DROP COLUMN provisioned;
