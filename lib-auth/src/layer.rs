//! The tower layers: [`AuthenticateLayer`] and [`RequireLayer`], generic over request and
//! response bodies.
//!
//! On the warm path (token verified before) a request is decided from caches without boxing
//! or awaiting anything; only the first sight of a token (signature check, maybe a key fetch)
//! or a remote call goes through a boxed future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::action::Action;
use crate::auth::{Auth, BoxCheck, Check, Permission};
use crate::error::AuthError;
use crate::principal::Principal;

/// Builds [`Authenticate`] services: see [`Auth::authenticate`].
#[derive(Debug, Clone)]
pub struct AuthenticateLayer {
    auth: Auth,
}

impl AuthenticateLayer {
    pub(crate) fn new(auth: Auth) -> Self {
        AuthenticateLayer { auth }
    }
}

impl<S> Layer<S> for AuthenticateLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// Authenticates each request, puts its [`Principal`] into the request extensions, and
/// answers 401 (or 503 when no key can be had) instead of calling the inner service.
#[derive(Debug, Clone)]
pub struct Authenticate<S> {
    inner: S,
    auth: Auth,
}

/// The permissions a [`Require`] service checks, built once per layer so that a request
/// clones nothing but one `Arc`.
#[derive(Debug)]
enum Permissions {
    /// `require`: the same permission whatever the method.
    Fixed(Permission),
    /// `require_method`: the permission of each action, indexed by [`Action::index`].
    ByMethod([Permission; 6]),
}

/// What every [`Require`] service of one layer shares.
#[derive(Debug)]
struct Requirement {
    auth: Auth,
    permissions: Permissions,
}

/// Builds [`Require`] services: see [`Auth::require`] and [`Auth::require_method`].
#[derive(Debug, Clone)]
pub struct RequireLayer {
    requirement: Arc<Requirement>,
}

impl RequireLayer {
    pub(crate) fn new(auth: Auth, product: &str, resource: &str, action: Option<Action>) -> Self {
        let (product, resource): (Arc<str>, Arc<str>) = (product.into(), resource.into());
        let permission = |action| Permission {
            product: product.clone(),
            resource: resource.clone(),
            action,
        };
        let permissions = match action {
            Some(action) => Permissions::Fixed(permission(action)),
            None => Permissions::ByMethod(Action::ALL.map(permission)),
        };
        RequireLayer {
            requirement: Arc::new(Requirement { auth, permissions }),
        }
    }
}

impl<S> Layer<S> for RequireLayer {
    type Service = Require<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            requirement: self.requirement.clone(),
        }
    }
}

/// Lets a request through only when its principal holds the permission; 401 without a valid
/// token, 403 when denied, 503 when the decision cannot be made. Uses the [`Principal`] an
/// [`Authenticate`] layer put into the extensions, or authenticates the request itself.
#[derive(Debug, Clone)]
pub struct Require<S> {
    inner: S,
    requirement: Arc<Requirement>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Authenticate<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if !self.auth.is_enabled() {
            return ResponseFuture::calling(self.inner.call(req), respond_http);
        }
        let check = self.auth.check(req.headers(), None, None);
        guard(&self.auth, &mut self.inner, req, check, respond_http)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Require<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Requirement { auth, permissions } = &*self.requirement;
        if !auth.is_enabled() {
            return ResponseFuture::calling(self.inner.call(req), respond_http);
        }
        let known = req.extensions().get::<Principal>();
        let permission = match permissions {
            Permissions::Fixed(permission) => Some(permission),
            Permissions::ByMethod(by_action) => {
                Action::from_method(req.method()).map(|action| &by_action[action.index()])
            }
        };
        let check = match permission {
            Some(permission) => auth.check(req.headers(), known, Some(permission)),
            // A method no permission can grant (OPTIONS, TRACE, …): the caller is still
            // authenticated first, so that a missing or bad token is 401, never 403.
            None => {
                let refusal = AuthError::MethodNotMapped {
                    method: req.method().to_string(),
                };
                authenticate_then_refuse(auth, req.headers(), known, refusal)
            }
        };
        guard(auth, &mut self.inner, req, check, respond_http)
    }
}

/// Authenticates the caller, then refuses with `refusal` whatever the outcome, so that a missing
/// or bad token is still answered as such (401), never as `refusal`.
pub(crate) fn authenticate_then_refuse(
    auth: &Auth,
    headers: &HeaderMap,
    known: Option<&Principal>,
    refusal: AuthError,
) -> Check {
    match auth.check(headers, known, None) {
        Check::Done(result) => Check::Done(result.and(Err(refusal))),
        Check::Pending(pending) => {
            Check::Pending(Box::pin(async move { pending.await.and(Err(refusal)) }))
        }
    }
}

/// Builds the answer to a refused request: with the layer's [`Auth`] (which logs), or without
/// one for a future polled after completion.
pub(crate) type Respond<B> = fn(Option<&Auth>, &AuthError) -> Response<B>;

/// The [`Respond`] of the HTTP layers: [`Auth::respond`], or [`error_response`] without an
/// [`Auth`].
fn respond_http<B: From<Bytes>>(auth: Option<&Auth>, error: &AuthError) -> Response<B> {
    match auth {
        Some(auth) => auth.respond(error),
        None => error_response(error),
    }
}

/// Calls the inner service now, refuses now, or defers both to the pending check. Takes the
/// service that was driven to readiness and leaves a clone in its place, as tower documents.
/// Refusals are answered by `respond`.
pub(crate) fn guard<S, ReqBody, ResBody>(
    auth: &Auth,
    inner: &mut S,
    mut req: Request<ReqBody>,
    check: Check,
    respond: Respond<ResBody>,
) -> ResponseFuture<S::Future, S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    match check {
        Check::Done(Ok(principal)) => {
            req.extensions_mut().insert(principal);
            ResponseFuture::calling(inner.call(req), respond)
        }
        Check::Done(Err(error)) => ResponseFuture::refused(respond(Some(auth), &error), respond),
        Check::Pending(check) => {
            let clone = inner.clone();
            let ready = std::mem::replace(inner, clone);
            ResponseFuture {
                state: State::Checking {
                    check,
                    auth: auth.clone(),
                    request: Some(req),
                    inner: Some(ready),
                },
                respond,
            }
        }
    }
}

pin_project! {
    /// The response future of [`Authenticate`], [`Require`] and
    /// [`GrpcRequire`](crate::GrpcRequire).
    pub struct ResponseFuture<F, S, ReqBody, ResBody> {
        #[pin]
        state: State<F, S, ReqBody, ResBody>,
        respond: Respond<ResBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, ReqBody, ResBody> {
        Checking {
            check: BoxCheck,
            auth: Auth,
            request: Option<Request<ReqBody>>,
            inner: Option<S>,
        },
        Calling {
            #[pin]
            future: F,
        },
        Refused {
            response: Option<Response<ResBody>>,
        },
    }
}

impl<F, S, ReqBody, ResBody> ResponseFuture<F, S, ReqBody, ResBody> {
    pub(crate) fn calling(future: F, respond: Respond<ResBody>) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            respond,
        }
    }

    fn refused(response: Response<ResBody>, respond: Respond<ResBody>) -> Self {
        ResponseFuture {
            state: State::Refused {
                response: Some(response),
            },
            respond,
        }
    }
}

/// The answer when a future is polled after it completed: a caller bug, answered without
/// panicking.
fn polled_after_completion<B>(respond: Respond<B>) -> Response<B> {
    respond(
        None,
        &AuthError::Unavailable {
            detail: "response future polled after completion".to_owned(),
        },
    )
}

impl<F, S, ReqBody, ResBody, E> Future for ResponseFuture<F, S, ReqBody, ResBody>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    S: Service<Request<ReqBody>, Response = Response<ResBody>, Error = E, Future = F>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let respond = *this.respond;
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking {
                    check,
                    auth,
                    request,
                    inner,
                } => {
                    let principal = match ready!(check.as_mut().poll(cx)) {
                        Ok(principal) => principal,
                        Err(error) => return Poll::Ready(Ok(respond(Some(auth), &error))),
                    };
                    let (Some(mut req), Some(mut service)) = (request.take(), inner.take()) else {
                        return Poll::Ready(Ok(polled_after_completion(respond)));
                    };
                    req.extensions_mut().insert(principal);
                    let future = service.call(req);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => return future.poll(cx),
                StateProj::Refused { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .unwrap_or_else(|| polled_after_completion(respond))));
                }
            }
        }
    }
}

/// The default HTTP answer to an [`AuthError`]: its status, the `{code,title,message}` JSON
/// body, `WWW-Authenticate` on 401/403, and `Cache-Control: no-store`. Logs nothing (the
/// layers log through [`Auth::respond`]).
pub fn error_response<B: From<Bytes>>(error: &AuthError) -> Response<B> {
    let mut response = Response::new(B::from(Bytes::from(error.body_json())));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(challenge) = error.www_authenticate()
        && let Ok(value) = HeaderValue::from_str(&challenge)
    {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    response
}
