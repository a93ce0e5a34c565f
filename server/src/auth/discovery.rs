//! Health, discovery metadata (RFC 8414 / OIDC Discovery) and the JWKS.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::issue::KNOWN_SCOPES;
use crate::error::OAuthError;
use crate::state::AppState;

/// `GET /health`: `healthy`, as text.
pub async fn health() -> &'static str {
    "healthy"
}

/// The issuer metadata, served at both well-known paths.
pub async fn metadata(State(state): State<AppState>) -> Response {
    let issuer = &state.config().issuer;
    let algorithm = state.keyring().active.algorithm().name();
    let grant_types: &[&str] = if state.config().password_grant_enabled {
        &["client_credentials", "password", "refresh_token"]
    } else {
        &["client_credentials", "refresh_token"]
    };
    Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "userinfo_endpoint": format!("{issuer}/v1/userinfo"),
        "end_session_endpoint": format!("{issuer}/v1/logout"),
        "grant_types_supported": grant_types,
        "response_types_supported": ["token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": KNOWN_SCOPES,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [algorithm],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "sid", "name", "preferred_username", "email", "roles", "groups"],
    }))
    .into_response()
}

/// `GET /.well-known/jwks.json`: the active key and those whose tokens may still be valid.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.keyring().jwks.clone()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// Unknown paths: a JSON 404 (every answer of the service is JSON except `/health`).
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"code": "AUT-0404", "title": "Not Found", "message": "No such endpoint."})),
    )
        .into_response()
}

/// A known path with another method: a JSON 405 (axum's default has an empty body), in
/// RFC 6749's shape on the RFC endpoints and in the AUT envelope elsewhere.
pub async fn method_not_allowed(uri: Uri) -> Response {
    if uri.path().starts_with("/oauth/") {
        return OAuthError::MethodNotAllowed.into_response();
    }
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({
            "code": "AUT-0405",
            "title": "Method Not Allowed",
            "message": "This endpoint does not take this method.",
        })),
    )
        .into_response()
}
