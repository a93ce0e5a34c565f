//! Lerian's JSON token endpoints: `POST /v1/login/oauth/access_token` and
//! `POST /v1/login/oauth/refresh_token`.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::ClientAddress;
use crate::auth::grants::{GrantRequest, grant};
use crate::auth::issue::TokenSet;
use crate::error::ApiError;
use crate::state::AppState;

/// The body of the Lerian token endpoint (unknown fields ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenBody {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
}

/// The body of the Lerian refresh endpoint.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshBody {
    refresh_token: Option<String>,
    scope: Option<String>,
}

/// Maps a JSON extraction failure to AUT-0003 without echoing the body.
pub fn body_error(rejection: JsonRejection) -> ApiError {
    let why = match rejection {
        JsonRejection::MissingJsonContentType(_) => "Content-Type must be application/json",
        JsonRejection::JsonSyntaxError(_) => "the body is not valid JSON",
        JsonRejection::JsonDataError(_) => "a field has the wrong type",
        JsonRejection::BytesRejection(_) => "the body could not be read or is too large",
        _ => "the body could not be read",
    };
    ApiError::InvalidBody(why.to_owned())
}

/// `{accessToken, tokenType, expiresIn, refreshToken?, idToken?, scope?}`, `no-store`.
pub fn lerian_token_response(tokens: TokenSet) -> Response {
    let mut body = Map::new();
    body.insert("accessToken".into(), Value::String(tokens.access_token));
    body.insert("tokenType".into(), json!("Bearer"));
    body.insert("expiresIn".into(), json!(tokens.expires_in));
    if let Some(refresh) = tokens.refresh_token {
        body.insert("refreshToken".into(), Value::String(refresh));
    }
    if let Some(id) = tokens.id_token {
        body.insert("idToken".into(), Value::String(id));
    }
    if !tokens.scope.is_empty() {
        body.insert("scope".into(), Value::String(tokens.scope));
    }
    let mut response = Json(Value::Object(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `POST /v1/login/oauth/access_token`.
pub async fn token(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    body: Result<Json<TokenBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let request = GrantRequest {
        grant_type: body.grant_type.unwrap_or_default(),
        username: body.username,
        password: body.password,
        client_id: body.client_id,
        client_secret: body.client_secret,
        refresh_token: body.refresh_token,
        scope: body.scope,
        confidential_client_must_authenticate: false,
    };
    Ok(lerian_token_response(
        grant(&state, request, address).await?,
    ))
}

/// `POST /v1/login/oauth/refresh_token`.
pub async fn refresh(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    body: Result<Json<RefreshBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let request = GrantRequest {
        grant_type: "refresh_token".into(),
        refresh_token: body.refresh_token,
        scope: body.scope,
        ..GrantRequest::default()
    };
    Ok(lerian_token_response(
        grant(&state, request, address).await?,
    ))
}
