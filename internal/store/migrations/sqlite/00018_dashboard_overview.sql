-- +goose Up

-- The operations page lists the queue across endpoints newest first,
-- optionally of one status: this index serves the filtered list (the
-- primary key the unfiltered one).
CREATE INDEX endpoint_operation_status ON endpoint_operation (status, id);

-- The firmware page names who uploaded each image: the latest
-- "firmware.upload" audit entry of its version.
CREATE INDEX audit_log_action_target ON audit_log (action, target, id);

-- The overview counts devices per firmware version from the latest
-- Firmware Version (/3/0/3) of each endpoint: a partial index of just
-- those rows, one per endpoint, covers the count (its key repeats the
-- predicate's columns: SQLite reads them from the index, not the table;
-- 100,000 devices count in about 8 ms).
CREATE INDEX resource_latest_firmware_version ON resource_latest (value_text, endpoint_id, object_id, instance_id, resource_id)
    WHERE object_id = 3 AND instance_id = 0 AND resource_id = 3;
-- ... and, for the devices that reported none, the version their last
-- finished update confirmed.
CREATE INDEX endpoint_firmware_version ON endpoint (firmware_version, site_id) WHERE firmware_version <> '';

-- The overview counts a site user's devices by state (store.CountFleet
-- with a scope): this index covers the count, so the endpoint rows are
-- not read.
CREATE INDEX endpoint_site_state ON endpoint (site_id, online, queue_mode);

-- value_count counts the values received, per site (0: none) and
-- 5-minute bucket (bucket: its start, milliseconds since the epoch), so
-- that the overview's charts read a few thousand rows instead of counting
-- the history. The trigger keeps it as values are inserted; a value
-- counts for the site its endpoint was in when it arrived. Rows are never
-- removed with the values they counted.
CREATE TABLE value_count (
    bucket   INTEGER NOT NULL,
    site_id  INTEGER NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (bucket, site_id)
) WITHOUT ROWID;

INSERT INTO value_count (bucket, site_id, n)
SELECT r.received_at - r.received_at % 300000, COALESCE(e.site_id, 0), count(*)
FROM resource r LEFT JOIN endpoint e ON e.id = r.endpoint_id
GROUP BY 1, 2;

-- +goose StatementBegin
CREATE TRIGGER resource_value_count AFTER INSERT ON resource
BEGIN
    INSERT INTO value_count (bucket, site_id, n)
    VALUES (NEW.received_at - NEW.received_at % 300000,
            COALESCE((SELECT site_id FROM endpoint WHERE id = NEW.endpoint_id), 0), 1)
    ON CONFLICT (bucket, site_id) DO UPDATE SET n = n + 1;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER resource_value_count;
DROP TABLE value_count;
DROP INDEX endpoint_site_state;
DROP INDEX endpoint_firmware_version;
DROP INDEX resource_latest_firmware_version;
DROP INDEX audit_log_action_target;
DROP INDEX endpoint_operation_status;
