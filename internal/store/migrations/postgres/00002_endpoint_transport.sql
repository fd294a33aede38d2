-- The transport of an endpoint's registration: 'udp' (plain CoAP) or
-- 'dtls' (CoAP over DTLS), as of its last Register, Update or address
-- change. A registration restored after a restart is reached over it.
-- migrations/sqlite/00002_endpoint_transport.sql is the same change for
-- SQLite.

-- +goose Up
ALTER TABLE endpoint ADD COLUMN transport TEXT NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'dtls'));
-- An endpoint with credentials is refused over plain CoAP, so its live
-- registration came over DTLS.
UPDATE endpoint SET transport = 'dtls'
WHERE online AND name IN (SELECT endpoint_name FROM credential);

-- +goose Down
ALTER TABLE endpoint DROP COLUMN transport;
