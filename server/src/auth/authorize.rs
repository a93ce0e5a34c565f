//! `POST /v1/authorize`: Lerian's decision endpoint, deciding from the verified token (SPEC §8),
//! never from the body's `sub`.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use lib_auth::{Action, Principal, PrincipalKind};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::lerian::body_error;
use crate::error::ApiError;
use crate::state::AppState;

/// The product assumed when neither the body nor the application's role names one: Midaz,
/// the product Lerian's first clients guarded.
pub const DEFAULT_PRODUCT: &str = "midaz";

/// `{sub, resource, action, product?}`; unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub struct AuthorizeBody {
    sub: Option<String>,
    resource: Option<String>,
    action: Option<String>,
    product: Option<String>,
}

/// `POST /v1/authorize`: 200 `{authorized, timestamp}` once the token is valid; 401 AUT-0006 or
/// AUT-0007 otherwise; 400 for a body that is not the JSON above.
pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<AuthorizeBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let principal = state.verify_access(&headers).await?;
    let Json(body) = body.map_err(body_error)?;
    let (Some(resource), Some(action)) = (
        body.resource.as_deref().filter(|r| !r.is_empty()),
        body.action.as_deref().filter(|a| !a.is_empty()),
    ) else {
        let mut missing = Vec::new();
        if body.resource.as_deref().is_none_or(str::is_empty) {
            missing.push("resource");
        }
        if body.action.as_deref().is_none_or(str::is_empty) {
            missing.push("action");
        }
        return Err(ApiError::MissingFields(missing.join(", ")));
    };
    let authorized = decide(&state, &principal, &body, resource, action);
    tracing::debug!(
        sub = principal.subject(),
        resource,
        action,
        authorized,
        "authorize"
    );
    let timestamp = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"authorized": authorized, "timestamp": timestamp})).into_response())
}

fn decide(
    state: &AppState,
    principal: &Principal,
    body: &AuthorizeBody,
    resource: &str,
    action: &str,
) -> bool {
    let Ok(action) = action.to_ascii_lowercase().parse::<Action>() else {
        return false;
    };
    let claimed = body.sub.as_deref().filter(|s| !s.is_empty());
    let role_product = claimed.and_then(|sub| application_role_product(principal, sub));
    if let Some(sub) = claimed
        && role_product.is_none()
        && !names_the_caller(principal, sub)
    {
        // A body that speaks for someone else is denied, whatever the token could do.
        return false;
    }
    let product = body
        .product
        .as_deref()
        .filter(|p| !p.is_empty())
        .or(role_product)
        .unwrap_or(DEFAULT_PRODUCT);
    state
        .keyring()
        .auth
        .decide(principal, product, resource, action)
        .is_some_and(|decision| decision.is_allowed())
}

/// Whether `sub` designates the token's principal: its `sub` claim, or Lerian's
/// `<owner>/<name>` form.
fn names_the_caller(principal: &Principal, sub: &str) -> bool {
    if sub == principal.subject() {
        return true;
    }
    match (principal.owner(), principal.name()) {
        (Some(owner), Some(name)) => sub
            .split_once('/')
            .is_some_and(|(o, n)| o == owner && n == name),
        _ => false,
    }
}

/// Lerian's M2M body names `admin/<product>-editor-role`: for an application token, read the
/// product from it (the rights stay the application's own roles).
fn application_role_product<'a>(principal: &Principal, sub: &'a str) -> Option<&'a str> {
    if principal.kind() != PrincipalKind::Application {
        return None;
    }
    let (_, role) = sub.split_once('/')?;
    let product = role.strip_suffix("-role")?;
    let product = product
        .strip_suffix("-editor")
        .or_else(|| product.strip_suffix("-contributor"))
        .or_else(|| product.strip_suffix("-viewer"))?;
    (!product.is_empty()).then_some(product)
}
