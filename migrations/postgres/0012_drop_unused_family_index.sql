-- No statement looks refresh tokens up by family: a family is revoked through its grant
-- (grant_id, indexed). The index on family_id only cost every rotation one more index entry.
DROP INDEX IF EXISTS refresh_tokens_family;
