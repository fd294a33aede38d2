-- Endpoints an operator created before their devices registered
-- (`flownexus endpoint add`). With the register policy "known" only these
-- and endpoints with credentials may register over plain CoAP; the offline
-- retention never removes them.
-- migrations/postgres/00008_endpoint_provisioned.sql is the same change for
-- PostgreSQL.

-- +goose Up
ALTER TABLE endpoint ADD COLUMN provisioned INTEGER NOT NULL DEFAULT 0 CHECK (provisioned IN (0, 1));

-- +goose Down
ALTER TABLE endpoint DROP COLUMN provisioned;
