//! `GET|POST /authorize` (RFC 6749 §3.1): validate, keep the request pending, then send the
//! person to sign in, to consent, or straight back to the client.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::consent::proceed;
use crate::http::browser::{self, page_url};
use crate::http::extract;
use crate::http::page_error::PageError;
use crate::http::state::AppState;
use crate::oauth::authorize::{self, AuthorizationRequest, Pending, Rejection, pushed};
use crate::oauth::response_mode::AuthorizationResponse;
use crate::oauth::{ErrorCode, OAuthError, Params};
use crate::store::Client;

pub async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    handle(&state, &headers, params).await
}

pub async fn authorize_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = extract::oauth_form(&headers, body, state.settings.http.body_limit).await;
    handle(&state, &headers, params).await
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    params: Result<Params, OAuthError>,
) -> Response {
    let now = state.clock.now();
    let params = match params {
        Ok(params) => params,
        // Unparsed, nothing is known good yet: say so on a page.
        Err(error) => return browser::error_page(state, PageError::malformed(&error)),
    };
    let checked = if pushed::is_pushed(&params) {
        pushed::pull(state, &params, now).await
    } else {
        authorize::validate(state, &params).await
    };
    let (client, request) = match checked {
        Ok(valid) => valid,
        Err(Rejection::Page(page)) => return browser::error_page(state, page.into()),
        Err(Rejection::Redirect(error)) => {
            tracing::info!(error = error.error.code.as_str(), description = %error.error.description, "authorization request refused");
            return browser::deliver(state, error.into_response());
        }
    };
    let result = async {
        let signed_in = browser::signed_in_for(state, headers, &request, now).await?;
        if signed_in.is_none() && request.prompt.none {
            return login_required(state, client, request);
        }
        let id = authorize::create_pending(state, &request, now).await?;
        match signed_in {
            Some((session, user)) => {
                let pending = Pending {
                    id,
                    client,
                    request,
                };
                Ok(proceed(state, &pending, &session, &user, now).await)
            }
            None => Ok(browser::see_other(&page_url("/login", &id))),
        }
    }
    .await;
    result.unwrap_or_else(|page: PageError| browser::error_page(state, page))
}

/// `prompt=none` without a (recent enough) session: OpenID Connect Core §3.1.2.6.
fn login_required(
    state: &AppState,
    client: Arc<Client>,
    request: AuthorizationRequest,
) -> Result<Response, PageError> {
    let not_stored = Pending {
        id: String::new(),
        client,
        request,
    };
    let error = OAuthError::new(ErrorCode::LoginRequired, "the user is not signed in");
    let response = AuthorizationResponse::error(not_stored.target()?, &error);
    Ok(browser::deliver(state, response))
}
