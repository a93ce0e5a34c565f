//! Keys fetched from a JWKS URL: cached, refreshed single-flight and rate-limited when an
//! unknown `kid` appears, refreshed in the background when old, and served stale while the
//! key source is down.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::error::AuthError;
use crate::keys::KeySet;

/// A JWKS document larger than this is refused (a real one is a few KiB).
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// One successful fetch.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) keys: KeySet,
    pub(crate) at: Instant,
    /// The source's key epoch when these keys were stored (see [`JwksSource::epoch`]).
    pub(crate) epoch: u64,
}

/// A JWKS endpoint and the keys last fetched from it.
#[derive(Debug)]
pub(crate) struct JwksSource {
    url: String,
    /// `url` without its password, for logs and errors.
    shown_url: String,
    client: reqwest::Client,
    current: RwLock<Option<Arc<Fetched>>>,
    /// Held while fetching: the single flight. Holds the time the last attempt ended.
    gate: Arc<tokio::sync::Mutex<Option<Instant>>>,
    background_refresh: AtomicBool,
    /// Bumped whenever a fetch drops or changes a key that the previous fetch held.
    epoch: AtomicU64,
    min_interval: Duration,
    max_age: Duration,
}

impl JwksSource {
    pub(crate) fn new(
        url: String,
        client: reqwest::Client,
        min_interval: Duration,
        max_age: Duration,
    ) -> JwksSource {
        JwksSource {
            shown_url: crate::config::redact_url(&url),
            url,
            client,
            current: RwLock::new(None),
            gate: Arc::new(tokio::sync::Mutex::new(None)),
            background_refresh: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            min_interval,
            max_age,
        }
    }

    /// The keys last fetched, if any.
    pub(crate) fn current(&self) -> Option<Arc<Fetched>> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, fetched: Arc<Fetched>) {
        match self.current.write() {
            Ok(mut guard) => *guard = Some(fetched),
            Err(poisoned) => *poisoned.into_inner() = Some(fetched),
        }
    }

    /// The key epoch: it changes when a fetch drops a key (or changes the key behind a `kid`)
    /// that the previous fetch held, so that tokens verified with the old keys are verified
    /// again instead of being served from a cache.
    #[inline]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Whether the current keys are old enough for a background refresh.
    pub(crate) fn is_stale(&self, fetched: &Fetched) -> bool {
        fetched.at.elapsed() >= self.max_age
    }

    /// Refreshes the keys unless another caller already did since `seen` was read, or the last
    /// attempt ended less than `min_interval` ago. Concurrent callers wait for one fetch.
    ///
    /// The fetch runs in a task of its own (when a Tokio runtime is at hand) that holds the
    /// single-flight gate: a caller that goes away — a client hanging up — neither cancels it
    /// nor lets the next caller find "attempted just now" with nothing fetched.
    ///
    /// Returns the newest keys (possibly still `seen`). With no keys at all and no fetch
    /// possible, returns [`AuthError::Unavailable`].
    pub(crate) async fn refresh(
        self: &Arc<Self>,
        seen: Option<&Arc<Fetched>>,
    ) -> Result<Arc<Fetched>, AuthError> {
        let mut last_attempt = Arc::clone(&self.gate).lock_owned().await;
        let now_current = self.current();
        let changed = match (&now_current, seen) {
            (Some(now), Some(seen)) => !Arc::ptr_eq(now, seen),
            (Some(_), None) => true,
            _ => false,
        };
        let too_soon = last_attempt.is_some_and(|t| t.elapsed() < self.min_interval);
        if changed || too_soon {
            return now_current.ok_or_else(|| self.unavailable("no keys yet, last fetch failed"));
        }
        *last_attempt = Some(Instant::now());
        let source = Arc::clone(self);
        let attempt = async move {
            let result = source.fetch().await;
            // The interval runs from the end of an attempt: a key source slower than the
            // interval is not fetched back to back.
            *last_attempt = Some(Instant::now());
            let outcome = source.complete(result, now_current);
            drop(last_attempt);
            outcome
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn(attempt)
                .await
                .unwrap_or_else(|_| Err(self.unavailable("the JWKS fetch task failed"))),
            Err(_) => attempt.await,
        }
    }

    /// Stores the keys of a successful fetch (bumping the key epoch when a key was dropped or
    /// changed), or logs a failed one; returns the keys to use.
    fn complete(
        &self,
        result: Result<KeySet, String>,
        now_current: Option<Arc<Fetched>>,
    ) -> Result<Arc<Fetched>, AuthError> {
        match result {
            Ok(keys) => {
                tracing::debug!(url = %self.shown_url, keys = keys.len(), "fetched JWKS");
                let epoch = match &now_current {
                    Some(old) if !keys.retains_all_of(&old.keys) => {
                        tracing::info!(url = %self.shown_url,
                            "the JWKS dropped or changed a key: tokens verified with it are checked again");
                        self.epoch.fetch_add(1, Ordering::AcqRel) + 1
                    }
                    _ => self.epoch(),
                };
                let fetched = Arc::new(Fetched {
                    keys,
                    at: Instant::now(),
                    epoch,
                });
                self.store(fetched.clone());
                Ok(fetched)
            }
            Err(detail) => {
                tracing::warn!(url = %self.shown_url, error = %detail, stale = now_current.is_some(),
                    "JWKS fetch failed; serving the keys already known");
                now_current.ok_or_else(|| self.unavailable(&detail))
            }
        }
    }

    /// Starts a background refresh if none is running (needs a Tokio runtime; without one the
    /// keys are refreshed on the next unknown `kid` instead).
    pub(crate) fn refresh_in_background(self: &Arc<Self>, seen: Arc<Fetched>) {
        if self.background_refresh.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.background_refresh.store(false, Ordering::Release);
            return;
        };
        let source = Arc::clone(self);
        runtime.spawn(async move {
            let _ = source.refresh(Some(&seen)).await;
            source.background_refresh.store(false, Ordering::Release);
        });
    }

    fn unavailable(&self, detail: &str) -> AuthError {
        AuthError::Unavailable {
            detail: format!("key source {}: {detail}", self.shown_url),
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let mut response = self
            .client
            .get(&self.url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err("JWKS document too large".to_owned());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| e.without_url().to_string())?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err("JWKS document too large".to_owned());
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::from_jwks_json(&body).map_err(|e| e.to_string())
    }
}
