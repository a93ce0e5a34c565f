//! The live revocations in memory, so that every token check in the server is two hash
//! lookups. Filled from the `revocations` table and kept in step with it: the server syncs
//! after each of its own writes and every second (changes made by the CLI in another process).

use std::collections::HashMap;
use std::sync::RwLock;

use lib_auth::Principal;

use crate::store::revocations::{Revocation, revocations_after};
use crate::store::{Store, StoreError, unix_now};

#[derive(Debug, Default)]
struct Entries {
    cursor: i64,
    sessions: HashMap<String, i64>,
    /// sub → (not_before, expires_at), the latest `not_before` kept.
    subjects: HashMap<String, (i64, i64)>,
}

/// The revocations a token is checked against.
#[derive(Debug, Default)]
pub struct RevocationIndex {
    entries: RwLock<Entries>,
}

impl RevocationIndex {
    /// Whether the token of `principal` is revoked (its session ended, or its subject's tokens
    /// issued before some instant revoked).
    pub fn is_revoked(&self, principal: &Principal) -> bool {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        if let Some(sid) = principal.session_id()
            && entries.sessions.contains_key(sid)
        {
            return true;
        }
        if let Some((not_before, _)) = entries.subjects.get(principal.subject()) {
            let issued_at = principal
                .claims()
                .get("iat")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            return issued_at < *not_before;
        }
        false
    }

    /// The earliest `iat` a new token of `sub` may carry so that no revocation matches it.
    pub fn earliest_issue_time(&self, sub: &str) -> Option<i64> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.subjects.get(sub).map(|(not_before, _)| *not_before)
    }

    fn apply(&self, items: &[Revocation]) {
        let now = unix_now();
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        for item in items {
            entries.cursor = entries.cursor.max(item.id);
            if let Some(sid) = &item.sid {
                entries.sessions.insert(sid.clone(), item.expires_at);
            }
            if let (Some(sub), Some(not_before)) = (&item.sub, item.not_before) {
                let slot = entries
                    .subjects
                    .entry(sub.clone())
                    .or_insert((not_before, item.expires_at));
                slot.0 = slot.0.max(not_before);
                slot.1 = slot.1.max(item.expires_at);
            }
        }
        entries.sessions.retain(|_, expires_at| *expires_at > now);
        entries
            .subjects
            .retain(|_, (_, expires_at)| *expires_at > now);
    }

    /// Reads the entries written since the last sync; answers them.
    pub async fn sync(&self, store: &Store) -> Result<Vec<Revocation>, StoreError> {
        let cursor = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cursor;
        let items = store
            .run(move |c| revocations_after(c, cursor, 10_000))
            .await?;
        self.apply(&items);
        Ok(items)
    }

    /// [`sync`](Self::sync) on the current thread (start-up).
    pub fn sync_now(&self, store: &Store) -> Result<(), StoreError> {
        let cursor = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cursor;
        let items = store.run_now(|c| revocations_after(c, cursor, i64::MAX))?;
        self.apply(&items);
        Ok(())
    }
}
