//! Errors answered to callers: the `{code, title, message}` envelope of the Lerian endpoints
//! and RFC 6749 §5.2 `{error, error_description}` of the standard ones. Internals (database,
//! crypto) are logged with their detail and answered as a bare 500 envelope.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::throttle::retry_after_secs;

/// An error of a Lerian-style endpoint, with its `AUT-nnnn` code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400 AUT-0001: a required field is absent or empty.
    #[error("missing fields: {0}")]
    MissingFields(String),
    /// 400 AUT-0003: the body is not the JSON the endpoint takes.
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// 401 AUT-0006: no token.
    #[error("missing token")]
    MissingToken,
    /// 401 AUT-0007: the token was refused.
    #[error("invalid token")]
    InvalidToken,
    /// 403 AUT-0008: the caller may not do this.
    #[error("forbidden")]
    Forbidden,
    /// 400 AUT-0013: unknown `grantType`.
    #[error("unsupported grant type {0:?}")]
    UnsupportedGrantType(String),
    /// 400 AUT-0014: a requested scope is unknown.
    #[error("invalid scope {0:?}")]
    InvalidScope(String),
    /// 400 AUT-1001: the password grant is disabled.
    #[error("the password grant is disabled")]
    PasswordGrantDisabled,
    /// 401 AUT-1002: bad username or password (the same answer for an unknown user).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// 401 AUT-1004: bad client id or secret.
    #[error("invalid client credentials")]
    InvalidClient,
    /// 400 AUT-1005: the refresh token is unknown, used, expired or of an ended session.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// 429 AUT-1006: too many failed attempts.
    #[error("too many failed attempts")]
    Throttled(Duration),
    /// 500 AUT-0500: something inside failed; the detail is logged, never answered.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The internal error for `detail` (logged when answered).
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(detail.to_string())
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        use ApiError as E;
        match self {
            E::MissingFields(fields) => (
                StatusCode::BAD_REQUEST,
                "AUT-0001",
                "Missing Fields in Request",
                format!("The request is missing required fields: {fields}."),
            ),
            E::InvalidBody(why) => (
                StatusCode::BAD_REQUEST,
                "AUT-0003",
                "Invalid Request Body",
                format!("The request body could not be read: {why}."),
            ),
            E::MissingToken => (
                StatusCode::UNAUTHORIZED,
                "AUT-0006",
                "Missing Token",
                "An access token is required.".into(),
            ),
            E::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                "AUT-0007",
                "Invalid Token",
                "The access token is invalid, expired or revoked.".into(),
            ),
            E::Forbidden => (
                StatusCode::FORBIDDEN,
                "AUT-0008",
                "Forbidden",
                "The caller may not perform this operation.".into(),
            ),
            E::UnsupportedGrantType(_) => (
                StatusCode::BAD_REQUEST,
                "AUT-0013",
                "Unsupported Grant Type",
                "grantType must be password, client_credentials or refresh_token.".into(),
            ),
            E::InvalidScope(scope) => (
                StatusCode::BAD_REQUEST,
                "AUT-0014",
                "Invalid Scope",
                format!("The scope {scope:?} is not known."),
            ),
            E::PasswordGrantDisabled => (
                StatusCode::BAD_REQUEST,
                "AUT-1001",
                "Grant Disabled",
                "The password grant is disabled on this server.".into(),
            ),
            E::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "AUT-1002",
                "Invalid Credentials",
                "The username or password is incorrect.".into(),
            ),
            E::InvalidClient => (
                StatusCode::UNAUTHORIZED,
                "AUT-1004",
                "Invalid Client",
                "The client id or client secret is incorrect.".into(),
            ),
            E::InvalidRefreshToken => (
                StatusCode::BAD_REQUEST,
                "AUT-1005",
                "Invalid Refresh Token",
                "The refresh token is invalid, expired or already used.".into(),
            ),
            E::Throttled(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "AUT-1006",
                "Too Many Attempts",
                "Too many failed attempts; retry after the time given in Retry-After.".into(),
            ),
            E::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "AUT-0500",
                "Internal Error",
                "The server could not complete the request.".into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let (status, code, title, message) = self.parts();
        let mut response = envelope(status, code, title, &message);
        let headers = response.headers_mut();
        match &self {
            ApiError::Throttled(remaining) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(*remaining)),
                );
            }
            ApiError::MissingToken => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            _ => {}
        }
        response
    }
}

/// The error envelope `{code, title, message}` as JSON, with `Cache-Control: no-store`.
pub fn envelope(status: StatusCode, code: &str, title: &str, message: &str) -> Response {
    let mut response = (
        status,
        Json(json!({"code": code, "title": title, "message": message})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An RFC 6749 §5.2 error of the standard endpoints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// 400 `invalid_request`.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// 401 `invalid_client`; `basic` when the client used HTTP Basic (answered with a
    /// `WWW-Authenticate: Basic` challenge).
    #[error("invalid_client")]
    InvalidClient {
        /// Whether the client authenticated with HTTP Basic.
        basic: bool,
    },
    /// 400 `invalid_grant`.
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    /// 400 `unsupported_grant_type`.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// 400 `invalid_scope`.
    #[error("invalid_scope")]
    InvalidScope,
    /// 400 `unauthorized_client`: the grant is disabled for this client.
    #[error("unauthorized_client")]
    UnauthorizedClient,
    /// 429 with `Retry-After`: too many failures (RFC 6585).
    #[error("throttled")]
    Throttled(Duration),
    /// 405 `invalid_request` with `Allow: POST`: the RFC endpoints take only `POST`.
    #[error("invalid_request: method not allowed")]
    MethodNotAllowed,
    /// 500 `server_error`; the detail is logged, never answered.
    #[error("server_error: {0}")]
    Server(String),
}

impl From<ApiError> for OAuthError {
    fn from(error: ApiError) -> OAuthError {
        use ApiError as E;
        match error {
            E::MissingFields(f) => OAuthError::InvalidRequest(format!("missing {f}")),
            E::InvalidBody(why) => OAuthError::InvalidRequest(why),
            E::UnsupportedGrantType(_) => OAuthError::UnsupportedGrantType,
            E::InvalidScope(_) => OAuthError::InvalidScope,
            E::PasswordGrantDisabled => OAuthError::UnauthorizedClient,
            E::InvalidCredentials => {
                OAuthError::InvalidGrant("invalid username or password".into())
            }
            E::InvalidClient => OAuthError::InvalidClient { basic: false },
            E::InvalidRefreshToken => OAuthError::InvalidGrant("invalid refresh token".into()),
            E::Throttled(d) => OAuthError::Throttled(d),
            E::MissingToken | E::InvalidToken | E::Forbidden => {
                OAuthError::InvalidRequest("invalid token".into())
            }
            E::Internal(detail) => OAuthError::Server(detail),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, error, description) = match &self {
            OAuthError::InvalidRequest(d) => {
                (StatusCode::BAD_REQUEST, "invalid_request", d.clone())
            }
            OAuthError::InvalidClient { .. } => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed".to_owned(),
            ),
            OAuthError::InvalidGrant(d) => (StatusCode::BAD_REQUEST, "invalid_grant", d.clone()),
            OAuthError::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be client_credentials, password or refresh_token".to_owned(),
            ),
            OAuthError::InvalidScope => (
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "a requested scope is not known".to_owned(),
            ),
            OAuthError::UnauthorizedClient => (
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "this grant is disabled".to_owned(),
            ),
            OAuthError::Throttled(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_request",
                "too many failed attempts".to_owned(),
            ),
            OAuthError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "this endpoint takes only POST".to_owned(),
            ),
            OAuthError::Server(detail) => {
                tracing::error!(%detail, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the server could not complete the request".to_owned(),
                )
            }
        };
        let mut response = (
            status,
            Json(json!({"error": error, "error_description": description})),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        match &self {
            OAuthError::InvalidClient { basic: true } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"lib-auth\""),
                );
            }
            OAuthError::Throttled(remaining) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(*remaining)),
                );
            }
            OAuthError::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            _ => {}
        }
        response
    }
}
