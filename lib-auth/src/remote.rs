//! Remote mode: the Lerian-compatible client of `POST /v1/authorize` (SPEC §4), with decisions
//! cached for `PLUGIN_AUTH_CACHE_TTL` (never past the token's `exp`) and failing closed.
//!
//! The token is not verified here: the Auth service verifies it on every (uncached) call. The
//! principal is read from the token's claims only after the service has accepted the token.
//!
//! Caching: an answer of the service (a decision, or "this token is valid" for routes that only
//! authenticate) is remembered for `cache_ttl`, capped at the token's `exp` to the millisecond.
//! A 401 of the service forgets everything known of the token. Errors (503) are never cached.
//! With the revocation feed (the service's own credentials configured), a cached answer about
//! a token whose session or subject has since been revoked is dropped and the request refused.
//! Concurrent requests asking the same question of the same token share one call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use foldhash::fast::RandomState;
use http::StatusCode;
use moka::Expiry;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::action::Action;
use crate::auth::{Check, Permission};
use crate::bearer::check_token_chars;
use crate::config::AuthConfig;
use crate::error::{AuthError, ConfigError, InvalidTokenReason};
use crate::principal::{ClaimMapping, Principal, PrincipalKind, TokenClaims};
use crate::revocation::RevocationStore;
use crate::shared_decisions::{
    MAX_DECISIONS, SharedDecisions, Snapshot, StoredDecision, unix_millis,
};
use crate::store::{Store, ValkeyStore};
use crate::verify::{check_audience, unix_now};

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

/// The longest answer of `/v1/authorize` read (a real one is about 60 bytes). A longer one is
/// an error (503), never buffered whole.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A permission as a cache key: `(product, resource, action)`.
type DecisionKey = (Arc<str>, Arc<str>, Action);

fn key_of(p: &Permission) -> DecisionKey {
    (p.product.clone(), p.resource.clone(), p.action)
}

/// The answers of the Auth service about one token, each with the instant it stops being used.
#[derive(Debug, Default)]
struct Answers {
    /// Until when the service's acceptance of the token (any 200) is trusted.
    accepted_until: Option<Instant>,
    /// Decisions: permission → (allowed, until).
    decisions: HashMap<DecisionKey, (bool, Instant), RandomState>,
}

/// What is known of one token: its principal and the service's answers about it.
#[derive(Debug)]
struct TokenEntry {
    principal: Principal,
    answers: Mutex<Answers>,
}

impl TokenEntry {
    fn new(principal: Principal) -> Self {
        TokenEntry {
            principal,
            answers: Mutex::new(Answers::default()),
        }
    }

    /// The answer to `permission` (or, without one, to "is the token valid") if still fresh.
    fn cached(&self, permission: Option<&Permission>) -> Option<Result<Principal, AuthError>> {
        let allowed = self.allowed(permission)?;
        Some(outcome(&self.principal, permission, allowed))
    }

    /// Whether the service allowed `permission` (or accepted the token), if still fresh.
    fn allowed(&self, permission: Option<&Permission>) -> Option<bool> {
        let answers = self.answers.lock().ok()?;
        let now = Instant::now();
        match permission {
            None => answers
                .accepted_until
                .filter(|until| now < *until)
                .map(|_| true),
            Some(p) => match answers.decisions.get(&key_of(p)) {
                Some(&(allowed, until)) if now < until => Some(allowed),
                _ => None,
            },
        }
    }

    /// Remembers an answer of the service for `ttl`; `vouched`: the answer also says that the
    /// service verified the token (a 200), which routes that only authenticate may rely on.
    fn remember(&self, key: Option<DecisionKey>, allowed: bool, vouched: bool, ttl: Duration) {
        let now = Instant::now();
        let Some(until) = now.checked_add(ttl) else {
            return;
        };
        if let Ok(mut answers) = self.answers.lock() {
            if vouched && answers.accepted_until.is_none_or(|u| u < until) {
                answers.accepted_until = Some(until);
            }
            let Some(key) = key else { return };
            // Bounded: a token asks about few permissions; drop expired ones when it grows.
            if answers.decisions.len() >= 256 {
                answers.decisions.retain(|_, (_, until)| *until > now);
            }
            if answers.decisions.len() < 1024 {
                answers.decisions.insert(key, (allowed, until));
            }
        }
    }

    /// The fresh answers, as the shared level stores them, and how long the longest lasts.
    fn snapshot(&self) -> Option<(Snapshot, Duration)> {
        let answers = self.answers.lock().ok()?;
        let now = Instant::now();
        let now_ms = unix_millis();
        let mut longest = Duration::ZERO;
        let mut deadline = |until: Instant| {
            let left = until.saturating_duration_since(now);
            longest = longest.max(left);
            now_ms.saturating_add(u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
        };
        let accepted_until = answers
            .accepted_until
            .filter(|until| now < *until)
            .map(&mut deadline);
        let decisions = answers
            .decisions
            .iter()
            .filter(|(_, (_, until))| now < *until)
            .take(MAX_DECISIONS)
            .map(
                |((product, resource, action), (allowed, until))| StoredDecision {
                    product: product.to_string(),
                    resource: resource.to_string(),
                    action: action.as_str().to_owned(),
                    allowed: *allowed,
                    until: deadline(*until),
                },
            )
            .collect();
        (!longest.is_zero()).then_some((
            Snapshot {
                accepted_until,
                decisions,
            },
            longest,
        ))
    }

    /// Takes in the answers another validator stored, each trusted for what it has left but
    /// never more than `cap` (this validator's TTL, capped at the token's `exp`). Where both
    /// know an answer, the one that lasts longer (the later one) wins.
    fn merge(&self, snapshot: Snapshot, cap: Duration) {
        let now = Instant::now();
        let now_ms = unix_millis();
        let until = |ms: u64| {
            let left = Duration::from_millis(ms.saturating_sub(now_ms)).min(cap);
            (!left.is_zero()).then(|| now.checked_add(left)).flatten()
        };
        let Ok(mut answers) = self.answers.lock() else {
            return;
        };
        if let Some(accepted) = snapshot.accepted_until.and_then(until)
            && answers.accepted_until.is_none_or(|u| u < accepted)
        {
            answers.accepted_until = Some(accepted);
        }
        for stored in snapshot.decisions {
            let (Some(deadline), Ok(action)) = (until(stored.until), stored.action.parse()) else {
                continue;
            };
            if answers.decisions.len() >= 1024 {
                break;
            }
            let key: DecisionKey = (
                Arc::from(stored.product.as_str()),
                Arc::from(stored.resource.as_str()),
                action,
            );
            let known = answers.decisions.get(&key).map(|(_, u)| *u);
            if known.is_none_or(|u| u < deadline) {
                answers.decisions.insert(key, (stored.allowed, deadline));
            }
        }
    }

    /// Forgets every answer (the service refused the token).
    fn forget(&self) {
        if let Ok(mut answers) = self.answers.lock() {
            *answers = Answers::default();
        }
    }
}

/// The time left until `exp` (Unix seconds), to the clock's precision; zero once past.
fn until_exp(exp: u64) -> Duration {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(exp))
        .and_then(|at| at.duration_since(SystemTime::now()).ok())
        .unwrap_or(if exp > unix_now() {
            Duration::MAX
        } else {
            Duration::ZERO
        })
}

/// Keeps a token's entry while it is used, at most `cache_ttl` after its last use and never past
/// its `exp`. (The answers inside carry their own, exact deadlines.)
struct WhileUsed {
    cache_ttl: Duration,
}

impl WhileUsed {
    fn ttl(&self, entry: &TokenEntry) -> Duration {
        self.cache_ttl.min(until_exp(entry.principal.expires_at()))
    }
}

impl Expiry<Arc<str>, Arc<TokenEntry>> for WhileUsed {
    fn expire_after_create(
        &self,
        _key: &Arc<str>,
        entry: &Arc<TokenEntry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(self.ttl(entry))
    }

    fn expire_after_read(
        &self,
        _key: &Arc<str>,
        entry: &Arc<TokenEntry>,
        _read_at: Instant,
        _duration_until_expiry: Option<Duration>,
        _last_modified_at: Instant,
    ) -> Option<Duration> {
        Some(self.ttl(entry))
    }
}

/// One question to the Auth service: a token, and a permission or `None` for "is it valid".
type FlightKey = (Arc<str>, Option<DecisionKey>);
/// The shared answer of a call in flight: `Ok(allowed)` or the error every waiter gets.
type Flight = Arc<OnceCell<Result<bool, AuthError>>>;
type Flights = Mutex<HashMap<FlightKey, Flight, RandomState>>;

/// A seat on a call in flight; leaving the last seat (or after landing) clears the flight.
struct Seat<'a> {
    flights: &'a Flights,
    key: FlightKey,
    flight: Flight,
}

impl<'a> Seat<'a> {
    fn take(flights: &'a Flights, key: FlightKey) -> Seat<'a> {
        let flight = match flights.lock() {
            Ok(mut map) => map.entry(key.clone()).or_default().clone(),
            // A poisoned map only loses the sharing, never an answer.
            Err(_) => Flight::default(),
        };
        Seat {
            flights,
            key,
            flight,
        }
    }
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.flights.lock() {
            let ours = map
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight));
            // The map holds one reference and this seat another: 2 means no one else waits.
            if ours && (self.flight.initialized() || Arc::strong_count(&self.flight) <= 2) {
                map.remove(&self.key);
            }
        }
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
    mapping: ClaimMapping,
    leeway_secs: u64,
    /// `PLUGIN_AUTH_AUDIENCE`.
    audience: Option<String>,
    tokens: moka::sync::Cache<Arc<str>, Arc<TokenEntry>, RandomState>,
    flights: Flights,
    /// Sessions and subjects revoked since, from the feed: checked on every cached answer.
    revocations: Arc<RevocationStore>,
    /// The second level, shared with the other validators (`VALKEY_URL` and
    /// `VALKEY_DECISION_SECRET`).
    shared: Option<SharedDecisions>,
    /// Tokens forgotten here ([`RemoteAuthorizer::forget`], or refused by the service) in the
    /// last `cache_ttl`, and when: their shared entries are not read, whatever Valkey still
    /// holds (its delete may not have landed, or another validator's save may land after it),
    /// and an answer to a question asked before that instant is not remembered.
    forgotten: moka::sync::Cache<Arc<str>, Instant, RandomState>,
}

/// The shared level of the decision cache, when configured: [`AuthConfig::decision_store`] or
/// else the Valkey of `VALKEY_URL`, with `VALKEY_DECISION_SECRET`.
fn shared_level(
    config: &AuthConfig,
    authorize_url: &str,
) -> Result<Option<SharedDecisions>, ConfigError> {
    let store: Arc<dyn Store> = match (&config.decision_store, &config.valkey_url) {
        (Some(store), _) => store.clone(),
        (None, Some(url)) => Arc::new(ValkeyStore::new(
            url.expose(),
            &config.valkey_prefix,
            "shared decision cache",
        )),
        (None, None) => {
            if config.valkey_decision_secret.is_some() {
                tracing::warn!(
                    "VALKEY_DECISION_SECRET is ignored without VALKEY_URL: remote mode's decisions are not shared with other validators"
                );
            }
            return Ok(None);
        }
    };
    let Some(secret) = &config.valkey_decision_secret else {
        tracing::warn!(
            "VALKEY_DECISION_SECRET is not set: remote mode's decisions are not shared with other validators"
        );
        return Ok(None);
    };
    tracing::info!(
        store = ?store,
        "remote mode: decisions shared with the other validators (VALKEY_DECISION_SECRET)"
    );
    SharedDecisions::new(store, secret.expose().as_bytes(), authorize_url)
        .map(Some)
        .ok_or(ConfigError::InvalidValue {
            variable: "VALKEY_DECISION_SECRET",
            value: "***".to_owned(),
            expected: "a secret HMAC-SHA256 accepts",
        })
}

impl RemoteAuthorizer {
    pub(crate) fn new(
        config: &AuthConfig,
        client: reqwest::Client,
        revocations: Arc<RevocationStore>,
    ) -> Result<RemoteAuthorizer, ConfigError> {
        let host = config.host.as_deref().ok_or(ConfigError::Missing {
            variable: "PLUGIN_AUTH_HOST",
            why: "remote mode asks the Auth service for every decision",
        })?;
        let base = host.trim_end_matches('/');
        let authorize_url = format!("{base}/v1/authorize");
        let shared = shared_level(config, &authorize_url)?;
        Ok(RemoteAuthorizer {
            inner: Arc::new(RemoteInner {
                authorize_url,
                userinfo_url: format!("{base}/v1/userinfo"),
                client,
                cache_ttl: config.cache_ttl,
                mapping: config.claim_mapping.clone(),
                leeway_secs: config.leeway.as_secs(),
                audience: config.audience.clone(),
                tokens: moka::sync::Cache::builder()
                    .max_capacity(config.cache_capacity)
                    .expire_after(WhileUsed {
                        cache_ttl: config.cache_ttl,
                    })
                    .build_with_hasher(RandomState::default()),
                flights: Mutex::new(HashMap::default()),
                revocations,
                shared,
                forgotten: moka::sync::Cache::builder()
                    .max_capacity(config.cache_capacity)
                    // moka refuses TTLs of centuries; no token lives a year.
                    .time_to_live(
                        config
                            .cache_ttl
                            .clamp(Duration::from_millis(1), Duration::from_secs(365 * 86_400)),
                    )
                    .build_with_hasher(RandomState::default()),
            }),
        })
    }

    /// Drops everything cached about `token`, in this process at once and in the shared level
    /// in the background.
    pub(crate) fn forget(&self, token: &str) {
        self.inner.tokens.invalidate(token);
        // At once, with or without a runtime: a call in flight does not bring its answer back
        // into the cache, and this validator reads no shared entry of the token from now on
        // (for the longest any entry lives).
        self.inner
            .forgotten
            .insert(Arc::from(token), Instant::now());
        if self.inner.shared.is_none() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let this = self.clone();
            let token = token.to_owned();
            runtime.spawn(async move {
                if let Some(shared) = &this.inner.shared {
                    shared.forget(&token).await;
                }
            });
        }
    }

    /// Answers from the cache when the decision (or, without a permission, the token) is known;
    /// otherwise returns the future that asks the shared level, then the Auth service.
    pub(crate) fn check(
        &self,
        token: &str,
        known: Option<&Principal>,
        permission: Option<&Permission>,
    ) -> Check {
        let entry = self.inner.tokens.get(token);
        if let Some(entry) = &entry {
            if let Err(revoked) = self.inner.revocations.check(&entry.principal) {
                self.inner.tokens.invalidate(token);
                return Check::Done(Err(revoked));
            }
            if let Some(answer) = entry.cached(permission) {
                return Check::Done(answer);
            }
        }
        let principal = match entry
            .map(|e| e.principal.clone())
            .or_else(|| known.cloned())
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
        check_token_chars(token)?;
        let mut parts = token.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(R::Malformed.into());
        };
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| AuthError::from(R::Malformed))?;
        // Parsed as local mode parses verified claims: a registered claim given twice (`sub`,
        // `exp`, `type`, …) is refused rather than resolved by "the last one wins".
        let claims: TokenClaims =
            serde_json::from_slice(&json).map_err(|_| AuthError::from(R::Malformed))?;
        // The service verifies the signature; the audience this service requires is checked
        // here, as local mode does (PLUGIN_AUTH_AUDIENCE).
        if let Some(audience) = &self.inner.audience {
            check_audience(claims.aud.as_ref(), audience)?;
        }
        let principal = Principal::from_token(claims, &json, &self.inner.mapping)
            .ok_or(AuthError::from(R::MissingClaim))?;
        if principal
            .expires_at()
            .saturating_add(self.inner.leeway_secs)
            <= unix_now()
        {
            return Err(R::Expired.into());
        }
        Ok(principal)
    }

    /// Asks the Auth service, sharing the call with concurrent identical questions.
    async fn ask(
        &self,
        token: Arc<str>,
        principal: Principal,
        permission: Option<&Permission>,
    ) -> Result<Principal, AuthError> {
        // Not cached until the service answers: forged tokens sent while it is down must not
        // fill the cache and evict real answers.
        let entry = self
            .inner
            .tokens
            .get(&*token)
            .unwrap_or_else(|| Arc::new(TokenEntry::new(principal)));
        // A call that landed while this request waited to be polled already answered it.
        if let Some(answer) = entry.cached(permission) {
            return answer;
        }
        let seat = Seat::take(&self.inner.flights, (token.clone(), permission.map(key_of)));
        let allowed = seat
            .flight
            .get_or_init(|| self.resolve(&token, &entry, permission))
            .await
            .clone();
        drop(seat);
        outcome(&entry.principal, permission, allowed?)
    }

    /// The answer from the shared level if another validator stored it, else from the service.
    async fn resolve(
        &self,
        token: &Arc<str>,
        entry: &Arc<TokenEntry>,
        permission: Option<&Permission>,
    ) -> Result<bool, AuthError> {
        let asked = Instant::now();
        // Shared answers may predate a revocation: they are read only while this validator
        // knows every revocation (its feed read to its end, and not refused since), so that
        // one started while the Auth service was down cannot admit a token logged out before.
        if let Some(shared) = &self.inner.shared
            && self.inner.revocations.feed_current()
            && !self.inner.forgotten.contains_key(&**token)
            && let Some(snapshot) = shared.load(token).await
            && !self.forgotten_since(token, asked)
        {
            let cap = self
                .inner
                .cache_ttl
                .min(until_exp(entry.principal.expires_at()));
            let stored = self
                .inner
                .tokens
                .get_with(token.clone(), || Arc::clone(entry));
            stored.merge(snapshot, cap);
            // Revocations this validator knows of apply to shared answers as to its own.
            if let Err(revoked) = self.inner.revocations.check(&stored.principal) {
                self.inner.tokens.invalidate(&**token);
                return Err(revoked);
            }
            if let Some(allowed) = stored.allowed(permission) {
                return Ok(allowed);
            }
        }
        self.call(token, entry, permission).await
    }

    /// Whether `token` was forgotten at or after `instant`.
    fn forgotten_since(&self, token: &str, instant: Instant) -> bool {
        self.inner
            .forgotten
            .get(token)
            .is_some_and(|at| at >= instant)
    }

    /// One call to the Auth service, whose answer is remembered here and in the shared level
    /// (or, on 401, forgotten in both).
    async fn call(
        &self,
        token: &Arc<str>,
        entry: &Arc<TokenEntry>,
        permission: Option<&Permission>,
    ) -> Result<bool, AuthError> {
        let asked = Instant::now();
        let answer = match permission {
            None => self.validate(token).await.map(|()| (true, true)),
            Some(p) => self.authorize(token, &entry.principal, p).await,
        };
        match answer {
            // Forgotten while the service was asked: answered, not remembered.
            Ok((allowed, _)) if self.forgotten_since(token, asked) => Ok(allowed),
            Ok((allowed, vouched)) => {
                let ttl = self
                    .inner
                    .cache_ttl
                    .min(until_exp(entry.principal.expires_at()));
                let stored = self
                    .inner
                    .tokens
                    .get_with(token.clone(), || Arc::clone(entry));
                stored.remember(permission.map(key_of), allowed, vouched, ttl);
                if let Some(shared) = &self.inner.shared
                    && let Some((snapshot, ttl)) = stored.snapshot()
                {
                    shared.save(token, &snapshot, ttl).await;
                }
                Ok(allowed)
            }
            Err(e) => {
                if let AuthError::InvalidToken { .. } = e {
                    entry.forget();
                    self.inner.tokens.invalidate(&**token);
                    self.inner.forgotten.insert(token.clone(), Instant::now());
                    if let Some(shared) = &self.inner.shared {
                        shared.forget(token).await;
                    }
                }
                Err(e)
            }
        }
    }

    /// `POST /v1/authorize`: `Ok((allowed, true))` from a 200 (which also says the service
    /// verified the token), `Ok((false, false))` from a 403 (a refusal that vouches for nothing:
    /// a proxy may say it), 401 when the token is refused, 503 for anything else — including an
    /// answer that is not `{"authorized": <bool>}` or is larger than 64 KiB.
    async fn authorize(
        &self,
        token: &str,
        principal: &Principal,
        p: &Permission,
    ) -> Result<(bool, bool), AuthError> {
        let owner = principal.owner().unwrap_or("lerian");
        let sub = match principal.kind() {
            // Lerian's `<owner>/<username>`; the id when the token names no user.
            PrincipalKind::User => format!(
                "{owner}/{}",
                principal.name().unwrap_or(principal.subject())
            ),
            PrincipalKind::Application => format!("{owner}/{}-editor-role", p.product),
        };
        let body = AuthorizeRequest {
            sub,
            resource: &p.resource,
            action: p.action.as_str(),
            product: &p.product,
        };
        let mut response = self
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
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                return Err(InvalidTokenReason::RejectedByAuthService.into());
            }
            StatusCode::FORBIDDEN => return Ok((false, false)),
            status => return Err(unavailable(format!("authorize answered {status}"))),
        }
        let too_large = || unavailable("authorize answer larger than 64 KiB".to_owned());
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            unavailable(format!(
                "reading the authorize answer failed: {}",
                e.without_url()
            ))
        })? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        // The parser's message may quote the answer, which may quote the token: not logged.
        let answer: AuthorizeResponse = serde_json::from_slice(&body).map_err(|e| {
            unavailable(format!(
                "authorize answer is not {{\"authorized\": <bool>}} ({:?} error at column {})",
                e.classify(),
                e.column()
            ))
        })?;
        Ok((answer.authorized, true))
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

/// The request's outcome once the service's answer (`allowed`) is known.
fn outcome(
    principal: &Principal,
    permission: Option<&Permission>,
    allowed: bool,
) -> Result<Principal, AuthError> {
    match permission {
        Some(p) if !allowed => Err(forbidden(principal, p)),
        _ => Ok(principal.clone()),
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
