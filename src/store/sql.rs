//! Statement text shared by both engines: `$n` placeholders work on PostgreSQL and SQLite,
//! and every column type is portable (TEXT, BIGINT/INTEGER, BYTEA/BLOB, BOOLEAN).

pub const PING: &str = "SELECT 1";

macro_rules! client_columns {
    () => {
        "client_id, client_name, secret_hash, grant_types, redirect_uris, scope, audiences, allowed_origins, \
         first_party, created_at, updated_at"
    };
}

pub const INSERT_CLIENT: &str = "INSERT INTO clients (client_id, client_name, secret_hash, token_endpoint_auth_method, \
     grant_types, redirect_uris, scope, audiences, allowed_origins, first_party, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

pub const UPDATE_CLIENT: &str = "UPDATE clients SET client_name = $2, secret_hash = $3, token_endpoint_auth_method = $4, \
     grant_types = $5, redirect_uris = $6, scope = $7, audiences = $8, allowed_origins = $9, first_party = $10, \
     updated_at = $11 WHERE client_id = $1";

pub const DELETE_CLIENT: &str = "DELETE FROM clients WHERE client_id = $1";
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
        "id, username, email, name, password_hash, disabled, created_at, updated_at"
    };
}

pub const INSERT_USER: &str = "INSERT INTO users (id, username, email, name, password_hash, disabled, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub const SET_USER_PASSWORD: &str =
    "UPDATE users SET password_hash = $2, updated_at = $3 WHERE username = $1";
pub const SET_USER_DISABLED: &str =
    "UPDATE users SET disabled = $2, updated_at = $3 WHERE username = $1";
pub const DELETE_USER: &str = "DELETE FROM users WHERE username = $1";

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

pub const SELECT_KEYS: &str = "SELECT kid, alg, status, private_key, public_jwk, created_at, retired_at FROM signing_keys \
     ORDER BY CASE status WHEN 'current' THEN 0 ELSE 1 END, created_at DESC, kid";
pub const INSERT_KEY: &str = "INSERT INTO signing_keys (kid, alg, status, private_key, public_jwk, created_at, retired_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub const RETIRE_CURRENT_KEY: &str =
    "UPDATE signing_keys SET status = 'retired', retired_at = $1 WHERE status = 'current'";
