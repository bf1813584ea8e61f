//! The scope policy of SPEC §6, shared by every grant: scope syntax (RFC 6749 §3.3), the
//! audience a request is for (`audience`, or `resource` per RFC 8707 §2), and
//! granted = requested ∩ allowed for the client ∩ defined by the API (+ OpenID scopes for
//! user grants) ∩ consented.

use std::sync::Arc;

use super::{OAuthError, Params};
use crate::core::Core;
use crate::domain::{GrantType, ScopeSet, printable};
use crate::store::{Api, Client, StoreError};

/// OpenID Connect scopes: no API defines them, a client may be allowed them, and they only
/// make sense where there is a user.
pub const OPENID_SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
];

/// The `scope` parameter, parsed; `None` when the request named none.
pub fn requested(params: &Params) -> Result<Option<ScopeSet>, OAuthError> {
    params
        .get("scope")
        .map(|text| ScopeSet::parse(text).map_err(|e| OAuthError::invalid_scope(e.to_string())))
        .transpose()
}

/// The `audience` and `resource` parameters as sent; resolved later against the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetRequest {
    pub audience: Option<String>,
    pub resource: Option<String>,
}

impl TargetRequest {
    pub fn from_params(params: &Params) -> Result<Self, OAuthError> {
        let resource = params.get("resource");
        if resource.is_some_and(|r| !is_resource_indicator(r)) {
            return Err(OAuthError::invalid_target(
                "resource must be an absolute URI without a fragment (RFC 8707 section 2)",
            ));
        }
        Ok(Self {
            audience: params.get("audience").map(str::to_owned),
            resource: resource.map(str::to_owned),
        })
    }

    /// The API identifier the request is for: `audience` (as Auth0 has it) or `resource`
    /// (RFC 8707), else the configured default; `None` when there is neither.
    pub fn resolve(&self, default: Option<&str>) -> Result<Option<String>, OAuthError> {
        match (self.audience.as_deref(), self.resource.as_deref()) {
            (Some(a), Some(r)) if a != r => Err(OAuthError::invalid_target(
                "audience and resource name different APIs; send one of them",
            )),
            (Some(named), _) | (None, Some(named)) => Ok(Some(named.to_owned())),
            (None, None) => Ok(default.map(str::to_owned)),
        }
    }
}

/// RFC 8707 §2: a resource indicator (an API identifier) is an absolute URI without a
/// fragment.
pub fn is_resource_indicator(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|url| url.fragment().is_none())
}

/// The API an audience names: the built-in UserInfo audience (SPEC §5) or one from the
/// directory.
pub async fn api(core: &Core, audience: &str) -> Result<Option<Arc<Api>>, StoreError> {
    if audience == core.userinfo_api.identifier {
        return Ok(Some(core.userinfo_api.clone()));
    }
    core.directory.api(audience).await
}

/// SPEC §5: a user grant that names no API and asks only for OpenID scopes is a sign-in; its
/// access token is for the UserInfo endpoint alone.
fn only_openid_scopes(requested: Option<&ScopeSet>, subject: Subject) -> bool {
    subject == Subject::User
        && requested.is_some_and(|scope| {
            !scope.is_empty() && scope.iter().all(|s| OPENID_SCOPES.contains(&s))
        })
}

/// The API that `audience` names, if this client may use it; `invalid_target` otherwise.
pub fn check_target<A>(client: &Client, audience: &str, api: Option<A>) -> Result<A, OAuthError> {
    let api = api.ok_or_else(|| {
        OAuthError::invalid_target(format!(
            "no API has the identifier `{}`",
            printable(audience)
        ))
    })?;
    if !client.may_use_audience(audience) {
        return Err(OAuthError::invalid_target(format!(
            "this client may not request tokens for `{}`",
            printable(audience)
        )));
    }
    Ok(api)
}

/// Whether the grant acts for a user (OpenID scopes apply) or for the client itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    User,
    Client,
}

/// What a grant may issue: the API the token is for and the scope it carries.
#[derive(Debug, Clone)]
pub struct Target {
    pub api: Arc<Api>,
    pub scope: ScopeSet,
}

/// The one path from a request to its [`Target`], for every grant: the audience named (or
/// the configured default), the API it names, the client's right to it, and the SPEC §6
/// policy for `subject`.
pub async fn resolve_target(
    core: &Core,
    client: &Client,
    target: &TargetRequest,
    requested: Option<&ScopeSet>,
    subject: Subject,
) -> Result<Target, OAuthError> {
    let named = target.resolve(core.settings.default_audience.as_deref())?;
    let api = match named {
        Some(audience) => {
            let found = api(core, &audience).await?;
            if audience == core.userinfo_api.identifier {
                // Every client that signs users in may read UserInfo.
                found.ok_or_else(|| OAuthError::invalid_target("no UserInfo API"))?
            } else {
                check_target(client, &audience, found)?
            }
        }
        None if only_openid_scopes(requested, subject) => core.userinfo_api.clone(),
        None => {
            return Err(OAuthError::invalid_request(
                "name the API the token is for with the `audience` or `resource` parameter",
            ));
        }
    };
    let scope = decide(&ScopeRequest {
        requested,
        client,
        api: &api,
        subject,
    })?;
    Ok(Target { api, scope })
}

/// Everything the decision depends on.
pub struct ScopeRequest<'a> {
    pub requested: Option<&'a ScopeSet>,
    pub client: &'a Client,
    pub api: &'a Api,
    pub subject: Subject,
}

/// What this client may have for this API: every scope it may be granted here. In a user
/// grant that is also the OpenID scopes (SPEC §6), so a client registered with no scopes at
/// all signs users in as a stock relying party expects; `offline_access` only where the
/// client may use refresh tokens.
pub fn permitted(client: &Client, api: &Api, subject: Subject) -> ScopeSet {
    let mut tokens = api_scopes(client, api);
    if subject == Subject::User {
        let refresh = client.allows_grant(GrantType::RefreshToken);
        tokens.extend(
            OPENID_SCOPES
                .iter()
                .copied()
                .filter(|s| *s != "offline_access" || refresh),
        );
    }
    ScopeSet::from_tokens(tokens)
}

/// What a request that names no scope gets: the client's scopes for this API and, in a user
/// grant, the OpenID scopes registered for the client (never more than it was given).
fn unrequested(client: &Client, api: &Api, subject: Subject) -> ScopeSet {
    let mut tokens = api_scopes(client, api);
    if subject == Subject::User {
        tokens.extend(client.scope.iter().filter(|s| OPENID_SCOPES.contains(s)));
    }
    ScopeSet::from_tokens(tokens)
}

fn api_scopes<'a>(client: &'a Client, api: &Api) -> Vec<&'a str> {
    client
        .scope
        .iter()
        .filter(|s| api.scopes.contains(s))
        .collect()
}

/// Granted scope. A requested scope that is not permitted is `invalid_scope`, naming it; no
/// scope requested means everything permitted.
pub fn decide(request: &ScopeRequest<'_>) -> Result<ScopeSet, OAuthError> {
    let Some(requested) = request.requested else {
        return Ok(unrequested(request.client, request.api, request.subject));
    };
    let permitted = permitted(request.client, request.api, request.subject);
    if let Some(refused) = requested.iter().find(|s| !permitted.contains(s)) {
        return Err(OAuthError::invalid_scope(refusal(refused, request)));
    }
    Ok(requested.clone())
}

fn refusal(scope: &str, request: &ScopeRequest<'_>) -> String {
    let scope = printable(scope);
    if OPENID_SCOPES.contains(&scope.as_str()) && request.subject == Subject::Client {
        format!("scope `{scope}` needs a user and cannot be granted to a client acting for itself")
    } else if scope == "offline_access" {
        "scope `offline_access` needs a client allowed the refresh_token grant".to_owned()
    } else if !request.client.scope.contains(&scope) {
        format!("scope `{scope}` is not allowed for this client")
    } else {
        format!(
            "scope `{scope}` is not defined by the API `{}`",
            printable(&request.api.identifier)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UnixTime;
    use crate::oauth::ErrorCode;

    fn client(scope: &str) -> Client {
        Client {
            client_id: "c".into(),
            client_name: "C".into(),
            secret_hash: None,
            grant_types: vec![],
            redirect_uris: vec![],
            scope: ScopeSet::parse(scope).unwrap(),
            audiences: vec!["https://api".into()],
            allowed_origins: vec![],
            first_party: false,
            logout: Default::default(),
            require_par: false,
            keys: Default::default(),
            registration: None,
            revision: 0,
            created_at: UnixTime(0),
            updated_at: UnixTime(0),
        }
    }

    fn api() -> Api {
        Api {
            identifier: "https://api".into(),
            name: "API".into(),
            scopes: ScopeSet::parse("read:a write:a delete:a").unwrap(),
            created_at: UnixTime(0),
        }
    }

    fn decide_for(
        client_scope: &str,
        requested: Option<&str>,
        subject: Subject,
    ) -> Result<String, OAuthError> {
        let client = client(client_scope);
        let api = api();
        let requested = requested.map(|r| ScopeSet::parse(r).unwrap());
        decide(&ScopeRequest {
            requested: requested.as_ref(),
            client: &client,
            api: &api,
            subject,
        })
        .map(|s| s.to_string())
    }

    #[test]
    fn empty_request_gets_everything_permitted_for_the_api() {
        let granted = decide_for("read:a write:a other:x openid", None, Subject::Client).unwrap();
        assert_eq!(granted, "read:a write:a");
    }

    #[test]
    fn user_grants_add_allowed_openid_scopes() {
        let granted = decide_for("read:a openid email", None, Subject::User).unwrap();
        assert_eq!(granted, "email openid read:a");
        assert_eq!(
            decide_for("read:a openid", Some("openid"), Subject::User).unwrap(),
            "openid"
        );
        // Asked for, the OpenID scopes need no registration; offline_access needs refresh.
        assert_eq!(
            decide_for("", Some("openid profile phone"), Subject::User).unwrap(),
            "openid phone profile"
        );
        let e = decide_for("", Some("openid offline_access"), Subject::User).unwrap_err();
        assert!(e.description.contains("refresh_token"), "{}", e.description);
    }

    #[test]
    fn a_scope_not_permitted_is_named() {
        let e = decide_for("read:a", Some("read:a write:a"), Subject::Client).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
        assert!(
            e.description
                .contains("`write:a` is not allowed for this client"),
            "{}",
            e.description
        );
        let e = decide_for("read:a other:x", Some("other:x"), Subject::Client).unwrap_err();
        assert!(
            e.description.contains("not defined by the API"),
            "{}",
            e.description
        );
        let e = decide_for("read:a openid", Some("openid"), Subject::Client).unwrap_err();
        assert!(e.description.contains("needs a user"), "{}", e.description);
    }

    #[test]
    fn requested_subset_is_granted_as_requested() {
        assert_eq!(
            decide_for("read:a write:a", Some("write:a"), Subject::Client).unwrap(),
            "write:a"
        );
    }

    #[test]
    fn scope_syntax_errors_are_invalid_scope() {
        for bad in ["a  b", " a", "a\"b"] {
            let params = Params::parse(
                format!("scope={}", bad.replace(' ', "+").replace('"', "%22")).as_bytes(),
            )
            .unwrap();
            assert_eq!(
                requested(&params).unwrap_err().code,
                ErrorCode::InvalidScope,
                "{bad}"
            );
        }
    }

    fn audience(params: &Params, default: Option<&str>) -> Result<Option<String>, OAuthError> {
        TargetRequest::from_params(params)?.resolve(default)
    }

    #[test]
    fn audience_resolution() {
        let p = |s: &str| Params::parse(s.as_bytes()).unwrap();
        assert_eq!(
            audience(&p("audience=https://a"), None).unwrap().as_deref(),
            Some("https://a")
        );
        assert_eq!(
            audience(&p("resource=https://a"), None).unwrap().as_deref(),
            Some("https://a")
        );
        assert_eq!(
            audience(&p("audience=https://a&resource=https://a"), None)
                .unwrap()
                .as_deref(),
            Some("https://a")
        );
        assert_eq!(
            audience(&p(""), Some("https://d")).unwrap().as_deref(),
            Some("https://d")
        );
        assert_eq!(audience(&p(""), None).unwrap(), None);
        let e = audience(&p("audience=https://a&resource=https://b"), None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTarget);
        let e = audience(&p("resource=relative/path"), None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTarget);
        let e = audience(&p("resource=https://a%23frag"), None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTarget);
    }

    #[test]
    fn target_must_exist_and_be_allowed() {
        let c = client("read:a");
        let a = api();
        assert!(check_target(&c, "https://api", Some(&a)).is_ok());
        assert_eq!(
            check_target(&c, "https://nope", None::<&Api>)
                .unwrap_err()
                .code,
            ErrorCode::InvalidTarget
        );
        let mut other = a.clone();
        other.identifier = "https://other".into();
        assert_eq!(
            check_target(&c, "https://other", Some(&other))
                .unwrap_err()
                .code,
            ErrorCode::InvalidTarget
        );
    }
}
