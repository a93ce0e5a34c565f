//! The state that several processes may share (SPEC §7): a small key-value [`Store`] with TTLs,
//! and its two implementations: [`LocalStore`] (in-process, moka) and [`ValkeyStore`] (a
//! Valkey or Redis server, chosen by `VALKEY_URL`).
//!
//! Every key lives in the store's namespace (`<prefix>:<key>`, `VALKEY_PREFIX`) and every entry
//! carries a TTL. The store knows nothing of what it holds: its users version and, where a
//! forged value could admit someone, authenticate their values (the shared decision cache signs
//! each one with HMAC-SHA256).
//!
//! A store that cannot be reached answers [`StoreError::Unavailable`] quickly, never hangs a
//! request: each call to Valkey has a deadline, and after a failure calls are refused at once
//! for a short pause before Valkey is tried again. Its users fall back to their in-process state.
//!
//! ```
//! use std::time::Duration;
//! use lib_auth::{LocalStore, Store};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), lib_auth::StoreError> {
//! let store = LocalStore::new("my-service", 10_000);
//! assert_eq!(store.add("failures:alice", 1, Duration::from_secs(60)).await?, 1);
//! assert_eq!(store.add("failures:alice", 1, Duration::from_secs(60)).await?, 2);
//! store.set("greeting", b"hello", Duration::from_secs(5)).await?;
//! assert_eq!(store.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use moka::Expiry;
use moka::ops::compute::Op;
use redis::aio::MultiplexedConnection;

use crate::config::redact_url;

/// The future a [`Store`] call answers with.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a [`Store`] call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time.
    #[error("{backend} is unreachable: {detail}")]
    Unavailable {
        /// Which backend (`valkey`).
        backend: &'static str,
        /// What failed; never holds a key's value or the URL's password.
        detail: String,
    },
    /// The backend answered something the call cannot use (for instance, a counter that
    /// holds text).
    #[error("{backend} answered unexpectedly for key {key}: {detail}")]
    Unexpected {
        /// Which backend (`local`, `valkey`).
        backend: &'static str,
        /// The key, without the namespace.
        key: String,
        /// What was wrong.
        detail: String,
    },
}

/// A key-value store with TTLs, shared by whoever uses the same backend and namespace.
///
/// Keys are given without the namespace; the store prefixes them. A value or counter stops
/// existing when its TTL runs out. Implement it to put the shared state elsewhere; the
/// library ships [`LocalStore`] and [`ValkeyStore`].
pub trait Store: Send + Sync + fmt::Debug {
    /// The value of `key`, if it exists (a counter reads as its decimal digits).
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// Sets `key` to `value` for `ttl`, replacing any value and TTL it had.
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()>;

    /// Removes `key` (nothing happens if it does not exist).
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()>;

    /// Adds `amount` (negative to take away) to the counter `key` and answers its new value. A
    /// counter that did not exist starts from 0 and lives for `ttl`; an existing one keeps its
    /// TTL. A counter never goes below 0, and taking away from one that does not exist (it
    /// expired) does nothing and answers 0.
    fn add<'a>(&'a self, key: &'a str, amount: i64, ttl: Duration) -> StoreFuture<'a, i64>;

    /// Sets the TTL of `key`, if it exists, to `ttl`.
    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()>;

    /// How long `key` has left, or `None` if it does not exist.
    fn remaining<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>>;
}

// ---------------------------------------------------------------------------------------------
// In-process.

/// What a [`LocalStore`] key holds.
#[derive(Debug, Clone)]
enum Data {
    Bytes(Arc<[u8]>),
    Counter(i64),
}

/// One entry: its data and the instant it stops existing. Entries are never mutated; a change
/// replaces the entry, which resets moka's expiry from the new deadline.
#[derive(Debug)]
struct Slot {
    data: Data,
    until: Instant,
}

/// Expires each entry at its own deadline.
struct AtDeadline;

impl Expiry<String, Arc<Slot>> for AtDeadline {
    fn expire_after_create(&self, _: &String, slot: &Arc<Slot>, now: Instant) -> Option<Duration> {
        Some(slot.until.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &String,
        slot: &Arc<Slot>,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot.until.saturating_duration_since(now))
    }
}

/// The in-process [`Store`]: a moka cache bounded by entry count, shared by everyone holding
/// the same `LocalStore` (clones share it). The default when no `VALKEY_URL` is set.
#[derive(Clone)]
pub struct LocalStore {
    prefix: Arc<str>,
    entries: moka::sync::Cache<String, Arc<Slot>, RandomState>,
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStore")
            .field("prefix", &self.prefix)
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl LocalStore {
    /// A store of at most `capacity` entries in the namespace `prefix`. Past the capacity, the
    /// least used entries are dropped first.
    pub fn new(prefix: &str, capacity: u64) -> LocalStore {
        LocalStore {
            prefix: Arc::from(prefix),
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(AtDeadline)
                .build_with_hasher(RandomState::default()),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }

    /// The live entry of `key` (moka hides expired ones; the deadline is checked again so that
    /// an entry is never read after its TTL, whatever moka's timer granularity).
    fn live(&self, key: &str) -> Option<Arc<Slot>> {
        self.entries
            .get(key)
            .filter(|slot| Instant::now() < slot.until)
    }
}

fn deadline(ttl: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(ttl)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

impl Store for LocalStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let value = self.live(&self.key(key)).map(|slot| match &slot.data {
            Data::Bytes(bytes) => bytes.to_vec(),
            Data::Counter(n) => n.to_string().into_bytes(),
        });
        Box::pin(std::future::ready(Ok(value)))
    }

    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
        self.entries.insert(
            self.key(key),
            Arc::new(Slot {
                data: Data::Bytes(Arc::from(value)),
                until: deadline(ttl),
            }),
        );
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.entries.invalidate(&self.key(key));
        Box::pin(std::future::ready(Ok(())))
    }

    fn add<'a>(&'a self, key: &'a str, amount: i64, ttl: Duration) -> StoreFuture<'a, i64> {
        let mut outcome = Ok(0);
        // Atomic per key: concurrent increments never lose a count.
        self.entries
            .entry(self.key(key))
            .and_compute_with(|current| {
                let live = current
                    .map(|entry| entry.into_value())
                    .filter(|slot| Instant::now() < slot.until);
                match live.as_deref() {
                    None if amount <= 0 => {
                        outcome = Ok(0);
                        Op::Nop
                    }
                    None => {
                        outcome = Ok(amount);
                        Op::Put(Arc::new(Slot {
                            data: Data::Counter(amount),
                            until: deadline(ttl),
                        }))
                    }
                    Some(Slot {
                        data: Data::Counter(n),
                        until,
                    }) => {
                        let next = n.saturating_add(amount).max(0);
                        outcome = Ok(next);
                        Op::Put(Arc::new(Slot {
                            data: Data::Counter(next),
                            until: *until,
                        }))
                    }
                    Some(Slot {
                        data: Data::Bytes(_),
                        ..
                    }) => {
                        outcome = Err(StoreError::Unexpected {
                            backend: "local",
                            key: key.to_owned(),
                            detail: "the key holds a value, not a counter".to_owned(),
                        });
                        Op::Nop
                    }
                }
            });
        Box::pin(std::future::ready(outcome))
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        self.entries
            .entry(self.key(key))
            .and_compute_with(|current| match current.map(|e| e.into_value()) {
                Some(slot) if Instant::now() < slot.until => Op::Put(Arc::new(Slot {
                    data: slot.data.clone(),
                    until: deadline(ttl),
                })),
                _ => Op::Nop,
            });
        Box::pin(std::future::ready(Ok(())))
    }

    fn remaining<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        let left = self
            .live(&self.key(key))
            .map(|slot| slot.until.saturating_duration_since(Instant::now()));
        Box::pin(std::future::ready(Ok(left)))
    }
}

// ---------------------------------------------------------------------------------------------
// Valkey.

/// How long one call to Valkey may take, connecting included, by default.
pub const VALKEY_CALL_TIMEOUT: Duration = Duration::from_millis(300);
/// After a failed call, how long calls are refused at once before Valkey is tried again.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The [`Store`] on a Valkey (or any Redis-protocol) server, `VALKEY_URL`.
///
/// It connects on first use over one multiplexed connection, which every call shares. A call
/// that fails or outlives its deadline ([`VALKEY_CALL_TIMEOUT`] unless set) drops the
/// connection; for the next half second (see [`ValkeyStore::with_retry_pause`]) calls fail at
/// once, then the next call connects again. One WARN is logged when Valkey becomes unreachable and one INFO when it answers
/// again, naming what the store is used for.
pub struct ValkeyStore {
    url: String,
    prefix: String,
    purpose: &'static str,
    timeout: Duration,
    retry_pause: Duration,
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    down: bool,
    retry_at: Option<Instant>,
}

impl fmt::Debug for ValkeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValkeyStore")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("purpose", &self.purpose)
            .finish()
    }
}

impl ValkeyStore {
    /// A store on the Valkey at `url` (`redis://`, `rediss://`, `valkey://` or `valkeys://`) in
    /// the namespace `prefix`; `purpose` names its use in log lines ("decision cache"). Nothing
    /// is connected until the first call.
    pub fn new(url: &str, prefix: &str, purpose: &'static str) -> ValkeyStore {
        ValkeyStore {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            purpose,
            timeout: VALKEY_CALL_TIMEOUT,
            retry_pause: RETRY_PAUSE,
            connection: tokio::sync::Mutex::new(None),
            health: Mutex::new(Health::default()),
        }
    }

    /// Sets the deadline of each call, connecting included.
    pub fn with_timeout(mut self, timeout: Duration) -> ValkeyStore {
        self.timeout = timeout;
        self
    }

    /// Sets how long calls are refused at once after a failed one (default half a second), so
    /// that requests do not each wait out the deadline while Valkey is down. Zero tries every
    /// call, as a background task that must not miss Valkey's return wants.
    pub fn with_retry_pause(mut self, pause: Duration) -> ValkeyStore {
        self.retry_pause = pause;
        self
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }

    /// Publishes `message` on the channel `<prefix>:<channel>`; answers how many subscribers
    /// received it. (Publishing is the one call the [`Store`] trait does not have: pushed
    /// revocations need Valkey, and go by polling without it.)
    pub async fn publish(&self, channel: &str, message: &str) -> Result<u64, StoreError> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.key(channel)).arg(message);
        self.run(channel, cmd_pipe(cmd)).await.map(|(n,): (u64,)| n)
    }

    /// Runs `pipe` within the deadline, connecting first if need be. A connection that broke
    /// since the last call (Valkey restarted) is replaced once within the same call.
    async fn run<T: redis::FromRedisValue>(
        &self,
        key: &str,
        pipe: redis::Pipeline,
    ) -> Result<T, StoreError> {
        if self.paused() {
            return Err(unavailable(
                "paused after a failed call; retried shortly".to_owned(),
            ));
        }
        let attempt = async {
            let mut last = None;
            for _ in 0..2 {
                let (mut connection, fresh) = self.connection().await?;
                match pipe.query_async::<T>(&mut connection).await {
                    Ok(value) => return Ok(value),
                    // Valkey answered, with an error (a counter that holds text): it is up.
                    Err(e) if !(e.is_io_error() || e.is_connection_dropped() || e.is_timeout()) => {
                        return Err(StoreError::Unexpected {
                            backend: "valkey",
                            key: key.to_owned(),
                            detail: e.to_string(),
                        });
                    }
                    Err(e) => {
                        *self.connection.lock().await = None;
                        last = Some(unavailable(e.to_string()));
                        // A fresh connection that fails is not retried.
                        if fresh {
                            break;
                        }
                    }
                }
            }
            Err(last.unwrap_or_else(|| unavailable("no attempt made".to_owned())))
        };
        let outcome = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => {
                // Never waited for: a caller still connecting holds the lock, and this call's
                // time is up. (That caller's own deadline ends its attempt.)
                if let Ok(mut slot) = self.connection.try_lock() {
                    *slot = None;
                }
                Err(unavailable(format!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                )))
            }
        };
        match &outcome {
            Err(error @ StoreError::Unavailable { .. }) => self.failed(error),
            _ => self.answered(),
        }
        outcome
    }

    /// The shared connection, and whether it was opened by this call.
    async fn connection(&self) -> Result<(MultiplexedConnection, bool), StoreError> {
        // The lock is held only to connect; calls share the multiplexed connection.
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok((connection.clone(), false));
        }
        let connection = connect(&self.url).await?;
        *slot = Some(connection.clone());
        Ok((connection, true))
    }

    fn paused(&self) -> bool {
        self.health
            .lock()
            .is_ok_and(|h| h.retry_at.is_some_and(|at| Instant::now() < at))
    }

    fn answered(&self) {
        let was_down = self.health.lock().is_ok_and(|mut h| {
            h.retry_at = None;
            std::mem::replace(&mut h.down, false)
        });
        if was_down {
            tracing::info!(purpose = self.purpose, "Valkey answers again");
        }
    }

    fn failed(&self, error: &StoreError) {
        let was_down = self.health.lock().is_ok_and(|mut h| {
            h.retry_at = Instant::now().checked_add(self.retry_pause);
            std::mem::replace(&mut h.down, true)
        });
        if was_down {
            tracing::debug!(purpose = self.purpose, %error, "Valkey still unreachable");
        } else {
            tracing::warn!(
                purpose = self.purpose,
                %error,
                "Valkey unreachable: falling back to in-process state until it answers"
            );
        }
    }
}

/// Opens a multiplexed connection to `url`.
async fn connect(url: &str) -> Result<MultiplexedConnection, StoreError> {
    // The client's own errors may quote the URL, password included: only their kind is kept.
    let client = redis::Client::open(url)
        .map_err(|e| unavailable(format!("invalid VALKEY_URL ({:?})", e.kind())))?;
    client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| unavailable(e.to_string()))
}

fn unavailable(detail: String) -> StoreError {
    StoreError::Unavailable {
        backend: "valkey",
        detail,
    }
}

fn cmd_pipe(cmd: redis::Cmd) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.add_command(cmd);
    pipe
}

/// [`Store::add`] in Valkey: `KEYS[1]` the counter, `ARGV[1]` the amount, `ARGV[2]` the TTL
/// (ms) of a new counter.
const ADD_SCRIPT: &str = r"
local amount = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  if amount <= 0 then return 0 end
  redis.call('SET', KEYS[1], amount, 'PX', ARGV[2])
  return amount
end
local value = redis.call('INCRBY', KEYS[1], amount)
if value < 0 then
  redis.call('SET', KEYS[1], 0, 'KEEPTTL')
  return 0
end
return value
";

/// A TTL in whole milliseconds, at least 1 (Valkey refuses 0).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Store for ValkeyStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("GET");
            cmd.arg(self.key(key));
            self.run(key, cmd_pipe(cmd))
                .await
                .map(|(value,): (Option<Vec<u8>>,)| value)
        })
    }

    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(self.key(key))
                .arg(value)
                .arg("PX")
                .arg(millis(ttl))
                .ignore();
            self.run(key, pipe).await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(self.key(key)).ignore();
            self.run(key, pipe).await
        })
    }

    fn add<'a>(&'a self, key: &'a str, amount: i64, ttl: Duration) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            // One script, so atomic: a counter never exists without its TTL, and never goes
            // below 0.
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(ADD_SCRIPT)
                .arg(1)
                .arg(self.key(key))
                .arg(amount)
                .arg(millis(ttl));
            self.run(key, cmd_pipe(cmd)).await.map(|(n,): (i64,)| n)
        })
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("PEXPIRE")
                .arg(self.key(key))
                .arg(millis(ttl))
                .ignore();
            self.run(key, pipe).await
        })
    }

    fn remaining<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("PTTL");
            cmd.arg(self.key(key));
            // -2: no such key; -1: no TTL (never written so by this library; read as absent).
            self.run(key, cmd_pipe(cmd)).await.map(|(ms,): (i64,)| {
                u64::try_from(ms)
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_entry_is_gone_after_its_ttl() {
        let store = LocalStore::new("t", 100);
        store
            .set("k", b"v", Duration::from_millis(30))
            .await
            .unwrap();
        assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(store.get("k").await.unwrap(), None);
        assert_eq!(store.remaining("k").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_local_counter_keeps_its_first_ttl_and_refuses_text() {
        let store = LocalStore::new("t", 100);
        let ttl = Duration::from_secs(60);
        assert_eq!(store.add("c", 1, ttl).await.unwrap(), 1);
        let first = store.remaining("c").await.unwrap().unwrap();
        assert_eq!(
            store.add("c", 1, Duration::from_secs(600)).await.unwrap(),
            2
        );
        assert!(store.remaining("c").await.unwrap().unwrap() <= first);
        assert_eq!(store.get("c").await.unwrap().as_deref(), Some(&b"2"[..]));
        store.set("text", b"x", ttl).await.unwrap();
        assert!(matches!(
            store.add("text", 1, ttl).await,
            Err(StoreError::Unexpected { .. })
        ));
        store.expire("c", Duration::from_secs(600)).await.unwrap();
        assert!(store.remaining("c").await.unwrap().unwrap() > ttl);
        store.delete("c").await.unwrap();
        assert_eq!(store.get("c").await.unwrap(), None);
    }

    #[tokio::test]
    async fn concurrent_local_increments_lose_no_count() {
        let store = Arc::new(LocalStore::new("t", 100));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    for _ in 0..250 {
                        store.add("n", 1, Duration::from_secs(60)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.get("n").await.unwrap().as_deref(), Some(&b"2000"[..]));
    }

    #[tokio::test]
    async fn an_unreachable_valkey_fails_fast_and_pauses() {
        // Nothing listens on port 1.
        let store = ValkeyStore::new("redis://127.0.0.1:1", "t", "test")
            .with_timeout(Duration::from_millis(200));
        assert!(matches!(
            store.get("k").await,
            Err(StoreError::Unavailable { .. })
        ));
        let started = Instant::now();
        let paused = store.get("k").await;
        assert!(matches!(paused, Err(StoreError::Unavailable { .. })));
        assert!(started.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn the_debug_form_hides_the_password() {
        let store = ValkeyStore::new("redis://user:hunter2@cache:6379", "t", "test");
        assert!(!format!("{store:?}").contains("hunter2"));
    }
}
