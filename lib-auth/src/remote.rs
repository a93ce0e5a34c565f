//! Remote mode: the Lerian-compatible client of `POST /v1/authorize` (SPEC §4), with decisions
//! cached for `PLUGIN_AUTH_CACHE_TTL` (never past the token's `exp`) and failing closed.
//!
//! The token is not verified here: the Auth service verifies it on every (uncached) call. The
//! principal is read from the token's claims only after the service has accepted the token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use foldhash::fast::RandomState;
use http::StatusCode;
use moka::Expiry;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::action::Action;
use crate::auth::{Check, Permission};
use crate::config::AuthConfig;
use crate::error::{AuthError, ConfigError, InvalidTokenReason};
use crate::principal::{ClaimMapping, Principal, PrincipalKind};
use crate::verify::unix_now;

/// The body of `POST /v1/authorize`, field for field as Lerian's `lib-auth` sends it.
#[derive(Debug, Serialize)]
struct AuthorizeRequest<'a> {
    sub: String,
    resource: &'a str,
    action: &'a str,
    product: &'a str,
}

/// The answer of `POST /v1/authorize`.
#[derive(Debug, Deserialize)]
struct AuthorizeResponse {
    authorized: bool,
}

/// Cached decisions of one token: `(product, resource, action)` → (allowed, until).
type Decisions = HashMap<(Arc<str>, Arc<str>, Action), (bool, Instant), RandomState>;

/// What is known of one token: its principal (once the service accepted it) and decisions.
#[derive(Debug)]
struct TokenEntry {
    principal: Principal,
    decisions: Mutex<Decisions>,
}

impl TokenEntry {
    fn decision(&self, p: &Permission) -> Option<bool> {
        let decisions = self.decisions.lock().ok()?;
        let key = (p.product.clone(), p.resource.clone(), p.action);
        match decisions.get(&key) {
            Some(&(allowed, until)) if Instant::now() < until => Some(allowed),
            _ => None,
        }
    }

    fn remember(&self, p: &Permission, allowed: bool, ttl: Duration) {
        if let Ok(mut decisions) = self.decisions.lock() {
            let now = Instant::now();
            // Bounded: a token asks about few permissions; drop expired ones when it grows.
            if decisions.len() >= 256 {
                decisions.retain(|_, (_, until)| *until > now);
            }
            if decisions.len() < 1024 {
                let key = (p.product.clone(), p.resource.clone(), p.action);
                decisions.insert(key, (allowed, now + ttl));
            }
        }
    }
}

struct UntilTokenExpiry;

impl Expiry<Arc<str>, Arc<TokenEntry>> for UntilTokenExpiry {
    fn expire_after_create(
        &self,
        _key: &Arc<str>,
        entry: &Arc<TokenEntry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(
            entry.principal.expires_at().saturating_sub(unix_now()),
        ))
    }
}

/// The client of the Auth service's authorize endpoint.
#[derive(Debug, Clone)]
pub(crate) struct RemoteAuthorizer {
    inner: Arc<RemoteInner>,
}

#[derive(Debug)]
struct RemoteInner {
    authorize_url: String,
    userinfo_url: String,
    client: reqwest::Client,
    cache_ttl: Duration,
    leeway_secs: u64,
    mapping: ClaimMapping,
    tokens: moka::sync::Cache<Arc<str>, Arc<TokenEntry>, RandomState>,
}

impl RemoteAuthorizer {
    pub(crate) fn new(
        config: &AuthConfig,
        client: reqwest::Client,
    ) -> Result<RemoteAuthorizer, ConfigError> {
        let host = config.host.as_deref().ok_or(ConfigError::Missing {
            variable: "PLUGIN_AUTH_HOST",
            why: "remote mode asks the Auth service for every decision",
        })?;
        let base = host.trim_end_matches('/');
        Ok(RemoteAuthorizer {
            inner: Arc::new(RemoteInner {
                authorize_url: format!("{base}/v1/authorize"),
                userinfo_url: format!("{base}/v1/userinfo"),
                client,
                cache_ttl: config.cache_ttl,
                leeway_secs: config.leeway.as_secs(),
                mapping: config.claim_mapping.clone(),
                tokens: moka::sync::Cache::builder()
                    .max_capacity(config.cache_capacity)
                    .expire_after(UntilTokenExpiry)
                    .build_with_hasher(RandomState::default()),
            }),
        })
    }

    /// Answers from the cache when the decision (or, without a permission, the token) is known;
    /// otherwise returns the future that asks the Auth service.
    pub(crate) fn check(
        &self,
        token: &str,
        known: Option<&Principal>,
        permission: Option<&Permission>,
    ) -> Check {
        let entry = self
            .inner
            .tokens
            .get(token)
            .filter(|e| e.principal.expires_at() + self.inner.leeway_secs > unix_now());
        if let Some(entry) = &entry {
            match permission {
                None => return Check::Done(Ok(entry.principal.clone())),
                Some(p) => match entry.decision(p) {
                    Some(true) => return Check::Done(Ok(entry.principal.clone())),
                    Some(false) => return Check::Done(Err(forbidden(&entry.principal, p))),
                    None => {}
                },
            }
        }
        let principal = match known
            .cloned()
            .map(Ok)
            .unwrap_or_else(|| self.read_claims(token))
        {
            Ok(p) => p,
            Err(e) => return Check::Done(Err(e)),
        };
        let this = self.clone();
        let token: Arc<str> = Arc::from(token);
        let permission = permission.cloned();
        Check::Pending(Box::pin(async move {
            this.ask(token, principal, permission.as_ref()).await
        }))
    }

    /// Reads the token's claims without verifying them (the Auth service does that), and
    /// refuses what is certainly bad: not a JWT, no `sub`/`exp`, already expired.
    fn read_claims(&self, token: &str) -> Result<Principal, AuthError> {
        use InvalidTokenReason as R;
        let mut parts = token.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(R::Malformed.into());
        };
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| AuthError::from(R::Malformed))?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&json).map_err(|_| AuthError::from(R::Malformed))?;
        let principal = Principal::from_claims(claims, &self.inner.mapping)
            .ok_or(AuthError::from(R::MissingClaim))?;
        if principal.expires_at() + self.inner.leeway_secs <= unix_now() {
            return Err(R::Expired.into());
        }
        Ok(principal)
    }

    async fn ask(
        &self,
        token: Arc<str>,
        principal: Principal,
        permission: Option<&Permission>,
    ) -> Result<Principal, AuthError> {
        let entry = match self.inner.tokens.get(&*token) {
            Some(entry) => entry,
            None => Arc::new(TokenEntry {
                principal,
                decisions: Mutex::new(HashMap::default()),
            }),
        };
        let Some(p) = permission else {
            self.validate(&token).await?;
            self.inner.tokens.insert(token, entry.clone());
            return Ok(entry.principal.clone());
        };
        let allowed = self.authorize(&token, &entry.principal, p).await?;
        let ttl = self.inner.cache_ttl.min(Duration::from_secs(
            entry.principal.expires_at().saturating_sub(unix_now()),
        ));
        entry.remember(p, allowed, ttl);
        self.inner.tokens.insert(token, entry.clone());
        if allowed {
            Ok(entry.principal.clone())
        } else {
            Err(forbidden(&entry.principal, p))
        }
    }

    /// `POST /v1/authorize`: `Ok(true/false)` from a 200, 401 when the token is refused, 503
    /// for anything else.
    async fn authorize(
        &self,
        token: &str,
        principal: &Principal,
        p: &Permission,
    ) -> Result<bool, AuthError> {
        let owner = principal.owner().unwrap_or("lerian");
        let sub = match principal.kind() {
            PrincipalKind::User => format!("{owner}/{}", principal.subject()),
            PrincipalKind::Application => format!("{owner}/{}-editor-role", p.product),
        };
        let body = AuthorizeRequest {
            sub,
            resource: &p.resource,
            action: p.action.as_str(),
            product: &p.product,
        };
        let response = self
            .inner
            .client
            .post(&self.inner.authorize_url)
            // Lerian's library sends the bare token; the Auth service accepts both forms.
            .header(http::header::AUTHORIZATION, token)
            .json(&body)
            .send()
            .await
            .map_err(|e| unavailable(format!("authorize call failed: {}", e.without_url())))?;
        match response.status() {
            StatusCode::OK => {
                let answer: AuthorizeResponse = response.json().await.map_err(|e| {
                    unavailable(format!("authorize answer unreadable: {}", e.without_url()))
                })?;
                Ok(answer.authorized)
            }
            StatusCode::UNAUTHORIZED => Err(InvalidTokenReason::RejectedByAuthService.into()),
            StatusCode::FORBIDDEN => Ok(false),
            status => Err(unavailable(format!("authorize answered {status}"))),
        }
    }

    /// `GET /v1/userinfo`: whether the Auth service accepts the token, for routes that only
    /// authenticate.
    async fn validate(&self, token: &str) -> Result<(), AuthError> {
        let response = self
            .inner
            .client
            .get(&self.inner.userinfo_url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| unavailable(format!("userinfo call failed: {}", e.without_url())))?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(InvalidTokenReason::RejectedByAuthService.into())
            }
            status => Err(unavailable(format!("userinfo answered {status}"))),
        }
    }
}

fn unavailable(detail: String) -> AuthError {
    AuthError::Unavailable { detail }
}

fn forbidden(principal: &Principal, p: &Permission) -> AuthError {
    AuthError::Forbidden {
        subject: principal.subject().to_owned(),
        product: p.product.to_string(),
        resource: p.resource.to_string(),
        action: p.action.to_string(),
    }
}
