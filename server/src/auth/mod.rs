//! The Auth service (SPEC §4): every endpoint, one file per endpoint family.

pub mod authorize;
pub mod discovery;
pub mod feeds;
pub mod grants;
pub mod issue;
pub mod lerian;
pub mod oauth;
pub mod session;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::middleware::map_response;
use axum::routing::{get, post};

use crate::state::AppState;

/// Request bodies larger than this are refused (413) before they are read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The Auth service's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(discovery::health))
        .route("/v1/login/oauth/access_token", post(lerian::token))
        .route("/v1/login/oauth/refresh_token", post(lerian::refresh))
        .route("/v1/logout", post(session::logout))
        .route(
            "/v1/userinfo",
            get(session::userinfo).layer(map_response(no_store)),
        )
        .route(
            "/v1/permissions",
            get(session::permissions).layer(map_response(no_store)),
        )
        .route(
            "/v1/permissions/",
            get(session::permissions).layer(map_response(no_store)),
        )
        .route("/v1/authorize", post(authorize::authorize))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/revoke", post(oauth::revoke))
        .route(
            "/oauth/introspect",
            post(oauth::introspect).layer(map_response(no_store)),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route("/v1/policy", get(feeds::policy))
        .route("/v1/revocations", get(feeds::revocations))
        .fallback(discovery::not_found)
        .method_not_allowed_fallback(discovery::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Marks an answer about a token's holder as not to be stored by any cache (RFC 7662 §4,
/// OIDC Core §5.3.2 say as much for introspection and userinfo).
async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// The caller's IP address, from the connection (not from forwarding headers, which a caller
/// could forge to escape its throttle). Unspecified when the router is served without
/// connection info.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        Ok(ClientAddress(address))
    }
}
