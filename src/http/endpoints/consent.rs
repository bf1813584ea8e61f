//! `GET|POST /consent`: the person allows or denies what the app asks for. First-party
//! clients and requests already covered by an earlier consent skip the page.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use crate::audit;
use crate::domain::UnixTime;
use crate::http::browser::{self, CsrfCookie, page_url};
use crate::http::page_error::PageError;
use crate::http::pages::{ConsentView, Page, ScopeView};
use crate::http::state::AppState;
use crate::login::csrf::FormPurpose;
use crate::oauth::authorize::{self, Pending};
use crate::oauth::scope::{self, OPENID_SCOPES};
use crate::oauth::{ErrorCode, OAuthError};
use crate::store::{Session, User};

#[derive(Deserialize)]
pub struct PageQuery {
    pub request: Option<String>,
}

/// The step after sign-in: the consent page if the person must be asked, else the answer.
pub async fn proceed(
    state: &AppState,
    pending: &Pending,
    session: &Session,
    user: &User,
    now: UnixTime,
) -> Response {
    let result = async {
        if authorize::needs_consent(state, pending, user)
            .await
            .map_err(PageError::from_store)?
        {
            if pending.request.prompt.none {
                let error = OAuthError::new(ErrorCode::ConsentRequired, "the user must consent");
                let response = authorize::refuse(state, pending, &error, now).await?;
                return Ok(browser::deliver(state, response));
            }
            return Ok(browser::see_other(&page_url("/consent", &pending.id)));
        }
        allowed(state, pending, user, session, now).await
    }
    .await;
    result.unwrap_or_else(|page: PageError| browser::error_page(state, page))
}

/// The request is allowed: the code or tokens for the client, or a device sign-in answered.
async fn allowed(
    state: &AppState,
    pending: &Pending,
    user: &User,
    session: &Session,
    now: UnixTime,
) -> Result<Response, PageError> {
    if pending.request.device.is_some() {
        return finish_device(state, pending, Some((user, session)), now).await;
    }
    let response = authorize::approve(state, pending, user, session, now).await?;
    Ok(browser::deliver(state, response))
}

pub async fn consent_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let now = state.clock.now();
    let result = async {
        let pending = authorize::load_pending(&state, query.request.as_deref(), now).await?;
        let signed_in = browser::signed_in_for(&state, &headers, &pending.request, now).await?;
        let Some((session, user)) = signed_in else {
            return Ok(browser::see_other(&page_url("/login", &pending.id)));
        };
        if !authorize::needs_consent(&state, &pending, &user)
            .await
            .map_err(PageError::from_store)?
        {
            // Already answered (first party, or covered by an earlier consent): finish here
            // rather than through `proceed`, which would ask the store the same question.
            return allowed(&state, &pending, &user, &session, now).await;
        }
        let csrf = CsrfCookie::ensure(&state, &headers)?;
        let view = consent_view(&state, &pending, &user, &csrf.value).await?;
        Ok(csrf.apply(
            &state,
            state.web.pages.render(StatusCode::OK, Page::Consent(view)),
        ))
    }
    .await;
    result.unwrap_or_else(|page: PageError| browser::error_page(&state, page))
}

pub async fn consent_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let now = state.clock.now();
    let result = async {
        let form = browser::posted_form(&state, &headers, body, FormPurpose::Consent)
            .await?
            .fields;
        let request_id = form.get("request");
        let pending = authorize::load_pending(&state, request_id, now).await?;
        let signed_in = browser::signed_in_for(&state, &headers, &pending.request, now).await?;
        let Some((session, user)) = signed_in else {
            return Ok(browser::see_other(&page_url("/login", &pending.id)));
        };
        let response = match form.get("decision") {
            Some("allow") => {
                authorize::save_consent(&state, &pending, &user, now)
                    .await
                    .map_err(PageError::from_store)?;
                audit::consent_granted(&pending.client.client_id, &user.id, &pending.request.scope);
                return allowed(&state, &pending, &user, &session, now).await;
            }
            Some("deny") => {
                audit::consent_denied(&pending.client.client_id, &user.id);
                if pending.request.device.is_some() {
                    return finish_device(&state, &pending, None, now).await;
                }
                authorize::deny(&state, &pending, now).await?
            }
            _ => return Err(PageError::bad_form()),
        };
        Ok(browser::deliver(&state, response))
    }
    .await;
    result.unwrap_or_else(|page: PageError| browser::error_page(&state, page))
}

/// A device sign-in answered (RFC 8628 §3.3): the device learns it when it next polls; the
/// person gets a page.
async fn finish_device(
    state: &AppState,
    pending: &Pending,
    approved_by: Option<(&User, &Session)>,
    now: UnixTime,
) -> Result<Response, PageError> {
    let approved = approved_by.is_some();
    let still_pending = authorize::answer_device(state, pending, approved_by, now).await?;
    Ok(browser::device_answered(state, approved, still_pending))
}

async fn consent_view(
    state: &AppState,
    pending: &Pending,
    user: &User,
    csrf_cookie: &str,
) -> Result<ConsentView, PageError> {
    let api = scope::api(&state.core, &pending.request.audience)
        .await
        .map_err(PageError::from_store)?;
    let scopes = pending
        .request
        .consented_scope()
        .iter()
        .map(|name| ScopeView {
            name: name.to_owned(),
            api_name: api
                .as_ref()
                .filter(|api| api.scopes.contains(name))
                .map(|api| api.name.clone()),
            description: openid_description(name).map(str::to_owned),
        })
        .collect();
    let unverified_host = pending.client.is_registered().then(|| {
        url::Url::parse(&pending.request.redirect_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| pending.request.redirect_uri.clone())
    });
    Ok(ConsentView {
        client_name: pending.client.client_name.clone(),
        unverified_host,
        request: pending.id.clone(),
        csrf: state
            .web
            .csrf
            .token(FormPurpose::Consent, &pending.id, csrf_cookie),
        username: user.username.clone(),
        scopes,
    })
}

fn openid_description(scope: &str) -> Option<&'static str> {
    debug_assert!(OPENID_SCOPES.len() == 6);
    match scope {
        "openid" => Some("Know who you are"),
        "profile" => Some("See your name and profile"),
        "email" => Some("See your email address"),
        "address" => Some("See your postal address"),
        "phone" => Some("See your phone number"),
        "offline_access" => Some("Stay connected when you are not using it"),
        _ => None,
    }
}
