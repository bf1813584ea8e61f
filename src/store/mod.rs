//! The store: one [`Store`] trait of use-case methods, implemented once for PostgreSQL and
//! once for SQLite from the same statement text (`sql.rs`) and the same method bodies
//! (`shared.rs`); engine quirks live in each engine's file.

pub mod batch;
mod breaker;
pub mod cache;
mod postgres;
mod records;
mod shared;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::error::DatabaseError;

use crate::config::{Settings, StoreKind};
use crate::crypto::SecretHash;
use crate::domain::{GrantId, ScopeSet, UnixTime};

pub use postgres::PgStore;
pub use records::{
    Address, AddressPart, Api, AuthorizationCode, ClaimEdit, Client, ClientKeys, ClientLogout,
    Consent, DeviceAuthorization, DevicePoll, GrantStatus, KeyStatus, LogoutDelivery,
    PendingRequest, Redeemed, RefreshToken, Registered, Registration, RegistrationToken, Session,
    SessionClient, StoredKey, User, UserProfile,
};
pub use sqlite::SqliteStore;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint said no: the id, username or identifier exists already.
    #[error("already exists")]
    Conflict,
    /// The store could not be reached in time; the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::Database(db) if sqlite_lock_waited_out(db.as_ref()) => {
                StoreError::Unavailable(error.to_string())
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
            _ => StoreError::Internal(error.to_string()),
        }
    }
}

/// SQLite's lock stayed taken for the whole busy timeout (`SQLITE_BUSY` or `SQLITE_LOCKED`,
/// whatever the extended code): another writer, such as the CLI in another process, held it.
/// Retrying later can succeed, so the client is told so (503) rather than given a 500.
fn sqlite_lock_waited_out(error: &(dyn DatabaseError + 'static)) -> bool {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    error
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .and_then(DatabaseError::code)
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Internal(format!("migration failed: {error}"))
    }
}

/// Every operation Valet performs on persistent state. Each method is one use case; a state
/// change that must happen once is one conditional write inside the implementation.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Apply pending migrations (under an advisory lock on PostgreSQL).
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Close the pool: connections are closed as they come back. Call before the runtime
    /// stops: sqlx's pool maintenance task (idle reaping) loops on a timer, and once the
    /// runtime's timers have stopped it spins in one poll, so the process never exits.
    async fn close(&self);

    /// `true` while the store is known to be down (PostgreSQL's breaker, `store::breaker`);
    /// `None` for a store that cannot go away (SQLite).
    fn outages(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        None
    }
    /// Open and idle connections of the pool, for `/metrics`.
    fn pool_stats(&self) -> (u32, usize);

    /// `Conflict` if a client or a user already has this id (RFC 9068 §2.2: a
    /// client-credentials token's `sub` must never name a user).
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;
    async fn clients(&self) -> Result<Vec<Client>, StoreError>;
    async fn count_clients(&self) -> Result<i64, StoreError>;
    /// Every origin any client allows (for CORS preflights, which name no client).
    async fn client_origins(&self) -> Result<Vec<String>, StoreError>;
    /// Replace every field but `client_id` and `created_at`, only while the row is still at
    /// `client.revision`; false if there is no such client or it changed since it was read.
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError>;
    /// Delete the client with its consents, grants, codes, refresh tokens and pending
    /// requests, in one transaction; false if there is no such client.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;

    /// `Conflict` if a user has this username or id, or a client has this id.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError>;
    async fn users(&self) -> Result<Vec<User>, StoreError>;
    /// Apply `edits` to the user's claims, setting `updated_at` to `now` if anything changed,
    /// in one transaction that holds the user's row from the read to the write (concurrent
    /// updates of different claims all land). The user as it is now; `None` for no such user.
    async fn update_user_claims(
        &self,
        username: &str,
        edits: &[ClaimEdit],
        now: UnixTime,
    ) -> Result<Option<User>, StoreError>;
    /// Set the hash and, in the same transaction, end the user's sessions, revoke their
    /// grants and refresh families and drop their unredeemed codes.
    async fn set_user_password(
        &self,
        username: &str,
        hash: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Replace the hash `checked` (just verified) with `upgraded`, made with the current
    /// parameters; false if the hash changed meanwhile.
    async fn upgrade_password_hash(
        &self,
        user_id: &str,
        checked: &str,
        upgraded: &str,
    ) -> Result<bool, StoreError>;
    /// Disabling also ends everything the user holds, as [`Store::set_user_password`] does.
    async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Delete the user with their sessions, consents, grants, codes and refresh tokens,
    /// queueing the back-channel logouts of the sessions.
    async fn delete_user(&self, username: &str, now: UnixTime) -> Result<bool, StoreError>;

    async fn insert_api(&self, api: &Api) -> Result<(), StoreError>;
    async fn api(&self, identifier: &str) -> Result<Option<Api>, StoreError>;
    async fn apis(&self) -> Result<Vec<Api>, StoreError>;
    async fn delete_api(&self, identifier: &str) -> Result<bool, StoreError>;

    /// All signing keys, current first, then retired from newest.
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Insert the first current key; `Conflict` if another process got there first.
    async fn insert_first_signing_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// Add `key` in one transaction: a `current` key retires the current one; either kind
    /// retires a `next` key still waiting (a newer rotation replaces it).
    async fn rotate_signing_key(&self, key: &StoredKey, now: UnixTime) -> Result<(), StoreError>;
    /// Make the latest due `next` key current and retire the current one, atomically; true
    /// if this call did (false when none is due or another replica did it first).
    async fn activate_due_signing_key(&self, now: UnixTime) -> Result<bool, StoreError>;

    /// A user's authorization of a client: codes, refresh families and tokens carry its id.
    async fn insert_grant(
        &self,
        grant_id: &GrantId,
        client_id: &str,
        user_id: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError>;
    /// Revoke a grant and every refresh token issued under it; its access tokens then read
    /// inactive at introspection (code replay, refresh-token reuse, RFC 7009 revocation).
    async fn revoke_grant(&self, grant_id: &GrantId, now: UnixTime) -> Result<(), StoreError>;
    /// Whether the grant was revoked, and what UserInfo was asked for; `None` if it is gone.
    async fn grant_status(&self, grant_id: &GrantId) -> Result<Option<GrantStatus>, StoreError>;
    /// [`grant_status`](Store::grant_status) and the user `user_id` in one read; the user is
    /// `None` when it is gone.
    async fn grant_status_and_user(
        &self,
        grant_id: &GrantId,
        user_id: &str,
    ) -> Result<Option<(GrantStatus, Option<User>)>, StoreError>;
    /// Whether the grant was revoked; `None` if it is gone.
    async fn grant_revoked(&self, grant_id: &GrantId) -> Result<Option<bool>, StoreError> {
        Ok(self.grant_status(grant_id).await?.map(|s| s.revoked))
    }
    /// Record the claims a request asked UserInfo for (Core §5.5).
    async fn set_grant_userinfo_claims(
        &self,
        grant_id: &GrantId,
        claims: &[String],
    ) -> Result<(), StoreError>;

    async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError>;
    /// The code with this hash if it was issued to `client_id`, used or not, expired or not,
    /// and its user (`None` when gone), in one read: a redemption checks its PKCE verifier and
    /// redirect URI against it before consuming it.
    async fn code_and_user(
        &self,
        code_hash: &SecretHash,
        client_id: &str,
    ) -> Result<Option<(AuthorizationCode, Option<User>)>, StoreError>;
    /// Consume a code for `client_id` in one conditional write; see [`Redeemed`]. With
    /// `first_refresh` the same call stores that token as [`Store::insert_first_refresh`]
    /// does, only if the code was consumed. On an error neither is kept.
    async fn redeem_code(
        &self,
        code_hash: &SecretHash,
        client_id: &str,
        now: UnixTime,
        first_refresh: Option<&RefreshToken>,
    ) -> Result<Redeemed, StoreError>;

    async fn insert_pending(&self, pending: &PendingRequest) -> Result<(), StoreError>;
    /// A pending request that has not expired.
    async fn pending(
        &self,
        id_hash: &SecretHash,
        now: UnixTime,
    ) -> Result<Option<PendingRequest>, StoreError>;
    /// Replace the request a live pending request holds; false if it is gone.
    async fn update_pending(
        &self,
        id_hash: &SecretHash,
        request: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Remove and return a live pending request: of concurrent calls, one gets it.
    async fn take_pending(
        &self,
        id_hash: &SecretHash,
        now: UnixTime,
    ) -> Result<Option<PendingRequest>, StoreError>;
    /// Start a device sign-in (RFC 8628), pending.
    async fn insert_device(&self, device: &DeviceAuthorization) -> Result<(), StoreError>;
    /// The pending, unexpired device sign-in whose user code hashes to `user_code_hash`.
    async fn pending_device(
        &self,
        user_code_hash: &str,
        now: UnixTime,
    ) -> Result<Option<DeviceAuthorization>, StoreError>;
    /// The person's answer (`Some((user, auth_time))` approves, `None` denies), once, while
    /// it is pending and unexpired; false otherwise.
    async fn decide_device(
        &self,
        user_code_hash: &str,
        approved_by: Option<(&str, UnixTime)>,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// One poll of the token endpoint with this device code (RFC 8628 §3.4, §3.5); an
    /// approved sign-in is spent by exactly one poll.
    async fn poll_device(
        &self,
        device_code_hash: &SecretHash,
        client_id: &str,
        now: UnixTime,
    ) -> Result<DevicePoll, StoreError>;
    /// [`Store::take_pending`], only if `client_id` made it.
    async fn take_pending_of(
        &self,
        id_hash: &SecretHash,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Option<PendingRequest>, StoreError>;

    async fn insert_session(&self, session: &Session) -> Result<(), StoreError>;
    /// A session that has neither ended nor expired.
    async fn session(
        &self,
        id_hash: &SecretHash,
        now: UnixTime,
    ) -> Result<Option<Session>, StoreError>;
    async fn end_session(&self, id_hash: &SecretHash, now: UnixTime) -> Result<bool, StoreError>;
    /// Remember that `entry.client_id` got an ID token in a session, so that it is sent a
    /// logout token when the session ends (see `end_session`).
    async fn insert_session_client(&self, entry: &SessionClient) -> Result<(), StoreError>;
    /// Logout tokens due for delivery at `now`, at most `limit`.
    async fn due_logout_deliveries(
        &self,
        now: UnixTime,
        limit: i64,
    ) -> Result<Vec<LogoutDelivery>, StoreError>;
    /// Take a due delivery until `lease_until`, counting the attempt; false if another
    /// replica took it first.
    async fn claim_logout_delivery(
        &self,
        id: &str,
        now: UnixTime,
        lease_until: UnixTime,
    ) -> Result<bool, StoreError>;
    async fn retry_logout_delivery(&self, id: &str, at: UnixTime) -> Result<(), StoreError>;
    /// Delivered, or given up on.
    async fn delete_logout_delivery(&self, id: &str) -> Result<(), StoreError>;

    async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
        audience: &str,
    ) -> Result<Option<ScopeSet>, StoreError>;
    /// Insert or replace the consent for (user, client, audience).
    async fn save_consent(&self, consent: &Consent, now: UnixTime) -> Result<(), StoreError>;

    /// The failures counted against `key` in its current window (0 for an unknown key).
    async fn login_failures(&self, key: &str) -> Result<i64, StoreError>;
    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError>;
    /// Reserve one login attempt against every key at once (SPEC §7), before the password is
    /// checked: in one transaction each key gets a conditional write that counts the attempt
    /// as a failure and locks the key when it is past its free failures. All or nothing:
    /// `Err(until)` (the latest lock) and nothing counted when any key is locked at `now`.
    async fn reserve_login(
        &self,
        keys: &[LimiterKey],
        now: UnixTime,
        window_start: UnixTime,
    ) -> Result<Result<(), UnixTime>, StoreError>;
    /// Give back one reservation of `key` (the password was right).
    async fn release_login(&self, key: &str) -> Result<(), StoreError>;

    /// Insert the first token of a refresh family and let its grant live as long as the
    /// family (never shorter than it is), in one call: a code's grant lives only as long as
    /// the code until the code is redeemed.
    async fn insert_first_refresh(&self, token: &RefreshToken) -> Result<(), StoreError>;
    async fn refresh_token(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<RefreshToken>, StoreError>;
    /// The refresh token and its user in one read; the user is `None` when it is gone.
    async fn refresh_token_and_user(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<(RefreshToken, Option<User>)>, StoreError>;
    /// Mark `presented` rotated and insert `successor`, in one transaction; false (and
    /// nothing written) if `presented` was no longer live: another request rotated it first.
    async fn rotate_refresh(
        &self,
        presented: &SecretHash,
        successor: &RefreshToken,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Within the reuse grace period: withdraw the unused successor of `presented` and insert
    /// `successor` instead; false if the successor was used already (then it is reuse).
    async fn replace_successor(
        &self,
        presented: &SecretHash,
        successor: &RefreshToken,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Put an access token's `jti` on the deny list until `expires_at` (RFC 7009).
    async fn revoke_access_token(
        &self,
        jti: &str,
        client_id: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError>;
    async fn access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(!self.revoked_access_tokens(&[jti]).await?.is_empty())
    }
    /// Which of `jtis` are on the deny list: one query per 32 ids (a lone id is a query of
    /// its own), so concurrent checks can share a round trip (see [`batch`]).
    async fn revoked_access_tokens(&self, jtis: &[&str]) -> Result<Vec<String>, StoreError>;

    /// Accept a client assertion's `jti` once until `expires_at` (RFC 7523 §3 item 7), in one
    /// conditional write: false if the client used it already and it has not expired at `now`.
    async fn use_client_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Keep an initial access token for client registration (RFC 7591 §3).
    async fn insert_registration_token(&self, token: &RegistrationToken) -> Result<(), StoreError>;

    /// Register a client (RFC 7591) in one transaction: spend a use of `initial_token` if
    /// given, count the client against `max_registered`, insert it (unless its id is a
    /// user's: `Conflict`).
    async fn register_client(
        &self,
        client: &Client,
        initial_token: Option<&SecretHash>,
        max_registered: u32,
        now: UnixTime,
    ) -> Result<Registered, StoreError>;

    /// Replace a registered client's row, only while `presented` is its registration access
    /// token (RFC 7592 §2.2); false if it is not (or the client is gone).
    async fn update_registered_client(
        &self,
        client: &Client,
        presented: &SecretHash,
    ) -> Result<bool, StoreError>;

    /// [`Store::delete_client`], only while `presented` is its registration access token
    /// (RFC 7592 §2.3).
    async fn delete_registered_client(
        &self,
        client_id: &str,
        presented: &SecretHash,
    ) -> Result<bool, StoreError>;

    /// Delete at most `batch` rows of one kind that expired before `cutoff`; returns how many.
    async fn purge(&self, purge: Purge, cutoff: UnixTime, batch: u32) -> Result<u64, StoreError>;
}

pub type SharedStore = Arc<dyn Store>;

/// One key of a login attempt: what is counted, how many failures are free, and the longest
/// lock (zero: never locked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterKey {
    pub key: String,
    pub free_failures: u32,
    pub max_lockout_secs: i64,
}

/// Kinds of rows the janitor deletes once they can matter no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    AuthorizationCodes,
    PendingRequests,
    Sessions,
    RefreshTokens,
    Grants,
    RevokedAccessTokens,
    LoginFailures,
    SessionClients,
    ClientAssertions,
    RegistrationTokens,
}

impl Purge {
    pub const ALL: [Purge; 10] = [
        Purge::AuthorizationCodes,
        Purge::PendingRequests,
        Purge::Sessions,
        Purge::RefreshTokens,
        Purge::Grants,
        Purge::RevokedAccessTokens,
        Purge::LoginFailures,
        Purge::SessionClients,
        Purge::ClientAssertions,
        Purge::RegistrationTokens,
    ];

    pub fn table(self) -> &'static str {
        match self {
            Purge::AuthorizationCodes => "authorization_codes",
            Purge::PendingRequests => "pending_requests",
            Purge::Sessions => "sessions",
            Purge::RefreshTokens => "refresh_tokens",
            Purge::Grants => "grants",
            Purge::RevokedAccessTokens => "revoked_access_tokens",
            Purge::LoginFailures => "login_failures",
            Purge::SessionClients => "session_clients",
            Purge::ClientAssertions => "client_assertions",
            Purge::RegistrationTokens => "registration_tokens",
        }
    }
}

/// Connect to the store that `database_url` names (creating a SQLite file if missing).
/// Migrations are not applied here: `valet serve` and `valet migrate` call [`Store::migrate`].
pub async fn connect(settings: &Settings) -> Result<SharedStore, StoreError> {
    let url = &settings.database_url;
    let db = &settings.database;
    Ok(match settings.store {
        StoreKind::Postgres => Arc::new(PgStore::connect(url, db).await?),
        StoreKind::Sqlite { .. } => Arc::new(SqliteStore::connect(url, db).await?),
    })
}
