//! Login throttle counters shared by every server replica through Valkey (`VALKEY_URL`, SPEC
//! §7), so that a guesser cannot multiply its attempts by the number of replicas.
//!
//! Each replica keeps its own [`Throttle`](crate::throttle::Throttle) and also counts in
//! Valkey: a password check is pending there while it runs ([`SharedThrottle::reserve`]), and
//! admitted only while the key's failures plus its pending checks stay within the limit, so
//! parallel guesses spread over the replicas get no more checks than one replica gives. A key
//! whose failures reach its limit is locked for every replica, for the window doubled by each
//! earlier lock-out (up to one hour), as the local throttle does. Keys are
//! `<prefix>:throttle:v1:{fails,pending,lock,lockouts}:<sha-256 of the throttle key>`: fixed
//! size, and no username or address stored in Valkey. Every entry carries a TTL.
//!
//! The counters are kept in a [`lib_auth::Store`]: the server builds a [`lib_auth::ValkeyStore`]
//! on `VALKEY_URL`; without it there is no other replica to share with and only the local
//! throttle runs. Valkey unreachable: each call gives up after
//! [`lib_auth::VALKEY_CALL_TIMEOUT`] (the store logs once per outage), and the replica's own
//! counters go on applying; it never admits what the local throttle refuses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lib_auth::Store as SharedStore;

use crate::secret::sha256;
use crate::throttle::ADDRESS_FAILURE_FACTOR;

const MAX_LOCK: Duration = Duration::from_secs(3600);

/// The most a login waits for the shared throttle in all (reserving, then settling); past it
/// the login goes on with the replica's own throttle only (a slow Valkey must not make every
/// login slow).
pub const RESERVE_BUDGET: Duration = Duration::from_millis(300);

/// How long a pending count lives after the last check that touched it (renewed by each): it
/// is back at 0 once the checks end, and must never expire under checks still running.
const PENDING_TTL: Duration = Duration::from_secs(3600);

/// The wait answered when a key is busy with checks under way (not locked), as locally.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// The shared counters.
#[derive(Debug, Clone)]
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

    fn limit_of(&self, key: &str) -> i64 {
        let limit = if key.starts_with("address:") {
            self.max_failures.saturating_mul(ADDRESS_FAILURE_FACTOR)
        } else {
            self.max_failures
        };
        i64::from(limit)
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

    /// Admits a password check of `keys` on behalf of every replica: the check is counted as
    /// pending until it ends, and admitted only while each key's failures plus pending checks
    /// stay within its limit, so guesses sent in parallel to all replicas get no more checks
    /// than one replica would give. `Err(wait)`: refused (locked, at the limit of failures, or
    /// busy with checks under way: then retry after a second, as locally). `Ok(None)`: the
    /// store cannot be reached, or did not answer within [`RESERVE_BUDGET`]; the replica's own
    /// throttle decides alone.
    ///
    /// The work runs as a task of its own, never cancelled halfway: a reservation that comes
    /// too late (or for a request gone meanwhile) is dropped, which takes back what it counted.
    pub async fn reserve(&self, keys: &[String]) -> Result<Option<Reservation>, Duration> {
        let started = Instant::now();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (throttle, owned) = (self.clone(), keys.to_vec());
        tokio::spawn(async move {
            let _ = sender.send(throttle.admit(owned).await);
        });
        match tokio::time::timeout(RESERVE_BUDGET, receiver).await {
            Ok(Ok(Ok(Some(mut reservation)))) => {
                reservation.budget = RESERVE_BUDGET.saturating_sub(started.elapsed());
                Ok(Some(reservation))
            }
            Ok(Ok(Err(wait))) => Err(wait),
            _ => Ok(None),
        }
    }

    async fn admit(&self, keys: Vec<String>) -> Result<Option<Reservation>, Duration> {
        let mut reservation = Reservation {
            throttle: self.clone(),
            pending: Vec::new(),
            user: keys.first().cloned(),
            settled: false,
            budget: Duration::ZERO,
        };
        let mut counts = Vec::with_capacity(keys.len());
        for key in &keys {
            let pending_key = Self::key("pending", key);
            let Ok(pending) = self.store.add(&pending_key, 1, PENDING_TTL).await else {
                return Ok(None);
            };
            reservation.pending.push(key.clone());
            // Kept alive while checks come: it must not expire under checks still running.
            let _ = self.store.expire(&pending_key, PENDING_TTL).await;
            counts.push(pending);
        }
        for (key, pending) in keys.iter().zip(counts) {
            let failures = match self.store.get(&Self::key("fails", key)).await {
                Ok(value) => value
                    .and_then(|v| String::from_utf8(v).ok())
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0),
                Err(_) => return Ok(None),
            };
            let limit = self.limit_of(key);
            if failures >= limit {
                // The attempt that reached the limit is locking the key.
                let wait = self.locked(std::slice::from_ref(key)).await;
                return Err(wait.unwrap_or(self.window));
            }
            if failures.saturating_add(pending) > limit {
                return Err(BUSY_RETRY);
            }
        }
        // Read last: a lock set while the counts were read (it is set before the failures
        // are cleared) is seen here.
        match self.locked(&keys).await {
            Some(wait) => Err(wait),
            None => Ok(Some(reservation)),
        }
    }

    /// Counts a failure of every key of `keys` (checked already: a client secret's comparison
    /// has no wait in it, so parallel guesses hardly overlap); locks, for every replica, those
    /// that reach their limit. Answers the longest lock now in force among them.
    pub async fn failed(&self, keys: &[String]) -> Option<Duration> {
        let mut longest = None::<Duration>;
        for key in keys {
            let Ok(count) = self
                .store
                .add(&Self::key("fails", key), 1, self.window)
                .await
            else {
                return longest;
            };
            if count >= self.limit_of(key) {
                longest = longest.max(self.lock_out(key).await);
            }
        }
        longest
    }

    /// Locks `key` for every replica, for the window doubled by each earlier lock-out (up to
    /// an hour), and restarts its count. The lock is set before the count is cleared, so that
    /// a reservation reading both sees one or the other.
    async fn lock_out(&self, key: &str) -> Option<Duration> {
        let lockouts_key = Self::key("lockouts", key);
        let lockouts = self.store.add(&lockouts_key, 1, MAX_LOCK).await.ok()?;
        let factor = 1u32
            << u32::try_from(lockouts.saturating_sub(1))
                .unwrap_or(0)
                .min(16);
        let lock = self.window.saturating_mul(factor).min(MAX_LOCK);
        let _ = self.store.set(&Self::key("lock", key), b"1", lock).await;
        let _ = self.store.delete(&Self::key("fails", key)).await;
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

    /// Takes back pending checks of `keys`.
    async fn release(&self, keys: &[String]) {
        for key in keys {
            let _ = self
                .store
                .add(&Self::key("pending", key), -1, PENDING_TTL)
                .await;
        }
    }
}

/// A password check admitted by [`SharedThrottle::reserve`], pending until it is settled with
/// [`failed`](Reservation::failed) or [`succeeded`](Reservation::succeeded). The answer waits
/// for the settling only as long as the reserving left of [`RESERVE_BUDGET`], so that a slow
/// Valkey costs a login at most that budget in all; the settling itself always runs to its end
/// (a task of its own), and until then the check stays pending. Dropped unsettled (the client
/// went away during the check), it counts for nothing, as in the local throttle.
#[derive(Debug)]
pub struct Reservation {
    throttle: SharedThrottle,
    /// The keys counted as pending.
    pending: Vec<String>,
    /// The username's key, whose failures a success clears.
    user: Option<String>,
    settled: bool,
    /// How long the answer may wait for the settling.
    budget: Duration,
}

impl Reservation {
    /// The password was wrong: a failure of every key; those that reach their limit are
    /// locked for every replica. The failure is counted before the check stops being pending,
    /// so that no other check slips in between.
    pub async fn failed(mut self) {
        self.settled = true;
        let (throttle, keys, budget) = (
            self.throttle.clone(),
            std::mem::take(&mut self.pending),
            self.budget,
        );
        settle(budget, async move {
            for key in &keys {
                let fails = SharedThrottle::key("fails", key);
                if let Ok(count) = throttle.store.add(&fails, 1, throttle.window).await
                    && count >= throttle.limit_of(key)
                {
                    throttle.lock_out(key).await;
                }
            }
            throttle.release(&keys).await;
        })
        .await;
    }

    /// The password was right: the username's failures are cleared; the address's stay
    /// (only failures count against it, so many users behind one address are not locked).
    pub async fn succeeded(mut self) {
        self.settled = true;
        let (throttle, keys, user, budget) = (
            self.throttle.clone(),
            std::mem::take(&mut self.pending),
            self.user.take(),
            self.budget,
        );
        settle(budget, async move {
            if let Some(user) = user {
                throttle.succeeded(&user).await;
            }
            throttle.release(&keys).await;
        })
        .await;
    }
}

/// Runs `work` as a task of its own, waiting for it at most `budget`.
async fn settle(budget: Duration, work: impl std::future::Future<Output = ()> + Send + 'static) {
    let task = tokio::spawn(work);
    let _ = tokio::time::timeout(budget, task).await;
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled || self.pending.is_empty() {
            return;
        }
        let (throttle, keys) = (self.throttle.clone(), std::mem::take(&mut self.pending));
        spawn(async move { throttle.release(&keys).await });
    }
}

/// Runs `task` on the current Tokio runtime; without one (never in the server) the pending
/// counts expire with their window.
fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lib_auth::LocalStore;

    /// Lets spawned settlements run.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    fn keys(user: &str, address: &str) -> [String; 2] {
        [format!("user:{user}"), format!("address:{address}")]
    }

    #[tokio::test]
    async fn parallel_checks_stop_at_the_limit_and_failures_lock_for_everyone() {
        let store: Arc<dyn SharedStore> = Arc::new(LocalStore::new("t", 1000));
        let window = Duration::from_secs(60);
        let a = SharedThrottle::new(store.clone(), 3, window);
        let b = SharedThrottle::new(store, 3, window);
        let k = keys("alice", "10.0.0.1");
        // Three checks at once, on two replicas: a fourth is refused while they run.
        let first = a.reserve(&k).await.unwrap().expect("store reachable");
        let second = b.reserve(&k).await.unwrap().expect("store reachable");
        let third = a.reserve(&k).await.unwrap().expect("store reachable");
        // Busy, not locked: retry shortly, as locally.
        assert_eq!(b.reserve(&k).await.unwrap_err(), Duration::from_secs(1));
        for reservation in [first, second, third] {
            reservation.failed().await;
        }
        let left = b.locked(&k).await.expect("locked for the other replica");
        assert!(left <= window && left > window - Duration::from_secs(5));
        assert!(a.reserve(&k).await.is_err());
    }

    #[tokio::test]
    async fn abandoned_and_successful_checks_count_for_nothing() {
        let store: Arc<dyn SharedStore> = Arc::new(LocalStore::new("t", 1000));
        let throttle = SharedThrottle::new(store.clone(), 1, Duration::from_secs(60));
        // Dropped during the check (the client went away): taken back.
        for _ in 0..5 {
            drop(throttle.reserve(&keys("bob", "10.0.0.2")).await.unwrap());
            settle().await;
        }
        throttle
            .reserve(&keys("bob", "10.0.0.2"))
            .await
            .expect("not counted")
            .expect("store reachable")
            .succeeded()
            .await;
        // The address may fail ten times as often as a username (limit 1 here): 30
        // successful logins of different users from it are never refused.
        for n in 0..30 {
            let reservation = throttle
                .reserve(&keys(&format!("u{n}"), "10.0.0.9"))
                .await
                .expect("admitted")
                .expect("store reachable");
            reservation.succeeded().await;
        }
        let address = SharedThrottle::key("pending", "address:10.0.0.9");
        assert_eq!(
            store.get(&address).await.unwrap().as_deref(),
            Some(&b"0"[..])
        );
    }

    /// A store whose every call takes 250 ms (within Valkey's own deadline).
    #[derive(Debug)]
    struct Slow(LocalStore);

    impl SharedStore for Slow {
        fn get<'a>(&'a self, key: &'a str) -> lib_auth::StoreFuture<'a, Option<Vec<u8>>> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(250)).await;
                self.0.get(key).await
            })
        }
        fn set<'a>(
            &'a self,
            key: &'a str,
            value: &'a [u8],
            ttl: Duration,
        ) -> lib_auth::StoreFuture<'a, ()> {
            self.0.set(key, value, ttl)
        }
        fn delete<'a>(&'a self, key: &'a str) -> lib_auth::StoreFuture<'a, ()> {
            self.0.delete(key)
        }
        fn add<'a>(
            &'a self,
            key: &'a str,
            amount: i64,
            ttl: Duration,
        ) -> lib_auth::StoreFuture<'a, i64> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(250)).await;
                self.0.add(key, amount, ttl).await
            })
        }
        fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> lib_auth::StoreFuture<'a, ()> {
            self.0.expire(key, ttl)
        }
        fn remaining<'a>(&'a self, key: &'a str) -> lib_auth::StoreFuture<'a, Option<Duration>> {
            self.0.remaining(key)
        }
    }

    /// Was: with a Valkey slow enough that reserving outlived its budget, a count applied
    /// while the reservation was given up stayed pending (an office address was refused for
    /// the pending count's life after 51 successful logins in a slow spell); and a login
    /// waited for reserving and settling one after the other (about 600 ms).
    #[tokio::test]
    async fn a_slow_store_costs_one_budget_and_leaves_nothing_pending() {
        let local = LocalStore::new("t", 1000);
        let throttle =
            SharedThrottle::new(Arc::new(Slow(local.clone())), 5, Duration::from_secs(60));
        let k = keys("carol", "10.0.0.3");
        let started = Instant::now();
        assert!(matches!(throttle.reserve(&k).await, Ok(None)), "given up");
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
        // The reservation finishes in the background, finds nobody waiting, and takes back
        // what it counted.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for key in &k {
            let pending = SharedThrottle::key("pending", key);
            assert_eq!(
                local.get(&pending).await.unwrap().as_deref(),
                Some(&b"0"[..]),
                "{key}"
            );
        }
    }
}
