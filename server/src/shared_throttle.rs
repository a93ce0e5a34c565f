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
//! Valkey unreachable: each call gives up after [`CALL_TIMEOUT`], logs once per outage, and
//! the replica's own counters go on applying; it never admits what the local throttle refuses.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

use crate::secret::sha256;
use crate::throttle::ADDRESS_FAILURE_FACTOR;

/// How long one round trip to Valkey may take before it is given up.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(300);
const MAX_LOCK: Duration = Duration::from_secs(3600);

/// The shared counters.
#[derive(Debug)]
pub struct SharedThrottle {
    url: String,
    prefix: String,
    max_failures: u32,
    window: Duration,
    connection: Mutex<Option<MultiplexedConnection>>,
    down: std::sync::atomic::AtomicBool,
}

impl SharedThrottle {
    /// Counters in the Valkey at `url` under `prefix`, locking after `max_failures` failures
    /// within `window` (an address: ten times as many).
    pub fn new(url: &str, prefix: &str, max_failures: u32, window: Duration) -> SharedThrottle {
        SharedThrottle {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            max_failures: max_failures.max(1),
            window,
            connection: Mutex::new(None),
            down: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn key(&self, kind: &str, key: &str) -> String {
        let digest: String = sha256(key).iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:throttle:v1:{kind}:{digest}", self.prefix)
    }

    fn limit_of(&self, key: &str) -> u32 {
        if key.starts_with("address:") {
            self.max_failures.saturating_mul(ADDRESS_FAILURE_FACTOR)
        } else {
            self.max_failures
        }
    }

    /// The longest lock any replica set on one of `keys`, if any is in force.
    pub async fn locked(&self, keys: &[String]) -> Option<Duration> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("PTTL").arg(self.key("lock", key));
        }
        let remaining: Vec<i64> = self.run(pipe).await?;
        remaining
            .into_iter()
            .filter(|ms| *ms > 0)
            .max()
            .map(|ms| Duration::from_millis(ms.unsigned_abs()))
    }

    /// Counts a failure of every key of `keys`; locks, for every replica, those that reach
    /// their limit. Answers the longest lock now in force among them.
    pub async fn failed(&self, keys: &[String]) -> Option<Duration> {
        let window_ms = millis(self.window);
        let mut pipe = redis::pipe();
        for key in keys {
            let fails = self.key("fails", key);
            pipe.cmd("INCR").arg(&fails);
            pipe.cmd("PEXPIRE")
                .arg(&fails)
                .arg(window_ms)
                .arg("NX")
                .ignore();
        }
        let counts: Vec<u64> = self.run(pipe).await?;
        let mut longest = None::<Duration>;
        for (key, count) in keys.iter().zip(counts) {
            if count < u64::from(self.limit_of(key)) {
                continue;
            }
            let lockouts_key = self.key("lockouts", key);
            let mut pipe = redis::pipe();
            pipe.cmd("INCR").arg(&lockouts_key);
            pipe.cmd("DEL").arg(self.key("fails", key)).ignore();
            let Some((lockouts,)): Option<(u32,)> = self.run(pipe).await else {
                continue;
            };
            let factor = 1u32 << lockouts.saturating_sub(1).min(16);
            let lock = self.window.saturating_mul(factor).min(MAX_LOCK);
            // A lock-out long past (two windows after it ended) is forgiven, as locally.
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(self.key("lock", key))
                .arg(1)
                .arg("PX")
                .arg(millis(lock))
                .ignore();
            pipe.cmd("PEXPIRE")
                .arg(&lockouts_key)
                .arg(millis(lock + self.window.saturating_mul(2)))
                .ignore();
            let _: Option<()> = self.run(pipe).await;
            longest = longest.max(Some(lock));
        }
        longest
    }

    /// Clears the failures of `key` (a username or client id that just succeeded).
    pub async fn succeeded(&self, key: &str) {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(self.key("fails", key)).ignore();
        let _: Option<()> = self.run(pipe).await;
    }

    /// Runs `pipe` on the shared connection (connecting first if need be), within
    /// [`CALL_TIMEOUT`]; `None` when Valkey cannot be reached.
    async fn run<T: redis::FromRedisValue>(&self, pipe: redis::Pipeline) -> Option<T> {
        let attempt = async {
            // The lock is held only to connect; queries share the multiplexed connection.
            let mut connection = {
                let mut slot = self.connection.lock().await;
                if slot.is_none() {
                    let client =
                        redis::Client::open(self.url.as_str()).map_err(|e| e.to_string())?;
                    let connection = client
                        .get_multiplexed_async_connection()
                        .await
                        .map_err(|e| e.to_string())?;
                    *slot = Some(connection);
                }
                slot.clone().ok_or_else(|| "no connection".to_owned())?
            };
            pipe.query_async::<T>(&mut connection)
                .await
                .map_err(|e| e.to_string())
        };
        let outcome = match tokio::time::timeout(CALL_TIMEOUT, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err("Valkey did not answer in time".to_owned()),
        };
        match outcome {
            Ok(value) => {
                if self.down.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    tracing::info!("shared login throttle: Valkey answers again");
                }
                Some(value)
            }
            Err(error) => {
                *self.connection.lock().await = None;
                if !self.down.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(
                        %error,
                        "shared login throttle: Valkey unreachable, each replica counts failures on its own until it answers"
                    );
                }
                None
            }
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}
