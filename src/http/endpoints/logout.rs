//! `GET|POST /logout`: Valet's sign-out page and the OpenID Connect end-session endpoint
//! (RP-Initiated Logout 1.0). A plain visit asks for confirmation (a link alone must not sign
//! anyone out). An app's request (`id_token_hint`, `client_id`, `post_logout_redirect_uri`,
//! `state`, by GET or POST) signs out at once when its hint names the browser's session, and
//! otherwise asks too; afterwards the browser goes back to the app only to a URI the app
//! registered, with `state`.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use crate::http::browser::{self, CsrfCookie};
use crate::http::extract;
use crate::http::page_error::PageError;
use crate::http::pages::{LogoutView, Page};
use crate::http::state::AppState;
use crate::login::csrf::FormPurpose;
use crate::login::session::{self, session_cookie_name};
use crate::oauth::Params;
use crate::oidc::end_session::{self, EndSession};

pub async fn logout_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let params = Params::parse(query.unwrap_or_default().as_bytes())
            .map_err(|e| PageError::malformed(&e))?;
        answer(&state, &headers, params).await
    }
    .await;
    result.unwrap_or_else(|page: PageError| browser::error_page(&state, page))
}

pub async fn logout_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let fields = extract::oauth_form(&headers, body, state.settings.http.body_limit)
            .await
            .map_err(|e| PageError::malformed(&e))?;
        if fields.get("csrf").is_none() {
            // An app posting its logout request (§3 allows POST as well as GET).
            return answer(&state, &headers, fields).await;
        }
        let posted = browser::checked_form(&state, &headers, fields, FormPurpose::Logout)?;
        // The app's request, carried through the confirmation form.
        let carried = Params::parse(posted.fields.get("request").unwrap_or("").as_bytes())
            .map_err(|e| PageError::malformed(&e))?;
        let request = end_session::validate(&state, &carried)
            .await
            .map_err(PageError::from)?;
        sign_out(&state, &headers, &request).await
    }
    .await;
    result.unwrap_or_else(|page: PageError| browser::error_page(&state, page))
}

/// A visit, or an app's request: sign out now if the hint names this session (or there is
/// no session to end), otherwise ask.
async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    params: Params,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let rp_initiated = end_session::is_rp_initiated(&params);
    let request = end_session::validate(state, &params)
        .await
        .map_err(PageError::from)?;
    let signed_in = browser::signed_in(state, headers, now).await?;
    if rp_initiated {
        let named = signed_in
            .as_ref()
            .is_none_or(|(session, _)| request.identifies(state, session));
        if named {
            return sign_out(state, headers, &request).await;
        }
    }
    let csrf = CsrfCookie::ensure(state, headers)?;
    let carried = carried_request(&params);
    let view = LogoutView {
        csrf: state
            .web
            .csrf
            .token(FormPurpose::Logout, &carried, &csrf.value),
        username: signed_in.map(|(_, user)| user.username),
        client_name: request.client.as_ref().map(|c| c.client_name.clone()),
        request: carried,
    };
    Ok(csrf.apply(
        state,
        state.web.pages.render(StatusCode::OK, Page::Logout(view)),
    ))
}

/// End the browser's session (its clients are told through the back channel), clear the
/// cookie, and go back to the app where it asked to and may.
async fn sign_out(
    state: &AppState,
    headers: &HeaderMap,
    request: &EndSession,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    if let Some(value) = browser::cookie(headers, session_cookie_name(state.settings.https())) {
        let ended = session::end(&state.store, &state.server_keys.hasher, &value, now)
            .await
            .map_err(PageError::from_store)?;
        if ended {
            tracing::info!(
                client_id = request.client.as_ref().map(|c| c.client_id.as_str()),
                "signed out"
            );
        }
    }
    let mut response = match &request.redirect {
        Some(redirect) => browser::see_other(&redirect.location()),
        None => state.web.pages.render(StatusCode::OK, Page::SignedOut),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, browser::clear_session_cookie(state));
    Ok(response)
}

/// The app's parameters, form-encoded, for the confirmation form to post back.
fn carried_request(params: &Params) -> String {
    let mut carried = url::form_urlencoded::Serializer::new(String::new());
    for name in end_session::PARAMETERS {
        if let Some(value) = params.get(name) {
            carried.append_pair(name, value);
        }
    }
    carried.finish()
}
