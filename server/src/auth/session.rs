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
    let principal = if headers.contains_key(header::AUTHORIZATION) {
        state.verify_access(&headers).await?
    } else {
        let body = body.map_err(|_| {
            ApiError::InvalidBody("the body could not be read or is too large".into())
        })?;
        let form: LogoutForm = serde_urlencoded_form(&body)?;
        let hint = form
            .id_token_hint
            .filter(|h| !h.is_empty())
            .ok_or(ApiError::MissingToken)?;
        state.verify_id_token(&hint).await?
    };
    let Some(sid) = principal.session_id().map(str::to_owned) else {
        return Err(ApiError::InvalidToken);
    };
    let horizon = revocation_horizon(&state);
    let ended = sid.clone();
    state
        .store()
        .run(move |c| end_session(c, &ended, horizon))
        .await
        .map_err(ApiError::internal)?;
    state
        .revocations()
        .sync(state.store())
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(sub = principal.subject(), %sid, "logged out");
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn serde_urlencoded_form<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|_| ApiError::InvalidBody("the form could not be read".into()))
}

/// `GET /v1/userinfo`: who the token's subject is.
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
    let id = principal.subject().to_owned();
    let user = state
        .store()
        .run(move |c| find_user(c, &id))
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::InvalidToken)?;
    let name = format!("{} {}", user.first_name, user.last_name)
        .trim()
        .to_owned();
    Ok(Json(json!({
        "sub": user.id,
        "name": name,
        "preferredUsername": user.username,
        "givenName": user.first_name,
        "familyName": user.last_name,
        "email": user.email,
        "emailVerified": false,
        "type": "normal-user",
        "groups": principal.groups(),
        "roles": principal.roles(),
    }))
    .into_response())
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
