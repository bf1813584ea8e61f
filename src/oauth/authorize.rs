//! The authorization endpoint's protocol half (RFC 6749 §3.1, §4.1.1, §4.2.1; RFC 7636 §4.3;
//! RFC 9207): validating a request, keeping it as a pending request while the person signs
//! in and consents, and finishing it with a code or a token.
//!
//! Validation order matters: until `client_id` and `redirect_uri` are known good, nothing may
//! be sent to the redirect URI, so those failures are a [`PageError`]; every later failure is
//! an [`AuthorizeError`] that carries the [`RedirectTarget`] it goes back to.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::grants::{authorization_code, implicit};
use super::pkce::{self, Method};
use super::redirect::{self, RedirectMismatch};
use super::response_mode::{AuthorizationResponse, RedirectTarget, ResponseMode};
use super::scope::{self, ScopeRequest, Subject, TargetRequest};
use super::{ErrorCode, OAuthError, Params};
use crate::audit;
use crate::core::Core;
use crate::crypto::random_token;
use crate::domain::{GrantType, ScopeSet, UnixTime, is_valid_client_id, printable};
use crate::login::sign_in::SignInError;
use crate::oauth::prompt::{self, Prompt};
use crate::store::{Client, Consent, PendingRequest, Session, StoreError, User};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseType {
    /// RFC 6749 §4.1.
    Code,
    /// RFC 6749 §4.2 (implicit).
    Token,
    /// OpenID Connect Core §3.2 (implicit): an ID token only.
    IdToken,
    /// OpenID Connect Core §3.2 (implicit): an ID token and an access token.
    IdTokenToken,
}

impl ResponseType {
    pub const ALL: [ResponseType; 4] = [
        ResponseType::Code,
        ResponseType::Token,
        ResponseType::IdToken,
        ResponseType::IdTokenToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::Code => "code",
            ResponseType::Token => "token",
            ResponseType::IdToken => "id_token",
            ResponseType::IdTokenToken => "id_token token",
        }
    }

    /// The space-delimited values in any order (RFC 6749 §3.1.1): `token id_token` too.
    fn parse(text: &str) -> Option<Self> {
        let mut words: Vec<&str> = text.split(' ').collect();
        words.sort_unstable();
        Self::ALL.into_iter().find(|t| {
            let mut own: Vec<&str> = t.as_str().split(' ').collect();
            own.sort_unstable();
            own == words
        })
    }

    pub fn grant(self) -> GrantType {
        match self {
            ResponseType::Code => GrantType::AuthorizationCode,
            _ => GrantType::Implicit,
        }
    }

    pub fn issues_access_token(self) -> bool {
        matches!(self, ResponseType::Token | ResponseType::IdTokenToken)
    }

    pub fn issues_id_token(self) -> bool {
        matches!(self, ResponseType::IdToken | ResponseType::IdTokenToken)
    }

    /// Whether tokens travel in the redirect itself (the implicit types).
    fn in_front_channel(self) -> bool {
        self != ResponseType::Code
    }

    /// RFC 6749 §4.1.2 and §4.2.2: a code in the query; tokens only in the fragment (or a
    /// form_post), never in a query.
    fn default_mode(self) -> ResponseMode {
        if self.in_front_channel() {
            ResponseMode::Fragment
        } else {
            ResponseMode::Query
        }
    }
}

/// A validated request, as kept in the store while the person signs in and consents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    /// The matched redirect URI.
    pub redirect_uri: String,
    /// Whether the request named it: then the token request must repeat it (§4.1.3).
    pub redirect_uri_sent: bool,
    pub response_type: ResponseType,
    pub response_mode: ResponseMode,
    pub state: Option<String>,
    /// What the policy allows before the person's consent (SPEC §6).
    pub scope: String,
    pub audience: String,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    // Defaults for requests kept by an older version while a deployment rolls.
    #[serde(default)]
    pub prompt: Prompt,
    /// OpenID Connect `max_age`: the sign-in may be at most this many seconds old.
    #[serde(default)]
    pub max_age: Option<i64>,
    /// OpenID Connect `login_hint`: the username to fill in on the login page.
    #[serde(default)]
    pub login_hint: Option<String>,
    /// When the request arrived: `prompt=login` wants a sign-in after it.
    #[serde(default)]
    pub requested_at: i64,
}

impl AuthorizationRequest {
    pub fn scope(&self) -> ScopeSet {
        // Stored by `validate`, which only stores a parsed scope.
        ScopeSet::parse(&self.scope).unwrap_or_default()
    }

    /// Whether a sign-in at `auth_time` is recent enough for this request (`prompt=login`,
    /// `max_age`); if not, the person signs in again.
    pub fn accepts_sign_in(&self, auth_time: UnixTime, now: UnixTime) -> bool {
        let young_enough = self.max_age.is_none_or(|max| now.0 - auth_time.0 <= max);
        let after_request = !self.prompt.login || auth_time.0 >= self.requested_at;
        young_enough && after_request
    }
}

/// A failure that must not be redirected: shown to the person as an HTML page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    pub status: u16,
    pub title: &'static str,
    /// For the person in front of the browser.
    pub message: String,
    /// For the app's developer: what was sent, what is registered. Never anything secret.
    pub developer_detail: Vec<String>,
}

impl PageError {
    fn new(status: u16, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            title,
            message: message.into(),
            developer_detail: Vec::new(),
        }
    }

    fn detail(mut self, line: impl Into<String>) -> Self {
        self.developer_detail.push(line.into());
        self
    }

    pub fn request_gone() -> Self {
        Self::new(
            400,
            "This sign-in request has ended",
            "It expired or was already completed. Go back to the app and start again.",
        )
    }

    pub fn bad_form() -> Self {
        Self::new(
            403,
            "This form has expired",
            "For your security the form could not be accepted. Go back, reload the page and try again.",
        )
    }

    pub fn from_store(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                Self::new(
                    503,
                    "Temporarily unavailable",
                    "The service is busy. Please try again in a moment.",
                )
            }
            other => {
                tracing::error!(error = %other, "authorization request failed");
                Self::new(
                    500,
                    "Something went wrong",
                    "The service hit an unexpected error. Please try again later.",
                )
            }
        }
    }

    /// Something on our side failed; the person learns only that.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "authorization request failed");
        Self::new(
            500,
            "Something went wrong",
            "The service hit an unexpected error. Please try again later.",
        )
    }
}

/// A failure reported to the client at its redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeError {
    pub error: OAuthError,
    pub target: RedirectTarget,
}

impl AuthorizeError {
    pub fn into_response(self) -> AuthorizationResponse {
        AuthorizationResponse::error(self.target, &self.error)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Page(PageError),
    Redirect(AuthorizeError),
}

impl From<PageError> for Rejection {
    fn from(error: PageError) -> Self {
        Rejection::Page(error)
    }
}

/// Check a request in the order of RFC 6749 §4.1.2.1.
pub async fn validate(
    core: &Core,
    params: &Params,
    now: UnixTime,
) -> Result<(Arc<Client>, AuthorizationRequest), Rejection> {
    let client = known_client(core, params.get("client_id")).await?;
    let redirect_uri = redirect::matched(&client.redirect_uris, params.get("redirect_uri"))
        .map_err(|mismatch| redirect_page(&client, mismatch))?;
    let response_type = params.get("response_type");
    // Before the response type is checked, so that even its errors avoid a query for tokens.
    let parsed_type = response_type.and_then(ResponseType::parse);
    let front_channel_tokens = parsed_type.is_some_and(ResponseType::in_front_channel);
    let mut target = RedirectTarget {
        redirect_uri,
        mode: parsed_type.map_or(ResponseMode::Query, ResponseType::default_mode),
        state: params.get("state").map(str::to_owned),
    };
    let fail = |target: &RedirectTarget, error: OAuthError| {
        Rejection::Redirect(AuthorizeError {
            error,
            target: target.clone(),
        })
    };
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
    let checked = check(core, params, &client, response_type)
        .await
        .map_err(|error| fail(&target, error))?;
    let request = AuthorizationRequest {
        client_id: client.client_id.clone(),
        redirect_uri: target.redirect_uri.as_str().to_owned(),
        redirect_uri_sent: params.get("redirect_uri").is_some(),
        response_mode: target.mode,
        state: target.state.clone(),
        nonce: params.get("nonce").map(str::to_owned),
        requested_at: now.0,
        ..checked
    };
    Ok((client, request))
}

async fn known_client(core: &Core, client_id: Option<&str>) -> Result<Arc<Client>, PageError> {
    let Some(client_id) = client_id else {
        return Err(PageError::new(
            400,
            "The app's request is incomplete",
            "The app did not say who it is.",
        )
        .detail("the client_id parameter is missing"));
    };
    let unknown = || {
        PageError::new(
            400,
            "Unknown app",
            "The app that sent you here is not registered with this service.",
        )
        .detail(format!("client_id sent: {}", printable(client_id)))
    };
    if !is_valid_client_id(client_id) {
        return Err(unknown());
    }
    core.directory
        .client(client_id)
        .await
        .map_err(PageError::from_store)?
        .ok_or_else(unknown)
}

fn redirect_page(client: &Client, mismatch: RedirectMismatch) -> PageError {
    let page = PageError::new(
        400,
        "The app's request is not valid",
        format!(
            "{} asked to send you back to an address it has not registered, so this service will not go there.",
            client.client_name
        ),
    )
    .detail(mismatch.to_string());
    let page = match &mismatch {
        RedirectMismatch::NotRegistered { requested } => {
            page.detail(format!("redirect_uri sent: {}", printable(requested)))
        }
        RedirectMismatch::Required => page.detail("redirect_uri sent: (none)"),
    };
    let registered = if client.redirect_uris.is_empty() {
        "(none)".to_owned()
    } else {
        client.redirect_uris.join(", ")
    };
    page.detail(format!("registered redirect URIs: {registered}"))
}

/// Everything after the redirect URI is known good; each failure goes back to the client.
async fn check(
    core: &Core,
    params: &Params,
    client: &Client,
    response_type: Option<&str>,
) -> Result<AuthorizationRequest, OAuthError> {
    let response_type = parse_response_type(response_type)?;
    if !client.allows_grant(response_type.grant()) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client is not allowed the {} grant (response_type {})",
            response_type.grant(),
            response_type.as_str()
        )));
    }
    let requested = scope::requested(params)?;
    let audience =
        TargetRequest::from_params(params)?.resolve(core.settings.default_audience.as_deref())?;
    let api = core.directory.api(&audience).await?;
    let api = scope::check_target(client, &audience, api.as_deref())?;
    let granted = scope::decide(&ScopeRequest {
        requested: requested.as_ref(),
        client,
        api,
        subject: Subject::User,
    })?;
    let (code_challenge, code_challenge_method) = match response_type {
        ResponseType::Code => check_pkce(core, params, client)?,
        _ => (None, None),
    };
    if response_type.issues_id_token() {
        check_id_token_request(params, &granted)?;
    }
    let prompt = Prompt::parse(params.get("prompt"))?;
    let max_age = prompt::parse_max_age(params.get("max_age"))?;
    let login_hint = params.get("login_hint").map(str::to_owned);
    Ok(AuthorizationRequest {
        client_id: String::new(),
        redirect_uri: String::new(),
        redirect_uri_sent: false,
        response_type,
        response_mode: response_type.default_mode(),
        state: None,
        scope: granted.to_string(),
        audience: api.identifier.clone(),
        code_challenge,
        code_challenge_method,
        nonce: None,
        prompt,
        max_age,
        login_hint,
        requested_at: 0,
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

fn parse_response_type(text: Option<&str>) -> Result<ResponseType, OAuthError> {
    let text = text
        .ok_or_else(|| OAuthError::invalid_request("the `response_type` parameter is required"))?;
    ResponseType::parse(text).ok_or_else(|| {
        OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            format!(
                "response_type `{}` is not supported (code, token, id_token, id_token token)",
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
) -> Result<(Option<String>, Option<String>), OAuthError> {
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
        return Ok((None, None));
    };
    let method = Method::parse(method_text)?;
    if method == Method::Plain && !core.settings.authorize.allow_plain_pkce {
        return Err(OAuthError::invalid_request(
            "code_challenge_method plain is not allowed; use S256 (an absent method means plain)",
        ));
    }
    pkce::check_challenge(challenge, method)?;
    Ok((Some(challenge.to_owned()), Some(method.as_str().to_owned())))
}

/// Keep a validated request in the store; the returned id continues it on any replica.
pub async fn create_pending(
    core: &Core,
    request: &AuthorizationRequest,
    now: UnixTime,
) -> Result<String, PageError> {
    let id = random_token().map_err(PageError::internal)?;
    let json = serde_json::to_string(request).map_err(PageError::internal)?;
    core.store
        .insert_pending(&PendingRequest {
            id_hash: core.server_keys.hasher.hash(&id),
            client_id: request.client_id.clone(),
            request: json,
            created_at: now,
            expires_at: now.plus(core.settings.authorize.pending_request_ttl),
        })
        .await
        .map_err(PageError::from_store)?;
    Ok(id)
}

/// A pending request brought back, with its client and where its answer goes.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub client: Arc<Client>,
    pub request: AuthorizationRequest,
}

impl Pending {
    /// Re-matched against the client's registration as it is now, so an answer never goes to
    /// a redirect URI the client has since removed.
    pub fn target(&self) -> Result<RedirectTarget, PageError> {
        let redirect_uri =
            redirect::matched(&self.client.redirect_uris, Some(&self.request.redirect_uri))
                .map_err(|mismatch| redirect_page(&self.client, mismatch))?;
        Ok(RedirectTarget {
            redirect_uri,
            mode: self.request.response_mode,
            state: self.request.state.clone(),
        })
    }
}

/// Parse a pending-request id from a page URL or form and load it.
pub async fn load_pending(
    core: &Core,
    id: Option<&str>,
    now: UnixTime,
) -> Result<Pending, PageError> {
    let id = id.ok_or_else(PageError::request_gone)?;
    let stored = core
        .store
        .pending(&core.server_keys.hasher.hash(id), now)
        .await
        .map_err(PageError::from_store)?
        .ok_or_else(PageError::request_gone)?;
    restore(core, id, &stored).await
}

async fn restore(core: &Core, id: &str, stored: &PendingRequest) -> Result<Pending, PageError> {
    let request: AuthorizationRequest =
        serde_json::from_str(&stored.request).map_err(PageError::internal)?;
    let client = core
        .directory
        .client(&stored.client_id)
        .await
        .map_err(PageError::from_store)?
        .ok_or_else(PageError::request_gone)?;
    Ok(Pending {
        id: id.to_owned(),
        client,
        request,
    })
}

/// Whether the person must be asked: always with `prompt=consent`; otherwise never for a
/// first-party client, and not when an earlier consent covers every scope asked for now.
pub async fn needs_consent(
    core: &Core,
    pending: &Pending,
    user: &User,
) -> Result<bool, StoreError> {
    if pending.request.prompt.consent {
        return Ok(true);
    }
    if pending.client.first_party {
        return Ok(false);
    }
    let asked = pending.request.scope();
    let given = core
        .store
        .consent(
            &user.id,
            &pending.client.client_id,
            &pending.request.audience,
        )
        .await?;
    Ok(!given.is_some_and(|given| asked.iter().all(|s| given.contains(s))))
}

/// Remember what the person allowed, on top of what they allowed before.
pub async fn save_consent(
    core: &Core,
    pending: &Pending,
    user: &User,
    now: UnixTime,
) -> Result<(), StoreError> {
    let client_id = &pending.client.client_id;
    let audience = &pending.request.audience;
    let earlier = core
        .store
        .consent(&user.id, client_id, audience)
        .await?
        .unwrap_or_default();
    let scope = ScopeSet::from_tokens(
        earlier
            .iter()
            .chain(pending.request.scope().iter())
            .map(str::to_owned),
    );
    core.store
        .save_consent(
            &Consent {
                user_id: user.id.clone(),
                client_id: client_id.clone(),
                audience: audience.clone(),
                scope,
            },
            now,
        )
        .await
}

/// Finish the request for a signed-in person who allowed it: a code or a token. The pending
/// request is consumed in one conditional write, so it finishes at most once.
pub async fn approve(
    core: &Core,
    pending: &Pending,
    user: &User,
    session: &Session,
    now: UnixTime,
) -> Result<AuthorizationResponse, PageError> {
    let target = take(core, pending, now).await?;
    let issued = match pending.request.response_type {
        ResponseType::Code => {
            authorization_code::issue_code(core, &pending.request, user, session, now).await
        }
        _ => implicit::issue(core, &pending.request, user, session, now).await,
    };
    Ok(match issued {
        Ok(params) => {
            let response_type = pending.request.response_type;
            if response_type.issues_access_token() {
                core.metrics
                    .token_issued("implicit", &pending.request.audience);
            }
            let event = match response_type {
                ResponseType::Code => "code.issued",
                _ => "token.issued",
            };
            audit::authorization_granted(
                event,
                &pending.request.response_type.grant(),
                &pending.client.client_id,
                &user.id,
                &pending.request.scope,
            );
            AuthorizationResponse { target, params }
        }
        Err(error) => {
            if error.code == ErrorCode::ServerError {
                tracing::error!(detail = ?error.detail, "authorization failed");
            }
            AuthorizationResponse::error(target, &error)
        }
    })
}

/// The person said no (RFC 6749 §4.1.2.1 `access_denied`).
pub async fn deny(
    core: &Core,
    pending: &Pending,
    now: UnixTime,
) -> Result<AuthorizationResponse, PageError> {
    let error = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
    refuse(core, pending, &error, now).await
}

/// End the request with an error for the client, e.g. `consent_required` for `prompt=none`.
pub async fn refuse(
    core: &Core,
    pending: &Pending,
    error: &OAuthError,
    now: UnixTime,
) -> Result<AuthorizationResponse, PageError> {
    let target = take(core, pending, now).await?;
    Ok(AuthorizationResponse::error(target, error))
}

async fn take(core: &Core, pending: &Pending, now: UnixTime) -> Result<RedirectTarget, PageError> {
    let target = pending.target()?;
    core.store
        .take_pending(&core.server_keys.hasher.hash(&pending.id), now)
        .await
        .map_err(PageError::from_store)?
        .ok_or_else(PageError::request_gone)?;
    Ok(target)
}

impl From<SignInError> for PageError {
    fn from(error: SignInError) -> Self {
        match error {
            SignInError::Store(e) => PageError::from_store(e),
            SignInError::Password(e) => PageError::internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_types_are_sets_of_values() {
        assert_eq!(ResponseType::parse("code"), Some(ResponseType::Code));
        assert_eq!(
            ResponseType::parse("token id_token"),
            Some(ResponseType::IdTokenToken)
        );
        assert_eq!(
            ResponseType::parse("id_token token"),
            Some(ResponseType::IdTokenToken)
        );
        assert_eq!(ResponseType::parse("id_token"), Some(ResponseType::IdToken));
        for unsupported in ["code id_token", "code token", "token token", "", "none"] {
            assert_eq!(ResponseType::parse(unsupported), None, "{unsupported}");
        }
    }

    #[test]
    fn a_sign_in_must_be_young_enough_and_after_a_login_prompt() {
        let request = |prompt: Prompt, max_age| AuthorizationRequest {
            client_id: "c".into(),
            redirect_uri: "https://app.example/cb".into(),
            redirect_uri_sent: true,
            response_type: ResponseType::Code,
            response_mode: ResponseMode::Query,
            state: None,
            scope: String::new(),
            audience: String::new(),
            code_challenge: None,
            code_challenge_method: None,
            nonce: None,
            prompt,
            max_age,
            login_hint: None,
            requested_at: 1_000,
        };
        let now = UnixTime(1_100);
        let plain = request(Prompt::default(), None);
        assert!(plain.accepts_sign_in(UnixTime(0), now));
        let login = request(
            Prompt {
                login: true,
                ..Prompt::default()
            },
            None,
        );
        assert!(!login.accepts_sign_in(UnixTime(999), now));
        assert!(login.accepts_sign_in(UnixTime(1_050), now));
        let max_age = request(Prompt::default(), Some(60));
        assert!(max_age.accepts_sign_in(UnixTime(1_040), now));
        assert!(!max_age.accepts_sign_in(UnixTime(1_039), now));
    }

    #[test]
    fn requests_kept_by_an_older_version_still_load() {
        let old = r#"{"client_id":"c","redirect_uri":"https://app.example/cb","redirect_uri_sent":true,
            "response_type":"code","response_mode":"query","state":null,"scope":"openid","audience":"",
            "code_challenge":null,"code_challenge_method":null,"nonce":null}"#;
        let request: AuthorizationRequest = serde_json::from_str(old).unwrap();
        assert_eq!(request.prompt, Prompt::default());
        assert_eq!(request.max_age, None);
    }
}
