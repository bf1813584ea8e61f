-- The OpenID Connect `claims` request parameter (Core §5.5): the claims a request asked for
-- beyond its scopes, for the ID token (kept with the code) and for UserInfo (kept with the
-- grant its access tokens name). JSON; NULL where none were asked for.
ALTER TABLE authorization_codes ADD COLUMN claims TEXT;
ALTER TABLE grants ADD COLUMN userinfo_claims TEXT;
