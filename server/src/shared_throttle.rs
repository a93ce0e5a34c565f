//! Login throttle counters shared by every server replica through Valkey (`VALKEY_URL`, SPEC
//! §7), so that a guesser cannot multiply its attempts by the number of replicas.
//!
//! Each replica keeps its own [`Throttle`](crate::throttle::Throttle) (it reserves checks in
//! flight, which only a replica can see) and also counts every failure in Valkey; a key that
//! reaches its limit there is locked for every replica, for the window doubled by each earlier
//! lock-out (up to one hour), as the local throttle does. Keys are
//! `<prefix>:throttle:v1:{fails,lock,lockouts}:<sha-256 of the throttle key>`: fixed size, and
//! no username or address stored in Valkey. Every entry carries a TTL.
//!
//! The counters are kept in a [`lib_auth::Store`]: the server builds a [`lib_auth::ValkeyStore`]
//! on `VALKEY_URL`; without it there is no other replica to share with and only the local
//! throttle runs. Valkey unreachable: each call gives up after
//! [`lib_auth::VALKEY_CALL_TIMEOUT`] (the store logs once per outage), and the replica's own
//! counters go on applying; it never admits what the local throttle refuses.

use std::sync::Arc;
use std::time::Duration;

use lib_auth::Store as SharedStore;

use crate::secret::sha256;
use crate::throttle::ADDRESS_FAILURE_FACTOR;

const MAX_LOCK: Duration = Duration::from_secs(3600);

/// The shared counters.
#[derive(Debug)]
pub struct SharedThrottle {
    store: Arc<dyn SharedStore>,
    max_failures: u32,
    window: Duration,
}

impl SharedThrottle {
    /// Counters in `store` (a [`lib_auth::ValkeyStore`] on `VALKEY_URL`), locking after
    /// `max_failures` failures within `window` (an address: ten times as many).
    pub fn new(store: Arc<dyn SharedStore>, max_failures: u32, window: Duration) -> SharedThrottle {
        SharedThrottle {
            store,
            max_failures: max_failures.max(1),
            window,
        }
    }

    fn key(kind: &str, key: &str) -> String {
        let digest: String = sha256(key).iter().map(|b| format!("{b:02x}")).collect();
        format!("throttle:v1:{kind}:{digest}")
    }

    fn limit_of(&self, key: &str) -> u32 {
        if key.starts_with("address:") {
            self.max_failures.saturating_mul(ADDRESS_FAILURE_FACTOR)
        } else {
            self.max_failures
        }
    }

    /// The longest lock any replica set on one of `keys`, if any is in force (none when the
    /// store cannot be reached: the replica's own throttle still applies). Never more than the
    /// longest lock this throttle sets, whatever the store says.
    pub async fn locked(&self, keys: &[String]) -> Option<Duration> {
        let mut longest = None;
        for key in keys {
            let Ok(left) = self.store.remaining(&Self::key("lock", key)).await else {
                return longest;
            };
            longest = longest.max(left.map(|left| left.min(MAX_LOCK)));
        }
        longest
    }

    /// Counts an attempt of every key of `keys` before it is checked, so that guesses made in
    /// parallel on every replica are all counted before any is checked. `Err(wait)` when one
    /// of them is past its limit: the attempt must not be checked.
    pub async fn reserve(&self, keys: &[String]) -> Result<Reservation, Duration> {
        let mut counts = Vec::with_capacity(keys.len());
        for key in keys {
            let count = self
                .store
                .add(&Self::key("fails", key), 1, self.window)
                .await
                .ok();
            counts.push(count);
            if count.is_some_and(|n| n > i64::from(self.limit_of(key))) {
                // The attempt that reached the limit may still be being checked: its lock
                // may not be set yet.
                let wait = self.locked(std::slice::from_ref(key)).await;
                return Err(wait.unwrap_or(self.window));
            }
        }
        Ok(Reservation { counts })
    }

    /// The attempt of [`reserve`](Self::reserve) failed: the keys it brought to their limit are
    /// locked for every replica. Answers the longest lock now in force among them.
    pub async fn failed_reserved(
        &self,
        keys: &[String],
        reservation: &Reservation,
    ) -> Option<Duration> {
        let mut longest = None::<Duration>;
        for (key, count) in keys.iter().zip(&reservation.counts) {
            // Only the attempt that reached the limit locks: parallel failures past it were
            // refused unchecked, and must not lengthen the lock-out.
            if *count == Some(i64::from(self.limit_of(key))) {
                longest = longest.max(self.lock_out(key).await);
            }
        }
        longest
    }

    /// The attempt of [`reserve`](Self::reserve) succeeded: the failures of `keys[0]` (the
    /// username) are cleared, and the attempt no longer counts against the other keys (the
    /// address).
    pub async fn succeeded_reserved(&self, keys: &[String], reservation: &Reservation) {
        if let Some(first) = keys.first() {
            self.succeeded(first).await;
        }
        for (key, count) in keys.iter().zip(&reservation.counts).skip(1) {
            if count.is_some() {
                let _ = self
                    .store
                    .add(&Self::key("fails", key), -1, self.window)
                    .await;
            }
        }
    }

    /// Counts a failure of every key of `keys` (checked already: a client secret's comparison
    /// has no wait in it, so parallel guesses hardly overlap); locks, for every replica, those
    /// that reach their limit. Answers the longest lock now in force among them.
    pub async fn failed(&self, keys: &[String]) -> Option<Duration> {
        let mut longest = None::<Duration>;
        for key in keys {
            let fails = Self::key("fails", key);
            let Ok(count) = self.store.add(&fails, 1, self.window).await else {
                return longest;
            };
            if count >= i64::from(self.limit_of(key)) {
                longest = longest.max(self.lock_out(key).await);
            }
        }
        longest
    }

    /// Locks `key` for every replica, for the window doubled by each earlier lock-out (up to
    /// an hour), and restarts its count.
    async fn lock_out(&self, key: &str) -> Option<Duration> {
        let lockouts_key = Self::key("lockouts", key);
        let lockouts = self.store.add(&lockouts_key, 1, MAX_LOCK).await.ok()?;
        let _ = self.store.delete(&Self::key("fails", key)).await;
        let factor = 1u32
            << u32::try_from(lockouts.saturating_sub(1))
                .unwrap_or(0)
                .min(16);
        let lock = self.window.saturating_mul(factor).min(MAX_LOCK);
        let _ = self.store.set(&Self::key("lock", key), b"1", lock).await;
        // A lock-out long past (two windows after it ended) is forgiven, as locally.
        let _ = self
            .store
            .expire(&lockouts_key, lock + self.window.saturating_mul(2))
            .await;
        Some(lock)
    }

    /// Clears the failures of `key` (a username or client id that just succeeded).
    pub async fn succeeded(&self, key: &str) {
        let _ = self.store.delete(&Self::key("fails", key)).await;
    }
}

/// What [`SharedThrottle::reserve`] counted: each key's count with this attempt (`None` where
/// the store could not be reached).
#[derive(Debug)]
pub struct Reservation {
    counts: Vec<Option<i64>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use lib_auth::LocalStore;

    #[tokio::test]
    async fn limits_lock_for_everyone_sharing_the_store_and_lockouts_double() {
        let store: Arc<dyn SharedStore> = Arc::new(LocalStore::new("t", 1000));
        let window = Duration::from_secs(60);
        let a = SharedThrottle::new(store.clone(), 3, window);
        let b = SharedThrottle::new(store, 3, window);
        let keys = ["user:alice".to_owned(), "address:10.0.0.1".to_owned()];
        assert_eq!(a.failed(&keys).await, None);
        assert_eq!(b.failed(&keys).await, None);
        assert_eq!(a.locked(&keys).await, None);
        // The third failure, on either replica, locks the user (not yet the address) for both.
        assert_eq!(b.failed(&keys).await, Some(window));
        let left = a.locked(&keys).await.expect("locked for the other replica");
        assert!(left <= window && left > window - Duration::from_secs(5));
        // Three more: the second lock-out is twice as long.
        for _ in 0..2 {
            a.failed(&keys).await;
        }
        assert_eq!(a.failed(&keys).await, Some(window * 2));
        // Success clears failures, not locks.
        a.succeeded(&keys[0]).await;
        assert!(b.locked(&keys).await.is_some());
    }

    #[tokio::test]
    async fn successful_logins_do_not_count_against_their_address() {
        let store: Arc<dyn SharedStore> = Arc::new(LocalStore::new("t", 1000));
        let throttle = SharedThrottle::new(store.clone(), 1, Duration::from_secs(60));
        // The address may fail ten times as often as a username (limit 1 here): 30
        // successful logins from it, one at a time, are never refused.
        for n in 0..30 {
            let keys = [format!("user:u{n}"), "address:10.0.0.9".to_owned()];
            let reservation = throttle.reserve(&keys).await.expect("admitted");
            throttle.succeeded_reserved(&keys, &reservation).await;
        }
        let address = SharedThrottle::key("fails", "address:10.0.0.9");
        assert_eq!(
            store.get(&address).await.unwrap().as_deref(),
            Some(&b"0"[..])
        );
    }
}
