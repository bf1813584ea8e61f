-- Dynamic client registration (RFC 7591, RFC 7592).
-- How a client that registered itself did it ('open' or 'token'; NULL for clients made with
-- `valet client create`), and the keyed hash of its registration access token (rotated on
-- every update; NULL once an administrator revokes it).
ALTER TABLE clients ADD COLUMN registered_via TEXT;
ALTER TABLE clients ADD COLUMN registration_token_hash BYTEA;
-- Bumped by every update, which names the revision it read: a change made in between (the
-- CLI and a client's own update, two CLI calls) makes the later write fail instead of undoing
-- the earlier one.
ALTER TABLE clients ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;

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
