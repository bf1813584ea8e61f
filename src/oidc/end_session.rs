//! The end-session endpoint's logic (OpenID Connect RP-Initiated Logout 1.0): which client
//! asks, whether its hint names the browser's session, and where the browser may go after.
//! The web layer asks for confirmation, ends the session and redirects.

use std::sync::Arc;

use crate::core::Core;
use crate::login::session;
use crate::oauth::Params;
use crate::store::{Client, Session};
use crate::tokens::id_token::{self, Hint};

/// A checked logout request.
#[derive(Debug, Clone, Default)]
pub struct EndSession {
    /// The verified `id_token_hint`.
    pub hint: Option<Hint>,
    pub client: Option<Arc<Client>>,
    /// Where to send the browser after, with `state` added: only a URI the client registered.
    pub redirect: Option<Redirect>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub uri: String,
    pub state: Option<String>,
}

impl Redirect {
    /// The URI with `state` appended to its query (§3).
    pub fn location(&self) -> String {
        let Some(state) = &self.state else {
            return self.uri.clone();
        };
        match url::Url::parse(&self.uri) {
            Ok(mut url) => {
                url.query_pairs_mut().append_pair("state", state);
                url.into()
            }
            Err(_) => self.uri.clone(),
        }
    }
}

/// Why a logout request is refused; never redirected (§3: an unverified redirect is an open
/// redirector).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndSessionError {
    #[error("the id_token_hint is not an ID token this server issued")]
    BadHint,
    #[error("client_id names no registered client")]
    UnknownClient,
    #[error("client_id is not the client the id_token_hint was issued to")]
    ClientMismatch,
    #[error("post_logout_redirect_uri needs client_id or id_token_hint to say whose it is")]
    RedirectWithoutClient,
    #[error("post_logout_redirect_uri is not registered for this client")]
    UnregisteredRedirect,
    #[error("a client that registered itself is redirected to only with its id_token_hint")]
    RegisteredClientWithoutHint,
}

/// The request's parameters, as sent (query or form): what the confirmation form carries on.
pub const PARAMETERS: [&str; 4] = [
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
];

/// Whether a request carries any RP-Initiated Logout parameter (a plain visit to the logout
/// page carries none).
pub fn is_rp_initiated(params: &Params) -> bool {
    PARAMETERS.iter().any(|name| params.get(name).is_some())
}

/// Check a logout request (§2, §3).
pub async fn validate(core: &Core, params: &Params) -> Result<EndSession, EndSessionError> {
    let hint = match params.get("id_token_hint") {
        Some(token) => Some(
            id_token::verify_hint(&core.keys.current(), token, core.settings.issuer_str())
                .ok_or(EndSessionError::BadHint)?,
        ),
        None => None,
    };
    let client_id = match (params.get("client_id"), &hint) {
        (Some(named), Some(hint)) if named != hint.aud => {
            return Err(EndSessionError::ClientMismatch);
        }
        (Some(named), _) => Some(named),
        (None, Some(hint)) => Some(hint.aud.as_str()),
        (None, None) => None,
    };
    let client = match client_id {
        Some(id) => Some(
            core.directory
                .client(id)
                .await
                .ok()
                .flatten()
                .ok_or(EndSessionError::UnknownClient)?,
        ),
        None => None,
    };
    let redirect = match (params.get("post_logout_redirect_uri"), &client) {
        (None, _) => None,
        (Some(_), None) => return Err(EndSessionError::RedirectWithoutClient),
        // Anyone may register a client where registration is open: its URI is followed only
        // with an ID token it was issued, or Valet's domain would redirect anywhere on demand.
        (Some(_), Some(client)) if client.is_registered() && hint.is_none() => {
            return Err(EndSessionError::RegisteredClientWithoutHint);
        }
        (Some(uri), Some(client)) => {
            // Exact match only (§3, as RFC 9700 §4.1 for redirect URIs).
            if !client
                .logout
                .post_logout_redirect_uris
                .iter()
                .any(|u| u == uri)
            {
                return Err(EndSessionError::UnregisteredRedirect);
            }
            Some(Redirect {
                uri: uri.to_owned(),
                state: params.get("state").map(str::to_owned),
            })
        }
    };
    Ok(EndSession {
        hint,
        client,
        redirect,
    })
}

impl EndSession {
    /// Whether the hint names this session (its `sid`, or its user where the hint carries no
    /// `sid`): then the person need not confirm (§2 lets the OP skip it).
    pub fn identifies(&self, core: &Core, session: &Session) -> bool {
        let Some(hint) = &self.hint else {
            return false;
        };
        match &hint.sid {
            Some(sid) => *sid == session::sid(&core.server_keys.hasher, &session.id_hash),
            None => hint.sub == session.user_id,
        }
    }
}
