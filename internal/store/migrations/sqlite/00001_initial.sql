-- flownexus schema, SQLite dialect. migrations/postgres/00001_initial.sql
-- holds the same tables and columns for PostgreSQL.
--
-- Conventions (both dialects):
--   * timestamps are INTEGER unix milliseconds, UTC; NULL means "none";
--   * booleans are INTEGER 0/1 here and BOOLEAN in PostgreSQL;
--   * optional text is '' (NOT NULL DEFAULT ''), except unique columns
--     where '' would collide: those are NULL when absent;
--   * JSON is stored as TEXT, exactly as given.

-- +goose Up

-- A tenant: endpoints belong to at most one site; users see sites through
-- their membership.
CREATE TABLE site (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- One LwM2M client, known by its endpoint name. registration_id is the
-- location of its live registration (rd/<id>) and NULL while offline.
-- lifetime is in seconds; object_links is the registration's raw
-- link-format payload.
CREATE TABLE endpoint (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL UNIQUE,
    site_id           INTEGER REFERENCES site (id) ON DELETE SET NULL,
    registration_id   TEXT    UNIQUE,
    online            INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
    registered_at     INTEGER,
    last_seen         INTEGER,
    address           TEXT    NOT NULL DEFAULT '',
    lifetime          INTEGER NOT NULL DEFAULT 0,
    binding           TEXT    NOT NULL DEFAULT '',
    lwm2m_version     TEXT    NOT NULL DEFAULT '',
    sms_number        TEXT    NOT NULL DEFAULT '',
    queue_mode        INTEGER NOT NULL DEFAULT 0 CHECK (queue_mode IN (0, 1)),
    object_links      TEXT    NOT NULL DEFAULT '',
    firmware_version  TEXT    NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX endpoint_site ON endpoint (site_id);
-- Registrations to expire: the expression must match ExpireEndpoints.
CREATE INDEX endpoint_expiry ON endpoint ((last_seen + lifetime * 1000)) WHERE online;

-- Resource definitions from the object registry (OMA DDF files).
-- data_type is lwm2m.Type.String(); operations is "R", "RW", "E", ...
CREATE TABLE resource_type (
    object_id    INTEGER NOT NULL,
    resource_id  INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    data_type    TEXT    NOT NULL,
    units        TEXT    NOT NULL DEFAULT '',
    multiple     INTEGER NOT NULL DEFAULT 0 CHECK (multiple IN (0, 1)),
    operations   TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (object_id, resource_id)
) WITHOUT ROWID;

-- A group of values reported together (composite notification, Send,
-- registration event) with its own timestamp.
CREATE TABLE event (
    id           INTEGER PRIMARY KEY,
    endpoint_id  INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL,
    time         INTEGER NOT NULL,
    received_at  INTEGER NOT NULL
);
CREATE INDEX event_endpoint ON event (endpoint_id, id);

-- The value history: one row per value received. path includes the
-- resource instance ("/3/0/7/1"); object_id..resource_instance are its IDs.
-- The value is value_type (lwm2m.Type.String()) plus one column:
--   integer, time (unix seconds), boolean (0/1)  -> value_int
--   unsigned                                      -> value_int, as the
--       int64 with the same bits (values above 2^63-1 read negative in SQL)
--   float                                         -> value_float (NaN is
--       stored as NULL and read back as NaN)
--   string, corelnk                               -> value_text, or
--       value_blob when not valid UTF-8 or holding NUL (PostgreSQL text
--       can store neither)
--   objlnk ("3:0")                                -> value_text
--   opaque                                        -> value_blob
--   none (executable)                             -> no column
--
-- Indexes, chosen by measurement (bench_test.go: SQLite file, 1,000-value
-- transactions, 2-core machine):
--   * resource keeps one index, (endpoint_id, path, received_at), serving
--     the history of one path over a time range;
--   * the latest value of each path lives in resource_latest, upserted in
--     the same transaction (one row per path per batch). Ingest runs at
--     about 45-55k values/s with it and 85-100k/s without; reading the
--     latest values of one endpoint (20 paths) takes 0.15 ms from
--     resource_latest, against 1.2 ms from the history index at 50 values
--     per path, growing with the history (9 ms at 200). Ingest stays ten
--     times above the 5,000 values/s needed; the dashboard read stays
--     constant.
CREATE TABLE resource (
    id                 INTEGER PRIMARY KEY,
    endpoint_id        INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
    path               TEXT    NOT NULL,
    object_id          INTEGER NOT NULL,
    instance_id        INTEGER NOT NULL,
    resource_id        INTEGER NOT NULL,
    resource_instance  INTEGER,
    value_type         TEXT    NOT NULL,
    value_int          INTEGER,
    value_float        REAL,
    value_text         TEXT,
    value_blob         BLOB,
    device_time        INTEGER,
    received_at        INTEGER NOT NULL,
    event_id           INTEGER REFERENCES event (id) ON DELETE SET NULL
);
CREATE INDEX resource_history ON resource (endpoint_id, path, received_at);
CREATE INDEX resource_event ON resource (event_id) WHERE event_id IS NOT NULL;

-- The latest value of each (endpoint, path): the row of the history with
-- the greatest received_at (then device_time, then insertion order).
-- event_id is informational (no foreign key).
CREATE TABLE resource_latest (
    endpoint_id        INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
    path               TEXT    NOT NULL,
    object_id          INTEGER NOT NULL,
    instance_id        INTEGER NOT NULL,
    resource_id        INTEGER NOT NULL,
    resource_instance  INTEGER,
    value_type         TEXT    NOT NULL,
    value_int          INTEGER,
    value_float        REAL,
    value_text         TEXT,
    value_blob         BLOB,
    device_time        INTEGER,
    received_at        INTEGER NOT NULL,
    event_id           INTEGER,
    PRIMARY KEY (endpoint_id, path)
) WITHOUT ROWID;

-- Which values an event carried. The link is resource.event_id (a value
-- belongs to at most one event), so ingest writes it once; this view keeps
-- the event/event_resource shape of the data model.
CREATE VIEW event_resource AS
    SELECT event_id, id AS resource_id FROM resource WHERE event_id IS NOT NULL;

-- Operators.
CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    username       TEXT    NOT NULL UNIQUE,
    password_hash  TEXT    NOT NULL,
    is_admin       INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at     INTEGER NOT NULL,
    last_login_at  INTEGER
);

CREATE TABLE membership (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    site_id  INTEGER NOT NULL REFERENCES site (id) ON DELETE CASCADE,
    role     TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    PRIMARY KEY (user_id, site_id)
) WITHOUT ROWID;
CREATE INDEX membership_site ON membership (site_id);

-- token_hash is the SHA-256 (hex) of the bearer token; prefix its first
-- characters, for display.
CREATE TABLE api_token (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    token_hash    TEXT    NOT NULL UNIQUE,
    prefix        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    expires_at    INTEGER
);
CREATE INDEX api_token_user ON api_token (user_id);

-- A pending or finished operation to a device. paths is a JSON array of
-- path strings; payload and response are JSON. FAILED after max_attempts.
CREATE TABLE endpoint_operation (
    id               INTEGER PRIMARY KEY,
    endpoint_id      INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
    kind             TEXT    NOT NULL,
    paths            TEXT    NOT NULL DEFAULT '[]',
    payload          TEXT,
    status           TEXT    NOT NULL DEFAULT 'QUEUED'
                     CHECK (status IN ('QUEUED', 'SENDING', 'CONFIRMED', 'FAILED', 'CANCELLED')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3,
    last_attempt_at  INTEGER,
    result_code      TEXT    NOT NULL DEFAULT '',
    result_error     TEXT    NOT NULL DEFAULT '',
    response         TEXT,
    queued_by        INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX endpoint_operation_queue ON endpoint_operation (endpoint_id, status, id);
CREATE INDEX endpoint_operation_queued_by ON endpoint_operation (queued_by) WHERE queued_by IS NOT NULL;

-- Firmware images; the file itself lives in the firmware directory.
CREATE TABLE firmware (
    id          INTEGER PRIMARY KEY,
    version     TEXT    NOT NULL UNIQUE,
    filename    TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

-- An update of one endpoint to one image. At most one active update per
-- endpoint; operation_ids is a JSON array of endpoint_operation ids.
CREATE TABLE firmware_update (
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
CREATE UNIQUE INDEX firmware_update_active ON firmware_update (endpoint_id) WHERE active;
CREATE INDEX firmware_update_endpoint ON firmware_update (endpoint_id, id);
CREATE INDEX firmware_update_firmware ON firmware_update (firmware_id);

-- What operators did. user_id is not a foreign key: the log outlives users
-- and actor keeps the name.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    time         INTEGER NOT NULL,
    user_id      INTEGER,
    actor        TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    target       TEXT    NOT NULL DEFAULT '',
    detail       TEXT,
    remote_addr  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_user ON audit_log (user_id, id) WHERE user_id IS NOT NULL;

-- DTLS credentials bound to an endpoint name. psk_key_enc is ciphertext
-- (encrypted by the caller).
CREATE TABLE credential (
    id                INTEGER PRIMARY KEY,
    endpoint_name     TEXT    NOT NULL UNIQUE,
    kind              TEXT    NOT NULL CHECK (kind IN ('psk', 'x509')),
    psk_identity      TEXT    UNIQUE,
    psk_key_enc       BLOB,
    cert_cn           TEXT    NOT NULL DEFAULT '',
    cert_fingerprint  TEXT    NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    CHECK ((kind = 'psk' AND psk_identity IS NOT NULL AND psk_key_enc IS NOT NULL)
        OR (kind = 'x509' AND psk_identity IS NULL AND psk_key_enc IS NULL))
);
