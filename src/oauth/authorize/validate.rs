//! Checking an authorization request in the order of RFC 6749 §4.1.2.1: the client and its
//! redirect URI first (failures are pages), then response type, scope (SPEC §6), audience
//! (RFC 8707), PKCE (RFC 7636 §4.3), response mode and the OpenID Connect parameters
//! (failures go back to the client).

use std::sync::Arc;

use super::rejection::{AuthorizeError, AuthorizeRejection, Rejection};
use super::request::{AuthorizationRequest, ResponseType};
use crate::core::Core;
use crate::domain::{RequestedClaims, ScopeSet, is_valid_client_id, printable};
use crate::oauth::pkce::{self, Method};
use crate::oauth::prompt::{self, Prompt};
use crate::oauth::redirect::{self, RedirectMismatch};
use crate::oauth::response_mode::{RedirectTarget, ResponseMode};
use crate::oauth::scope::{self, Subject, Target, TargetRequest};
use crate::oauth::{ErrorCode, OAuthError, Params};
use crate::store::Client;
use crate::tokens::id_token::{self, CLAIMS_SUPPORTED};

/// SPEC §7: the most any one authorization request parameter may hold, in bytes. A request
/// may be kept (pending, then with its code) for minutes by anyone, signed in or not, so
/// what it may make the store hold is bounded.
pub const MAX_PARAMETER_BYTES: usize = 2048;

/// How a request reached Valet: at `/authorize` itself, or pushed first (RFC 9126).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    FrontChannel,
    Pushed,
}

/// Check a request that came to `/authorize` in the order of RFC 6749 §4.1.2.1.
pub async fn validate(
    core: &Core,
    params: &Params,
) -> Result<(Arc<Client>, AuthorizationRequest), Rejection> {
    validate_arrived(core, params, Arrival::FrontChannel).await
}

/// [`validate`], for a request that arrived as `arrival`.
pub async fn validate_arrived(
    core: &Core,
    params: &Params,
    arrival: Arrival,
) -> Result<(Arc<Client>, AuthorizationRequest), Rejection> {
    let client = known_client(core, params.get("client_id")).await?;
    // OAuth lets a client with one registered URI leave it out (RFC 6749 §3.1.2.3); OpenID
    // Connect requires it (Core §3.1.2.1), and a request that breaks that is not redirected.
    let openid = params
        .get("scope")
        .is_some_and(|scope| scope.split(' ').any(|s| s == "openid"));
    if openid && params.get("redirect_uri").is_none() {
        return Err(redirect_rejection(RedirectMismatch::RequiredForOpenId).into());
    }
    let redirect_uri = redirect::matched(&client.redirect_uris, params.get("redirect_uri"))
        .map_err(redirect_rejection)?;
    let response_type = params.get("response_type");
    // Before the response type is checked, so that even its errors avoid a query for tokens.
    let parsed_type = response_type.and_then(ResponseType::parse);
    let front_channel_tokens = parsed_type.is_some_and(ResponseType::in_front_channel);
    let mut target = RedirectTarget {
        redirect_uri,
        mode: parsed_type.map_or(ResponseMode::Query, ResponseType::default_mode),
        // An oversized state is not echoed: the request is refused for it below.
        state: params
            .get("state")
            .filter(|state| state.len() <= MAX_PARAMETER_BYTES)
            .map(str::to_owned),
    };
    let fail = |target: &RedirectTarget, error: OAuthError| {
        Rejection::Redirect(AuthorizeError {
            error,
            target: target.clone(),
        })
    };
    // Before anything else is looked at, and so before anything is stored.
    if let Some(name) = params.longer_than(MAX_PARAMETER_BYTES) {
        return Err(fail(
            &target,
            OAuthError::invalid_request(format!(
                "parameter `{}` is longer than {MAX_PARAMETER_BYTES} bytes",
                printable(name)
            )),
        ));
    }
    if let Some(mode) = params.get("response_mode") {
        let mode = ResponseMode::parse(mode).ok_or_else(|| {
            fail(
                &target,
                OAuthError::invalid_request(format!(
                    "response_mode `{}` is not supported (query, fragment, form_post)",
                    printable(mode)
                )),
            )
        })?;
        // The error itself must not put anything in a query the client asked to avoid.
        if front_channel_tokens && mode == ResponseMode::Query {
            return Err(fail(
                &target,
                OAuthError::invalid_request(
                    "response_mode query cannot carry tokens; use fragment or form_post",
                ),
            ));
        }
        target.mode = mode;
    }
    if client.require_par && arrival == Arrival::FrontChannel {
        return Err(fail(
            &target,
            OAuthError::invalid_request(
                "this client must push its authorization requests to the pushed authorization \
                 request endpoint (RFC 9126)",
            ),
        ));
    }
    // Request objects (Core §6) are not supported; saying so beats running the request
    // without the parameters the object may carry. (A pushed request's `request_uri` never
    // gets here: `pushed::pull` takes it.)
    for (name, code) in [
        ("request", ErrorCode::RequestNotSupported),
        ("request_uri", ErrorCode::RequestUriNotSupported),
    ] {
        if params.get(name).is_some() {
            let error = OAuthError::new(code, format!("the `{name}` parameter is not supported"));
            return Err(fail(&target, error));
        }
    }
    let checked = check(core, params, &client, response_type)
        .await
        .map_err(|error| fail(&target, error))?;
    let (code_challenge, code_challenge_method) = match checked.pkce {
        Some(Challenge { challenge, method }) => (Some(challenge), Some(method)),
        None => (None, None),
    };
    let request = AuthorizationRequest {
        client_id: client.client_id.clone(),
        redirect_uri: target.redirect_uri.as_str().to_owned(),
        redirect_uri_sent: params.get("redirect_uri").is_some(),
        response_type: checked.response_type,
        response_mode: target.mode,
        state: target.state.clone(),
        scope: checked.scope,
        audience: checked.audience,
        code_challenge,
        code_challenge_method,
        nonce: params.get("nonce").map(str::to_owned),
        prompt: checked.prompt,
        max_age: checked.max_age,
        login_hint: checked.login_hint,
        signed_in_session: None,
        claims: checked.claims,
        hinted_subject: checked.hinted_subject,
        device: None,
    };
    Ok((client, request))
}

async fn known_client(
    core: &Core,
    client_id: Option<&str>,
) -> Result<Arc<Client>, AuthorizeRejection> {
    let Some(client_id) = client_id else {
        return Err(AuthorizeRejection::MissingClientId);
    };
    let unknown = || AuthorizeRejection::UnknownClient {
        client_id: printable(client_id),
    };
    if !is_valid_client_id(client_id) {
        return Err(unknown());
    }
    core.directory.client(client_id).await?.ok_or_else(unknown)
}

pub(super) fn redirect_rejection(mismatch: RedirectMismatch) -> AuthorizeRejection {
    AuthorizeRejection::RedirectMismatch { mismatch }
}

/// What the checks after the redirect URI establish.
struct Checked {
    response_type: ResponseType,
    scope: ScopeSet,
    audience: String,
    pkce: Option<Challenge>,
    prompt: Prompt,
    max_age: Option<i64>,
    login_hint: Option<String>,
    claims: RequestedClaims,
    hinted_subject: Option<String>,
}

/// A PKCE challenge as the request sent it (RFC 7636 §4.3), checked.
struct Challenge {
    challenge: String,
    method: String,
}

/// Everything after the redirect URI is known good; each failure goes back to the client.
async fn check(
    core: &Core,
    params: &Params,
    client: &Client,
    response_type: Option<&str>,
) -> Result<Checked, OAuthError> {
    let response_type = parse_response_type(response_type)?;
    if let Some(missing) = response_type
        .needs_grants()
        .iter()
        .find(|g| !client.allows_grant(**g))
    {
        return Err(OAuthError::unauthorized_client(format!(
            "this client is not allowed the {missing} grant (response_type {})",
            response_type.as_str()
        )));
    }
    let requested = scope::requested(params)?;
    let target = TargetRequest::from_params(params)?;
    let Target {
        api,
        scope: granted,
    } = scope::resolve_target(core, client, &target, requested.as_ref(), Subject::User).await?;
    let pkce = if response_type.issues_code() {
        check_pkce(core, params, client)?
    } else {
        None
    };
    if response_type.issues_id_token() {
        check_id_token_request(params, &granted)?;
    }
    let prompt = Prompt::parse(params.get("prompt"))?;
    let max_age = prompt::parse_max_age(params.get("max_age"))?;
    let login_hint = params.get("login_hint").map(str::to_owned);
    let claims = parse_claims(params.get("claims"))?;
    let hinted_subject = match params.get("id_token_hint") {
        Some(token) => Some(
            id_token::verify_hint(&core.keys.current(), token, core.settings.issuer_str())
                .ok_or_else(|| {
                    OAuthError::invalid_request(
                        "id_token_hint is not an ID token this server issued",
                    )
                })?
                .sub,
        ),
        None => None,
    };
    Ok(Checked {
        claims,
        hinted_subject,
        response_type,
        scope: granted,
        audience: api.identifier.clone(),
        pkce,
        prompt,
        max_age,
        login_hint,
    })
}

/// OpenID Connect Core §3.2.2.1: an ID token in the front channel needs `openid`, and a
/// `nonce` to tie it to the browser session that asked (it cannot be bound otherwise).
fn check_id_token_request(params: &Params, granted: &ScopeSet) -> Result<(), OAuthError> {
    if !granted.contains("openid") {
        return Err(OAuthError::invalid_scope(
            "response_type id_token needs the openid scope",
        ));
    }
    if params.get("nonce").is_none_or(str::is_empty) {
        return Err(OAuthError::invalid_request(
            "nonce is required when the response carries an ID token",
        ));
    }
    Ok(())
}

/// The `claims` parameter (Core §5.5): a JSON object whose `userinfo` and `id_token` members
/// name claims (each with `null` or an object of `essential`, `value`, `values`). Claims
/// Valet does not know are dropped (§5.5: the OP ignores what it does not understand);
/// anything that is not such an object is `invalid_request`.
fn parse_claims(text: Option<&str>) -> Result<RequestedClaims, OAuthError> {
    let Some(text) = text else {
        return Ok(RequestedClaims::default());
    };
    let invalid = || {
        OAuthError::invalid_request(
            "claims must be a JSON object whose userinfo and id_token members are objects \
             (OpenID Connect Core section 5.5)",
        )
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| invalid())?;
    let object = value.as_object().ok_or_else(invalid)?;
    let names = |member: &str| -> Result<Vec<String>, OAuthError> {
        match object.get(member) {
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(serde_json::Value::Object(claims)) => Ok(claims
                .iter()
                .filter(|(name, request)| {
                    CLAIMS_SUPPORTED.contains(&name.as_str())
                        && (request.is_null() || request.is_object())
                })
                .map(|(name, _)| name.clone())
                .collect()),
            Some(_) => Err(invalid()),
        }
    };
    Ok(RequestedClaims {
        userinfo: names("userinfo")?,
        id_token: names("id_token")?,
    })
}

fn parse_response_type(text: Option<&str>) -> Result<ResponseType, OAuthError> {
    let text = text
        .ok_or_else(|| OAuthError::invalid_request("the `response_type` parameter is required"))?;
    ResponseType::parse(text).ok_or_else(|| {
        OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            format!(
                "response_type `{}` is not supported (code, token, id_token, id_token token, \
                 code id_token, code token, code id_token token)",
                printable(text)
            ),
        )
    })
}

/// RFC 7636 §4.3 with SPEC §7: S256 required for public clients, `plain` only if allowed.
fn check_pkce(
    core: &Core,
    params: &Params,
    client: &Client,
) -> Result<Option<Challenge>, OAuthError> {
    let method_text = params.get("code_challenge_method");
    let Some(challenge) = params.get("code_challenge") else {
        if method_text.is_some() {
            return Err(OAuthError::invalid_request(
                "code_challenge_method was sent without code_challenge",
            ));
        }
        if client.is_public() {
            return Err(OAuthError::invalid_request(
                "a public client must use PKCE: send code_challenge with code_challenge_method=S256",
            ));
        }
        return Ok(None);
    };
    let method = Method::parse(method_text)?;
    if method == Method::Plain && !core.settings.authorize.allow_plain_pkce {
        return Err(OAuthError::invalid_request(
            "code_challenge_method plain is not allowed; use S256 (an absent method means plain)",
        ));
    }
    pkce::check_challenge(challenge, method)?;
    Ok(Some(Challenge {
        challenge: challenge.to_owned(),
        method: method.as_str().to_owned(),
    }))
}
