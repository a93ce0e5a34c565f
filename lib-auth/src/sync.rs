//! What local mode keeps in step with the Auth service, in one background task: the
//! revocation feed (`GET {host}/v1/revocations?since=<cursor>`) and, with
//! `PLUGIN_AUTH_POLICY=server`, the policy (`GET {host}/v1/policy` with `If-None-Match`). Both
//! are fetched with the service's own application token ([`ApplicationToken`]) every
//! `PLUGIN_AUTH_REVOCATION_POLL_INTERVAL`.
//!
//! # The wire
//!
//! - `GET {host}/v1/revocations` (first call) then `GET {host}/v1/revocations?since=<cursor>`,
//!   `Authorization: Bearer <application token>`, `Accept: application/json`. Answer 200
//!   `{"cursor":"<opaque>","items":[{"sid"?,"sub"?,"notBefore"?,"expiresAt"}]}` (unknown fields
//!   ignored; see [`crate::revocation`] for the semantics). The cursor is sent back verbatim
//!   (URL-encoded) on the next call. A page with items is followed at once by the next page
//!   (at most [`MAX_PAGES_PER_TICK`] per tick), so a server that pages its answers is drained
//!   in one tick. 401: the application token is renewed and the feed asked again next tick.
//!   400 or 410 while a cursor is held: the cursor is dropped and the whole feed read again.
//! - `GET {host}/v1/policy`, `Authorization: Bearer <application token>`, with
//!   `If-None-Match: <ETag of the last document received>`. 200: the policy document (SPEC §6
//!   JSON) and its `ETag`; 304: unchanged. 401: as above.
//!
//! # Failures
//!
//! Nothing here panics or stops the task. An unreachable or failing service keeps the state
//! already known (revocations stay enforced, the policy stays in force) and is logged at WARN
//! once per outage, at INFO when it answers again; the task keeps polling. An invalid policy
//! document is logged at WARN (once per distinct document) and the previous policy stays.
//! Tokens and secrets are never logged.
//!
//! # Lifetime
//!
//! The task is spawned on the Tokio runtime at hand when the [`Auth`](crate::Auth) is built (or,
//! built outside a runtime, on its first request), like the JWKS background refresh. It holds
//! only a weak reference to what it feeds, and is aborted when the last clone of the `Auth`
//! is dropped.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use http::StatusCode;
use http::header::{ACCEPT, ETAG, IF_NONE_MATCH};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::decision::{CompiledPolicy, Decision};
use crate::m2m::{ApplicationToken, ApplicationTokenError};
use crate::policy::Policy;
use crate::principal::{Principal, numeric_date};
use crate::push::Subscription;
use crate::revocation::{Revocation, RevocationStore, next_generation};

/// The largest revocation page read (a page of 10 000 entries is about 1 MiB).
const MAX_FEED_BYTES: usize = 32 * 1024 * 1024;
/// The largest policy document read.
const MAX_POLICY_BYTES: usize = 4 * 1024 * 1024;
/// Pages of the revocation feed read in one tick at most.
pub(crate) const MAX_PAGES_PER_TICK: usize = 50;

// ---------------------------------------------------------------------------------------------
// The policy in force.

thread_local! {
    /// The policy this thread last used, with its generation: while the generation has not
    /// moved, a decision reads the policy without touching any shared cache line.
    static SEEN_POLICY: RefCell<Option<(u64, Arc<CompiledPolicy>)>> = const { RefCell::new(None) };
}

/// The policy local mode decides with.
#[derive(Debug)]
pub(crate) enum LocalPolicy {
    /// Built-in, from a file or from code: fixed for the life of the `Auth`.
    Fixed(Arc<CompiledPolicy>),
    /// `PLUGIN_AUTH_POLICY=server`: replaced by the poller.
    Synced(Arc<PolicySlot>),
}

impl LocalPolicy {
    /// Calls `f` with the policy in force, or `None` before a synced policy first arrived.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnMut(Option<&CompiledPolicy>) -> R) -> R {
        match self {
            LocalPolicy::Fixed(policy) => {
                let mut f = f;
                f(Some(policy))
            }
            LocalPolicy::Synced(slot) => slot.with(f),
        }
    }

    /// The policy in force.
    pub(crate) fn current(&self) -> Option<Arc<CompiledPolicy>> {
        match self {
            LocalPolicy::Fixed(policy) => Some(policy.clone()),
            LocalPolicy::Synced(slot) => slot.snapshot().map(|(_, policy)| policy),
        }
    }

    /// A decision whose role name lives as long as `self`.
    pub(crate) fn decide(
        &self,
        principal: &Principal,
        product: &str,
        resource: &str,
        action: crate::Action,
    ) -> Option<Decision<'_>> {
        match self {
            LocalPolicy::Fixed(policy) => Some(policy.decide(principal, product, resource, action)),
            LocalPolicy::Synced(slot) => slot.with(|policy| {
                Some(match policy?.decide(principal, product, resource, action) {
                    Decision::Allow { role } => Decision::Allow {
                        role: slot.names.intern(role).unwrap_or(""),
                    },
                    Decision::Deny { reason } => Decision::Deny { reason },
                })
            }),
        }
    }
}

/// The synced policy: swapped in by the poller, read by every decision.
#[derive(Debug, Default)]
pub(crate) struct PolicySlot {
    /// 0 until the first policy arrives; then the (process-unique) generation of the current one.
    generation: AtomicU64,
    current: RwLock<Option<(u64, Arc<CompiledPolicy>)>>,
    /// Role names handed out by [`LocalPolicy::decide`], which must outlive a swap.
    names: RoleNames,
}

impl PolicySlot {
    fn snapshot(&self) -> Option<(u64, Arc<CompiledPolicy>)> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts `policy` in force.
    pub(crate) fn store(&self, policy: CompiledPolicy) {
        let generation = next_generation();
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        *current = Some((generation, Arc::new(policy)));
        self.generation.store(generation, Ordering::Release);
    }

    /// Whether a policy has arrived.
    pub(crate) fn is_loaded(&self) -> bool {
        self.generation.load(Ordering::Acquire) != 0
    }

    #[inline]
    fn with<R>(&self, mut f: impl FnMut(Option<&CompiledPolicy>) -> R) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        if generation == 0 {
            return f(None);
        }
        let done = SEEN_POLICY.try_with(|cell| {
            let mut seen = cell.try_borrow_mut().ok()?;
            if !matches!(&*seen, Some((g, _)) if *g == generation) {
                *seen = self.snapshot();
            }
            Some(f(seen.as_ref().map(|(_, policy)| &**policy)))
        });
        match done {
            Ok(Some(result)) => result,
            // The thread is exiting, or a decision is nested in another: read the slot itself.
            _ => {
                let snapshot = self.snapshot();
                f(snapshot.as_ref().map(|(_, policy)| &**policy))
            }
        }
    }
}

/// Segments of the role-name arena: segment `k` holds `64 << k` names.
const NAME_SEGMENTS: usize = 26;

/// One segment of the role-name arena: cells set once, never moved.
type NameSegment = OnceLock<Box<[OnceLock<Box<str>>]>>;

/// An append-only set of role names, so that a [`Decision`] can borrow its role name from the
/// `Auth` whatever policy is swapped in later. Grows with the distinct role ids ever decided
/// through [`Auth::decide`](crate::Auth::decide), never with requests.
#[derive(Default)]
struct RoleNames {
    index: Mutex<HashMap<Box<str>, (usize, usize)>>,
    segments: [NameSegment; NAME_SEGMENTS],
}

impl std::fmt::Debug for RoleNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.index.lock().map(|i| i.len()).unwrap_or(0);
        f.debug_struct("RoleNames").field("len", &n).finish()
    }
}

impl RoleNames {
    fn intern(&self, name: &str) -> Option<&str> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let (segment, slot) = match index.get(name) {
            Some(&at) => at,
            None => {
                let (mut segment, mut slot) = (0, index.len());
                while segment < NAME_SEGMENTS && slot >= 64 << segment {
                    slot -= 64 << segment;
                    segment += 1;
                }
                let cells = self
                    .segments
                    .get(segment)?
                    .get_or_init(|| (0..64usize << segment).map(|_| OnceLock::new()).collect());
                cells.get(slot)?.set(name.into()).ok()?;
                index.insert(name.into(), (segment, slot));
                (segment, slot)
            }
        };
        drop(index);
        self.segments
            .get(segment)?
            .get()?
            .get(slot)?
            .get()
            .map(|name| &**name)
    }
}

// ---------------------------------------------------------------------------------------------
// The poller.

/// What the background task feeds and how it reaches the Auth service.
#[derive(Debug)]
pub(crate) struct Feeds {
    pub(crate) client: reqwest::Client,
    pub(crate) tokens: ApplicationToken,
    pub(crate) revocations_url: reqwest::Url,
    pub(crate) policy_url: String,
    pub(crate) interval: Duration,
    pub(crate) store: Arc<RevocationStore>,
    /// With `PLUGIN_AUTH_POLICY=server`.
    pub(crate) policy: Option<Arc<PolicySlot>>,
    /// With `VALKEY_URL`: notices pushed over pub/sub, each a reason to read the feed now.
    pub(crate) push: Option<Subscription>,
    /// Cuts the pause before the next poll short.
    pub(crate) wake: Arc<Notify>,
}

impl Feeds {
    /// Polls at once rather than at the end of the current pause.
    pub(crate) fn poll_now(&self) {
        self.wake.notify_one();
    }
}

/// The background tasks of one `Auth` (the poll, and the pub/sub listener with
/// `VALKEY_URL`): started once, aborted on drop.
#[derive(Debug)]
pub(crate) struct Poller {
    feeds: Arc<Feeds>,
    started: AtomicBool,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Poller {
    pub(crate) fn new(feeds: Feeds) -> Poller {
        Poller {
            feeds: Arc::new(feeds),
            started: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Starts the task if it is not running yet and a Tokio runtime is at hand. One relaxed
    /// load once started.
    #[inline]
    pub(crate) fn ensure_started(&self) {
        if !self.started.load(Ordering::Relaxed) {
            self.start();
        }
    }

    #[cold]
    fn start(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut handles = vec![
            runtime
                .spawn(run(Arc::downgrade(&self.feeds)))
                .abort_handle(),
        ];
        if let Some(subscription) = &self.feeds.push {
            let listener = crate::push::run(subscription.clone(), Arc::downgrade(&self.feeds));
            handles.push(runtime.spawn(listener).abort_handle());
        }
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.extend(handles);
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        let tasks = match self.tasks.get_mut() {
            Ok(tasks) => std::mem::take(tasks),
            Err(poisoned) => std::mem::take(poisoned.into_inner()),
        };
        for task in tasks {
            task.abort();
        }
    }
}

/// The shortest time between the starts of two reads of the feed asked for by
/// [`Feeds::poll_now`]: pushed notices come from whoever can publish on the channel, and a
/// flood of them must not become a flood of requests to the Auth service.
pub(crate) const MIN_WAKE_GAP: Duration = Duration::from_millis(50);

/// The pause before reading the feed again after a failed read; it doubles with each failure
/// in a row, up to the poll interval.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Polls until the `Auth` is gone: everything once per interval (counted from the end of the
/// last full poll), and the revocation feed alone whenever woken by [`Feeds::poll_now`], at
/// most once per [`MIN_WAKE_GAP`]. A failed read of the feed is retried after
/// [`RETRY_PAUSE`], doubled with each failure in a row; meanwhile a wake-up waits for the
/// retry, so that notices cannot turn a failing Auth service (or refused credentials) into a
/// stream of requests.
async fn run(feeds: Weak<Feeds>) {
    use tokio::time::{Instant, sleep_until};
    let mut state = PollState::default();
    let mut last_full: Option<Instant> = None;
    let mut failures = 0u32;
    loop {
        let Some(current) = feeds.upgrade() else {
            return;
        };
        let interval = current.interval;
        let after = |at: Instant, pause: Duration| {
            at.checked_add(pause)
                .unwrap_or_else(|| at + Duration::from_secs(86_400 * 365))
        };
        let started = Instant::now();
        let full = last_full.is_none_or(|at| started >= after(at, interval));
        let read = current.tick(&mut state, full).await;
        let ended = Instant::now();
        if full {
            last_full = Some(ended);
        }
        failures = if read { 0 } else { failures.saturating_add(1) };
        let mut next = after(last_full.unwrap_or(ended), interval);
        if failures > 0 {
            let pause = RETRY_PAUSE.saturating_mul(1 << (failures - 1).min(16));
            next = next.min(after(ended, pause.min(interval)));
        }
        let wake = current.wake.clone();
        drop(current);
        loop {
            tokio::select! {
                () = sleep_until(next) => break,
                () = wake.notified() => {
                    if failures == 0 {
                        // A notice that comes meanwhile is kept (one permit): one more read.
                        sleep_until(started + MIN_WAKE_GAP).await;
                        break;
                    }
                }
            }
        }
    }
}

/// An outage of one source: logged at WARN when it starts, at INFO when it ends.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    down: bool,
}

impl Outage {
    pub(crate) fn failed(&mut self, source: &'static str, consequence: &'static str, detail: &str) {
        if self.down {
            tracing::debug!(source, error = %detail, "still failing");
        } else {
            self.down = true;
            tracing::warn!(source, error = %detail, "{consequence}");
        }
    }

    pub(crate) fn recovered(&mut self, source: &'static str) {
        if self.down {
            self.down = false;
            tracing::info!(source, "answering again");
        }
    }
}

#[derive(Debug, Default)]
struct FeedState {
    cursor: Option<String>,
    outage: Outage,
}

#[derive(Debug, Default)]
struct PolicyState {
    etag: Option<String>,
    /// Digest of the last document put in force (an answer without ETag is compared by it).
    applied: Option<[u8; 32]>,
    /// Digest of the last document refused (logged once).
    rejected: Option<[u8; 32]>,
    outage: Outage,
}

#[derive(Debug, Default)]
struct PollState {
    token: Outage,
    feed: FeedState,
    policy: PolicyState,
}

/// The end of one request to a feed.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    /// 401: the application token was refused.
    Unauthorized,
    Failed,
}

const FEED: &str = "revocation feed";
const FEED_DOWN: &str = "the revocation feed failed: revocations already known stay enforced, new ones wait until it answers";
const POLICY: &str = "policy sync";
const POLICY_DOWN: &str = "fetching the policy from the Auth service failed: the policy in force stays (none yet: decisions answer 503)";

/// The answer of the revocation feed.
#[derive(Deserialize)]
struct Page {
    cursor: String,
    #[serde(default)]
    items: Vec<Value>,
}

/// The revocations of one feed item: a session, a subject, or both; `None` for an item that
/// names neither or has no usable `expiresAt`.
fn revocations_of(item: &Value) -> Option<Vec<Revocation>> {
    let item = item.as_object()?;
    let text = |name: &str| {
        item.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let expires_at = item.get("expiresAt").and_then(numeric_date)?;
    let mut out = Vec::new();
    if let Some(sid) = text("sid") {
        out.push(Revocation::Session {
            sid: sid.to_owned(),
            expires_at,
        });
    }
    if let (Some(sub), Some(not_before)) =
        (text("sub"), item.get("notBefore").and_then(numeric_date))
    {
        out.push(Revocation::Subject {
            sub: sub.to_owned(),
            not_before,
            expires_at,
        });
    }
    (!out.is_empty()).then_some(out)
}

/// Reads at most `max` bytes of an answer.
async fn read_body(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err("the answer is too large".to_owned());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if body.len() + chunk.len() > max {
            return Err("the answer is too large".to_owned());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl Feeds {
    /// Reads the revocation feed, and with `everything` also the policy; whether the feed was
    /// read.
    async fn tick(&self, state: &mut PollState, everything: bool) -> bool {
        self.store.purge();
        let token = match self.tokens.token_logged(false).await {
            Ok(token) => {
                state.token.recovered("application token");
                token
            }
            Err(error) => {
                if matches!(
                    error,
                    ApplicationTokenError::BadCredentials { .. }
                        | ApplicationTokenError::Refused { .. }
                ) {
                    // Revocations from now on cannot be read: what is known may go stale.
                    self.store.set_feed_current(false);
                }
                state.token.failed(
                    "application token",
                    "cannot get the application token for the revocation feed and policy sync: the state already known stays in force",
                    &error.to_string(),
                );
                return false;
            }
        };
        let policy = async {
            match &self.policy {
                Some(slot) if everything => self.poll_policy(slot, &token, &mut state.policy).await,
                _ => Outcome::Done,
            }
        };
        let (feed, policy) = tokio::join!(self.poll_revocations(&token, &mut state.feed), policy);
        if feed == Outcome::Unauthorized || policy == Outcome::Unauthorized {
            // Renewed before the next tick asks again.
            self.tokens.invalidate();
        }
        feed == Outcome::Done
    }

    async fn poll_revocations(&self, token: &str, state: &mut FeedState) -> Outcome {
        for _ in 0..MAX_PAGES_PER_TICK {
            let mut url = self.revocations_url.clone();
            if let Some(cursor) = &state.cursor {
                url.query_pairs_mut().append_pair("since", cursor);
            }
            let response = match self
                .client
                .get(url)
                .bearer_auth(token)
                .header(ACCEPT, "application/json")
                .send()
                .await
            {
                Ok(response) => response,
                Err(e) => {
                    state
                        .outage
                        .failed(FEED, FEED_DOWN, &e.without_url().to_string());
                    return Outcome::Failed;
                }
            };
            match response.status() {
                StatusCode::OK => {}
                StatusCode::UNAUTHORIZED => {
                    self.store.set_feed_current(false);
                    state.outage.failed(
                        FEED,
                        FEED_DOWN,
                        "401: the application token was refused (renewing it)",
                    );
                    return Outcome::Unauthorized;
                }
                StatusCode::BAD_REQUEST | StatusCode::GONE if state.cursor.is_some() => {
                    tracing::warn!(status = %response.status(),
                        "the revocation feed refused the cursor: reading the whole feed again");
                    state.cursor = None;
                    continue;
                }
                status => {
                    state
                        .outage
                        .failed(FEED, FEED_DOWN, &format!("status {status}"));
                    return Outcome::Failed;
                }
            }
            let page = match read_body(response, MAX_FEED_BYTES).await.and_then(|body| {
                serde_json::from_slice::<Page>(&body).map_err(|e| {
                    format!(
                        "not the expected JSON ({:?} error at line {} column {})",
                        e.classify(),
                        e.line(),
                        e.column()
                    )
                })
            }) {
                Ok(page) => page,
                Err(detail) => {
                    state.outage.failed(FEED, FEED_DOWN, &detail);
                    return Outcome::Failed;
                }
            };
            state.outage.recovered(FEED);
            let mut unusable = 0usize;
            let mut revocations = Vec::with_capacity(page.items.len());
            for item in &page.items {
                match revocations_of(item) {
                    Some(found) => revocations.extend(found),
                    None => unusable += 1,
                }
            }
            if unusable > 0 {
                tracing::warn!(
                    unusable,
                    "revocation feed items without a usable sid, sub + notBefore, or expiresAt were skipped"
                );
            }
            let tightened = self.store.apply(revocations);
            tracing::debug!(
                items = page.items.len(),
                tightened,
                live = self.store.len(),
                "revocation feed read"
            );
            let advanced = state.cursor.as_deref() != Some(page.cursor.as_str());
            state.cursor = Some(page.cursor);
            if page.items.is_empty() || !advanced {
                // Read to its end: every revocation up to now is known here.
                self.store.set_feed_current(true);
                break;
            }
        }
        Outcome::Done
    }

    async fn poll_policy(
        &self,
        slot: &PolicySlot,
        token: &str,
        state: &mut PolicyState,
    ) -> Outcome {
        let mut request = self
            .client
            .get(&self.policy_url)
            .bearer_auth(token)
            .header(ACCEPT, "application/json");
        if let Some(etag) = &state.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                state
                    .outage
                    .failed(POLICY, POLICY_DOWN, &e.without_url().to_string());
                return Outcome::Failed;
            }
        };
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_MODIFIED => {
                state.outage.recovered(POLICY);
                return Outcome::Done;
            }
            StatusCode::UNAUTHORIZED => {
                state.outage.failed(
                    POLICY,
                    POLICY_DOWN,
                    "401: the application token was refused (renewing it)",
                );
                return Outcome::Unauthorized;
            }
            status => {
                state
                    .outage
                    .failed(POLICY, POLICY_DOWN, &format!("status {status}"));
                return Outcome::Failed;
            }
        }
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let body = match read_body(response, MAX_POLICY_BYTES).await {
            Ok(body) => body,
            Err(detail) => {
                state.outage.failed(POLICY, POLICY_DOWN, &detail);
                return Outcome::Failed;
            }
        };
        state.outage.recovered(POLICY);
        let digest: [u8; 32] = Sha256::digest(&body).into();
        // Whatever its fate, this document need not be fetched again while its ETag holds.
        state.etag = etag;
        if state.applied == Some(digest) && slot.is_loaded() {
            return Outcome::Done;
        }
        let compiled = std::str::from_utf8(&body)
            .map_err(|_| "the document is not UTF-8".to_owned())
            .and_then(|text| Policy::from_json(text).map_err(|e| e.to_string()))
            .and_then(|policy| CompiledPolicy::compile(&policy).map_err(|e| e.to_string()));
        match compiled {
            Ok(policy) => {
                slot.store(policy);
                state.applied = Some(digest);
                state.rejected = None;
                tracing::info!(
                    etag = state.etag.as_deref().unwrap_or("none"),
                    "policy from the Auth service in force"
                );
            }
            Err(error) => {
                if state.rejected != Some(digest) {
                    state.rejected = Some(digest);
                    tracing::warn!(%error, loaded = slot.is_loaded(),
                        "the Auth service's policy is invalid and was not applied: the policy in force stays (none yet: decisions answer 503)");
                }
            }
        }
        Outcome::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::ClaimMapping;
    use serde_json::json;

    #[test]
    fn feed_items_become_revocations_and_bad_ones_are_skipped() {
        assert_eq!(
            revocations_of(&json!({"sid":"s","expiresAt":10,"extra":true})),
            Some(vec![Revocation::Session {
                sid: "s".into(),
                expires_at: 10
            }])
        );
        assert_eq!(
            revocations_of(&json!({"sub":"u","notBefore":5,"expiresAt":10})),
            Some(vec![Revocation::Subject {
                sub: "u".into(),
                not_before: 5,
                expires_at: 10
            }])
        );
        assert_eq!(
            revocations_of(&json!({"sid":"s","sub":"u","notBefore":5,"expiresAt":10}))
                .map(|r| r.len()),
            Some(2)
        );
        for bad in [
            json!({"sid":"s"}),
            json!({"sub":"u","expiresAt":10}),
            json!({"sid":"","expiresAt":10}),
            json!({"sid":"s","expiresAt":"soon"}),
            json!("s"),
        ] {
            assert_eq!(revocations_of(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_synced_policy_is_swapped_in_and_decisions_keep_their_role_names() {
        let slot = Arc::new(PolicySlot::default());
        let policy = LocalPolicy::Synced(slot.clone());
        let principal = Principal::from_claims(
            json!({"sub":"u","exp":u64::MAX,"roles":["midaz-viewer-role"]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            &ClaimMapping::default(),
        )
        .unwrap();
        let decide = |p: &LocalPolicy| {
            p.decide(&principal, "midaz", "ledgers", crate::Action::Get)
                .map(|d| d.is_allowed())
        };
        assert_eq!(decide(&policy), None);
        assert!(policy.with(|p| p.is_none()));
        slot.store(CompiledPolicy::midaz());
        let first = policy.decide(&principal, "midaz", "ledgers", crate::Action::Get);
        assert_eq!(
            first,
            Some(Decision::Allow {
                role: "midaz-viewer-role"
            })
        );
        let empty = CompiledPolicy::compile(&Policy {
            version: 1,
            default_user_roles: Vec::new(),
            roles: Vec::new(),
            groups: Vec::new(),
        })
        .unwrap();
        slot.store(empty);
        // The first decision still reads its role name after the swap.
        assert!(first.is_some_and(|d| d.is_allowed()));
        assert_eq!(decide(&policy), Some(false));
        assert!(policy.with(|p| p.is_some_and(|p| !p.has_role("midaz-viewer-role"))));
    }

    #[test]
    fn role_names_fill_segment_after_segment() {
        let names = RoleNames::default();
        for i in 0..500 {
            let name = format!("role-{i}");
            assert_eq!(names.intern(&name), Some(name.as_str()));
        }
        assert_eq!(names.intern("role-7"), Some("role-7"));
        assert_eq!(names.index.lock().unwrap().len(), 500);
    }
}
