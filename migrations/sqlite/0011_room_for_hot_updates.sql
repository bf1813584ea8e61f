-- PostgreSQL's 0011 leaves room on the pages of refresh_tokens and authorization_codes for
-- in-place updates; SQLite's b-tree pages need no such setting. Kept so that both stores
-- number their migrations alike.
SELECT 1;
