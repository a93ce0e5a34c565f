//! The caller's session: `POST /v1/logout`, `GET /v1/userinfo`, `GET /v1/permissions`.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lib_auth::{Policy, Principal, PrincipalKind};
use serde::Deserialize;
use serde_json::json;

use crate::auth::issue::revocation_horizon;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sessions::end_session;
use crate::store::users::find_user;

#[derive(Debug, Deserialize)]
struct LogoutForm {
    id_token_hint: Option<String>,
}

/// `POST /v1/logout`: ends the session of the bearer token, or of the form's `id_token_hint`
/// (RP-initiated logout). The session's refresh tokens die and its `sid` is revoked for every
/// validator. 204.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (subject, sid) = if headers.contains_key(header::AUTHORIZATION) {
        let principal = state.verify_access(&headers).await?;
        (
            principal.subject().to_owned(),
            principal.session_id().map(str::to_owned),
        )
    } else {
        let body = body.map_err(|_| {
            ApiError::InvalidBody("the body could not be read or is too large".into())
        })?;
        let form: LogoutForm = serde_urlencoded_form(&body)?;
        let hint = form
            .id_token_hint
            .filter(|h| !h.is_empty())
            .ok_or(ApiError::MissingToken)?;
        // An ID token's `typ` is `JWT`; an access token (`at+jwt`) is not a hint.
        let typ = jsonwebtoken::decode_header(&hint)
            .ok()
            .and_then(|header| header.typ);
        if typ.as_deref() != Some("JWT") {
            return Err(ApiError::InvalidToken);
        }
        match state.verify_id_token(&hint).await {
            Ok(principal) => (
                principal.subject().to_owned(),
                principal.session_id().map(str::to_owned),
            ),
            // OIDC RP-initiated logout: an expired ID token is still a good hint, or a
            // session would outlive the hint's hour and could no longer be ended with it.
            Err(ApiError::InvalidToken) => {
                let hint = expired_id_token_hint(&state, &hint)?;
                (hint.sub, Some(hint.sid))
            }
            Err(other) => return Err(other),
        }
    };
    let Some(sid) = sid else {
        return Err(ApiError::InvalidToken);
    };
    let horizon = revocation_horizon(&state);
    let ended = sid.clone();
    state
        .store()
        .run(move |c| end_session(c, &ended, horizon))
        .await
        .map_err(ApiError::internal)?;
    state.sync_revocations().await.map_err(ApiError::internal)?;
    tracing::info!(sub = %subject, %sid, "logged out");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What an expired ID token names: its user and its session.
#[derive(Debug, serde::Deserialize)]
struct HintClaims {
    sub: String,
    sid: String,
}

/// Checks an ID token whose only fault may be its age: signed by one of this server's published
/// keys with that key's own algorithm, `typ` `JWT` (an ID token, not an access token), issued
/// by this server, expired less than a refresh-token lifetime ago (no session lives longer).
fn expired_id_token_hint(state: &AppState, token: &str) -> Result<HintClaims, ApiError> {
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header, jwk::Jwk};
    let header = decode_header(token).map_err(|_| ApiError::InvalidToken)?;
    if header.typ.as_deref() != Some("JWT") {
        return Err(ApiError::InvalidToken);
    }
    let kid = header.kid.ok_or(ApiError::InvalidToken)?;
    let keyring = state.keyring();
    let jwk: Jwk = keyring.jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
        .and_then(|k| serde_json::from_value(k.clone()).ok())
        .ok_or(ApiError::InvalidToken)?;
    let algorithm = jwk
        .common
        .key_algorithm
        .and_then(|a| a.to_string().parse().ok())
        .ok_or(ApiError::InvalidToken)?;
    if header.alg != algorithm {
        return Err(ApiError::InvalidToken);
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| ApiError::InvalidToken)?;
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_issuer(&[state.config().issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let decoded = decode::<serde_json::Value>(token, &key, &validation)
        .map_err(|_| ApiError::InvalidToken)?;
    let exp = decoded.claims["exp"]
        .as_i64()
        .ok_or(ApiError::InvalidToken)?;
    let oldest = crate::store::unix_now()
        - i64::try_from(state.config().refresh_token_ttl.as_secs()).unwrap_or(86_400);
    if exp < oldest {
        return Err(ApiError::InvalidToken);
    }
    serde_json::from_value(decoded.claims).map_err(|_| ApiError::InvalidToken)
}

fn serde_urlencoded_form<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|_| ApiError::InvalidBody("the form could not be read".into()))
}

/// `GET /v1/userinfo`: who the token's subject is; for a user, the claims its scopes allow.
pub async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = state.verify_access(&headers).await?;
    if principal.kind() == PrincipalKind::Application {
        return Ok(Json(json!({
            "sub": principal.subject(),
            "name": principal.name(),
            "type": "application",
            "roles": principal.roles(),
        }))
        .into_response());
    }
    // The claims follow the granted scopes (OIDC Core §5.4): names with `profile`, the
    // address with `email`. A token without `openid` still learns who it is (`sub`, kind,
    // groups, roles): Lerian's clients and lib-auth's remote mode ask this endpoint whether a
    // token is valid, whatever its scopes.
    let granted = |scope: &str| principal.scopes().iter().any(|s| s == scope);
    let id = principal.subject().to_owned();
    let user = state
        .store()
        .run(move |c| find_user(c, &id))
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::InvalidToken)?;
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), json!(user.id));
    let oidc = granted("openid");
    if oidc && granted("profile") {
        let name = format!("{} {}", user.first_name, user.last_name)
            .trim()
            .to_owned();
        claims.insert("name".into(), json!(name));
        claims.insert("preferredUsername".into(), json!(user.username));
        claims.insert("givenName".into(), json!(user.first_name));
        claims.insert("familyName".into(), json!(user.last_name));
    }
    if oidc && granted("email") {
        claims.insert("email".into(), json!(user.email));
        claims.insert("emailVerified".into(), json!(false));
    }
    claims.insert("type".into(), json!("normal-user"));
    claims.insert("groups".into(), json!(principal.groups()));
    claims.insert("roles".into(), json!(principal.roles()));
    Ok(Json(serde_json::Value::Object(claims)).into_response())
}

/// `?product=` narrows `/v1/permissions` to one product.
#[derive(Debug, Deserialize)]
pub struct PermissionsQuery {
    product: Option<String>,
}

/// `GET /v1/permissions`: `{"<resource>": ["get", …]}` for the caller, over every product (or
/// the one named by `?product=`), from its roles, groups and included roles.
pub async fn permissions(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PermissionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let principal = state.verify_access(&headers).await?;
    let Query(query) = query.map_err(|_| ApiError::InvalidBody("bad query string".into()))?;
    let product = query.product.filter(|p| !p.is_empty());
    let (policy, _) = state.policy();
    let map = permissions_of(&policy, &principal, product.as_deref());
    Ok(Json(map).into_response())
}

/// Every role the principal holds, included roles expanded.
fn roles_of(policy: &Policy, principal: &Principal) -> BTreeSet<String> {
    let mut pending: Vec<String> = principal.roles().to_vec();
    for group in &policy.groups {
        if principal
            .groups()
            .iter()
            .any(|g| *g == group.id || *g == group.name)
        {
            pending.extend(group.roles.iter().cloned());
        }
    }
    if principal.kind() == PrincipalKind::User {
        pending.extend(policy.default_user_roles.iter().cloned());
    }
    let mut held = BTreeSet::new();
    while let Some(role) = pending.pop() {
        if held.insert(role.clone())
            && let Some(r) = policy.roles.iter().find(|r| r.id == role)
        {
            pending.extend(r.includes.iter().cloned());
        }
    }
    held
}

fn permissions_of(
    policy: &Policy,
    principal: &Principal,
    product: Option<&str>,
) -> BTreeMap<String, Vec<String>> {
    const ACTIONS: [&str; 6] = ["get", "post", "put", "patch", "delete", "head"];
    let held = roles_of(policy, principal);
    let mut map: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for role in policy.roles.iter().filter(|r| held.contains(&r.id)) {
        for permission in &role.permissions {
            if product.is_some_and(|p| p != permission.product) {
                continue;
            }
            let actions = map.entry(permission.resource.clone()).or_default();
            for action in &permission.actions {
                if action == "*" {
                    actions.extend(ACTIONS);
                } else if let Some(known) = ACTIONS.iter().find(|a| **a == action.as_str()) {
                    actions.insert(known);
                }
            }
        }
    }
    map.into_iter()
        .map(|(resource, actions)| {
            // In the order of ACTIONS, not alphabetical: get, post, put, patch, delete, head.
            let ordered = ACTIONS
                .iter()
                .filter(|a| actions.contains(*a))
                .map(|a| (*a).to_owned())
                .collect();
            (resource, ordered)
        })
        .collect()
}
