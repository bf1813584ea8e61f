-- Valet's whole schema. Times are BIGINT unix seconds (as in JWTs); hashes are HMAC-SHA-256
-- under a key derived from the server secret; lists are JSON text. migrations/sqlite has the
-- same version with the same tables and columns.

CREATE TABLE clients (
    client_id                  TEXT PRIMARY KEY,
    client_name                TEXT NOT NULL,
    secret_hash                BYTEA,              -- NULL for public clients
    token_endpoint_auth_method TEXT NOT NULL,      -- client_secret_basic | none
    grant_types                TEXT NOT NULL,      -- JSON array of wire names
    redirect_uris              TEXT NOT NULL,      -- JSON array
    scope                      TEXT NOT NULL,      -- allowed scopes, space-delimited
    audiences                  TEXT NOT NULL,      -- JSON array of API identifiers
    allowed_origins            TEXT NOT NULL DEFAULT '[]', -- JSON array, for CORS
    first_party                BOOLEAN NOT NULL DEFAULT FALSE,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,                -- stable, never reused; the token's sub
    username      TEXT NOT NULL UNIQUE,
    email         TEXT,
    name          TEXT,
    password_hash TEXT NOT NULL,                   -- Argon2id PHC string
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE apis (
    identifier TEXT PRIMARY KEY,                   -- the token's aud
    name       TEXT NOT NULL,
    scopes     TEXT NOT NULL,                      -- JSON array
    created_at BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,                  -- RFC 7638 thumbprint
    alg         TEXT NOT NULL,
    status      TEXT NOT NULL,                     -- current | retired
    private_key BYTEA NOT NULL,                    -- AES-256-GCM sealed PKCS#8, bound to kid and alg
    public_jwk  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
-- At most one current key: two replicas generating the first key cannot both win.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (status) WHERE status = 'current';

-- One row per user authorization; codes, refresh families and access tokens carry its id,
-- so replay handling and revocation are one update.
CREATE TABLE grants (
    grant_id   TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX grants_user ON grants (user_id);
CREATE INDEX grants_client ON grants (client_id);
CREATE INDEX grants_expires ON grants (expires_at);

CREATE TABLE pending_requests (
    id         TEXT PRIMARY KEY,                   -- opaque id in the login and consent URLs
    client_id  TEXT NOT NULL,
    request    TEXT NOT NULL,                      -- the validated /authorize request, JSON
    user_id    TEXT,                               -- set once the user has logged in
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX pending_requests_expires ON pending_requests (expires_at);

CREATE TABLE sessions (
    id_hash    BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    audience   TEXT NOT NULL,                      -- '' where no API is involved
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id, audience)
);
CREATE INDEX consents_client ON consents (client_id);

CREATE TABLE authorization_codes (
    code_hash             BYTEA PRIMARY KEY,
    grant_id              TEXT NOT NULL,
    client_id             TEXT NOT NULL,
    user_id               TEXT NOT NULL,
    session_hash          BYTEA,
    redirect_uri          TEXT,                    -- as sent to /authorize; NULL if not sent
    code_challenge        TEXT,
    code_challenge_method TEXT,
    scope                 TEXT NOT NULL,
    audience              TEXT,
    nonce                 TEXT,
    auth_time             BIGINT NOT NULL,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    consumed_at           BIGINT
);
CREATE INDEX authorization_codes_grant ON authorization_codes (grant_id);
CREATE INDEX authorization_codes_expires ON authorization_codes (expires_at);

CREATE TABLE refresh_tokens (
    token_hash        BYTEA PRIMARY KEY,
    family_id         TEXT NOT NULL,
    parent_hash       BYTEA,
    grant_id          TEXT NOT NULL,
    client_id         TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    scope             TEXT NOT NULL,
    audience          TEXT,
    code_hash         BYTEA,                       -- the code the family came from
    issued_at         BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,             -- idle expiry of this token
    family_expires_at BIGINT NOT NULL,             -- absolute expiry of the family
    rotated_at        BIGINT,
    revoked_at        BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_client ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (family_expires_at);

-- Revoked access tokens, until they would have expired anyway (RFC 7009).
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_expires ON revoked_access_tokens (expires_at);

-- Failed-login throttling shared by every replica: one row per username or client address.
CREATE TABLE login_failures (
    limiter_key  TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);
CREATE INDEX login_failures_window ON login_failures (window_start);
