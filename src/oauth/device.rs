//! The device authorization endpoint's logic (RFC 8628 §3.1–§3.3): a device without a browser
//! (a TV, a CLI) gets a device code to poll with and a short user code that the person types
//! at `/device` on another device, where the usual login and consent pages follow.

use crate::core::Core;
use crate::crypto::{SecretHash, random_bytes, random_token};
use crate::domain::{GrantType, RequestedClaims, UnixTime};
use crate::oauth::authorize::{
    AuthorizationRequest, AuthorizeRejection, Pending, ResponseType, create_pending,
};
use crate::oauth::prompt::Prompt;
use crate::oauth::response_mode::ResponseMode;
use crate::oauth::scope::{self, Subject, Target, TargetRequest};
use crate::oauth::{OAuthError, Params};
use crate::store::{Client, DeviceAuthorization, StoreError};

/// SPEC §10: 20 consonants, so no word is spelled and nothing reads as another letter.
const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// How long the person has to enter the code.
pub const DEVICE_CODE_TTL_SECS: i64 = 600;
/// RFC 8628 §3.2: the least time between polls; `slow_down` adds 5 s each time.
pub const POLL_INTERVAL_SECS: i64 = 5;
/// The page the person visits.
pub const DEVICE_PATH: &str = "/device";

/// RFC 8628 §3.2: the answer to the device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceStart {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// §3.1: `client` (authenticated, or a public client named by `client_id`) asks for a device
/// sign-in for `scope` and the API the request names, checked as for the code grant.
pub async fn start(
    core: &Core,
    client: &Client,
    params: &Params,
    now: UnixTime,
) -> Result<DeviceStart, OAuthError> {
    if !client.allows_grant(GrantType::DeviceCode) {
        return Err(OAuthError::unauthorized_client(
            "this client is not allowed the device_code grant",
        ));
    }
    let requested = scope::requested(params)?;
    let target = TargetRequest::from_params(params)?;
    let Target { api, scope } =
        scope::resolve_target(core, client, &target, requested.as_ref(), Subject::User).await?;
    let device_code = random_token().map_err(|e| OAuthError::server_error(e.to_string()))?;
    // A user code collides with a live one once in 10^10 or so; the unique index says so,
    // and a second draw settles it.
    for _ in 0..2 {
        let user_code = new_user_code()?;
        let device = DeviceAuthorization {
            device_code_hash: core.server_keys.hasher.hash(&device_code),
            user_code_hash: user_code_hash(core, &user_code),
            client_id: client.client_id.clone(),
            scope: scope.clone(),
            audience: api.identifier.clone(),
            user_id: None,
            auth_time: None,
            interval_secs: POLL_INTERVAL_SECS,
            created_at: now,
            expires_at: UnixTime(now.0 + DEVICE_CODE_TTL_SECS),
        };
        match core.store.insert_device(&device).await {
            Ok(()) => {
                let page = core.settings.endpoint(DEVICE_PATH);
                return Ok(DeviceStart {
                    device_code,
                    verification_uri_complete: format!("{page}?user_code={user_code}"),
                    verification_uri: page,
                    user_code,
                    expires_in: DEVICE_CODE_TTL_SECS,
                    interval: POLL_INTERVAL_SECS,
                });
            }
            Err(StoreError::Conflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(OAuthError::server_error("could not draw a free user code"))
}

/// `BDWP-HQPK`: 8 letters of [`ALPHABET`], about 34.6 bits, shown in two halves.
fn new_user_code() -> Result<String, OAuthError> {
    // 256 is not a multiple of 20: bytes from 240 up would favour the first letters, so
    // they are drawn again (rejection sampling).
    let mut letters = Vec::with_capacity(8);
    while letters.len() < 8 {
        let bytes = random_bytes::<16>().map_err(|e| OAuthError::server_error(e.to_string()))?;
        letters.extend(
            bytes
                .iter()
                .filter(|b| **b < 240)
                .map(|b| ALPHABET[usize::from(*b) % 20] as char)
                .take(8 - letters.len()),
        );
    }
    Ok(format!(
        "{}-{}",
        letters[..4].iter().collect::<String>(),
        letters[4..].iter().collect::<String>()
    ))
}

/// What a person typed, as stored: letters only, upper case (so `bdwp hqpk` works), hashed
/// with the server key.
pub fn user_code_hash(core: &Core, typed: &str) -> String {
    let normalised: String = typed
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    core.server_keys.hasher.hash(&normalised).to_text()
}

/// The stored hash of a device code.
pub fn device_code_hash(core: &Core, device_code: &str) -> SecretHash {
    core.server_keys.hasher.hash(device_code)
}

/// §3.3: the person typed `typed` at `/device`. The device sign-in it names, if pending and
/// unexpired, becomes a pending authorization request that the login and consent pages
/// carry to [`answer_device`](crate::oauth::authorize::answer_device); `None` for a code
/// that names nothing (wrong, expired or already answered).
pub async fn pending_for_user_code(
    core: &Core,
    typed: &str,
    now: UnixTime,
) -> Result<Option<Pending>, AuthorizeRejection> {
    let hash = user_code_hash(core, typed);
    let Some(device) = core.store.pending_device(&hash, now).await? else {
        return Ok(None);
    };
    let Some(client) = core.directory.client(&device.client_id).await? else {
        return Ok(None);
    };
    let request = AuthorizationRequest {
        client_id: client.client_id.clone(),
        redirect_uri: String::new(),
        redirect_uri_sent: false,
        response_type: ResponseType::Code,
        response_mode: ResponseMode::Query,
        state: None,
        scope: device.scope,
        audience: device.audience,
        code_challenge: None,
        code_challenge_method: None,
        nonce: None,
        prompt: Prompt::default(),
        max_age: None,
        login_hint: None,
        signed_in_session: None,
        claims: RequestedClaims::default(),
        hinted_subject: None,
        device: Some(hash),
    };
    let id = create_pending(core, &request, now).await?;
    Ok(Some(Pending {
        id,
        client,
        request,
    }))
}
