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
//! # Revocations and policy sync (local mode)
//!
//! With `PLUGIN_AUTH_CLIENT_ID`/`PLUGIN_AUTH_CLIENT_SECRET` (and `PLUGIN_AUTH_HOST`), a background
//! task polls the Auth service every `PLUGIN_AUTH_REVOCATION_POLL_INTERVAL` (default 5 s) with
//! the service's own application token: `GET {host}/v1/revocations?since=<cursor>` answers
//! `{"cursor","items":[{"sid"?,"sub"?,"notBefore"?,"expiresAt"}]}`. An item with `sid` revokes
//! every token whose `sid` claim equals it; an item with `sub` and `notBefore` revokes every
//! token of that subject whose `iat` is before `notBefore` (forced logout, password reset, group
//! change, secret rotation); `expiresAt` is when the entry may be forgotten. A revoked token is
//! refused with 401 (`invalid_token`, "the token has been revoked") from the next poll on, even
//! if it was verified and cached before. [`Auth::revoke_session`] and
//! [`Auth::revoke_subject_before`] feed the same store from code. If the feed is unreachable
//! the revocations already known stay enforced (one WARN per outage). Without client
//! credentials no feed runs, and one WARN says that logouts only take effect at token expiry.
//!
//! With `PLUGIN_AUTH_POLICY=server` the same task fetches `GET {host}/v1/policy` (with
//! `If-None-Match`); until the first policy arrives, requests that need a decision get 503,
//! and an invalid document is logged and ignored (the previous policy stays in force).
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
mod push;
mod remote;
mod revocation;
mod shared_decisions;
mod store;
mod sync;
mod verify;

pub use action::{Action, UnknownAction};
pub use auth::{Auth, ErrorResponder};
pub use bearer::bearer_token;
pub use config::{AuthConfig, Mode, PolicySource, Secret, is_valkey_prefix, is_valkey_url};
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
pub use push::{
    MESSAGE_VERSION as REVOCATION_MESSAGE_VERSION, REVOCATION_CHANNEL, revocation_channel,
};
pub use store::{LocalStore, Store, StoreError, StoreFuture, VALKEY_CALL_TIMEOUT, ValkeyStore};
pub use verify::TokenVerifier;

/// Re-exported so that keys can be built without depending on `jsonwebtoken` directly.
pub use jsonwebtoken::Algorithm;
