//! Keys fetched from a JWKS URL: cached, refreshed single-flight and rate-limited when an
//! unknown `kid` appears, refreshed in the background when old, and served stale while the
//! key source is down.

use std::sync::atomic::{AtomicBool, Ordering};
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
}

/// A JWKS endpoint and the keys last fetched from it.
#[derive(Debug)]
pub(crate) struct JwksSource {
    url: String,
    client: reqwest::Client,
    current: RwLock<Option<Arc<Fetched>>>,
    /// Held while fetching: the single flight. Holds the time of the last attempt.
    gate: tokio::sync::Mutex<Option<Instant>>,
    background_refresh: AtomicBool,
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
            url,
            client,
            current: RwLock::new(None),
            gate: tokio::sync::Mutex::new(None),
            background_refresh: AtomicBool::new(false),
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

    /// Whether the current keys are old enough for a background refresh.
    pub(crate) fn is_stale(&self, fetched: &Fetched) -> bool {
        fetched.at.elapsed() >= self.max_age
    }

    /// Refreshes the keys unless another caller already did since `seen` was read, or the last
    /// attempt was less than `min_interval` ago. Concurrent callers wait for one fetch.
    ///
    /// Returns the newest keys (possibly still `seen`). With no keys at all and no fetch
    /// possible, returns [`AuthError::Unavailable`].
    pub(crate) async fn refresh(
        &self,
        seen: Option<&Arc<Fetched>>,
    ) -> Result<Arc<Fetched>, AuthError> {
        let mut last_attempt = self.gate.lock().await;
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
        match self.fetch().await {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.len(), "fetched JWKS");
                let fetched = Arc::new(Fetched {
                    keys,
                    at: Instant::now(),
                });
                self.store(fetched.clone());
                Ok(fetched)
            }
            Err(detail) => {
                tracing::warn!(url = %self.url, error = %detail, stale = now_current.is_some(),
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
            detail: format!("key source {}: {detail}", self.url),
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
