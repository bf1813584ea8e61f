-- Rotating a refresh token sets its rotated_at and redeeming a code its consumed_at, neither
-- of them indexed. With room left on the row's page PostgreSQL updates it in place (a HOT
-- update) instead of writing a new row version into every index of the table: seven for
-- refresh_tokens. Applies to pages written from now on; existing rows keep their pages.
ALTER TABLE refresh_tokens SET (fillfactor = 70);
ALTER TABLE authorization_codes SET (fillfactor = 70);
