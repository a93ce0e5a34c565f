//! Login throttle counters shared by every server replica through Valkey (`VALKEY_URL`, SPEC
//! §7), so that a guesser cannot multiply its attempts by the number of replicas.
//!
//! Each replica keeps its own [`Throttle`](crate::throttle::Throttle) and also counts in
//! Valkey: a password check is pending there while it runs ([`SharedThrottle::reserve`]), and
//! admitted only while the key's failures plus its pending checks stay within the limit, so
//! parallel guesses spread over the replicas get no more checks than one replica gives. A key
//! whose failures reach its limit is locked for every replica, for the window doubled by each
//! earlier lock-out (up to one hour), as the local throttle does. Every entry carries a TTL,
//! and no username or address is stored in Valkey: keys are
//! `<prefix>:throttle:v1:{fails,lock,lockouts}:<sha-256 of the throttle key>` and
//! `<prefix>:throttle:v1:pending:<slot>:<sha-256>`.
//!
//! Pending checks are counted in slots of [`PENDING_SLOT`] of wall-clock time: a check counts
//! in the slot it started in, and a task of its own moves it to each new slot while it runs.
//! A reservation reads only its own slot and the ones just before and after it (where a
//! check being moved may be), so a count that nobody takes back (a
//! replica killed during a check, a call Valkey ran after the replica gave up on it) stops
//! counting within two slots, whatever happens next. Replicas' clocks must agree to within a
//! few seconds (NTP), as for tokens' `exp`.
//!
//! The counters are kept in a [`lib_auth::Store`]: the server builds a [`lib_auth::ValkeyStore`]
//! on `VALKEY_URL`; without it there is no other replica to share with and only the local
//! throttle runs. Valkey unreachable: each call gives up after
//! [`lib_auth::VALKEY_CALL_TIMEOUT`] (the store logs once per outage), the replica's own
//! counters go on applying (it never admits what the local throttle refuses), and the
//! outcome of each check it admits alone is still sent to Valkey, which counts it if it has
//! come back meanwhile. Valkey answering, but too slowly for [`RESERVE_BUDGET`] (an overloaded replica or
//! Valkey): the login is refused as busy (429, retry in a second), logged once per spell; a
//! reservation it could not wait for would let guesses past the shared count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use lib_auth::Store as SharedStore;
use tokio::sync::oneshot;

use crate::secret::sha256;
use crate::throttle::ADDRESS_FAILURE_FACTOR;

const MAX_LOCK: Duration = Duration::from_secs(3600);

/// The most a login waits for the shared throttle in all (reserving, then settling). Reserving
/// past it, the login is refused as busy; settling past it, the answer goes out and the count
/// is finished in the background (the check stays pending until then).
pub const RESERVE_BUDGET: Duration = Duration::from_secs(1);

/// The length of a slot of pending counts: a count nobody takes back stops counting within
/// two slots.
pub const PENDING_SLOT: Duration = Duration::from_secs(5);

/// How long after a slot starts its checks are moved into it.
const SLOT_MARGIN: Duration = Duration::from_millis(5);

/// How long a slot's counter is kept (read for two slots, plus a margin for late releases).
const PENDING_TTL: Duration = Duration::from_secs(PENDING_SLOT.as_secs() * 4);

/// The wait answered when a key is busy with checks under way (not locked), as locally.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// The shared counters.
#[derive(Debug, Clone)]
pub struct SharedThrottle {
    store: Arc<dyn SharedStore>,
    max_failures: u32,
    window: Duration,
    /// [`PENDING_SLOT`], shorter in tests.
    slot: Duration,
    /// Whether the last reservation outlived [`RESERVE_BUDGET`] (logged once per spell).
    late: Arc<AtomicBool>,
}

/// How a reserved check ended.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// The password was wrong.
    Failed,
    /// The password was right.
    Succeeded,
}

/// A settled check, sent to the task that keeps its pending count.
#[derive(Debug)]
struct Settlement {
    outcome: Outcome,
    /// Told once the settlement is counted.
    done: oneshot::Sender<()>,
}

impl SharedThrottle {
    /// Counters in `store` (a [`lib_auth::ValkeyStore`] on `VALKEY_URL`), locking after
    /// `max_failures` failures within `window` (an address: ten times as many).
    pub fn new(store: Arc<dyn SharedStore>, max_failures: u32, window: Duration) -> SharedThrottle {
        SharedThrottle {
            store,
            max_failures: max_failures.max(1),
            window,
            slot: PENDING_SLOT,
            late: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same counters with pending slots of `slot` (tests).
    #[cfg(test)]
    fn with_slot(mut self, slot: Duration) -> SharedThrottle {
        self.slot = slot;
        self
    }

    fn key(kind: &str, key: &str) -> String {
        format!("throttle:v1:{kind}:{}", Self::digest(key))
    }

    fn digest(key: &str) -> String {
        sha256(key).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The counter of `key`'s checks pending in `slot`.
    fn pending_key(slot: u64, key: &str) -> String {
        format!("throttle:v1:pending:{slot}:{}", Self::digest(key))
    }

    /// The slot of now (wall clock, the same on every replica).
    fn current_slot(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let slot = self.slot.as_millis().max(1);
        u64::try_from(now.as_millis() / slot).unwrap_or(u64::MAX)
    }

    /// How long until the slot after `slot` starts (zero if it has).
    fn until_after(&self, slot: u64) -> Duration {
        let next = Duration::from_millis(
            slot.saturating_add(1)
                .saturating_mul(u64::try_from(self.slot.as_millis()).unwrap_or(u64::MAX)),
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        next.saturating_sub(now)
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
        let locks = join_all(keys.iter().map(|key| {
            let lock = Self::key("lock", key);
            async move { self.store.remaining(&lock).await }
        }))
        .await;
        locks
            .into_iter()
            .filter_map(Result::ok)
            .flatten()
            .map(|left| left.min(MAX_LOCK))
            .max()
    }

    /// Admits a password check of `keys` on behalf of every replica: the check is counted as
    /// pending until it ends, and admitted only while each key's failures plus pending checks
    /// stay within its limit, so guesses sent in parallel to all replicas get no more checks
    /// than one replica would give. `Err(wait)`: refused (locked, at the limit of failures, or
    /// busy: checks under way, or no answer within [`RESERVE_BUDGET`]; then retry after a
    /// second). A reservation that is not [`shared`](Reservation::is_shared): the store cannot
    /// be reached, and the replica's own throttle decides alone; the check's outcome is still
    /// sent.
    ///
    /// The work runs as a task of its own, never cancelled halfway, which then keeps the
    /// pending count until the check is settled or dropped: a reservation that comes too late
    /// (or for a request gone meanwhile) takes back what it counted.
    pub async fn reserve(&self, keys: &[String]) -> Result<Reservation, Duration> {
        let started = Instant::now();
        let (answer, receiver) = oneshot::channel();
        let (throttle, keys) = (self.clone(), keys.to_vec());
        tokio::spawn(async move {
            let slot = match throttle.admit(&keys).await {
                Ok(Some(slot)) => slot,
                Ok(None) => {
                    let _ = answer.send(Ok(Reservation::unshared(throttle, keys)));
                    return;
                }
                Err(wait) => {
                    let _ = answer.send(Err(wait));
                    return;
                }
            };
            let (settle, settlement) = oneshot::channel();
            let reservation = Reservation(Kind::Kept {
                settle,
                budget: RESERVE_BUDGET.saturating_sub(started.elapsed()),
            });
            // Refused by a login gone meanwhile, the reservation is dropped with the channel:
            // the keeper then takes the count back at once.
            let _ = answer.send(Ok(reservation));
            throttle.keep(slot, keys, settlement).await;
        });
        match tokio::time::timeout(RESERVE_BUDGET, receiver).await {
            Ok(Ok(answer)) => {
                if self.late.swap(false, Ordering::Relaxed) {
                    tracing::info!("the shared login throttle answers in time again");
                }
                answer
            }
            // The task cannot end without answering; no answer in time is a busy key.
            _ => {
                if !self.late.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        budget_ms = RESERVE_BUDGET.as_millis(),
                        "the shared login throttle did not answer in time: logins are refused as busy (429, retry in a second) until it does"
                    );
                }
                Err(BUSY_RETRY)
            }
        }
    }

    /// Counts a pending check of every key of `keys` in the current slot and answers the slot
    /// if the check is admitted. Not admitted, it has taken back what it counted.
    async fn admit(&self, keys: &[String]) -> Result<Option<u64>, Duration> {
        let slot = self.current_slot();
        let mut counted = Vec::with_capacity(keys.len());
        let verdict = self.count_and_judge(slot, keys, &mut counted).await;
        if !matches!(verdict, Ok(Some(()))) {
            self.release(slot, &counted).await;
        }
        verdict.map(|admitted| admitted.map(|()| slot))
    }

    /// Counts the check in `slot` and judges it. Each step asks about every key at once (one
    /// round trip), the steps one after the other, in an order that never undercounts:
    ///
    /// 1. checks pending in the previous slot, 2. this check, counted in `slot`, 3. checks
    ///    in the next slot, and in the previous slot again. A keeper moves a check by counting
    ///    it in the new slot before taking it from the old one, so a check moved meanwhile
    ///    (from the previous slot into this one, or from this one into the next, if the slot
    ///    turned while this ran) is seen once or twice, never missed. And of two checks
    ///    counted at once in adjacent slots, each reads the other's slot after counting in its
    ///    own, so at least one of them sees the other;
    /// 4. failures, read after the pending checks: a settled check's failure is counted before
    ///    its pending count is taken back;
    /// 5. locks, read last: a lock is set before the failures it ends are cleared.
    async fn count_and_judge(
        &self,
        slot: u64,
        keys: &[String],
        counted: &mut Vec<String>,
    ) -> Result<Option<()>, Duration> {
        let before = self
            .counts(keys, |key| Self::pending_key(slot.saturating_sub(1), key))
            .await;
        let Ok(before) = before else {
            return Ok(None);
        };
        let added = join_all(keys.iter().map(|key| {
            let pending = Self::pending_key(slot, key);
            async move { self.store.add(&pending, 1, PENDING_TTL).await }
        }))
        .await;
        let mut now = Vec::with_capacity(keys.len());
        for (key, added) in keys.iter().zip(added) {
            if let Ok(count) = added {
                counted.push(key.clone());
                now.push(count);
            }
        }
        if now.len() < keys.len() {
            return Ok(None);
        }
        let (after, again) = tokio::join!(
            self.counts(keys, |key| Self::pending_key(slot.saturating_add(1), key)),
            self.counts(keys, |key| Self::pending_key(slot.saturating_sub(1), key)),
        );
        let (Ok(after), Ok(again)) = (after, again) else {
            return Ok(None);
        };
        let Ok(failures) = self.counts(keys, |key| Self::key("fails", key)).await else {
            return Ok(None);
        };
        for (i, key) in keys.iter().enumerate() {
            let limit = self.limit_of(key);
            if failures[i] >= limit {
                // The attempt that reached the limit is locking the key.
                let wait = self.locked(std::slice::from_ref(key)).await;
                return Err(wait.unwrap_or(self.window));
            }
            let pending = before[i]
                .max(again[i])
                .saturating_add(now[i])
                .saturating_add(after[i]);
            if failures[i].saturating_add(pending) > limit {
                return Err(BUSY_RETRY);
            }
        }
        match self.locked(keys).await {
            Some(wait) => Err(wait),
            None => Ok(Some(())),
        }
    }

    /// The counters `name` gives for each of `keys`, read at once.
    async fn counts(
        &self,
        keys: &[String],
        name: impl Fn(&str) -> String,
    ) -> Result<Vec<i64>, lib_auth::StoreError> {
        join_all(keys.iter().map(|key| {
            let counter = name(key);
            async move { self.count(&counter).await }
        }))
        .await
        .into_iter()
        .collect()
    }

    /// A counter's value (0 if absent or not a number).
    async fn count(&self, key: &str) -> Result<i64, lib_auth::StoreError> {
        Ok(self
            .store
            .get(key)
            .await?
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0))
    }

    /// Keeps an admitted check of `keys` pending, from `slot` on, moving it into each new slot
    /// while it runs, until it is settled (or its reservation dropped); then counts the
    /// outcome, and only then takes the pending check back, so that no other check slips in
    /// between.
    async fn keep(
        &self,
        mut slot: u64,
        keys: Vec<String>,
        mut settlement: oneshot::Receiver<Settlement>,
    ) {
        // The slot whose end the next move waits for: the check's own at first (at once if
        // admitting it took until the next slot), then the one of the last move, whether or
        // not the move worked.
        let mut tried = slot;
        let settled = loop {
            tokio::select! {
                settled = &mut settlement => break settled.ok(),
                () = tokio::time::sleep(self.until_after(tried) + SLOT_MARGIN) => {
                    tried = self.current_slot();
                    slot = self.move_to(slot, tried, &keys).await;
                }
            }
        };
        if let Some(Settlement { outcome, .. }) = &settled {
            match outcome {
                Outcome::Failed => self.count_failures(&keys).await,
                // The username's failures are cleared; the address's stay (only failures
                // count against it, so many users behind one address are not locked).
                Outcome::Succeeded => {
                    if let Some(user) = keys.first() {
                        self.succeeded(user).await;
                    }
                }
            }
        }
        self.release(slot, &keys).await;
        if let Some(Settlement { done, .. }) = settled {
            let _ = done.send(());
        }
    }

    /// Moves the pending checks of `keys` from slot `from` to slot `to`; answers where they
    /// are now (still `from` if Valkey could not count them in `to`).
    async fn move_to(&self, from: u64, to: u64, keys: &[String]) -> u64 {
        if to == from {
            return from;
        }
        let mut moved = Vec::with_capacity(keys.len());
        for key in keys {
            if self
                .store
                .add(&Self::pending_key(to, key), 1, PENDING_TTL)
                .await
                .is_err()
            {
                // Stays where it is: back out what was counted in `to`.
                self.release(to, &moved).await;
                return from;
            }
            moved.push(key.clone());
        }
        self.release(from, keys).await;
        to
    }

    /// Counts a failure of every key of `keys`, locking those that reach their limit.
    async fn count_failures(&self, keys: &[String]) {
        for key in keys {
            if let Ok(count) = self
                .store
                .add(&Self::key("fails", key), 1, self.window)
                .await
                && count >= self.limit_of(key)
            {
                self.lock_out(key).await;
            }
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

    /// Takes back pending checks of `keys` counted in `slot`.
    async fn release(&self, slot: u64, keys: &[String]) {
        for key in keys {
            let _ = self
                .store
                .add(&Self::pending_key(slot, key), -1, PENDING_TTL)
                .await;
        }
    }
}

/// A password check admitted by [`SharedThrottle::reserve`], to be settled with
/// [`failed`](Reservation::failed) or [`succeeded`](Reservation::succeeded).
///
/// Shared (Valkey answered), it is pending on every replica until settled. The answer waits
/// for the settling only as long as the reserving left of [`RESERVE_BUDGET`], so that a slow
/// Valkey costs a login at most that budget in all; the settling itself always runs to its end
/// (in the task that keeps the count), and until then the check stays pending. Dropped
/// unsettled (the client went away during the check), it counts for nothing, as in the local
/// throttle.
///
/// Not shared (Valkey unreachable: admitted by the replica's own throttle alone), its outcome
/// is still sent to Valkey, in the background, so that it counts for every replica if Valkey
/// takes it.
#[derive(Debug)]
pub struct Reservation(Kind);

#[derive(Debug)]
enum Kind {
    /// Pending on every replica.
    Kept {
        /// To the task keeping the pending count.
        settle: oneshot::Sender<Settlement>,
        /// How long the answer may wait for the settling.
        budget: Duration,
    },
    /// Admitted by this replica alone.
    Unshared {
        /// Where the outcome is sent.
        throttle: SharedThrottle,
        /// The throttle keys of the check.
        keys: Vec<String>,
    },
}

impl Reservation {
    fn unshared(throttle: SharedThrottle, keys: Vec<String>) -> Reservation {
        Reservation(Kind::Unshared { throttle, keys })
    }

    /// Whether the check is pending on every replica (Valkey answered).
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Kind::Kept { .. })
    }

    /// The password was wrong: a failure of every key; those that reach their limit are
    /// locked for every replica. The failure is counted before the check stops being pending,
    /// so that no other check slips in between.
    pub async fn failed(self) {
        self.settle(Outcome::Failed).await;
    }

    /// The password was right: the username's failures are cleared; the address's stay.
    pub async fn succeeded(self) {
        self.settle(Outcome::Succeeded).await;
    }

    async fn settle(self, outcome: Outcome) {
        match self.0 {
            Kind::Kept { settle, budget } => {
                let (done, counted) = oneshot::channel();
                if settle.send(Settlement { outcome, done }).is_ok() {
                    let _ = tokio::time::timeout(budget, counted).await;
                }
            }
            Kind::Unshared { throttle, keys } => {
                tokio::spawn(async move {
                    match outcome {
                        Outcome::Failed => {
                            throttle.failed(&keys).await;
                        }
                        Outcome::Succeeded => {
                            if let Some(user) = keys.first() {
                                throttle.succeeded(user).await;
                            }
                        }
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lib_auth::LocalStore;

    trait Shared {
        /// Asserts that the reservation is pending on every replica.
        fn shared(self) -> Reservation;
    }

    impl Shared for Reservation {
        fn shared(self) -> Reservation {
            assert!(self.is_shared(), "the store answered");
            self
        }
    }

    /// Lets spawned settlements run.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    fn keys(user: &str, address: &str) -> [String; 2] {
        [format!("user:{user}"), format!("address:{address}")]
    }

    /// The checks of `key` pending now, as a reservation reads them.
    async fn pending(throttle: &SharedThrottle, store: &dyn SharedStore, key: &str) -> i64 {
        let slot = throttle.current_slot();
        let mut total = 0;
        for slot in [slot, slot - 1] {
            let key = SharedThrottle::pending_key(slot, key);
            total += store
                .get(&key)
                .await
                .unwrap()
                .map_or(0, |v| String::from_utf8(v).unwrap().parse::<i64>().unwrap());
        }
        total
    }

    #[tokio::test]
    async fn parallel_checks_stop_at_the_limit_and_failures_lock_for_everyone() {
        let store: Arc<dyn SharedStore> = Arc::new(LocalStore::new("t", 1000));
        let window = Duration::from_secs(60);
        let a = SharedThrottle::new(store.clone(), 3, window);
        let b = SharedThrottle::new(store, 3, window);
        let k = keys("alice", "10.0.0.1");
        // Three checks at once, on two replicas: a fourth is refused while they run.
        let first = a.reserve(&k).await.unwrap().shared();
        let second = b.reserve(&k).await.unwrap().shared();
        let third = a.reserve(&k).await.unwrap().shared();
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
            .shared()
            .succeeded()
            .await;
        // The address may fail ten times as often as a username (limit 1 here): 30
        // successful logins of different users from it are never refused.
        for n in 0..30 {
            let reservation = throttle
                .reserve(&keys(&format!("u{n}"), "10.0.0.9"))
                .await
                .expect("admitted")
                .shared();
            reservation.succeeded().await;
        }
        settle().await;
        assert_eq!(pending(&throttle, &*store, "address:10.0.0.9").await, 0);
    }

    /// Was: a pending count nobody took back (a replica killed during a check, or a count
    /// Valkey applied after the replica had given up on it) lived for an hour, renewed by
    /// every try: the username answered "busy" (429) to its right password for as long as
    /// anyone kept trying.
    #[tokio::test]
    async fn a_count_nobody_takes_back_stops_counting_within_two_slots() {
        let store: Arc<dyn SharedStore> = Arc::new(LocalStore::new("t", 1000));
        let slot = Duration::from_millis(200);
        let throttle =
            SharedThrottle::new(store.clone(), 1, Duration::from_secs(60)).with_slot(slot);
        let k = keys("erin", "10.0.0.4");
        // What a replica killed during its check leaves behind.
        let left_behind = SharedThrottle::pending_key(throttle.current_slot(), &k[0]);
        store.add(&left_behind, 1, PENDING_TTL).await.unwrap();
        assert_eq!(throttle.reserve(&k).await.unwrap_err(), BUSY_RETRY);
        tokio::time::sleep(slot * 2 + Duration::from_millis(50)).await;
        throttle
            .reserve(&k)
            .await
            .expect("admitted again")
            .shared()
            .succeeded()
            .await;
    }

    /// A check that runs for several slots is moved along and stays pending until it ends.
    #[tokio::test]
    async fn a_long_check_stays_pending_across_slots() {
        let store: Arc<dyn SharedStore> = Arc::new(LocalStore::new("t", 1000));
        let slot = Duration::from_millis(100);
        let throttle =
            SharedThrottle::new(store.clone(), 1, Duration::from_secs(60)).with_slot(slot);
        let k = keys("finn", "10.0.0.5");
        let long = throttle.reserve(&k).await.unwrap().shared();
        for _ in 0..4 {
            tokio::time::sleep(slot).await;
            assert_eq!(throttle.reserve(&k).await.unwrap_err(), BUSY_RETRY);
            assert_eq!(pending(&throttle, &*store, &k[0]).await, 1);
        }
        long.succeeded().await;
        assert_eq!(pending(&throttle, &*store, &k[0]).await, 0);
        throttle
            .reserve(&k)
            .await
            .expect("admitted once it ended")
            .shared()
            .failed()
            .await;
    }

    /// Delays of the calls on keys containing a text ("" for every key).
    type Delays = Vec<(String, Duration)>;

    /// A store whose reads (and counts up) of chosen keys are slow (within Valkey's own
    /// deadline), and whose every call fails while `down`.
    #[derive(Debug)]
    struct Faulty {
        inner: LocalStore,
        slow_get: std::sync::Mutex<Delays>,
        slow_add: std::sync::Mutex<Delays>,
        down: AtomicBool,
    }

    impl Faulty {
        /// Every read and count up takes `delay`.
        fn new(inner: LocalStore, delay: Duration) -> Arc<Faulty> {
            Faulty::scripted(
                inner,
                vec![(String::new(), delay)],
                vec![(String::new(), delay)],
            )
        }

        fn scripted(inner: LocalStore, slow_get: Delays, slow_add: Delays) -> Arc<Faulty> {
            Arc::new(Faulty {
                inner,
                slow_get: std::sync::Mutex::new(slow_get),
                slow_add: std::sync::Mutex::new(slow_add),
                down: AtomicBool::new(false),
            })
        }

        fn set_delay(&self, delay: Duration) {
            *self.slow_get.lock().unwrap() = vec![(String::new(), delay)];
            *self.slow_add.lock().unwrap() = vec![(String::new(), delay)];
        }

        async fn call<T>(
            &self,
            delays: Option<(&std::sync::Mutex<Delays>, &str)>,
            call: lib_auth::StoreFuture<'_, T>,
        ) -> Result<T, lib_auth::StoreError> {
            if let Some((delays, key)) = delays {
                let delay: Duration = delays
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(part, _)| key.contains(part.as_str()))
                    .map(|(_, delay)| *delay)
                    .sum();
                tokio::time::sleep(delay).await;
            }
            if self.down.load(Ordering::Relaxed) {
                return Err(lib_auth::StoreError::Unavailable {
                    backend: "valkey",
                    detail: "down".into(),
                });
            }
            call.await
        }
    }

    impl SharedStore for Faulty {
        fn get<'a>(&'a self, key: &'a str) -> lib_auth::StoreFuture<'a, Option<Vec<u8>>> {
            Box::pin(self.call(Some((&self.slow_get, key)), self.inner.get(key)))
        }
        fn set<'a>(
            &'a self,
            key: &'a str,
            value: &'a [u8],
            ttl: Duration,
        ) -> lib_auth::StoreFuture<'a, ()> {
            Box::pin(self.call(None, self.inner.set(key, value, ttl)))
        }
        fn delete<'a>(&'a self, key: &'a str) -> lib_auth::StoreFuture<'a, ()> {
            Box::pin(self.call(None, self.inner.delete(key)))
        }
        fn add<'a>(
            &'a self,
            key: &'a str,
            amount: i64,
            ttl: Duration,
        ) -> lib_auth::StoreFuture<'a, i64> {
            let delays = (amount > 0).then_some((&self.slow_add, key));
            Box::pin(self.call(delays, self.inner.add(key, amount, ttl)))
        }
        fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> lib_auth::StoreFuture<'a, ()> {
            Box::pin(self.call(None, self.inner.expire(key, ttl)))
        }
        fn remaining<'a>(&'a self, key: &'a str) -> lib_auth::StoreFuture<'a, Option<Duration>> {
            Box::pin(self.call(None, self.inner.remaining(key)))
        }
    }

    /// Was: a reservation that outlived its budget let the login go on with the replica's own
    /// throttle alone, neither counted nor refused for the others: with the replicas busy
    /// hashing (an attacker's own logins will do), guesses spread over two replicas got twice
    /// the limit, unlogged. Before that, a count applied while the reservation was given up
    /// stayed pending (an office address was refused for the pending count's life after 51
    /// successful logins in a slow spell).
    #[tokio::test]
    async fn a_slow_store_refuses_as_busy_after_one_budget_and_leaves_nothing_pending() {
        let local = LocalStore::new("t", 1000);
        let store = Faulty::new(local.clone(), Duration::from_millis(290));
        let throttle = SharedThrottle::new(store, 5, Duration::from_secs(60));
        let k = keys("carol", "10.0.0.3");
        let started = Instant::now();
        assert_eq!(throttle.reserve(&k).await.unwrap_err(), BUSY_RETRY);
        assert!(
            started.elapsed() < RESERVE_BUDGET + Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
        // The reservation finishes in the background, finds nobody waiting, and takes back
        // what it counted.
        tokio::time::sleep(Duration::from_millis(3000)).await;
        for key in &k {
            assert_eq!(pending(&throttle, &local, key).await, 0, "{key}");
        }
    }

    /// Was: the outcome of a check admitted while Valkey could not be reached was never sent,
    /// though Valkey may answer again by the time the check ends.
    #[tokio::test]
    async fn a_check_admitted_while_valkey_was_unreachable_still_counts_its_failure() {
        let local = LocalStore::new("t", 1000);
        let store = Faulty::new(local.clone(), Duration::ZERO);
        let throttle = SharedThrottle::new(store.clone(), 5, Duration::from_secs(60));
        let k = keys("dave", "10.0.0.6");
        store.down.store(true, Ordering::Relaxed);
        let reservation = throttle.reserve(&k).await.expect("admitted alone");
        assert!(!reservation.is_shared());
        store.down.store(false, Ordering::Relaxed);
        reservation.failed().await;
        settle().await;
        for key in &k {
            let fails = local.get(&SharedThrottle::key("fails", key)).await.unwrap();
            assert_eq!(fails.as_deref(), Some(&b"1"[..]), "{key}");
        }
    }

    /// Was: a check whose admission ended in the next slot was moved only once the slot after
    /// that began, so for the first milliseconds of that slot no reader saw it (they read the
    /// current and the previous slot), and a second check was admitted beside it.
    #[tokio::test]
    async fn an_admission_that_ends_in_the_next_slot_is_moved_there_at_once() {
        let slot = Duration::from_millis(300);
        let local = LocalStore::new("t", 1000);
        let store = Faulty::new(local.clone(), Duration::ZERO);
        let throttle =
            SharedThrottle::new(store.clone(), 1, Duration::from_secs(60)).with_slot(slot);
        let k = keys("gina", "10.0.0.7");
        for _ in 0..5 {
            // Admission (four steps of 20 ms) from 250 ms into a slot to about 330 ms.
            tokio::time::sleep(throttle.until_after(throttle.current_slot())).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
            let counted_in = throttle.current_slot();
            store.set_delay(Duration::from_millis(20));
            let reservation = throttle.reserve(&k).await.unwrap().shared();
            store.set_delay(Duration::ZERO);
            if throttle.current_slot() != counted_in + 1 {
                // Not straddling this time (a slow machine): try again.
                drop(reservation);
                settle().await;
                continue;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert!(
                throttle.current_slot() == counted_in + 1,
                "still in the next slot"
            );
            let moved = local
                .get(&SharedThrottle::pending_key(counted_in + 1, &k[0]))
                .await
                .unwrap();
            assert_eq!(moved.as_deref(), Some(&b"1"[..]), "moved to the next slot");
            reservation.succeeded().await;
            return;
        }
        panic!("no admission straddled a slot boundary in five tries");
    }

    /// Was: a reservation on a slow replica, counting in a slot that ended while it ran,
    /// missed a check that another replica's keeper moved out of that slot into the next one
    /// meanwhile, and was admitted beside it over the limit.
    #[tokio::test]
    async fn a_reservation_whose_slot_ends_meanwhile_sees_a_check_moved_on() {
        let slot = Duration::from_millis(300);
        let local = LocalStore::new("t", 1000);
        let fast = Faulty::new(local.clone(), Duration::ZERO);
        let slow = Faulty::new(local, Duration::from_millis(40));
        let a = SharedThrottle::new(fast, 1, Duration::from_secs(60)).with_slot(slot);
        let b = SharedThrottle::new(slow, 1, Duration::from_secs(60)).with_slot(slot);
        let k = keys("hank", "10.0.0.8");
        // Replica A: one check under way (limit 1), admitted early in a slot.
        tokio::time::sleep(a.until_after(a.current_slot()) + Duration::from_millis(20)).await;
        let first = a.reserve(&k).await.unwrap().shared();
        // Replica B, slow, starts 15 ms before the next slot: its count in the old slot lands
        // after A's keeper moved the check on (5 ms into the new slot).
        let left = a.until_after(a.current_slot());
        tokio::time::sleep(left.saturating_sub(Duration::from_millis(15))).await;
        let second = b.reserve(&k).await;
        assert_eq!(
            second.unwrap_err(),
            BUSY_RETRY,
            "a second check beside the first"
        );
        first.succeeded().await;
    }

    /// Was: replica A counting a check in slot s (reading s - 1 first, s + 1 after) and
    /// replica B counting one in s + 1 (reading s first) could each read the other's slot
    /// before the other counted there: two checks ran at once under a limit of one.
    #[tokio::test]
    async fn checks_counted_at_once_in_adjacent_slots_see_each_other() {
        let slot = Duration::from_millis(500);
        let local = LocalStore::new("t", 1000);
        let probe = SharedThrottle::new(Arc::new(local.clone()), 1, Duration::from_secs(60))
            .with_slot(slot);
        if probe.until_after(probe.current_slot()) < Duration::from_millis(150) {
            tokio::time::sleep(probe.until_after(probe.current_slot()) + Duration::from_millis(5))
                .await;
        }
        let s = probe.current_slot();
        let delay = Duration::from_millis(60);
        let a = SharedThrottle::new(
            // Its reads of the previous slot and of the failures are slow: its keeper moves
            // its check into s + 1 only after those.
            Faulty::scripted(
                local.clone(),
                vec![
                    (format!("pending:{}:", s - 1), delay),
                    ("fails:".to_owned(), delay),
                ],
                vec![],
            ),
            1,
            Duration::from_secs(60),
        )
        .with_slot(slot);
        let b = SharedThrottle::new(
            Faulty::scripted(
                local.clone(),
                vec![],
                vec![(format!("pending:{}:", s + 1), delay)],
            ),
            1,
            Duration::from_secs(60),
        )
        .with_slot(slot);
        let k = keys("ivan", "10.0.0.10");
        // A starts 20 ms before the boundary (slot s), B 10 ms after it (slot s + 1).
        tokio::time::sleep(probe.until_after(s) - Duration::from_millis(20)).await;
        let first = tokio::spawn({
            let (a, k) = (a.clone(), k.clone());
            async move { a.reserve(&k).await }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(b.current_slot(), s + 1);
        let second = b.reserve(&k).await;
        let first = first.await.unwrap();
        eprintln!(
            "first admitted: {}, second admitted: {}",
            first.is_ok(),
            second.is_ok()
        );
        assert!(
            !(first.is_ok() && second.is_ok()),
            "two checks admitted at once under a limit of one"
        );
    }
}
