//! Throttling of failed credential checks: per username, per client id and per client address.
//!
//! After `max_failures` failures within `window`, a key is locked for `window`; each lock-out
//! that follows another doubles the lock (up to one hour). A locked key is answered 429 with
//! `Retry-After` before any password is checked, so a locked attacker costs no hashing.
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

    /// The time left on the longest lock among `keys`, if any is locked.
    pub fn locked(&self, keys: &[String]) -> Option<Duration> {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|k| entries.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Counts a failure against every key; locks those that reach the limit.
    pub fn failed(&self, keys: &[String]) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let window = self.window;
            entries.retain(|_, e| {
                now.duration_since(e.last_seen) < window.saturating_mul(2)
                    || e.locked_until.is_some_and(|u| u > now)
            });
        }
        for key in keys {
            let entry = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                window_start: now,
                lockouts: 0,
                locked_until: None,
                last_seen: now,
            });
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
            entry.failures += 1;
            entry.last_seen = now;
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

    /// The failures `key` may have within a window.
    fn limit_of(&self, key: &str) -> u32 {
        if key.starts_with("address:") {
            self.max_failures.saturating_mul(ADDRESS_FAILURE_FACTOR)
        } else {
            self.max_failures
        }
    }

    /// Clears the counters of `keys` after a success (not the lock-out history).
    pub fn succeeded(&self, keys: &[String]) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            if let Some(entry) = entries.get_mut(key) {
                entry.failures = 0;
            }
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

    #[test]
    fn locks_after_the_limit_and_doubles_on_repeat() {
        let throttle = Throttle::new(3, Duration::from_secs(60));
        let keys = vec!["user:alice".to_owned()];
        for _ in 0..2 {
            throttle.failed(&keys);
            assert!(throttle.locked(&keys).is_none());
        }
        throttle.failed(&keys);
        let first = throttle.locked(&keys).expect("locked");
        assert!(first > Duration::from_secs(55) && first <= Duration::from_secs(60));
        for _ in 0..3 {
            throttle.failed(&keys);
        }
        let second = throttle.locked(&keys).expect("locked");
        assert!(second > Duration::from_secs(115), "{second:?}");
        assert!(throttle.locked(&["user:bob".to_owned()]).is_none());
    }

    #[test]
    fn an_address_may_fail_more_often_than_a_user() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let address = vec!["address:127.0.0.1".to_owned()];
        for _ in 0..(2 * ADDRESS_FAILURE_FACTOR - 1) {
            throttle.failed(&address);
        }
        assert!(throttle.locked(&address).is_none());
        throttle.failed(&address);
        assert!(throttle.locked(&address).is_some());
    }

    #[test]
    fn success_resets_the_count() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let keys = vec!["client:x".to_owned()];
        throttle.failed(&keys);
        throttle.succeeded(&keys);
        throttle.failed(&keys);
        assert!(throttle.locked(&keys).is_none());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    }
}
