-- The devices page lists endpoints most recently seen first, a page at a
-- time after the last one shown (keyset paging on last seen, then name):
-- this index serves that order (store.SortSeen; the expression must match
-- PageEndpoints'). migrations/postgres/00017_endpoint_seen.sql is the same
-- change for PostgreSQL.

-- +goose Up
CREATE INDEX endpoint_seen_name ON endpoint (COALESCE(last_seen, 0), name);

-- +goose Down
DROP INDEX endpoint_seen_name;
