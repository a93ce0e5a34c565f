//! [`Auth`]: the configured library — verifier, policy or remote authorizer — and the entry
//! point that builds the tower layers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response};

use crate::action::Action;
use crate::bearer::bearer_token;
use crate::config::{AuthConfig, Mode, PolicySource};
use crate::decision::{CompiledPolicy, Decision};
use crate::error::{AuthError, ConfigError};
use crate::layer::{AuthenticateLayer, RequireLayer, error_response};
use crate::m2m::{ApplicationToken, ApplicationTokenError};
use crate::policy::Policy;
use crate::principal::Principal;
use crate::push::{Subscription, revocation_channel};
use crate::remote::RemoteAuthorizer;
use crate::revocation::{Revocation, RevocationStore};
use crate::sync::{Feeds, LocalPolicy, PolicySlot, Poller};
use crate::verify::TokenVerifier;

/// A future boxed for the slow path (first sight of a token, remote calls).
pub(crate) type BoxCheck = Pin<Box<dyn Future<Output = Result<Principal, AuthError>> + Send>>;

/// The outcome of checking a request without waiting: decided now, or needs I/O.
pub(crate) enum Check {
    /// Decided from caches alone.
    Done(Result<Principal, AuthError>),
    /// Needs a signature check, a key fetch or a remote call.
    Pending(BoxCheck),
}

/// What a route requires: a permission `(product, resource, action)`.
#[derive(Debug, Clone)]
pub(crate) struct Permission {
    pub(crate) product: Arc<str>,
    pub(crate) resource: Arc<str>,
    pub(crate) action: Action,
}

/// The library, configured: cheap to clone (one `Arc`), shared by every layer it builds.
///
/// ```
/// use lib_auth::{Action, Auth, AuthConfig};
///
/// # fn main() -> Result<(), lib_auth::ConfigError> {
/// let auth = Auth::new(AuthConfig::default().enabled(true).host("http://auth.internal:4000"))?;
/// let _read_ledgers = auth.require("midaz", "ledgers", Action::Get); // a tower Layer
/// let _by_method = auth.require_method("midaz", "ledgers"); // GET→get, POST→post, …
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
    responder: Option<ErrorResponder>,
}

/// Builds the HTTP answer to a refused request; see [`Auth::with_error_responder`].
pub type ErrorResponder = Arc<dyn Fn(&AuthError) -> Response<Bytes> + Send + Sync>;

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("inner", &self.inner)
            .field("custom_responder", &self.responder.is_some())
            .finish()
    }
}

#[derive(Debug)]
struct Inner {
    enabled: bool,
    max_token_bytes: usize,
    engine: Engine,
    /// The service's own application token client, or why there is none.
    application: Result<ApplicationToken, ApplicationTokenError>,
}

#[derive(Debug)]
enum Engine {
    Disabled,
    Local(Arc<Local>),
    Remote(Remote),
}

#[derive(Debug)]
struct Local {
    verifier: TokenVerifier,
    policy: LocalPolicy,
    revocations: Arc<RevocationStore>,
    /// The revocation feed and policy sync, when the client credentials are configured.
    poller: Option<Poller>,
}

impl Local {
    fn new(
        config: &AuthConfig,
        client: reqwest::Client,
        application: Option<&ApplicationToken>,
    ) -> Result<Local, ConfigError> {
        let verifier = TokenVerifier::new(config, client.clone())?;
        let revocations = Arc::new(RevocationStore::new(config.leeway.as_secs()));
        let policy = match &config.policy {
            PolicySource::Server => LocalPolicy::Synced(Arc::new(PolicySlot::default())),
            source => LocalPolicy::Fixed(Arc::new(CompiledPolicy::compile(&load_policy(source)?)?)),
        };
        let synced = match &policy {
            LocalPolicy::Synced(slot) => Some(slot.clone()),
            LocalPolicy::Fixed(_) => None,
        };
        let poller = revocation_feed(config, client, application, &revocations, synced)?;
        // A verifier given its keys in code (a server checking its own tokens) keeps its
        // revocations itself; anyone else is told what is missing.
        if poller.is_none() && config.static_keys.is_empty() {
            tracing::warn!(
                "PLUGIN_AUTH_CLIENT_ID, PLUGIN_AUTH_CLIENT_SECRET or PLUGIN_AUTH_HOST is not set: no revocation feed (and no pushed revocations, even with VALKEY_URL), so logouts and other revocations only take effect when the tokens expire"
            );
        }
        if let Some(poller) = &poller {
            poller.ensure_started();
        }
        Ok(Local {
            verifier,
            policy,
            revocations,
            poller,
        })
    }

    /// Refuses a revoked principal (401), then decides `permission` if any.
    #[inline]
    fn admit(
        &self,
        principal: Principal,
        permission: Option<&Permission>,
    ) -> Result<Principal, AuthError> {
        self.revocations.check(&principal)?;
        decide_local(&self.policy, principal, permission)
    }
}

/// Remote mode: the authorizer, and the revocation feed that drops the cached decisions of
/// revoked tokens (the Auth service refuses them itself on every uncached call).
#[derive(Debug)]
struct Remote {
    authorizer: RemoteAuthorizer,
    revocations: Arc<RevocationStore>,
    poller: Option<Poller>,
}

impl Remote {
    fn new(
        config: &AuthConfig,
        client: reqwest::Client,
        application: Option<&ApplicationToken>,
    ) -> Result<Remote, ConfigError> {
        let revocations = Arc::new(RevocationStore::new(config.leeway.as_secs()));
        let authorizer = RemoteAuthorizer::new(config, client.clone(), revocations.clone())?;
        let poller = revocation_feed(config, client, application, &revocations, None)?;
        if poller.is_none() {
            tracing::warn!(
                "PLUGIN_AUTH_CLIENT_ID or PLUGIN_AUTH_CLIENT_SECRET is not set: no revocation feed (and no pushed revocations, even with VALKEY_URL), so a revoked token's cached decisions stay valid for up to PLUGIN_AUTH_CACHE_TTL"
            );
        }
        if let Some(poller) = &poller {
            poller.ensure_started();
        }
        Ok(Remote {
            authorizer,
            revocations,
            poller,
        })
    }
}

/// The background task that polls the revocation feed into `store` (and the policy into
/// `policy`), when the service's own credentials and the Auth service's host are configured.
fn revocation_feed(
    config: &AuthConfig,
    client: reqwest::Client,
    application: Option<&ApplicationToken>,
    store: &Arc<RevocationStore>,
    policy: Option<Arc<PolicySlot>>,
) -> Result<Option<Poller>, ConfigError> {
    let (Some(tokens), Some(host)) = (application, config.host.as_deref()) else {
        return Ok(None);
    };
    let base = host.trim_end_matches('/');
    let revocations_url = reqwest::Url::parse(&format!("{base}/v1/revocations")).map_err(|_| {
        ConfigError::InvalidValue {
            variable: "PLUGIN_AUTH_HOST",
            value: crate::config::redact_url(host),
            expected: "an absolute http:// or https:// URL",
        }
    })?;
    Ok(Some(Poller::new(Feeds {
        client,
        tokens: tokens.clone(),
        revocations_url,
        policy_url: format!("{base}/v1/policy"),
        interval: config.revocation_poll_interval,
        store: store.clone(),
        policy,
        push: config.valkey_url.as_ref().map(|url| Subscription {
            url: url.clone(),
            channel: revocation_channel(&config.valkey_prefix),
        }),
        wake: Arc::new(tokio::sync::Notify::new()),
    })))
}

impl Auth {
    /// Builds the library from a configuration, validating it and loading the policy.
    ///
    /// With `enabled: false` the layers let every request through, and one WARN says so.
    pub fn new(config: AuthConfig) -> Result<Auth, ConfigError> {
        config.validate()?;
        let application = if !config.enabled {
            Err(ApplicationTokenError::Disabled)
        } else {
            match ApplicationToken::from_config(&config) {
                Ok(tokens) => Ok(tokens),
                Err(ConfigError::Missing { variable, .. }) => {
                    Err(ApplicationTokenError::NotConfigured { variable })
                }
                Err(e) => return Err(e),
            }
        };
        let engine = if !config.enabled {
            tracing::warn!(
                "PLUGIN_AUTH_ENABLED is false: authentication and authorization are DISABLED, every request is let through"
            );
            Engine::Disabled
        } else {
            let client = reqwest::Client::builder()
                .timeout(config.http_timeout)
                .connect_timeout(config.http_timeout)
                .pool_idle_timeout(std::time::Duration::from_secs(60))
                // The Auth service is configured explicitly; never follow it elsewhere.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| ConfigError::HttpClient(e.to_string()))?;
            if config.mode == Mode::Local && config.valkey_decision_secret.is_some() {
                tracing::warn!(
                    "VALKEY_DECISION_SECRET is ignored in local mode: decisions are made in process from the policy, and there is nothing to share"
                );
            }
            match config.mode {
                Mode::Local => Engine::Local(Arc::new(Local::new(
                    &config,
                    client,
                    application.as_ref().ok(),
                )?)),
                Mode::Remote => {
                    Engine::Remote(Remote::new(&config, client, application.as_ref().ok())?)
                }
            }
        };
        Ok(Auth {
            responder: None,
            inner: Arc::new(Inner {
                enabled: config.enabled,
                max_token_bytes: config.max_token_bytes,
                engine,
                application,
            }),
        })
    }

    /// [`Auth::new`] from [`AuthConfig::from_env`].
    pub fn from_env() -> Result<Auth, ConfigError> {
        Auth::new(AuthConfig::from_env()?)
    }

    /// The same library, answering refused requests with `responder` instead of the SPEC
    /// envelope (see [`error_response`]). Use it for custom 401/403/503 bodies; the status,
    /// headers and body are all yours. Every layer built afterwards from the returned `Auth`
    /// uses it.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use lib_auth::{Auth, AuthConfig};
    ///
    /// let auth = Auth::new(AuthConfig::default())
    ///     .unwrap()
    ///     .with_error_responder(|error| {
    ///         let mut response = http::Response::new(Bytes::from(format!(
    ///             r#"{{"error":"{}"}}"#,
    ///             error.code()
    ///         )));
    ///         *response.status_mut() = error.status();
    ///         response
    ///     });
    /// # let _ = auth;
    /// ```
    pub fn with_error_responder(
        mut self,
        responder: impl Fn(&AuthError) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Auth {
        self.responder = Some(Arc::new(responder));
        self
    }

    /// The answer to a refused request: logged (details of a 503 go to the log only), then
    /// built by the custom responder, or [`error_response`].
    pub fn respond<B: From<Bytes>>(&self, error: &AuthError) -> Response<B> {
        if let AuthError::Unavailable { detail } = error {
            tracing::warn!(%detail, "authorization unavailable");
        } else {
            tracing::debug!(%error, "request refused");
        }
        match &self.responder {
            Some(responder) => responder(error).map(B::from),
            None => error_response(error),
        }
    }

    /// Whether requests are checked at all (`PLUGIN_AUTH_ENABLED`).
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled
    }

    /// A layer that authenticates every request and puts its [`Principal`] into the request's
    /// extensions; 401 when the token is missing or invalid.
    pub fn authenticate(&self) -> AuthenticateLayer {
        AuthenticateLayer::new(self.clone())
    }

    /// A layer that lets a request through only if its principal may perform `action` on
    /// `resource` of `product`: 401 without a valid token, 403 when denied.
    pub fn require(&self, product: &str, resource: &str, action: Action) -> RequireLayer {
        RequireLayer::new(self.clone(), product, resource, Some(action))
    }

    /// Like [`require`](Auth::require), with the action taken from the HTTP method
    /// (`GET`→get, `HEAD`→head, `POST`→post, `PUT`→put, `PATCH`→patch, `DELETE`→delete; any
    /// other method is refused with 403).
    pub fn require_method(&self, product: &str, resource: &str) -> RequireLayer {
        RequireLayer::new(self.clone(), product, resource, None)
    }

    /// The service's own application token (`client_credentials` grant with
    /// `PLUGIN_AUTH_CLIENT_ID`/`PLUGIN_AUTH_CLIENT_SECRET` at `PLUGIN_AUTH_HOST`), for its
    /// outgoing calls: cached, renewed before expiry, one fetch shared by concurrent callers
    /// (see [`ApplicationToken`]).
    ///
    /// Errors: [`ApplicationTokenError::Disabled`] when the library is disabled,
    /// [`ApplicationTokenError::NotConfigured`] when a setting is missing, otherwise what the
    /// Auth service answered.
    pub async fn application_token(&self) -> Result<String, ApplicationTokenError> {
        match &self.inner.application {
            Ok(tokens) => tokens.token().await,
            Err(e) => Err(e.clone()),
        }
    }

    /// Authenticates the request whose headers are given, and checks `permission` if any.
    /// Answers from caches when it can; otherwise returns the future that completes the check.
    pub(crate) fn check(
        &self,
        headers: &HeaderMap,
        known: Option<&Principal>,
        permission: Option<&Permission>,
    ) -> Check {
        let token = match bearer_token(headers, self.inner.max_token_bytes) {
            Ok(token) => token,
            Err(e) => return Check::Done(Err(e)),
        };
        match &self.inner.engine {
            Engine::Disabled => Check::Done(Err(AuthError::Unavailable {
                detail: "checked a request while disabled".to_owned(),
            })),
            Engine::Local(local) => {
                if let Some(poller) = &local.poller {
                    poller.ensure_started();
                }
                let principal = match known.cloned().or_else(|| local.verifier.cached(token)) {
                    Some(p) => p,
                    None => {
                        let local = Arc::clone(local);
                        let token = token.to_owned();
                        let permission = permission.cloned();
                        return Check::Pending(Box::pin(async move {
                            let principal = local.verifier.verify(&token).await?;
                            local.admit(principal, permission.as_ref())
                        }));
                    }
                };
                Check::Done(local.admit(principal, permission))
            }
            Engine::Remote(remote) => {
                if let Some(poller) = &remote.poller {
                    poller.ensure_started();
                }
                remote.authorizer.check(token, known, permission)
            }
        }
    }

    /// Drops everything cached about `token` (its verification, its decisions): the next
    /// request bearing it is checked from scratch. Call it when you learn the token was revoked.
    ///
    /// In remote mode with shared decisions, this validator also stops reading the token's
    /// entry in the shared store at once (for `PLUGIN_AUTH_CACHE_TTL`), and the entry is deleted
    /// there in the background when this is called within a Tokio runtime; other validators
    /// read it until then.
    pub fn forget_token(&self, token: &str) {
        match &self.inner.engine {
            Engine::Local(local) => local.verifier.forget(token),
            Engine::Remote(remote) => remote.authorizer.forget(token),
            Engine::Disabled => {}
        }
    }

    /// Authenticates a request from its headers, waiting for I/O if needed.
    pub async fn authenticate_headers(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        match self.check(headers, None, None) {
            Check::Done(result) => result,
            Check::Pending(fut) => fut.await,
        }
    }

    /// Decides locally whether `principal` may perform `action` on `resource` of `product`
    /// with the policy in force (local mode only; in remote mode the decision belongs to the
    /// Auth service and this returns `None`, as it does with `PLUGIN_AUTH_POLICY=server` until
    /// the first policy arrived). Revocations are not checked here: the layers check them.
    pub fn decide(
        &self,
        principal: &Principal,
        product: &str,
        resource: &str,
        action: Action,
    ) -> Option<Decision<'_>> {
        match &self.inner.engine {
            Engine::Local(local) => local.policy.decide(principal, product, resource, action),
            _ => None,
        }
    }

    /// The compiled policy local mode decides with now: the built-in or file policy, or the
    /// latest one synchronised from the Auth service (`None` until the first arrived, in
    /// remote mode and when disabled).
    pub fn policy(&self) -> Option<Arc<CompiledPolicy>> {
        match &self.inner.engine {
            Engine::Local(local) => local.policy.current(),
            _ => None,
        }
    }

    /// Revokes session `sid`: every token whose `sid` claim is `sid` is refused (401,
    /// `invalid_token`, "the token has been revoked") from the next request on, cached or not,
    /// until `expires_at` (Unix seconds, plus the leeway) has passed, when every such token has
    /// expired. In remote mode this drops the cached answers about such tokens (the Auth service
    /// refuses them itself). The revocation feed applies its `sid` items through the same
    /// store; call this to feed it from elsewhere (whoever can reach that source can log
    /// sessions out: take revocations only from one that authenticates its writer).
    ///
    /// Returns whether the revocation is enforced here: `false` when the library is disabled.
    pub fn revoke_session(&self, sid: &str, expires_at: u64) -> bool {
        self.revoke(Revocation::Session {
            sid: sid.to_owned(),
            expires_at,
        })
    }

    /// Revokes every token of subject `sub` (its `sub` claim) issued before
    /// `not_before` (its `iat` < `not_before`, Unix seconds; a token without `iat` counts as
    /// issued at 0), until `expires_at` (plus the leeway) has passed: forced logout, password
    /// reset, group change, application secret rotation or deletion. A token issued at or after
    /// `not_before` passes. Several revocations of one subject keep the latest `not_before`.
    ///
    /// Returns whether the revocation is enforced here, as [`revoke_session`](Auth::revoke_session).
    pub fn revoke_subject_before(&self, sub: &str, not_before: u64, expires_at: u64) -> bool {
        self.revoke(Revocation::Subject {
            sub: sub.to_owned(),
            not_before,
            expires_at,
        })
    }

    fn revocations(&self) -> Option<&RevocationStore> {
        match &self.inner.engine {
            Engine::Local(local) => Some(&local.revocations),
            Engine::Remote(remote) => Some(&remote.revocations),
            Engine::Disabled => None,
        }
    }

    fn revoke(&self, revocation: Revocation) -> bool {
        self.revocations()
            .map(|store| store.apply([revocation]))
            .is_some()
    }

    /// Whether the revocation feed has been read to its end since start and has not refused
    /// this service's credentials since: `Some(true)` once every revocation the Auth service
    /// had made is known here (later ones arrive within a poll interval, or at once with
    /// `VALKEY_URL`); `Some(false)` before, or while the credentials are refused; `None`
    /// without a feed (no client credentials or `PLUGIN_AUTH_HOST`) or when disabled. Remote
    /// mode reads shared answers from Valkey only while it is `Some(true)`; a readiness
    /// probe may wait for it.
    pub fn revocation_feed_current(&self) -> Option<bool> {
        let (poller, store) = match &self.inner.engine {
            Engine::Local(local) => (local.poller.as_ref(), &local.revocations),
            Engine::Remote(remote) => (remote.poller.as_ref(), &remote.revocations),
            Engine::Disabled => return None,
        };
        poller.map(|_| store.feed_current())
    }

    /// The number of revocations held in memory (sessions and subjects whose entries have not
    /// expired yet); 0 when the library is disabled.
    pub fn revocation_count(&self) -> usize {
        self.revocations().map_or(0, |store| {
            store.purge();
            store.len()
        })
    }
}

fn decide_local(
    policy: &LocalPolicy,
    principal: Principal,
    permission: Option<&Permission>,
) -> Result<Principal, AuthError> {
    let Some(p) = permission else {
        return Ok(principal);
    };
    let decided = policy.with(|compiled| {
        let Some(compiled) = compiled else {
            return Err(AuthError::Unavailable {
                detail: "PLUGIN_AUTH_POLICY=server: no policy has been received from the Auth service yet".to_owned(),
            });
        };
        match compiled.decide(&principal, &p.product, &p.resource, p.action) {
            Decision::Allow { .. } => Ok(()),
            Decision::Deny { reason } => {
                tracing::debug!(sub = principal.subject(), product = %p.product, resource = %p.resource,
                    action = %p.action, %reason, "denied");
                Err(AuthError::Forbidden {
                    subject: principal.subject().to_owned(),
                    product: p.product.to_string(),
                    resource: p.resource.to_string(),
                    action: p.action.to_string(),
                })
            }
        }
    });
    decided.map(|()| principal)
}

fn load_policy(source: &PolicySource) -> Result<Policy, ConfigError> {
    match source {
        PolicySource::BuiltIn => Ok(Policy::midaz()),
        PolicySource::File(path) => {
            Policy::from_file(path).map_err(|source| ConfigError::PolicyFile {
                path: path.display().to_string(),
                source,
            })
        }
        PolicySource::Document(policy) => Ok((**policy).clone()),
        // Handled by the caller: the policy arrives later, from the poller.
        PolicySource::Server => Err(ConfigError::InvalidValue {
            variable: "PLUGIN_AUTH_POLICY",
            value: "server".to_owned(),
            expected: "a policy file path or builtin here; the synced policy is not loaded at startup",
        }),
    }
}
