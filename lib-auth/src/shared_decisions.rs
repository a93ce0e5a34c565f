//! Remote mode's shared decision cache: the second level behind the in-process (moka) one.
//!
//! What the Auth service answered about a token, by any validator, is kept in a [`Store`]
//! (Valkey, `VALKEY_URL`) for the others, so that a token seen by one replica costs the
//! others a Valkey read instead of a call to the Auth service.
//!
//! An entry admits requests, so a forged one would fail open: every entry is signed with
//! HMAC-SHA256 under `VALKEY_DECISION_SECRET`, a secret shared by the validators only. An entry
//! whose signature, version or shape is wrong is ignored (and the Auth service asked), so whoever
//! can write to Valkey without the secret can at worst cost a call. The signature covers the key,
//! which is itself an HMAC of the Auth service's URL and the token: an entry cannot be moved to
//! another token, and no token can be recognised in Valkey without the secret.
//!
//! Format (version 1): the key `decisions:v1:<hex HMAC(secret, "key" ‖ authorize URL ‖ token)>`,
//! the value `v1.<base64url HMAC(secret, "value" ‖ key ‖ json)>.<json>` where the JSON is a
//! [`Snapshot`]. Deadlines in it are Unix milliseconds; a reader never trusts one past its own
//! `PLUGIN_AUTH_CACHE_TTL` or the token's `exp`, whatever the writer's clock said.
//!
//! Only validators that receive revocations (the feed, and pushes) share: a shared answer is
//! checked against the revocations this validator knows of, as its own answers are. A 401 of
//! the service deletes the token's entry; a save of another validator in flight at that moment
//! may land after the delete, which is one more reason the revocation check, not the delete, is
//! what refuses a revoked token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::store::Store;

/// The least length of `VALKEY_DECISION_SECRET`, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// The longest entry read; a longer one is ignored.
const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// The most decisions one entry holds (a token asks about as many permissions as there are
/// routes it calls).
pub(crate) const MAX_DECISIONS: usize = 256;

const VERSION: &str = "v1";

/// What the Auth service answered about one token.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Snapshot {
    /// Until when (Unix ms) the service's acceptance of the token (any 200) holds.
    #[serde(default)]
    pub(crate) accepted_until: Option<u64>,
    /// The decisions, each with its deadline.
    #[serde(default)]
    pub(crate) decisions: Vec<StoredDecision>,
}

/// One answer of `POST /v1/authorize`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredDecision {
    pub(crate) product: String,
    pub(crate) resource: String,
    pub(crate) action: String,
    pub(crate) allowed: bool,
    /// Unix ms.
    pub(crate) until: u64,
}

/// The current time in Unix milliseconds.
pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The shared level of the decision cache.
pub(crate) struct SharedDecisions {
    store: Arc<dyn Store>,
    /// HMAC-SHA256 keyed with `VALKEY_DECISION_SECRET`, cloned for each use.
    keyed: Hmac<Sha256>,
    /// The authorize URL: answers of another Auth service are never taken for this one's.
    scope: String,
    /// Whether a bad entry was already logged (WARN once, then DEBUG).
    reported: AtomicBool,
}

impl std::fmt::Debug for SharedDecisions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDecisions")
            .field("store", &self.store)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl SharedDecisions {
    /// `None` only if HMAC refused the key, which it does for no length.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        secret: &[u8],
        scope: &str,
    ) -> Option<SharedDecisions> {
        Some(SharedDecisions {
            store,
            keyed: <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?,
            scope: scope.to_owned(),
            reported: AtomicBool::new(false),
        })
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.keyed.clone()
    }

    fn key_of(&self, token: &str) -> String {
        let mut mac = self.mac();
        mac.update(b"key\0");
        mac.update(self.scope.as_bytes());
        mac.update(b"\0");
        mac.update(token.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("decisions:{VERSION}:{hex}")
    }

    fn value_mac(&self, key: &str, json: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac();
        mac.update(b"value\0");
        mac.update(key.as_bytes());
        mac.update(b"\0");
        mac.update(json);
        mac
    }

    /// The entry of `token`, if one is stored and its signature holds. Store errors and bad
    /// entries read as none: the caller asks the Auth service.
    pub(crate) async fn load(&self, token: &str) -> Option<Snapshot> {
        let key = self.key_of(token);
        let bytes = self.store.get(&key).await.ok()??;
        match self.open(&key, &bytes) {
            Ok(snapshot) => Some(snapshot),
            Err(why) => {
                if self.reported.swap(true, Ordering::Relaxed) {
                    tracing::debug!(why, "ignored a shared decision entry");
                } else {
                    tracing::warn!(
                        why,
                        "ignored a shared decision entry (is VALKEY_DECISION_SECRET the same on every validator?)"
                    );
                }
                None
            }
        }
    }

    fn open(&self, key: &str, bytes: &[u8]) -> Result<Snapshot, &'static str> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err("entry too large");
        }
        let mut parts = bytes.splitn(3, |b| *b == b'.');
        let (Some(version), Some(signature), Some(json)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err("not a signed entry");
        };
        if version != VERSION.as_bytes() {
            return Err("entry of another version");
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| "signature is not base64url")?;
        // Constant time.
        self.value_mac(key, json)
            .verify_slice(&signature)
            .map_err(|_| "signature does not match")?;
        let snapshot: Snapshot =
            serde_json::from_slice(json).map_err(|_| "signed entry is not a snapshot")?;
        if snapshot.decisions.len() > MAX_DECISIONS {
            return Err("entry holds too many decisions");
        }
        Ok(snapshot)
    }

    /// Stores `snapshot` as the entry of `token` for `ttl`. A store error is logged by the
    /// store and otherwise ignored: the in-process level already holds the answer.
    pub(crate) async fn save(&self, token: &str, snapshot: &Snapshot, ttl: Duration) {
        let key = self.key_of(token);
        let Ok(json) = serde_json::to_vec(snapshot) else {
            return;
        };
        let signature = self.value_mac(&key, &json).finalize().into_bytes();
        let mut value = Vec::with_capacity(json.len() + 48);
        value.extend_from_slice(VERSION.as_bytes());
        value.push(b'.');
        value.extend_from_slice(URL_SAFE_NO_PAD.encode(signature).as_bytes());
        value.push(b'.');
        value.extend_from_slice(&json);
        let _ = self.store.set(&key, &value, ttl).await;
    }

    /// Removes the entry of `token` (the Auth service refused it).
    pub(crate) async fn forget(&self, token: &str) {
        let _ = self.store.delete(&self.key_of(token)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    fn shared(store: &Arc<LocalStore>, secret: &[u8]) -> SharedDecisions {
        SharedDecisions::new(store.clone(), secret, "http://auth/v1/authorize").unwrap()
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            accepted_until: Some(unix_millis() + 10_000),
            decisions: vec![StoredDecision {
                product: "midaz".into(),
                resource: "ledgers".into(),
                action: "get".into(),
                allowed: true,
                until: unix_millis() + 10_000,
            }],
        }
    }

    #[tokio::test]
    async fn an_entry_reads_back_under_the_same_secret_only() {
        let store = Arc::new(LocalStore::new("t", 100));
        let a = shared(&store, &[7; 32]);
        a.save("tok", &snapshot(), Duration::from_secs(10)).await;
        let read = a.load("tok").await.expect("entry");
        assert!(read.decisions[0].allowed);
        assert!(a.load("other").await.is_none());
        assert!(shared(&store, &[8; 32]).load("tok").await.is_none());
    }

    #[tokio::test]
    async fn a_tampered_or_moved_entry_is_ignored() {
        let store = Arc::new(LocalStore::new("t", 100));
        let a = shared(&store, &[7; 32]);
        a.save("tok", &snapshot(), Duration::from_secs(10)).await;
        let key = a.key_of("tok");
        let genuine = store.get(&key).await.unwrap().unwrap();
        // Flip "allowed" without re-signing.
        let text = String::from_utf8(genuine.clone()).unwrap();
        let tampered = text.replace("\"allowed\":true", "\"allowed\":false");
        assert_ne!(tampered, text);
        store
            .set(&key, tampered.as_bytes(), Duration::from_secs(10))
            .await
            .unwrap();
        assert!(a.load("tok").await.is_none());
        // The genuine value of one token copied to another token's key.
        let other = a.key_of("tok2");
        store
            .set(&other, &genuine, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(a.load("tok2").await.is_none());
        // Another version, unsigned, garbage.
        for bad in [
            text.replacen("v1.", "v2.", 1),
            text.split('.').nth(2).unwrap_or_default().to_owned(),
            "v1.!!.{}".to_owned(),
            String::new(),
        ] {
            store
                .set(&key, bad.as_bytes(), Duration::from_secs(10))
                .await
                .unwrap();
            assert!(a.load("tok").await.is_none(), "{bad}");
        }
    }
}
