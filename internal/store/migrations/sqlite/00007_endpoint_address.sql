-- Online plain-CoAP registrations by the device's address: a Send names no
-- registration, so after a restart (or on another node) the server finds
-- the device that sent it by its source address in the stored
-- registration (Store.GetOnlineEndpointByAddress).
-- migrations/postgres/00007_endpoint_address.sql is the same change for
-- PostgreSQL.

-- +goose Up
CREATE INDEX endpoint_online_address ON endpoint (address) WHERE online;

-- +goose Down
DROP INDEX endpoint_online_address;
