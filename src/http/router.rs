//! Every route and its layers, in one place.

use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodRouter, get, post};

use super::endpoints::{
    authorize, consent, device, discovery, health, introspect, login, logout, metrics, par,
    registration, revoke, token, userinfo,
};
use super::{cors, middleware};
use crate::config::RegistrationMode;
use crate::http::state::AppState;
use crate::oauth::device::DEVICE_PATH;
use crate::oauth::metadata::{
    AUTHORIZE_PATH, DEVICE_AUTHORIZATION_PATH, END_SESSION_PATH, INTROSPECT_PATH, JWKS_PATH,
    PAR_PATH, PROTECTED_RESOURCE_PATH, REGISTRATION_PATH, REVOKE_PATH, TOKEN_PATH, USERINFO_PATH,
};

pub fn router(state: AppState) -> Router {
    let http = &state.settings.http;
    let (body_limit, timeout) = (http.body_limit, http.request_timeout);
    let trusted_proxies = Arc::new(state.settings.http.trusted_proxies.clone());
    let public_documents = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::oauth_metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(JWKS_PATH, get(discovery::jwks))
        .route(PROTECTED_RESOURCE_PATH, get(discovery::protected_resource))
        .route(
            &format!("{PROTECTED_RESOURCE_PATH}/{{*suffix}}"),
            get(discovery::protected_resource),
        )
        .layer(cors::public_documents());
    let registration = if state.settings.registration.mode == RegistrationMode::Closed {
        Router::new()
    } else {
        let configuration: MethodRouter<AppState> = get(registration::read)
            .put(registration::update)
            .delete(registration::delete);
        Router::new()
            .route(REGISTRATION_PATH, post(registration::register))
            .route(&format!("{REGISTRATION_PATH}/{{client_id}}"), configuration)
            .layer(cors::registration())
    };
    let browser_callable = Router::new()
        .route(TOKEN_PATH, post(token::token))
        .route(REVOKE_PATH, post(revoke::revoke))
        .route(
            USERINFO_PATH,
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::client_endpoints,
        ));
    let routes = Router::new()
        .route(INTROSPECT_PATH, post(introspect::introspect))
        .route(PAR_PATH, post(par::push))
        .route(
            DEVICE_AUTHORIZATION_PATH,
            post(device::device_authorization),
        )
        .route(
            DEVICE_PATH,
            get(device::device_get).post(device::device_post),
        )
        .route(
            AUTHORIZE_PATH,
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/login", get(login::login_get).post(login::login_post))
        .route(
            "/consent",
            get(consent::consent_get).post(consent::consent_post),
        )
        .route(
            END_SESSION_PATH,
            get(logout::logout_get).post(logout::logout_post),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .merge(public_documents)
        .merge(registration)
        .merge(browser_callable)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::fail_fast_on_outage,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::limit_per_address,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        .with_state(state);
    middleware::apply(routes, body_limit, timeout, trusted_proxies)
}
