//! Throttling of failed credential checks: per username, per client id and per client address.
//!
//! After `max_failures` failures within `window`, a key is locked for `window`; each lock-out
//! that follows another doubles the lock (up to one hour). A locked key is answered 429 with
//! `Retry-After` before any password is checked, so a locked attacker costs no hashing.
//!
//! A check is reserved before it runs ([`Throttle::begin`]) and counted when it ends
//! ([`Attempt::failed`], [`Attempt::succeeded`]): checks still running count towards the limit,
//! so guesses sent in parallel cannot all be checked before the first failure is counted.
//!
//! An address (`address:…` keys) may fail [`ADDRESS_FAILURE_FACTOR`] times as often: many
//! users share one (an office, a NAT, a proxy), and one of them mistyping a password must not
//! lock the others out; a guesser spreading over usernames still meets the address limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_LOCK: Duration = Duration::from_secs(3600);
/// How many times `max_failures` an `address:` key may fail before it is locked.
pub const ADDRESS_FAILURE_FACTOR: u32 = 10;
/// Keys kept at most; beyond it, idle entries are dropped first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: Instant,
    lockouts: u32,
    locked_until: Option<Instant>,
    last_seen: Instant,
    /// Checks begun and not yet ended.
    in_flight: u32,
}

/// Retry-After for a request refused because the checks already running for its keys would
/// reach the limit: they end within a hash's time.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// A reserved credential check; end it with [`failed`](Attempt::failed) or
/// [`succeeded`](Attempt::succeeded). Dropped without either (the caller went away), it is
/// released without counting.
#[derive(Debug)]
pub struct Attempt<'t> {
    throttle: &'t Throttle,
    keys: Vec<String>,
}

impl Attempt<'_> {
    /// Counts a failure against every key; locks those that reach the limit.
    pub fn failed(mut self) {
        let keys = std::mem::take(&mut self.keys);
        self.throttle.end(&keys, Outcome::Failed);
    }

    /// Clears the failures of the first key (the username or client id; not the address, nor
    /// any lock-out history).
    pub fn succeeded(mut self) {
        let keys = std::mem::take(&mut self.keys);
        self.throttle.end(&keys, Outcome::Succeeded);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        // Empty once ended by `failed` or `succeeded`.
        if !self.keys.is_empty() {
            self.throttle.end(&self.keys, Outcome::Abandoned);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Failed,
    Succeeded,
    Abandoned,
}

/// Failure counters, shared by the handlers of one process.
#[derive(Debug)]
pub struct Throttle {
    max_failures: u32,
    window: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    /// A throttle locking after `max_failures` failures within `window`.
    pub fn new(max_failures: u32, window: Duration) -> Throttle {
        Throttle {
            max_failures: max_failures.max(1),
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a check of `keys` would be refused now (see [`begin`](Throttle::begin)),
    /// without reserving one: lets a caller refuse early, before work that comes ahead of the
    /// check itself.
    pub fn check(&self, keys: &[String]) -> Result<(), Duration> {
        self.begin(keys).map(drop)
    }

    /// Reserves a check for `keys`; refused with the time to wait when a key is locked, or
    /// when its failures plus the checks already running for it reach its limit.
    pub fn begin(&self, keys: &[String]) -> Result<Attempt<'_>, Duration> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let window = self.window;
            entries.retain(|_, e| {
                e.in_flight > 0
                    || now.duration_since(e.last_seen) < window.saturating_mul(2)
                    || e.locked_until.is_some_and(|u| u > now)
            });
        }
        let mut wait = None::<Duration>;
        for key in keys {
            let Some(entry) = entries.get_mut(key) else {
                continue;
            };
            self.refresh(entry, now);
            if let Some(until) = entry.locked_until.filter(|u| *u > now) {
                wait = wait.max(Some(until - now));
            } else if entry.failures + entry.in_flight >= self.limit_of(key) {
                wait = wait.max(Some(BUSY_RETRY));
            }
        }
        if let Some(wait) = wait {
            return Err(wait);
        }
        for key in keys {
            let entry = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                window_start: now,
                lockouts: 0,
                locked_until: None,
                last_seen: now,
                in_flight: 0,
            });
            entry.in_flight += 1;
            entry.last_seen = now;
        }
        Ok(Attempt {
            throttle: self,
            keys: keys.to_vec(),
        })
    }

    /// Forgets a lock-out long past and a window that is over.
    fn refresh(&self, entry: &mut Entry, now: Instant) {
        // A lock-out long past (two windows after it ended) is forgiven.
        if let Some(until) = entry.locked_until
            && now > until + self.window.saturating_mul(2)
        {
            entry.lockouts = 0;
            entry.locked_until = None;
        }
        if now.duration_since(entry.window_start) > self.window {
            entry.failures = 0;
            entry.window_start = now;
        }
    }

    fn end(&self, keys: &[String], outcome: Outcome) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for (index, key) in keys.iter().enumerate() {
            let Some(entry) = entries.get_mut(key) else {
                continue;
            };
            entry.in_flight = entry.in_flight.saturating_sub(1);
            entry.last_seen = now;
            match outcome {
                Outcome::Abandoned => {}
                Outcome::Succeeded => {
                    if index == 0 {
                        entry.failures = 0;
                    }
                }
                Outcome::Failed => {
                    self.refresh(entry, now);
                    entry.failures += 1;
                    if entry.failures >= self.limit_of(key) {
                        let factor = 1u32 << entry.lockouts.min(16);
                        let lock = self.window.saturating_mul(factor).min(MAX_LOCK);
                        entry.locked_until = Some(now + lock);
                        entry.lockouts += 1;
                        entry.failures = 0;
                        entry.window_start = now;
                    }
                }
            }
        }
    }

    /// The failures `key` may have within a window.
    fn limit_of(&self, key: &str) -> u32 {
        if key.starts_with("address:") {
            self.max_failures.saturating_mul(ADDRESS_FAILURE_FACTOR)
        } else {
            self.max_failures
        }
    }
}

/// `Retry-After` seconds for a remaining lock: rounded up, at least 1.
pub fn retry_after_secs(remaining: Duration) -> u64 {
    u64::try_from(remaining.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(throttle: &Throttle, keys: &[String]) {
        throttle.begin(keys).expect("not locked").failed();
    }

    /// The wait a new check of `keys` is refused with, if it is (the probe is abandoned).
    fn refused(throttle: &Throttle, keys: &[String]) -> Option<Duration> {
        throttle.begin(keys).err()
    }

    #[test]
    fn locks_after_the_limit_and_doubles_on_repeat() {
        let throttle = Throttle::new(3, Duration::from_secs(60));
        let keys = vec!["user:alice".to_owned()];
        for _ in 0..2 {
            fail(&throttle, &keys);
            assert!(refused(&throttle, &keys).is_none());
        }
        fail(&throttle, &keys);
        let first = refused(&throttle, &keys).expect("locked");
        assert!(first > Duration::from_secs(55) && first <= Duration::from_secs(60));
        assert!(refused(&throttle, &["user:bob".to_owned()]).is_none());
    }

    #[test]
    fn checks_running_in_parallel_count_towards_the_limit() {
        let throttle = Throttle::new(3, Duration::from_secs(60));
        let keys = vec!["user:alice".to_owned(), "address:10.0.0.1".to_owned()];
        let running: Vec<_> = (0..3)
            .map(|_| throttle.begin(&keys).expect("free"))
            .collect();
        assert_eq!(
            refused(&throttle, &keys),
            Some(BUSY_RETRY),
            "a fourth guess waits"
        );
        for attempt in running {
            attempt.failed();
        }
        let lock = refused(&throttle, &keys).expect("locked after three failures");
        assert!(lock > Duration::from_secs(55), "{lock:?}");
    }

    #[test]
    fn an_abandoned_check_frees_its_place_without_counting() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let keys = vec!["user:carol".to_owned()];
        for _ in 0..5 {
            drop(throttle.begin(&keys).expect("free"));
        }
        fail(&throttle, &keys);
        assert!(refused(&throttle, &keys).is_none(), "one failure of two");
    }

    #[test]
    fn an_address_may_fail_more_often_than_a_user() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let address = vec!["address:127.0.0.1".to_owned()];
        for _ in 0..(2 * ADDRESS_FAILURE_FACTOR - 1) {
            fail(&throttle, &address);
        }
        assert!(refused(&throttle, &address).is_none());
        fail(&throttle, &address);
        assert!(refused(&throttle, &address).is_some());
    }

    #[test]
    fn success_resets_the_count_of_the_first_key_only() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let keys = vec!["client:x".to_owned(), "address:10.0.0.2".to_owned()];
        fail(&throttle, &keys);
        throttle.begin(&keys).expect("free").succeeded();
        fail(&throttle, &keys);
        assert!(refused(&throttle, &keys[..1]).is_none());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    }
}
