//! The RFC endpoints: `POST /oauth/token` (RFC 6749, form-encoded, `client_secret_basic` or
//! `client_secret_post`), `POST /oauth/revoke` (RFC 7009), `POST /oauth/introspect` (RFC 7662).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::ClientAddress;
use crate::auth::grants::{GrantRequest, authenticate_client, grant};
use crate::auth::issue::DIRECT_LOGIN_CLIENT;
use crate::auth::issue::{TokenSet, revocation_horizon};
use crate::error::OAuthError;
use crate::secret::sha256;
use crate::state::AppState;
use crate::store::applications::Application;
use crate::store::sessions::{end_session, session_of_refresh_token};

/// The form of `/oauth/token`, `/oauth/revoke` and `/oauth/introspect` (the union of their
/// parameters; each endpoint reads its own).
#[derive(Debug, Default, Deserialize)]
pub struct OAuthForm {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    token: Option<String>,
    token_type_hint: Option<String>,
}

fn read_form(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<OAuthForm, OAuthError> {
    // Answered as RFC 6749 JSON, not axum's plain-text rejection (a body over the limit).
    let body = body.map_err(|_| {
        OAuthError::InvalidRequest("the body could not be read or is too large".into())
    })?;
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::InvalidRequest(
            "Content-Type must be application/x-www-form-urlencoded".into(),
        ));
    }
    // RFC 6749 §3.2: parameters must not be repeated; serde_urlencoded keeps the last, so count.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
        .map_err(|_| OAuthError::InvalidRequest("the form could not be read".into()))?;
    let mut seen = std::collections::HashSet::new();
    for (name, _) in &pairs {
        if !seen.insert(name.as_str()) {
            return Err(OAuthError::InvalidRequest(format!(
                "parameter {} is repeated",
                name.chars().take(32).collect::<String>()
            )));
        }
    }
    serde_urlencoded::from_bytes(&body)
        .map_err(|_| OAuthError::InvalidRequest("the form could not be read".into()))
}

/// Client credentials presented with the request: `(id, secret, by_basic)`.
fn client_credentials(
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<Option<(String, String, bool)>, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
        });
    let in_body = form.client_secret.as_deref().filter(|s| !s.is_empty());
    match (basic, in_body) {
        (Some(_), Some(_)) => Err(OAuthError::InvalidRequest(
            "use one client authentication method, not two".into(),
        )),
        (Some(encoded), None) => {
            let decoded = STANDARD
                .decode(encoded)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(OAuthError::InvalidClient { basic: true })?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or(OAuthError::InvalidClient { basic: true })?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
            let id = form_decode(id).ok_or(OAuthError::InvalidClient { basic: true })?;
            let secret = form_decode(secret).ok_or(OAuthError::InvalidClient { basic: true })?;
            if form
                .client_id
                .as_deref()
                .is_some_and(|named| !named.is_empty() && named != id)
            {
                return Err(OAuthError::InvalidRequest(
                    "client_id does not name the client of the Authorization header".into(),
                ));
            }
            Ok(Some((id, secret, true)))
        }
        (None, Some(secret)) => {
            let id = form
                .client_id
                .clone()
                .filter(|id| !id.is_empty())
                .ok_or(OAuthError::InvalidClient { basic: false })?;
            Ok(Some((id, secret.to_owned(), false)))
        }
        // A public client may name itself; the only public client is the server's own.
        (None, None) => match form.client_id.as_deref().filter(|id| !id.is_empty()) {
            None => Ok(None),
            Some(id) if id == DIRECT_LOGIN_CLIENT => Ok(None),
            Some(_) => Err(OAuthError::InvalidClient { basic: false }),
        },
    }
}

fn form_decode(value: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={value}")).ok()?;
    pairs.into_iter().next().map(|(_, v)| v)
}

async fn authenticated_client(
    state: &AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
    address: std::net::IpAddr,
) -> Result<Application, OAuthError> {
    let (id, secret, basic) =
        client_credentials(headers, form)?.ok_or(OAuthError::InvalidClient { basic: false })?;
    authenticate_client(state, &id, &secret, address)
        .await
        .map_err(|e| match OAuthError::from(e) {
            OAuthError::InvalidClient { .. } => OAuthError::InvalidClient { basic },
            other => other,
        })
}

fn token_response(tokens: TokenSet) -> Response {
    let mut body = Map::new();
    body.insert("access_token".into(), Value::String(tokens.access_token));
    body.insert("token_type".into(), json!("Bearer"));
    body.insert("expires_in".into(), json!(tokens.expires_in));
    if let Some(refresh) = tokens.refresh_token {
        body.insert("refresh_token".into(), Value::String(refresh));
    }
    if let Some(id) = tokens.id_token {
        body.insert("id_token".into(), Value::String(id));
    }
    if !tokens.scope.is_empty() {
        body.insert("scope".into(), Value::String(tokens.scope));
    }
    let mut response = Json(Value::Object(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `POST /oauth/token`.
pub async fn token(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let form = read_form(&headers, body)?;
    let grant_type = form
        .grant_type
        .clone()
        .filter(|g| !g.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest("missing grant_type".into()))?;
    let client = client_credentials(&headers, &form)?;
    let basic = client.as_ref().is_some_and(|(_, _, basic)| *basic);
    let (client_id, client_secret) = match client {
        Some((id, secret, _)) => (Some(id), Some(secret)),
        None => (None, None),
    };
    if grant_type == "client_credentials" && client_id.is_none() {
        return Err(OAuthError::InvalidClient { basic: false });
    }
    let request = GrantRequest {
        grant_type,
        username: form.username,
        password: form.password,
        client_id,
        client_secret,
        refresh_token: form.refresh_token,
        scope: form.scope,
        confidential_client_must_authenticate: true,
    };
    match grant(&state, request, address).await {
        Ok(tokens) => Ok(token_response(tokens)),
        Err(e) => Err(match OAuthError::from(e) {
            OAuthError::InvalidClient { .. } => OAuthError::InvalidClient { basic },
            other => other,
        }),
    }
}

/// `POST /oauth/revoke` (RFC 7009): a client revokes a refresh or access token issued to it.
/// 200 whatever the token (an unknown or foreign token is not an error, §2.2).
pub async fn revoke(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let form = read_form(&headers, body)?;
    let client = authenticated_client(&state, &headers, &form, address).await?;
    let token = form
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest("missing token".into()))?;
    let sid = session_to_end(&state, &client, &token, form.token_type_hint.as_deref()).await?;
    if let Some(sid) = sid {
        let horizon = revocation_horizon(&state);
        state
            .store()
            .run(move |c| end_session(c, &sid, horizon))
            .await
            .map_err(|e| OAuthError::Server(e.to_string()))?;
        state
            .sync_revocations()
            .await
            .map_err(|e| OAuthError::Server(e.to_string()))?;
    }
    // RFC 7009 needs only the 200; the body is `{}` so that every answer of the server is JSON
    // (SPEC §4).
    Ok(Json(json!({})).into_response())
}

/// The session a revocation ends, if the token is known and was issued to `client`.
async fn session_to_end(
    state: &AppState,
    client: &Application,
    token: &str,
    hint: Option<&str>,
) -> Result<Option<String>, OAuthError> {
    let by_refresh = || async {
        let hash = sha256(token);
        let session = state
            .store()
            .run(move |c| session_of_refresh_token(c, &hash))
            .await
            .map_err(|e| OAuthError::Server(e.to_string()))?;
        Ok::<_, OAuthError>(
            session
                .filter(|s| s.client_id == client.client_id)
                .map(|s| s.id),
        )
    };
    let by_access = || async {
        Ok::<_, OAuthError>(match state.verify_access_token(token).await {
            Ok(p) if p.client_id() == Some(client.client_id.as_str()) => {
                p.session_id().map(str::to_owned)
            }
            _ => None,
        })
    };
    if hint == Some("access_token") {
        if let Some(sid) = by_access().await? {
            return Ok(Some(sid));
        }
        return by_refresh().await;
    }
    if let Some(sid) = by_refresh().await? {
        return Ok(Some(sid));
    }
    by_access().await
}

/// `POST /oauth/introspect` (RFC 7662): for an authenticated client, whether a token is active
/// and what it is.
pub async fn introspect(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let form = read_form(&headers, body)?;
    let client = authenticated_client(&state, &headers, &form, address).await?;
    let token = form
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest("missing token".into()))?;
    // Access tokens are bearer tokens for resource servers: any authenticated client may ask
    // about one. A refresh token is its client's own (RFC 7662 §2.2 lets the answer be
    // "inactive" for a client that may not know).
    if let Ok(principal) = state.verify_access_token(&token).await {
        let claims = principal.claims();
        let mut answer = Map::new();
        answer.insert("active".into(), Value::Bool(true));
        answer.insert("token_type".into(), json!("Bearer"));
        for name in [
            "sub",
            "client_id",
            "scope",
            "exp",
            "iat",
            "nbf",
            "iss",
            "aud",
            "jti",
            "sid",
        ] {
            if let Some(value) = claims.get(name) {
                answer.insert(name.into(), value.clone());
            }
        }
        if let Some(name) = claims.get("name") {
            answer.insert("username".into(), name.clone());
        }
        return Ok(Json(Value::Object(answer)).into_response());
    }
    let hash = sha256(&token);
    let session = state
        .store()
        .run(move |c| session_of_refresh_token(c, &hash))
        .await
        .map_err(|e| OAuthError::Server(e.to_string()))?;
    let answer = match session.filter(|s| s.client_id == client.client_id) {
        Some(s) => json!({
            "active": true,
            "token_type": "refresh_token",
            "sub": s.user_id,
            "client_id": s.client_id,
            "scope": s.scope,
            "exp": s.expires_at,
            "iat": s.created_at,
            "sid": s.id,
            "iss": state.config().issuer,
        }),
        None => json!({"active": false}),
    };
    Ok(Json(answer).into_response())
}
