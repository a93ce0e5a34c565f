//! The Identity service (SPEC §5): users, groups, applications, roles and the audit log, on
//! the Auth service's store, guarded by lib-auth with product `plugin-identity`.
//!
//! Every route is guarded before its handler runs: the access token is verified (signature,
//! claims, revocations) and the caller's roles must grant `(plugin-identity, resource, action)`,
//! the action being the HTTP method's (GET→get, POST→post, PATCH→patch, DELETE→delete). A
//! refusal is 401 (`AUT-0006`/`AUT-0007`) or 403 (`AUT-0008`, recorded in the audit log as
//! `access.denied`). One file per resource family.

pub mod applications;
pub mod audit;
mod body;
pub mod error;
pub mod groups;
pub mod rights;
pub mod users;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use lib_auth::{Action, Principal};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use error::IdentityError;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::audit::NewAuditEvent;

/// The product the Identity service's permissions belong to.
pub const PRODUCT: &str = "plugin-identity";

/// Request bodies larger than this are refused (413, IDE-0018).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The Identity service's routes.
pub fn router(state: AppState) -> Router {
    let guarded = |resource: &'static str| {
        middleware::from_fn_with_state(
            Guard {
                state: state.clone(),
                resource,
            },
            guard,
        )
    };
    Router::new()
        .route("/v1/users", post(users::create).get(users::list))
        .route(
            "/v1/users/{id}",
            get(users::get).patch(users::update).delete(users::delete),
        )
        .route("/v1/users/{id}/logout", post(users::force_logout))
        .route_layer(guarded("users"))
        .merge(
            Router::new()
                .route(
                    "/v1/users/{id}/update-password",
                    patch(users::update_password),
                )
                .route_layer(guarded("update-password")),
        )
        .merge(
            Router::new()
                .route(
                    "/v1/users/{id}/reset-password",
                    patch(users::reset_password),
                )
                .route_layer(guarded("reset-password")),
        )
        .merge(
            Router::new()
                .route("/v1/groups", get(groups::list))
                .route("/v1/groups/{id}", get(groups::get))
                .route_layer(guarded("groups")),
        )
        .merge(
            Router::new()
                .route("/v1/roles", get(groups::list_roles))
                .route("/v1/roles/{id}", get(groups::get_role))
                .route_layer(guarded("roles")),
        )
        .merge(
            Router::new()
                .route(
                    "/v1/applications",
                    post(applications::create).get(applications::list),
                )
                .route(
                    "/v1/applications/{id}",
                    get(applications::get).delete(applications::delete),
                )
                .route(
                    "/v1/applications/{id}/rotate-secret",
                    post(applications::rotate_secret),
                )
                .route_layer(guarded("applications")),
        )
        .merge(
            Router::new()
                .route("/v1/audit-events", get(audit::list))
                .route_layer(guarded("audit-events")),
        )
        .route("/health", get(crate::auth::discovery::health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn not_found() -> Response {
    IdentityError::NoSuchRoute.into_response()
}

async fn method_not_allowed() -> Response {
    IdentityError::MethodNotAllowed.into_response()
}

/// What the guard of one group of routes checks.
#[derive(Clone)]
struct Guard {
    state: AppState,
    resource: &'static str,
}

/// Verifies the token and the permission, then puts the [`Caller`] into the request.
async fn guard(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let state = &guard.state;
    let principal = match state.verify_access(request.headers()).await {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    let action = Action::from_method(request.method());
    let allowed = action.is_some_and(|action| {
        state
            .keyring()
            .auth
            .decide(&principal, PRODUCT, guard.resource, action)
            .is_some_and(|decision| decision.is_allowed())
    });
    let caller = Caller::new(principal);
    if !allowed {
        let event = caller.event(
            "access.denied",
            Some(guard.resource),
            None,
            None,
            json!({
                "method": request.method().as_str(),
                // Bounded: a refused caller must not be able to grow the log at will.
                "path": request.uri().path().chars().take(200).collect::<String>(),
            }),
        );
        tracing::info!(actor = %caller.id(), resource = guard.resource, method = %request.method(), "identity access denied");
        if let Err(error) = audit::record(state, event).await {
            return error.into_response();
        }
        return ApiError::Forbidden.into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The authenticated caller of an Identity route (set by the guard).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The verified token's principal: who (`sub`, name, session) and with which roles.
    pub principal: Principal,
}

impl Caller {
    fn new(principal: Principal) -> Caller {
        Caller { principal }
    }

    /// Its `sub`: a user id or an application's client id.
    pub fn id(&self) -> &str {
        self.principal.subject()
    }

    /// Its session (`sid`), if any.
    pub fn session_id(&self) -> Option<&str> {
        self.principal.session_id()
    }

    /// Records a refused act in the audit log (`access.denied`) and answers `error`, or the
    /// audit log's own failure.
    pub async fn refuse(
        &self,
        state: &AppState,
        target: (&str, &str, Option<&str>),
        detail: serde_json::Value,
        error: IdentityError,
    ) -> IdentityError {
        let (target_type, target_id, target_name) = target;
        let event = self.event(
            "access.denied",
            Some(target_type),
            Some(target_id),
            target_name,
            detail,
        );
        tracing::info!(actor = %self.id(), target = %target_id, %error, "identity call refused");
        match audit::record(state, event).await {
            Ok(()) => error,
            Err(failure) => failure,
        }
    }

    /// Refuses, and records, an act on or a grant of rights the caller does not hold
    /// (IDE-0019).
    pub async fn refuse_escalation(
        &self,
        state: &AppState,
        target_type: &str,
        target_id: &str,
        target_name: &str,
        what: &str,
    ) -> IdentityError {
        let detail =
            json!({"reason": "the caller does not hold the rights concerned", "attempt": what});
        self.refuse(
            state,
            (target_type, target_id, Some(target_name)),
            detail,
            IdentityError::InsufficientRights,
        )
        .await
    }

    /// An audit event with this caller as the actor.
    pub fn event(
        &self,
        action: &str,
        target_type: Option<&str>,
        target_id: Option<&str>,
        target_name: Option<&str>,
        detail: serde_json::Value,
    ) -> NewAuditEvent {
        NewAuditEvent {
            actor_id: Some(self.id().to_owned()),
            actor_name: self.principal.name().map(str::to_owned),
            action: action.to_owned(),
            target_type: target_type.map(str::to_owned),
            target_id: target_id.map(str::to_owned),
            target_name: target_name.map(str::to_owned),
            detail,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = IdentityError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Only a route without the guard lacks it: a wiring fault, refused rather than served.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(IdentityError::Auth(ApiError::MissingToken))
    }
}

/// `page` (≥ 1, default 1) and `limit` (1..=100, default 10) of a list request.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    /// 1-based page number.
    pub page: i64,
    /// Items per page.
    pub limit: i64,
}

impl Paging {
    /// Reads `page` and `limit` from `query`.
    pub fn from_query(query: &HashMap<String, String>) -> Result<Paging, IdentityError> {
        let number = |name: &str, default: i64, max: i64| -> Result<i64, IdentityError> {
            match query.get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        IdentityError::InvalidPaging(format!(
                            "{name} must be a whole number from 1 to {max}"
                        ))
                    }),
            }
        };
        Ok(Paging {
            page: number("page", 1, 1_000_000)?,
            limit: number("limit", 10, 100)?,
        })
    }

    /// Rows to skip.
    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.limit)
    }
}

/// A page of a list: `{items, page, limit, total}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The page number.
    pub page: i64,
    /// The page size.
    pub limit: i64,
    /// Items in all pages.
    pub total: i64,
}

impl<T> Page<T> {
    /// A page of `items` out of `total`.
    pub fn new(items: Vec<T>, paging: Paging, total: i64) -> Page<T> {
        Page {
            items,
            page: paging.page,
            limit: paging.limit,
            total,
        }
    }
}

/// A query string as a map; a repeated or unreadable parameter is IDE-0005.
pub fn query_map(raw: Option<&str>) -> Result<HashMap<String, String>, IdentityError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|_| IdentityError::InvalidPaging("the query string could not be read".into()))?;
    let mut map = HashMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if map.insert(name.clone(), value).is_some() {
            return Err(IdentityError::InvalidPaging(format!(
                "the parameter {name} is repeated"
            )));
        }
    }
    Ok(map)
}

/// Brings the server's own revocation index up to date after a write, so its next token
/// check already refuses what was revoked.
pub async fn sync_revocations(state: &AppState) -> Result<(), IdentityError> {
    state
        .sync_revocations()
        .await
        .map_err(IdentityError::internal)
}

/// Unix seconds as RFC 3339.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Checks that a path id is a UUID (in its canonical lowercase form, as ids are stored).
pub fn uuid_path(id: &str, what: &'static str) -> Result<(), IdentityError> {
    match uuid::Uuid::parse_str(id) {
        Ok(parsed) if parsed.hyphenated().to_string() == id => Ok(()),
        _ => Err(IdentityError::InvalidId(what)),
    }
}
