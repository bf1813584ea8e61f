-- Indexes found missing by EXPLAIN on a seeded store (bench/seed.py --explain; BENCHMARKS.md,
-- "Scale"): each of these queries read its whole table.

-- Withdrawing a successor when a refresh is retried inside tokens.refresh_reuse_grace
-- (WITHDRAW_SUCCESSOR): found by its parent, inside the rotation's write transaction.
CREATE INDEX refresh_tokens_parent ON refresh_tokens (parent_hash) WHERE parent_hash IS NOT NULL;

-- The CORS allow-list (CLIENT_ORIGINS): only the few clients with origins.
CREATE INDEX clients_allowed_origins ON clients (allowed_origins) WHERE allowed_origins <> '[]';

-- The janitor's purge of ended sessions (expires_at is indexed already).
CREATE INDEX sessions_ended ON sessions (ended_at) WHERE ended_at IS NOT NULL;
