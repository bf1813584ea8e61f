-- Dynamic client registration (RFC 7591, RFC 7592).
-- A registered client keeps the keyed hash of its registration access token (rotated on
-- every update); the column is NULL for clients made with `valet client create`.
ALTER TABLE clients ADD COLUMN registration_token_hash BYTEA;

-- Initial access tokens (`valet registration token create`): hashed, counted down by one
-- conditional write per registration, useless after expires_at.
CREATE TABLE registration_tokens (
    token_hash BYTEA PRIMARY KEY,
    uses_left  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX registration_tokens_expires ON registration_tokens (expires_at);

-- How many registered clients exist, so registration.max_clients is one conditional write
-- on this row (a COUNT(*) checked before an insert could be raced past).
CREATE TABLE registration_quota (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    registered BIGINT NOT NULL
);
INSERT INTO registration_quota (id, registered) VALUES (1, 0);
