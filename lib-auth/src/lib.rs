//! Bearer-token authentication and role-based authorization for Rust services, as tower
//! middleware, compatible with Lerian's Access Manager for the Midaz ledger.
//!
//! A request's path is short and one-way: `Authorization` header → bearer extraction →
//! verification (cache, then signature against the issuer's JWKS) → [`Principal`] → decision
//! (compiled policy, a few hash lookups) → your handler.
//!
//! ```
//! use axum::{Router, routing::get};
//! use lib_auth::{Action, Auth, AuthConfig, Principal};
//!
//! async fn list_ledgers(principal: axum::Extension<Principal>) -> String {
//!     format!("ledgers visible to {}", principal.subject())
//! }
//!
//! # fn main() -> Result<(), lib_auth::ConfigError> {
//! // In a deployment: Auth::from_env()? reads PLUGIN_AUTH_ENABLED, PLUGIN_AUTH_HOST, …
//! let auth = Auth::new(AuthConfig::default().enabled(true).host("http://auth.internal:4000"))?;
//! let app: Router = Router::new()
//!     .route("/v1/ledgers", get(list_ledgers))
//!     .route_layer(auth.require_method("midaz", "ledgers"));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! Errors answer with the SPEC envelope `{"code","title","message"}`: 401 (`AUT-0006` missing,
//! `AUT-0007` invalid token, with `WWW-Authenticate: Bearer error="invalid_token"`), 403
//! (`AUT-0008`), 503 (`AUT-0009`, the key source or the Auth service is down and nothing is
//! cached: the library fails closed).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod action;
mod auth;
mod bearer;
mod config;
mod decision;
mod error;
mod grpc;
mod jwks;
mod keys;
mod layer;
mod m2m;
mod policy;
mod principal;
mod remote;
mod verify;

pub use action::{Action, UnknownAction};
pub use auth::{Auth, ErrorResponder};
pub use bearer::bearer_token;
pub use config::{AuthConfig, Mode, PolicySource, Secret};
pub use decision::{CompiledPolicy, Decision, DenyReason};
pub use error::{AuthError, ConfigError, InvalidTokenReason, PolicyError};
pub use grpc::{GrpcPolicy, GrpcRequire, GrpcRequireLayer, grpc_error_response};
pub use keys::{KeySet, VerificationKey};
pub use layer::{
    Authenticate, AuthenticateLayer, Require, RequireLayer, ResponseFuture, error_response,
};
pub use m2m::{ApplicationToken, ApplicationTokenError};
pub use policy::{Group, MIDAZ_POLICY_JSON, Permission, Policy, Role};
pub use principal::{ClaimMapping, Principal, PrincipalKind};
pub use verify::TokenVerifier;

/// Re-exported so that keys can be built without depending on `jsonwebtoken` directly.
pub use jsonwebtoken::Algorithm;
