-- Pushed authorization requests (RFC 9126) and private_key_jwt client authentication
-- (RFC 7523, OpenID Connect Core §9): what a client registers for them, and the assertion
-- ids already accepted (each once until it expires, across replicas).
ALTER TABLE clients ADD COLUMN require_par BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN jwks TEXT;                  -- a JWK Set, inline
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;              -- or where to fetch it

CREATE TABLE client_assertions (
    jti        TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertions_expires ON client_assertions (expires_at);
