//! Statement text shared by both engines: `$n` placeholders work on PostgreSQL and SQLite,
//! and every column type is portable (TEXT, BIGINT/INTEGER, BYTEA/BLOB, BOOLEAN).

pub const PING: &str = "SELECT 1";

macro_rules! client_columns {
    () => {
        "client_id, client_name, secret_hash, grant_types, redirect_uris, scope, audiences, allowed_origins, \
         first_party, created_at, updated_at, post_logout_redirect_uris, backchannel_logout_uri, require_par, \
         jwks, jwks_uri, registered_via, registration_token_hash, revision"
    };
}

macro_rules! update_client {
    () => {
        "UPDATE clients SET client_name = $2, secret_hash = $3, token_endpoint_auth_method = $4, \
     grant_types = $5, redirect_uris = $6, scope = $7, audiences = $8, allowed_origins = $9, first_party = $10, \
     post_logout_redirect_uris = $11, backchannel_logout_uri = $12, require_par = $13, jwks = $14, jwks_uri = $15, \
     registration_token_hash = $16, registered_via = $17, updated_at = $18, revision = revision + 1 \
     WHERE client_id = $1 AND revision = $19"
    };
}

pub const UPDATE_CLIENT: &str = update_client!();
/// RFC 7592 §2.2: only while `$20` is still the client's registration access token, so of two
/// racing updates with one token exactly one wins (and hands out the next token).
pub const UPDATE_REGISTERED_CLIENT: &str =
    concat!(update_client!(), " AND registration_token_hash = $20");

pub const DELETE_CLIENT: &str = "DELETE FROM clients WHERE client_id = $1 RETURNING registered_via";
/// RFC 7592 §2.3: only with the client's current registration access token (`$2`).
pub const DELETE_REGISTERED_CLIENT: &str = "DELETE FROM clients WHERE client_id = $1 \
     AND registration_token_hash = $2 RETURNING registered_via";

pub const INSERT_REGISTRATION_TOKEN: &str = "INSERT INTO registration_tokens \
     (token_hash, uses_left, created_at, expires_at) VALUES ($1, $2, $3, $4)";
/// Spend one use of an initial access token (`$1`, `$2` now): zero rows means it is unknown,
/// used up or expired.
pub const SPEND_REGISTRATION_TOKEN: &str = "UPDATE registration_tokens SET uses_left = uses_left - 1 \
     WHERE token_hash = $1 AND uses_left > 0 AND expires_at > $2";
/// Count one more registered client unless there are `$1` already: zero rows means full.
pub const TAKE_REGISTRATION_QUOTA: &str = "UPDATE registration_quota SET registered = registered + 1 \
     WHERE id = 1 AND registered < $1";
pub const RETURN_REGISTRATION_QUOTA: &str = "UPDATE registration_quota SET registered = registered - 1 \
     WHERE id = 1 AND registered > 0";
/// What a client leaves behind, deleted with it in one transaction (`$1` the client id): a
/// client registered again under the same id starts with no consent and no live token.
pub const DELETE_CLIENT_REMAINS: [&str; 7] = [
    "DELETE FROM consents WHERE client_id = $1",
    "DELETE FROM session_clients WHERE client_id = $1",
    "DELETE FROM logout_deliveries WHERE client_id = $1",
    "DELETE FROM authorization_codes WHERE client_id = $1",
    "DELETE FROM refresh_tokens WHERE client_id = $1",
    "DELETE FROM grants WHERE client_id = $1",
    "DELETE FROM pending_requests WHERE client_id = $1",
];
/// A client id may not be a user id (RFC 9068 §2.2, RFC 9700 §4.15): a client-credentials
/// token's `sub` must never name a user. One conditional write; zero rows is a conflict.
pub const INSERT_CLIENT_UNLESS_USER: &str = "INSERT INTO clients (client_id, client_name, secret_hash, token_endpoint_auth_method, \
     grant_types, redirect_uris, scope, audiences, allowed_origins, first_party, post_logout_redirect_uris, \
     backchannel_logout_uri, require_par, jwks, jwks_uri, registration_token_hash, registered_via, \
     created_at, updated_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19 \
     WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = $1)";
pub const COUNT_CLIENTS: &str = "SELECT COUNT(*) FROM clients";

pub const SELECT_CLIENT: &str = concat!(
    "SELECT ",
    client_columns!(),
    " FROM clients WHERE client_id = $1"
);
pub const SELECT_CLIENTS: &str = concat!(
    "SELECT ",
    client_columns!(),
    " FROM clients ORDER BY created_at, client_id"
);

macro_rules! user_columns {
    () => {
        "id, username, email, name, profile, password_hash, disabled, created_at, updated_at"
    };
}

pub const SET_USER_PASSWORD: &str =
    "UPDATE users SET password_hash = $2, updated_at = $3 WHERE username = $1";
pub const SET_USER_DISABLED: &str =
    "UPDATE users SET disabled = $2, updated_at = $3 WHERE username = $1";
/// Only if the hash is still the one that was checked: a concurrent `user set-password` wins.
/// `updated_at` stays: the user's data did not change.
pub const UPGRADE_PASSWORD_HASH: &str =
    "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2";
pub const DELETE_USER: &str = "DELETE FROM users WHERE username = $1";
/// A user id may not be a client id either (see `INSERT_CLIENT_UNLESS_USER`).
pub const INSERT_USER_UNLESS_CLIENT: &str = "INSERT INTO users (id, username, email, name, profile, password_hash, disabled, created_at, updated_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE NOT EXISTS (SELECT 1 FROM clients WHERE client_id = $1)";
/// The first statement of a claims update: a write that changes nothing but takes the row's
/// lock (PostgreSQL; SQLite's `BEGIN IMMEDIATE` holds the database's), so that a concurrent
/// update waits until this one has read, changed and written the row. Zero rows: no such user.
pub const LOCK_USER: &str = "UPDATE users SET updated_at = updated_at WHERE username = $1";
pub const UPDATE_USER_CLAIMS: &str =
    "UPDATE users SET email = $2, name = $3, profile = $4, updated_at = $5 WHERE id = $1";
pub const USER_ID_BY_USERNAME: &str = "SELECT id FROM users WHERE username = $1";
/// Ending everything a user holds (`$1` the user id, `$2` now), in the transaction that
/// changes the password or disables the user: sessions end, grants and their refresh
/// families are revoked (their access tokens read inactive at introspection), and codes not
/// yet redeemed are gone.
pub const END_USER_ACCESS: [&str; 3] = [
    "UPDATE sessions SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL",
    "UPDATE grants SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
];
pub const DELETE_UNREDEEMED_USER_CODES: &str =
    "DELETE FROM authorization_codes WHERE user_id = $1 AND consumed_at IS NULL";
/// What a deleted user leaves behind, deleted with the user (`$1` the user id).
pub const DELETE_USER_REMAINS: [&str; 5] = [
    "DELETE FROM sessions WHERE user_id = $1",
    "DELETE FROM consents WHERE user_id = $1",
    "DELETE FROM authorization_codes WHERE user_id = $1",
    "DELETE FROM refresh_tokens WHERE user_id = $1",
    "DELETE FROM grants WHERE user_id = $1",
];

pub const SELECT_USER_BY_USERNAME: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE username = $1"
);
pub const SELECT_USER_BY_ID: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
pub const SELECT_USERS: &str = concat!("SELECT ", user_columns!(), " FROM users ORDER BY username");

pub const INSERT_API: &str =
    "INSERT INTO apis (identifier, name, scopes, created_at) VALUES ($1, $2, $3, $4)";
pub const SELECT_API: &str =
    "SELECT identifier, name, scopes, created_at FROM apis WHERE identifier = $1";
pub const SELECT_APIS: &str =
    "SELECT identifier, name, scopes, created_at FROM apis ORDER BY identifier";
pub const DELETE_API: &str = "DELETE FROM apis WHERE identifier = $1";

pub const SELECT_KEYS: &str = "SELECT kid, alg, status, private_key, public_jwk, created_at, retired_at, activates_at \
     FROM signing_keys ORDER BY CASE status WHEN 'current' THEN 0 WHEN 'next' THEN 1 ELSE 2 END, created_at DESC, kid";
pub const INSERT_KEY: &str = "INSERT INTO signing_keys (kid, alg, status, private_key, public_jwk, created_at, retired_at, activates_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub const RETIRE_CURRENT_KEY: &str =
    "UPDATE signing_keys SET status = 'retired', retired_at = $1 WHERE status = 'current'";
/// A `next` key that a newer rotation replaces never signed anything; it is retired (and
/// stays published a while, harmlessly) rather than deleted from under a cached JWKS.
pub const RETIRE_NEXT_KEYS: &str =
    "UPDATE signing_keys SET status = 'retired', retired_at = $1 WHERE status = 'next'";
/// The latest `next` key that is due; `$1` is now.
pub const DUE_NEXT_KEY: &str = "SELECT kid FROM signing_keys WHERE status = 'next' AND activates_at <= $1 \
     ORDER BY activates_at DESC, kid LIMIT 1";
/// Promote a due `next` key; conditional, so of two replicas promoting at once one does.
pub const PROMOTE_KEY: &str =
    "UPDATE signing_keys SET status = 'current' WHERE kid = $1 AND status = 'next'";

/// A code's columns, with `$created_at` in the place of its `created_at`.
macro_rules! code_columns_with {
    ($created_at:literal) => {
        concat!(
            "code_hash, grant_id, client_id, user_id, session_hash, redirect_uri, code_challenge, \
             code_challenge_method, scope, audience, nonce, auth_time, ",
            $created_at,
            ", expires_at, claims"
        )
    };
}
macro_rules! code_columns {
    () => {
        code_columns_with!("created_at")
    };
}
/// [`code_columns`] as read back: `created_at` renamed, as `users` has a column of that name
/// and a code is read together with its user.
macro_rules! code_read_columns {
    () => {
        code_columns_with!("created_at AS code_created_at")
    };
}

pub const INSERT_GRANT: &str = "INSERT INTO grants (grant_id, client_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
pub const REVOKE_GRANT: &str =
    "UPDATE grants SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL";
pub const REVOKE_GRANT_REFRESH_TOKENS: &str =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL";
/// A code's grant lives as long as the code until it is redeemed; redemption extends it to
/// what the tokens issued from it need. Never shortens it.
macro_rules! extend_grant {
    ($grant:literal, $expires_at:literal) => {
        concat!(
            "UPDATE grants SET expires_at = ",
            $expires_at,
            " WHERE grant_id = ",
            $grant,
            " AND expires_at < ",
            $expires_at
        )
    };
}
macro_rules! grant_status {
    () => {
        "SELECT revoked_at IS NOT NULL AS revoked, userinfo_claims FROM grants WHERE grant_id = $1"
    };
}
pub const GRANT_STATUS: &str = grant_status!();
/// [`GRANT_STATUS`] and the user `$2` in one round trip, for an access token's introspection
/// and UserInfo. The grant's columns come through a subquery, so none shares a name with the
/// user's; a user that is gone reads as NULL columns.
pub const GRANT_STATUS_AND_USER: &str = concat!(
    "SELECT g.revoked, g.userinfo_claims, ",
    user_columns!(),
    " FROM (",
    grant_status!(),
    ") g LEFT JOIN users ON users.id = $2"
);
pub const SET_GRANT_USERINFO_CLAIMS: &str =
    "UPDATE grants SET userinfo_claims = $2 WHERE grant_id = $1";

pub const INSERT_CODE: &str = concat!(
    "INSERT INTO authorization_codes (",
    code_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
);
/// The one conditional write that makes a code single-use: under PostgreSQL's read committed
/// a concurrent UPDATE waits for the row lock and re-checks the WHERE clause; SQLite writes
/// one statement at a time. Either way exactly one redemption changes the row.
macro_rules! consume_code {
    ($code_hash:literal, $client_id:literal, $now:literal) => {
        concat!(
            "UPDATE authorization_codes SET consumed_at = ",
            $now,
            " WHERE code_hash = ",
            $code_hash,
            " AND client_id = ",
            $client_id,
            " AND consumed_at IS NULL AND expires_at > ",
            $now,
            " RETURNING ",
            code_read_columns!()
        )
    };
}
pub const CONSUME_CODE: &str = consume_code!("$1", "$2", "$3");
/// A code as stored and its user, in one round trip, for checking what a redemption proves
/// before the write that consumes it. A LEFT JOIN: a code whose user is gone still reads, with
/// the user's columns NULL.
pub const SELECT_CODE_AND_USER: &str = concat!(
    "SELECT c.*, ",
    user_columns!(),
    " FROM (SELECT ",
    code_read_columns!(),
    " FROM authorization_codes WHERE code_hash = $1 AND client_id = $2) c \
     LEFT JOIN users ON users.id = c.user_id"
);
pub const CODE_STATE: &str =
    "SELECT client_id, grant_id, consumed_at FROM authorization_codes WHERE code_hash = $1";

pub const INSERT_PENDING: &str = "INSERT INTO pending_requests (id, client_id, request, user_id, created_at, expires_at) \
     VALUES ($1, $2, $3, NULL, $4, $5)";
pub const SELECT_PENDING: &str = "SELECT id, client_id, request, created_at, expires_at FROM pending_requests \
     WHERE id = $1 AND expires_at > $2";
/// The request as it goes on (e.g. with the sign-in made for it), while it is live.
pub const UPDATE_PENDING: &str =
    "UPDATE pending_requests SET request = $2 WHERE id = $1 AND expires_at > $3";
/// Completing a request deletes it in one conditional write: it can finish only once.
pub const TAKE_PENDING: &str = "DELETE FROM pending_requests WHERE id = $1 AND expires_at > $2 \
     RETURNING id, client_id, request, created_at, expires_at";
/// [`TAKE_PENDING`] only for `$3`'s request: another client's attempt leaves it in place.
pub const TAKE_PENDING_OF_CLIENT: &str = "DELETE FROM pending_requests \
     WHERE id = $1 AND expires_at > $2 AND client_id = $3 \
     RETURNING id, client_id, request, created_at, expires_at";

pub const INSERT_SESSION: &str = "INSERT INTO sessions (id_hash, user_id, auth_time, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5)";
pub const SELECT_SESSION: &str = "SELECT id_hash, user_id, auth_time, created_at, expires_at FROM sessions \
     WHERE id_hash = $1 AND ended_at IS NULL AND expires_at > $2";
pub const END_SESSION: &str =
    "UPDATE sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL";

pub const SELECT_CONSENT: &str =
    "SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2 AND audience = $3";
pub const UPSERT_CONSENT: &str = "INSERT INTO consents (user_id, client_id, audience, scope, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (user_id, client_id, audience) \
     DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at";

pub const LOGIN_FAILURES_OF: &str = "SELECT failures FROM login_failures WHERE limiter_key = $1";
pub const CLEAR_LOGIN_FAILURES: &str = "DELETE FROM login_failures WHERE limiter_key = $1";

/// The failures of a key after this attempt: a failure outside the window starts a new one.
macro_rules! reserved_failures {
    () => {
        "(CASE WHEN login_failures.window_start <= $3 THEN 1 ELSE login_failures.failures + 1 END)"
    };
}

/// Reserve one attempt against a limiter key, unless it is locked: the attempt counts as a
/// failure from now on (a right password gives it back, see [`RELEASE_LOGIN`]), and when it is
/// past the free ones the key is locked at once, in the same write, for 1 s doubling up to the
/// maximum. So parallel attempts see each other's reservations, whatever replica runs them,
/// and a request that dies mid-check leaves a failure that the window forgets. No row comes
/// back while the key is locked. Times are whole seconds, so a key stays locked *through* the
/// second `locked_until`: a lock of n s then lasts at least n s, however little of the current
/// second is left when it starts. `$1` key, `$2` now, `$3` start of the current window,
/// `$4` free failures, `$5` maximum lock in seconds (0: never lock).
pub const RESERVE_LOGIN: &str = concat!(
    "INSERT INTO login_failures (limiter_key, failures, window_start, locked_until) \
     VALUES ($1, 1, $2, CASE WHEN 1 > $4 AND $5 > 0 THEN $2 + 1 ELSE 0 END) \
     ON CONFLICT (limiter_key) DO UPDATE SET failures = ",
    reserved_failures!(),
    ", window_start = CASE WHEN login_failures.window_start <= $3 THEN $2 ELSE login_failures.window_start END, \
     locked_until = CASE WHEN ",
    reserved_failures!(),
    " > $4 AND $5 > 0 THEN $2 + (CASE WHEN ",
    reserved_failures!(),
    " - $4 - 1 >= 30 THEN $5 WHEN (CAST(1 AS BIGINT) << CAST(",
    reserved_failures!(),
    " - $4 - 1 AS INTEGER)) > $5 THEN $5 ELSE (CAST(1 AS BIGINT) << CAST(",
    reserved_failures!(),
    " - $4 - 1 AS INTEGER)) END) ELSE login_failures.locked_until END \
     WHERE login_failures.locked_until < $2 \
     RETURNING failures"
);
/// Give back a reservation whose password was right.
pub const RELEASE_LOGIN: &str =
    "UPDATE login_failures SET failures = failures - 1 WHERE limiter_key = $1 AND failures > 0";
pub const LOGIN_LOCK_OF: &str = "SELECT locked_until FROM login_failures WHERE limiter_key = $1";

macro_rules! refresh_columns {
    () => {
        "token_hash, family_id, parent_hash, grant_id, client_id, user_id, scope, audience, code_hash, \
         issued_at, expires_at, family_expires_at, session_hash, auth_time, rotated_at, revoked_at"
    };
}

/// A new token's values: `$1`..`$14` in [`refresh_columns!`]'s order, neither rotated nor revoked.
macro_rules! new_refresh_values {
    () => {
        "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, NULL"
    };
}
macro_rules! insert_refresh {
    () => {
        concat!(
            "INSERT INTO refresh_tokens (",
            refresh_columns!(),
            ") VALUES (",
            new_refresh_values!(),
            ")"
        )
    };
}
/// The first token of a family (`$1`..`$14`, as [`new_refresh_values!`]) and its grant (`$4`) made to
/// live as long as the family (`$12`), in one statement: a data-modifying `WITH`
/// (PostgreSQL).
pub const INSERT_FIRST_REFRESH: &str = concat!(
    "WITH extended AS (",
    extend_grant!("$4", "$12"),
    ") ",
    insert_refresh!()
);
/// [`INSERT_FIRST_REFRESH`] for SQLite, which has no data-modifying `WITH`: two statements in
/// one text, which sqlx runs in one call on the connection's thread (numbered parameters bind
/// across both), each committing on its own. The extension goes first: should the insert
/// then fail, the grant only lives longer than it had to, never shorter than its family.
pub const EXTEND_THEN_INSERT_FIRST_REFRESH: &str =
    concat!(extend_grant!("$4", "$12"), "; ", insert_refresh!());
/// [`CONSUME_CODE`] (here `$15` the code's hash, `$16` the client, `$17` now) and, only if it
/// consumed the code, [`INSERT_FIRST_REFRESH`] (`$1`..`$14`): a redemption in one statement
/// (PostgreSQL), atomic, which returns the consumed code like [`CONSUME_CODE`].
pub const CONSUME_CODE_WITH_FIRST_REFRESH: &str = concat!(
    "WITH consumed AS (",
    consume_code!("$15", "$16", "$17"),
    "), extended AS (",
    extend_grant!("$4", "$12"),
    " AND EXISTS (SELECT 1 FROM consumed)), inserted AS (INSERT INTO refresh_tokens (",
    refresh_columns!(),
    ") SELECT ",
    new_refresh_values!(),
    " FROM consumed) SELECT * FROM consumed"
);
/// [`CONSUME_CODE_WITH_FIRST_REFRESH`] for SQLite: one transaction in one text, three
/// statements between `BEGIN IMMEDIATE` and `COMMIT`; `changes()` (the rows the connection's
/// previous statement changed) makes the insert follow only a consumed code and the extension
/// only an inserted token. Returns the consumed code's row.
pub const CONSUME_CODE_WITH_FIRST_REFRESH_IN_ONE_TRANSACTION: &str = concat!(
    "BEGIN IMMEDIATE; ",
    consume_code!("$15", "$16", "$17"),
    "; INSERT INTO refresh_tokens (",
    refresh_columns!(),
    ") SELECT ",
    new_refresh_values!(),
    " WHERE changes() = 1; ",
    extend_grant!("$4", "$12"),
    " AND changes() = 1; COMMIT"
);
/// The token's columns and whether its grant was revoked: a code replay revokes the grant,
/// and that must kill tokens however the two writes interleave.
macro_rules! refresh_read_columns {
    () => {
        concat!(
            refresh_columns!(),
            ", EXISTS (SELECT 1 FROM grants g WHERE g.grant_id = refresh_tokens.grant_id AND g.revoked_at IS NOT NULL) AS grant_revoked"
        )
    };
}

pub const SELECT_REFRESH: &str = concat!(
    "SELECT ",
    refresh_read_columns!(),
    " FROM refresh_tokens WHERE token_hash = $1"
);
/// [`SELECT_REFRESH`] and the token's user in one round trip, for the refresh grant and
/// introspection, which need both. A LEFT JOIN: a token whose user is gone still reads, with
/// the user's columns NULL. No column name is in both tables.
pub const SELECT_REFRESH_AND_USER: &str = concat!(
    "SELECT ",
    refresh_read_columns!(),
    ", ",
    user_columns!(),
    " FROM refresh_tokens LEFT JOIN users ON users.id = refresh_tokens.user_id WHERE token_hash = $1"
);
/// A conditional UPDATE of the refresh token `$1` (`$2` being now) and the insert of its
/// successor (`$3`..`$16`) only when it changed exactly one row, atomically, in one call to
/// the database.
pub struct SuccessorIf {
    /// PostgreSQL: one statement, a data-modifying `WITH`; one row changed when it inserted.
    pub with_insert: &'static str,
    /// SQLite, which has no data-modifying `WITH`: a transaction of its own in one text (the
    /// insert `WHERE changes() = 1`), which returns a row when it inserted.
    pub one_transaction_text: &'static str,
}

/// The successor's values: `$3`..`$16` in [`refresh_columns!`]'s order, neither rotated nor
/// revoked.
macro_rules! successor_values {
    () => {
        "$3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL, NULL"
    };
}
macro_rules! then_insert_successor {
    ($condition:expr) => {
        concat!(
            "WITH changed AS (",
            $condition,
            " RETURNING 1) INSERT INTO refresh_tokens (",
            refresh_columns!(),
            ") SELECT ",
            successor_values!(),
            " WHERE (SELECT count(*) FROM changed) = 1"
        )
    };
}
macro_rules! one_transaction_text {
    ($condition:expr) => {
        concat!(
            "BEGIN IMMEDIATE; ",
            $condition,
            "; INSERT INTO refresh_tokens (",
            refresh_columns!(),
            ") SELECT ",
            successor_values!(),
            " WHERE changes() = 1 RETURNING 1; COMMIT"
        )
    };
}

/// The one conditional write that makes a refresh token single-use.
macro_rules! rotate_refresh {
    () => {
        "UPDATE refresh_tokens SET rotated_at = $2 \
         WHERE token_hash = $1 AND rotated_at IS NULL AND revoked_at IS NULL \
         AND expires_at > $2 AND family_expires_at > $2 \
         AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.grant_id = refresh_tokens.grant_id AND g.revoked_at IS NOT NULL)"
    };
}
/// Grace period: the unused successor of a just-rotated token is withdrawn for a new one.
macro_rules! withdraw_successor {
    () => {
        "UPDATE refresh_tokens SET revoked_at = $2 \
         WHERE parent_hash = $1 AND rotated_at IS NULL AND revoked_at IS NULL"
    };
}
pub const ROTATE_REFRESH_THEN_INSERT: &str = then_insert_successor!(rotate_refresh!());
pub const ROTATE_REFRESH_IN_ONE_TRANSACTION: &str = one_transaction_text!(rotate_refresh!());
pub const WITHDRAW_SUCCESSOR_THEN_INSERT: &str = then_insert_successor!(withdraw_successor!());
pub const WITHDRAW_SUCCESSOR_IN_ONE_TRANSACTION: &str =
    one_transaction_text!(withdraw_successor!());
pub const ROTATION: SuccessorIf = SuccessorIf {
    with_insert: ROTATE_REFRESH_THEN_INSERT,
    one_transaction_text: ROTATE_REFRESH_IN_ONE_TRANSACTION,
};
pub const SUCCESSOR_WITHDRAWAL: SuccessorIf = SuccessorIf {
    with_insert: WITHDRAW_SUCCESSOR_THEN_INSERT,
    one_transaction_text: WITHDRAW_SUCCESSOR_IN_ONE_TRANSACTION,
};

pub const REVOKE_ACCESS_TOKEN: &str = "INSERT INTO revoked_access_tokens (jti, client_id, revoked_at, expires_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING";
/// Whether one `jti` is on the deny list: a lone check, the common case below saturation,
/// is one index probe, where [`REVOKED_AMONG`] would bind 32 values and make SQLite build a
/// temporary table of its `IN` list.
pub const REVOKED_ONE: &str = "SELECT jti FROM revoked_access_tokens WHERE jti = $1";
/// How many ids one [`REVOKED_AMONG`] asks about; a shorter list is padded with `NULL`, which
/// `IN` never matches, so a single prepared statement serves every batch on both engines.
pub const REVOKED_AMONG_SIZE: usize = 32;
pub const REVOKED_AMONG: &str = concat!(
    "SELECT jti FROM revoked_access_tokens WHERE jti IN (",
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, ",
    "$17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32)"
);

/// Accept a client assertion id (`$1` client, `$2` jti, `$3` expires_at, `$4` now): a new row,
/// or the row of an expired one taken over; zero rows changed is a replay.
pub const USE_CLIENT_ASSERTION: &str = "INSERT INTO client_assertions (client_id, jti, expires_at) \
     VALUES ($1, $2, $3) ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at \
     WHERE client_assertions.expires_at <= $4";

/// The janitor's statements, one per [`Purge`](super::Purge): `$1` is the cut-off time, `$2`
/// the batch size. Each deletes one batch; replicas running them at once only race to delete
/// the same rows.
pub fn purge(purge: super::Purge) -> &'static str {
    use super::Purge;
    match purge {
        Purge::AuthorizationCodes => {
            "DELETE FROM authorization_codes WHERE code_hash IN \
             (SELECT code_hash FROM authorization_codes WHERE expires_at < $1 LIMIT $2)"
        }
        Purge::PendingRequests => {
            "DELETE FROM pending_requests WHERE id IN \
             (SELECT id FROM pending_requests WHERE expires_at < $1 LIMIT $2)"
        }
        Purge::Sessions => {
            "DELETE FROM sessions WHERE id_hash IN \
             (SELECT id_hash FROM sessions WHERE expires_at < $1 OR ended_at < $1 LIMIT $2)"
        }
        Purge::RefreshTokens => {
            "DELETE FROM refresh_tokens WHERE token_hash IN \
             (SELECT token_hash FROM refresh_tokens WHERE family_expires_at < $1 LIMIT $2)"
        }
        Purge::Grants => {
            "DELETE FROM grants WHERE grant_id IN \
             (SELECT grant_id FROM grants WHERE expires_at < $1 LIMIT $2)"
        }
        Purge::RevokedAccessTokens => {
            "DELETE FROM revoked_access_tokens WHERE jti IN \
             (SELECT jti FROM revoked_access_tokens WHERE expires_at < $1 LIMIT $2)"
        }
        Purge::LoginFailures => {
            "DELETE FROM login_failures WHERE limiter_key IN \
             (SELECT limiter_key FROM login_failures WHERE window_start < $1 AND locked_until < $1 LIMIT $2)"
        }
        Purge::SessionClients => {
            "DELETE FROM session_clients WHERE (session_hash, client_id) IN \
             (SELECT session_hash, client_id FROM session_clients WHERE expires_at < $1 LIMIT $2)"
        }
        Purge::ClientAssertions => {
            "DELETE FROM client_assertions WHERE (client_id, jti) IN \
             (SELECT client_id, jti FROM client_assertions WHERE expires_at < $1 LIMIT $2)"
        }
        Purge::RegistrationTokens => {
            "DELETE FROM registration_tokens WHERE token_hash IN \
             (SELECT token_hash FROM registration_tokens WHERE expires_at < $1 OR uses_left <= 0 LIMIT $2)"
        }
    }
}

pub const CLIENT_ORIGINS: &str =
    "SELECT allowed_origins FROM clients WHERE allowed_origins <> '[]'";

/// Record a client that got an ID token in a session (again: nothing changes).
pub const INSERT_SESSION_CLIENT: &str = "INSERT INTO session_clients (session_hash, client_id, sid, user_id, expires_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_hash, client_id) DO NOTHING";

macro_rules! queue_logouts {
    ($where:literal) => {
        concat!(
            "INSERT INTO logout_deliveries (id, client_id, uri, sid, user_id, attempts, next_attempt_at, created_at) \
             SELECT sc.sid || ' ' || sc.client_id, sc.client_id, c.backchannel_logout_uri, sc.sid, sc.user_id, 0, $2, $2 \
             FROM session_clients sc JOIN clients c ON c.client_id = sc.client_id \
             WHERE c.backchannel_logout_uri IS NOT NULL AND ",
            $where,
            " ON CONFLICT (id) DO NOTHING"
        )
    };
}
/// A session ends (`$1` its hash, `$2` now): queue a logout token for each client told of it,
/// then forget them, in the transaction that ends it.
pub const QUEUE_SESSION_LOGOUTS: &str = queue_logouts!("sc.session_hash = $1");
pub const FORGET_SESSION_CLIENTS: &str = "DELETE FROM session_clients WHERE session_hash = $1";
/// All of a user's sessions end (`$1` the user id, `$2` now): the same for each.
pub const QUEUE_USER_LOGOUTS: &str = queue_logouts!("sc.user_id = $1");
pub const FORGET_USER_SESSION_CLIENTS: &str = "DELETE FROM session_clients WHERE user_id = $1";

/// Deliveries due at `$1`, oldest first, at most `$2`.
pub const DUE_LOGOUT_DELIVERIES: &str = "SELECT id, client_id, uri, sid, user_id, attempts FROM logout_deliveries \
     WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2";
/// Claim a due delivery until `$3` (its lease), counting the attempt; zero rows: another
/// replica has it.
pub const CLAIM_LOGOUT_DELIVERY: &str = "UPDATE logout_deliveries SET next_attempt_at = $3, attempts = attempts + 1 \
     WHERE id = $1 AND next_attempt_at <= $2";
pub const RETRY_LOGOUT_DELIVERY: &str =
    "UPDATE logout_deliveries SET next_attempt_at = $2 WHERE id = $1";
pub const DELETE_LOGOUT_DELIVERY: &str = "DELETE FROM logout_deliveries WHERE id = $1";

macro_rules! device_columns {
    () => {
        "device_code_hash, user_code_hash, client_id, scope, audience, status, user_id, auth_time, \
         interval_secs, created_at, expires_at"
    };
}
pub const INSERT_DEVICE: &str = "INSERT INTO device_authorizations (device_code_hash, user_code_hash, client_id, \
     scope, audience, status, user_id, auth_time, interval_secs, last_polled_at, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, 'pending', NULL, NULL, $6, 0, $7, $8)";
pub const SELECT_DEVICE_BY_USER_CODE: &str = concat!(
    "SELECT ",
    device_columns!(),
    " FROM device_authorizations WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $2"
);
pub const SELECT_DEVICE: &str = concat!(
    "SELECT ",
    device_columns!(),
    " FROM device_authorizations WHERE device_code_hash = $1 AND client_id = $2"
);
/// The person's answer, once, while the sign-in waits: `$3` approved or denied.
pub const DECIDE_DEVICE: &str = "UPDATE device_authorizations SET status = $3, user_id = $4, auth_time = $5 \
     WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $2";
/// A poll sooner than the interval after the last one: the interval grows by 5 s (§3.5).
pub const SLOW_DOWN_DEVICE: &str = "UPDATE device_authorizations SET interval_secs = interval_secs + 5, \
     last_polled_at = $2 WHERE device_code_hash = $1 AND status = 'pending' AND $2 - last_polled_at < interval_secs";
pub const POLLED_DEVICE: &str = "UPDATE device_authorizations SET last_polled_at = $2 \
     WHERE device_code_hash = $1 AND status = 'pending'";
/// The one conditional write that spends a device code: one poll gets the tokens.
pub const SPEND_DEVICE: &str = "UPDATE device_authorizations SET status = 'consumed' \
     WHERE device_code_hash = $1 AND status = 'approved'";

#[cfg(test)]
mod tests {
    use super::*;

    /// The highest `$N` in `text`, having checked that each of `$1`..`$N` is there.
    fn placeholders(text: &str) -> usize {
        let mut seen = std::collections::BTreeSet::new();
        for (at, _) in text.match_indices('$') {
            let digits: String = text[at + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            seen.insert(digits.parse::<usize>().expect("a numbered placeholder"));
        }
        let highest = seen.last().copied().unwrap_or(0);
        assert_eq!(
            seen.len(),
            highest,
            "a placeholder missing below ${highest}"
        );
        highest
    }

    /// sqlx's SQLite driver binds a placeholder it has no value for as NULL, without an
    /// error; a text that drifted from what its caller binds would store NULLs in the
    /// refresh token's nullable columns. `bind_refresh` binds a token's 14 values.
    #[test]
    fn multi_statement_texts_number_what_their_callers_bind() {
        // presented hash and now, then the successor
        for text in [
            ROTATE_REFRESH_IN_ONE_TRANSACTION,
            WITHDRAW_SUCCESSOR_IN_ONE_TRANSACTION,
            ROTATE_REFRESH_THEN_INSERT,
            WITHDRAW_SUCCESSOR_THEN_INSERT,
        ] {
            assert_eq!(placeholders(text), 2 + 14, "{text}");
        }
        // the first token, then the code's hash, the client and now
        for text in [
            CONSUME_CODE_WITH_FIRST_REFRESH_IN_ONE_TRANSACTION,
            CONSUME_CODE_WITH_FIRST_REFRESH,
        ] {
            assert_eq!(placeholders(text), 14 + 3, "{text}");
        }
        // the first token alone
        for text in [EXTEND_THEN_INSERT_FIRST_REFRESH, INSERT_FIRST_REFRESH] {
            assert_eq!(placeholders(text), 14, "{text}");
        }
    }
}
