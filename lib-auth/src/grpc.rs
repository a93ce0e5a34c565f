//! Guarding gRPC services: [`GrpcRequireLayer`], a tower layer that checks each call against a
//! per-method policy ([`GrpcPolicy`]) and refuses with gRPC statuses.
//!
//! gRPC runs over HTTP/2, so the layer is the same tower machinery as [`RequireLayer`]
//! (`crate::RequireLayer`): the token comes from the `authorization` metadata, which is the
//! HTTP/2 `authorization` header (`Bearer <token>`, or the bare token), and a refusal is a
//! "trailers-only" response — HTTP 200, `content-type: application/grpc`, `grpc-status` and
//! `grpc-message` headers, empty body. No gRPC library is needed here; with `tonic`, put the
//! layer on the server (`Server::builder().layer(…)`), whose response body is `Default`.
//!
//! | refusal | `grpc-status` |
//! |---|---|
//! | no token, or a token refused | 16 `UNAUTHENTICATED` |
//! | permission denied, or a method absent from the policy | 7 `PERMISSION_DENIED` |
//! | keys unreachable and none cached, or the Auth service down | 14 `UNAVAILABLE` |

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use foldhash::fast::RandomState;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response};
use tower::{Layer, Service};

use crate::action::Action;
use crate::auth::{Auth, Permission};
use crate::error::AuthError;
use crate::layer::{ResponseFuture, authenticate_then_refuse, guard};
use crate::principal::Principal;

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Which permission each gRPC method requires: full method path (`/pkg.Service/Method`) →
/// `(resource, action)` of the layer's product. A method absent from the policy is refused
/// (`PERMISSION_DENIED`): the layer fails closed.
///
/// ```
/// use lib_auth::{Action, GrpcPolicy};
///
/// let policy = GrpcPolicy::new()
///     .method("/ledger.v1.LedgerService/GetLedger", "ledgers", Action::Get)
///     .method("/ledger.v1.LedgerService/CreateLedger", "ledgers", Action::Post);
/// assert_eq!(
///     policy.permission("/ledger.v1.LedgerService/GetLedger"),
///     Some(("ledgers", Action::Get))
/// );
/// assert_eq!(policy.permission("/ledger.v1.LedgerService/DeleteLedger"), None);
/// ```
#[derive(Debug, Clone, Default)]
pub struct GrpcPolicy {
    methods: HashMap<String, (String, Action)>,
}

impl GrpcPolicy {
    /// An empty policy, which refuses every method.
    pub fn new() -> GrpcPolicy {
        GrpcPolicy::default()
    }

    /// Requires `action` on `resource` for the method at `path` (`/pkg.Service/Method`,
    /// compared exactly); replaces an earlier entry for the same path.
    pub fn method(
        mut self,
        path: impl Into<String>,
        resource: impl Into<String>,
        action: Action,
    ) -> GrpcPolicy {
        self.methods.insert(path.into(), (resource.into(), action));
        self
    }

    /// The `(resource, action)` the method at `path` requires, or `None` if it is unmapped.
    pub fn permission(&self, path: &str) -> Option<(&str, Action)> {
        self.methods
            .get(path)
            .map(|(resource, action)| (resource.as_str(), *action))
    }
}

/// What every [`GrpcRequire`] service of one layer shares.
#[derive(Debug)]
struct GrpcRequirement {
    auth: Auth,
    by_path: HashMap<Box<str>, Permission, RandomState>,
}

/// Builds [`GrpcRequire`] services: see [`Auth::require_grpc`].
#[derive(Debug, Clone)]
pub struct GrpcRequireLayer {
    requirement: Arc<GrpcRequirement>,
}

impl GrpcRequireLayer {
    /// A layer that lets a gRPC call through only when its principal holds the permission
    /// `policy` maps its method to, in `product`. Refusals are answered by
    /// [`grpc_error_response`] (whatever error responder `auth` has).
    pub fn new(auth: Auth, product: &str, policy: GrpcPolicy) -> GrpcRequireLayer {
        let product: Arc<str> = product.into();
        let by_path = policy
            .methods
            .into_iter()
            .map(|(path, (resource, action))| {
                let permission = Permission {
                    product: product.clone(),
                    resource: resource.into(),
                    action,
                };
                (path.into_boxed_str(), permission)
            })
            .collect();
        GrpcRequireLayer {
            requirement: Arc::new(GrpcRequirement {
                auth: auth.with_error_responder(grpc_error_response),
                by_path,
            }),
        }
    }
}

impl<S> Layer<S> for GrpcRequireLayer {
    type Service = GrpcRequire<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcRequire {
            inner,
            requirement: self.requirement.clone(),
        }
    }
}

/// Lets a gRPC call through only when its principal holds the permission of its method;
/// `UNAUTHENTICATED` without a valid token, `PERMISSION_DENIED` when denied or unmapped,
/// `UNAVAILABLE` when the decision cannot be made. Puts the [`Principal`] into the request
/// extensions (or uses the one an [`AuthenticateLayer`](crate::AuthenticateLayer) put there).
///
/// The response body only needs `Default` (a refusal has an empty body), which
/// `tonic::body::Body` is.
#[derive(Debug, Clone)]
pub struct GrpcRequire<S> {
    inner: S,
    requirement: Arc<GrpcRequirement>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcRequire<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let GrpcRequirement { auth, by_path } = &*self.requirement;
        if !auth.is_enabled() {
            return ResponseFuture::calling(self.inner.call(req), respond_grpc);
        }
        let known = req.extensions().get::<Principal>();
        let check = match by_path.get(req.uri().path()) {
            Some(permission) => auth.check(req.headers(), known, Some(permission)),
            None => {
                let refusal = AuthError::MethodNotMapped {
                    method: req.uri().path().to_owned(),
                };
                authenticate_then_refuse(auth, req.headers(), known, refusal)
            }
        };
        guard(auth, &mut self.inner, req, check, respond_grpc)
    }
}

/// The answer of [`GrpcRequire`]: logged by [`Auth::respond`] (whose responder is
/// [`grpc_error_response`]), with the empty body turned into the service's body type.
fn respond_grpc<B: Default>(auth: Option<&Auth>, error: &AuthError) -> Response<B> {
    let response: Response<Bytes> = match auth {
        Some(auth) => auth.respond(error),
        None => grpc_error_response(error),
    };
    response.map(|_| B::default())
}

impl Auth {
    /// A layer for a gRPC server that lets a call through only if its principal may perform
    /// the action `policy` maps its method (`/pkg.Service/Method`) to, on that resource of
    /// `product`; a method absent from `policy` is refused. See [`GrpcRequireLayer`].
    ///
    /// ```
    /// use lib_auth::{Action, Auth, AuthConfig, GrpcPolicy};
    ///
    /// # fn main() -> Result<(), lib_auth::ConfigError> {
    /// let auth = Auth::new(AuthConfig::default().enabled(true).host("http://auth.internal:4000"))?;
    /// let _layer = auth.require_grpc(
    ///     "midaz",
    ///     GrpcPolicy::new().method("/ledger.v1.LedgerService/GetLedger", "ledgers", Action::Get),
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn require_grpc(&self, product: &str, policy: GrpcPolicy) -> GrpcRequireLayer {
        GrpcRequireLayer::new(self.clone(), product, policy)
    }
}

/// The gRPC status code of an [`AuthError`]: 16 `UNAUTHENTICATED`, 7 `PERMISSION_DENIED` or
/// 14 `UNAVAILABLE`.
fn grpc_code(error: &AuthError) -> &'static str {
    match error {
        AuthError::MissingToken | AuthError::InvalidToken { .. } => "16",
        AuthError::Forbidden { .. } | AuthError::MethodNotMapped { .. } => "7",
        AuthError::Unavailable { .. } => "14",
    }
}

/// The gRPC answer to an [`AuthError`], "trailers-only": HTTP 200, `content-type:
/// application/grpc`, `grpc-status` (16 `UNAUTHENTICATED` for a missing or refused token,
/// 7 `PERMISSION_DENIED` when denied or for an unmapped method, 14 `UNAVAILABLE` when the
/// decision cannot be made), `grpc-message` with the caller-safe message
/// ([`AuthError::public_message`], percent-encoded as the gRPC spec requires), empty body.
/// Logs nothing.
///
/// ```
/// use lib_auth::{AuthError, grpc_error_response};
///
/// let response = grpc_error_response(&AuthError::MissingToken);
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["grpc-status"], "16");
/// assert!(response.body().is_empty());
/// ```
pub fn grpc_error_response(error: &AuthError) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(GRPC_STATUS, HeaderValue::from_static(grpc_code(error)));
    if let Ok(message) = HeaderValue::try_from(percent_encode(error.public_message())) {
        headers.insert(GRPC_MESSAGE, message);
    }
    response
}

/// Percent-encodes a `grpc-message`: bytes `0x20..=0x7E` except `%` stay, every other byte
/// becomes `%XX` (uppercase hex), so the value is always visible ASCII or space.
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InvalidTokenReason;

    fn status_and_message(error: &AuthError) -> (String, String) {
        let response = grpc_error_response(error);
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/grpc");
        assert!(response.body().is_empty());
        let header = |name| {
            response.headers()[name]
                .to_str()
                .map(str::to_owned)
                .unwrap_or_default()
        };
        (header(GRPC_STATUS), header(GRPC_MESSAGE))
    }

    #[test]
    fn errors_map_to_grpc_statuses_with_safe_messages() {
        let (status, message) = status_and_message(&AuthError::MissingToken);
        assert_eq!(status, "16");
        assert_eq!(message, AuthError::MissingToken.public_message());
        let invalid = AuthError::invalid(InvalidTokenReason::Malformed);
        assert_eq!(status_and_message(&invalid).0, "16");
        let forbidden = AuthError::Forbidden {
            subject: "u".into(),
            product: "midaz".into(),
            resource: "ledgers".into(),
            action: "post".into(),
        };
        assert_eq!(status_and_message(&forbidden).0, "7");
        let unmapped = AuthError::MethodNotMapped {
            method: "/a.B/C".into(),
        };
        assert_eq!(status_and_message(&unmapped).0, "7");
        let down = AuthError::Unavailable {
            detail: "secret internals".into(),
        };
        let (status, message) = status_and_message(&down);
        assert_eq!(status, "14");
        assert!(!message.contains("secret"));
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(percent_encode("a b~"), "a b~");
        assert_eq!(percent_encode("100%"), "100%25");
        assert_eq!(percent_encode("é\n"), "%C3%A9%0A");
    }
}
