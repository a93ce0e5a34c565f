//! The axum face of [`lib_auth`]: a [`Principal`] extractor (and its `Option<Principal>`
//! form), and [`AuthRejection`], the SPEC error envelope as an axum response.
//!
//! The guards themselves are `lib_auth`'s tower layers, which axum takes as they are: protect a
//! route or a whole router with one line, `.route_layer(auth.require_method("midaz",
//! "ledgers"))`, and read the caller in the handler.
//!
//! ```
//! use axum::{Router, routing::get};
//! use lib_auth_axum::{Auth, AuthConfig, Principal};
//!
//! async fn list_ledgers(caller: Principal) -> String {
//!     format!("ledgers of {}", caller.subject())
//! }
//!
//! async fn home(caller: Option<Principal>) -> String {
//!     match caller {
//!         Some(caller) => format!("hello {}", caller.subject()),
//!         None => "hello stranger".to_owned(),
//!     }
//! }
//!
//! # fn main() -> Result<(), lib_auth::ConfigError> {
//! let auth = Auth::new(AuthConfig::default().enabled(true).host("http://auth.internal:4000"))?;
//! let app: Router = Router::new()
//!     .route("/v1/organizations/{id}/ledgers", get(list_ledgers).post(list_ledgers))
//!     .route_layer(auth.require_method("midaz", "ledgers"))
//!     .route("/", get(home));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! Custom 401/403/503 bodies: build the layers from
//! [`Auth::with_error_responder`](lib_auth::Auth::with_error_responder).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

pub use lib_auth;
pub use lib_auth::{Action, Auth, AuthConfig, AuthError};

/// The caller of a request guarded by a `lib_auth` layer, as an axum extractor.
///
/// Extracting it from a request that no layer authenticated (an unguarded route, or the
/// library disabled with `PLUGIN_AUTH_ENABLED=false`) is refused with 401: a handler that must
/// also run without a caller takes `Option<Principal>` instead.
#[derive(Debug, Clone)]
pub struct Principal(pub lib_auth::Principal);

impl Deref for Principal {
    type Target = lib_auth::Principal;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<Principal> for lib_auth::Principal {
    fn from(principal: Principal) -> Self {
        principal.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<lib_auth::Principal>()
            .cloned()
            .map(Principal)
            .ok_or(AuthRejection(AuthError::MissingToken))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<lib_auth::Principal>()
            .cloned()
            .map(Principal))
    }
}

/// An [`AuthError`] as an axum response: the SPEC envelope `{code,title,message}` with its
/// status, `WWW-Authenticate` and `Cache-Control: no-store` (see [`lib_auth::error_response`]).
///
/// Handlers that call `lib_auth` themselves can return it with `?`:
///
/// ```
/// use axum::http::HeaderMap;
/// use lib_auth_axum::{Auth, AuthRejection};
///
/// async fn handler(auth: Auth, headers: HeaderMap) -> Result<String, AuthRejection> {
///     let caller = auth.authenticate_headers(&headers).await?;
///     Ok(caller.subject().to_owned())
/// }
/// ```
#[derive(Debug)]
pub struct AuthRejection(pub AuthError);

impl From<AuthError> for AuthRejection {
    fn from(error: AuthError) -> Self {
        AuthRejection(error)
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        lib_auth::error_response(&self.0)
    }
}

/// The code blocks of the repository's README, compiled as doc-tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
