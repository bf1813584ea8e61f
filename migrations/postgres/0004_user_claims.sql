-- The standard OpenID user claims beyond `email` and `name` (SPEC §2; OpenID Connect Core
-- §5.1): one JSON object of `email_verified`, `given_name`, `family_name`, `picture`,
-- `locale`, `phone_number` and `address` (§5.1.1), members left out when unset.
ALTER TABLE users ADD COLUMN profile TEXT NOT NULL DEFAULT '{}';
