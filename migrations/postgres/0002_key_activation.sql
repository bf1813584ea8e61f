-- Keys published before use (SPEC §2, §5): `keys rotate` adds a `next` key, in the JWKS at
-- once, that becomes `current` at `activates_at`.
ALTER TABLE signing_keys ADD COLUMN activates_at BIGINT;
