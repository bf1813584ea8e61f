-- OpenID Connect logout (SPEC §9): what each client registered, which clients got an ID token
-- in which session, and the back-channel logout tokens waiting to be delivered.

ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]'; -- JSON array
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;

-- The session a refresh family was signed in through, and when, so a refresh can issue an ID
-- token with the original auth_time and sid (Core §12.2). NULL for the password grant.
ALTER TABLE refresh_tokens ADD COLUMN session_hash BLOB;
ALTER TABLE refresh_tokens ADD COLUMN auth_time INTEGER;

-- Clients with a back-channel logout URI that received an ID token in a session; read (and
-- emptied) when the session ends.
CREATE TABLE session_clients (
    session_hash BLOB NOT NULL,
    client_id    TEXT NOT NULL,
    sid          TEXT NOT NULL,                    -- the ID tokens' sid claim
    user_id      TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,                      -- the session's end at the latest
    PRIMARY KEY (session_hash, client_id)
);
CREATE INDEX session_clients_user ON session_clients (user_id);
CREATE INDEX session_clients_expires ON session_clients (expires_at);

-- Logout tokens to post (Back-Channel Logout 1.0 §2.5), queued in the transaction that ends
-- the session, so a restart loses none; a replica claims one with a conditional write.
CREATE TABLE logout_deliveries (
    id              TEXT PRIMARY KEY,              -- sid and client: one delivery each
    client_id       TEXT NOT NULL,
    uri             TEXT NOT NULL,
    sid             TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX logout_deliveries_due ON logout_deliveries (next_attempt_at);
