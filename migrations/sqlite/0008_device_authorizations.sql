-- The device authorization grant (RFC 8628): one row per device sign-in, keyed by the hash of
-- the device code; the user code is kept hashed too. Status moves pending → approved or
-- denied → consumed by conditional writes only.
CREATE TABLE device_authorizations (
    device_code_hash BLOB PRIMARY KEY,
    user_code_hash   TEXT NOT NULL UNIQUE,
    client_id        TEXT NOT NULL,
    scope            TEXT NOT NULL,
    audience         TEXT NOT NULL,
    status           TEXT NOT NULL,                 -- pending | approved | denied | consumed
    user_id          TEXT,
    auth_time        INTEGER,
    interval_secs    INTEGER NOT NULL,
    last_polled_at   INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);
CREATE INDEX device_authorizations_expires ON device_authorizations (expires_at);
CREATE INDEX device_authorizations_client ON device_authorizations (client_id);
