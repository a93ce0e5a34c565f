//! Revocations in local mode: the sessions and subjects whose tokens must be refused before
//! they expire, fed by the Auth service's revocation feed (see [`crate::sync`]) or pushed in
//! code ([`Auth::revoke_session`](crate::Auth::revoke_session),
//! [`Auth::revoke_subject_before`](crate::Auth::revoke_subject_before)).
//!
//! # Semantics (the feed's items, SPEC §4)
//!
//! - `{"sid": s, "expiresAt": e}` revokes every token whose `sid` claim is `s`.
//! - `{"sub": u, "notBefore": n, "expiresAt": e}` revokes every token whose `sub` claim is `u`
//!   and whose `iat` is before `n` (strictly; a token without `iat` counts as issued at 0):
//!   forced logout, password reset, group change, application secret rotation or deletion. Of
//!   several such entries for one subject the latest `notBefore` (and the latest `expiresAt`)
//!   is kept.
//! - `expiresAt` (Unix seconds) is when every token the entry can match has expired: the entry
//!   is forgotten once `expiresAt` plus the leeway (`PLUGIN_AUTH_LEEWAY`, during which the
//!   verifier still accepts an expired token) has passed.
//!
//! # Cost on the warm path
//!
//! Every new revocation bumps a generation number (unique in the process). A principal
//! remembers the generation at which it was last found not revoked; while no new revocation
//! arrives, checking it is two atomic loads. When the generation moved, the check is a read
//! lock and at most two hash lookups (`sid`, then `sub`), without allocation. With nothing ever
//! revoked, the generation is 0 and nothing is looked up.
//!
//! # Bounds
//!
//! At most [`MAX_REVOCATIONS`] entries are kept; beyond that the entries closest to their
//! expiry are dropped first (with one WARN per episode). Expired entries are dropped in
//! expiry order (a heap), never by scanning the tables under the write lock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use foldhash::fast::RandomState;

use crate::error::{AuthError, InvalidTokenReason};
use crate::principal::Principal;
use crate::verify::unix_now;

/// The most revocations kept in memory (sessions and subjects together).
pub(crate) const MAX_REVOCATIONS: usize = 1_000_000;

/// Generations handed out to revocation stores and policy slots: unique in the process, so
/// that a value remembered by a principal (or a thread) for one store never matches another.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// A new generation number, never 0 and never handed out before.
pub(crate) fn next_generation() -> u64 {
    GENERATIONS.fetch_add(1, Ordering::Relaxed)
}

/// One revocation, as applied to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revocation {
    /// Every token of session `sid`.
    Session {
        /// The `sid` claim.
        sid: String,
        /// When the entry may be forgotten (Unix seconds).
        expires_at: u64,
    },
    /// Every token of `sub` issued (`iat`) before `not_before`.
    Subject {
        /// The `sub` claim.
        sub: String,
        /// Tokens with `iat` < this are revoked (Unix seconds).
        not_before: u64,
        /// When the entry may be forgotten (Unix seconds).
        expires_at: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Session,
    Subject,
}

#[derive(Debug, Default)]
struct Tables {
    /// sid → expiresAt.
    sessions: HashMap<Arc<str>, u64, RandomState>,
    /// sub → (notBefore, expiresAt), the latest of each kept.
    subjects: HashMap<Arc<str>, (u64, u64), RandomState>,
    /// Every entry by expiresAt, soonest first. An entry whose expiry was pushed back leaves a
    /// stale item here, recognised (and skipped) by its expiry no longer matching the table.
    expiry: BinaryHeap<Reverse<(u64, Kind, Arc<str>)>>,
}

impl Tables {
    fn len(&self) -> usize {
        self.sessions.len() + self.subjects.len()
    }

    fn is_revoked(&self, principal: &Principal) -> bool {
        if let Some(sid) = principal.session_id()
            && self.sessions.contains_key(sid)
        {
            return true;
        }
        match self.subjects.get(principal.subject()) {
            Some(&(not_before, _)) => principal.issued_at().unwrap_or(0) < not_before,
            None => false,
        }
    }

    /// The expiry the table holds now for the entry of a heap item.
    fn current_expiry(&self, kind: Kind, key: &str) -> Option<u64> {
        match kind {
            Kind::Session => self.sessions.get(key).copied(),
            Kind::Subject => self.subjects.get(key).map(|&(_, expires_at)| expires_at),
        }
    }

    fn remove(&mut self, kind: Kind, key: &str) {
        match kind {
            Kind::Session => self.sessions.remove(key),
            Kind::Subject => self.subjects.remove(key).map(|(_, e)| e),
        };
    }

    /// Pops heap items while `pop(expires_at)` says so, removing the entries they still stand
    /// for; returns how many entries were removed. Stops after `limit` removals.
    fn pop_while(&mut self, limit: usize, pop: impl Fn(u64) -> bool) -> usize {
        let mut removed = 0;
        while removed < limit {
            let Some(Reverse((expires_at, kind, _))) = self.expiry.peek() else {
                break;
            };
            if !pop(*expires_at) {
                break;
            }
            let (expires_at, kind) = (*expires_at, *kind);
            let Some(Reverse((_, _, key))) = self.expiry.pop() else {
                break;
            };
            if self.current_expiry(kind, &key) == Some(expires_at) {
                self.remove(kind, &key);
                removed += 1;
            }
        }
        removed
    }

    /// Rebuilds the heap from the tables when stale items make up most of it.
    fn compact(&mut self) {
        if self.expiry.len() <= 2 * self.len() + 1024 {
            return;
        }
        let sessions = self
            .sessions
            .iter()
            .map(|(k, &e)| Reverse((e, Kind::Session, k.clone())));
        let subjects = self
            .subjects
            .iter()
            .map(|(k, &(_, e))| Reverse((e, Kind::Subject, k.clone())));
        self.expiry = sessions.chain(subjects).collect();
    }
}

/// The live revocations of one [`Auth`](crate::Auth).
pub(crate) struct RevocationStore {
    /// 0 while nothing was ever revoked; else a unique value bumped by every new revocation.
    generation: AtomicU64,
    tables: RwLock<Tables>,
    /// Seconds an entry is kept past its `expiresAt` (the verifier's leeway on `exp`).
    leeway_secs: u64,
    /// Set while the store is full (one WARN per episode).
    full: AtomicBool,
    /// The most entries kept ([`MAX_REVOCATIONS`]).
    max: usize,
    /// Set once the revocation feed was read to its end, cleared while the Auth service
    /// refuses this validator's credentials: whether what is refused here is all the service
    /// has revoked (up to a poll interval, or a push, ago).
    feed_current: AtomicBool,
}

impl std::fmt::Debug for RevocationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the entries: there may be a million of them.
        f.debug_struct("RevocationStore")
            .field("entries", &self.len())
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RevocationStore {
    pub(crate) fn new(leeway_secs: u64) -> RevocationStore {
        Self::with_max(leeway_secs, MAX_REVOCATIONS)
    }

    fn with_max(leeway_secs: u64, max: usize) -> RevocationStore {
        RevocationStore {
            generation: AtomicU64::new(0),
            tables: RwLock::new(Tables::default()),
            leeway_secs,
            full: AtomicBool::new(false),
            max,
            feed_current: AtomicBool::new(false),
        }
    }

    /// Records whether the revocation feed was just read to its end (`true`) or refused this
    /// validator's credentials (`false`).
    pub(crate) fn set_feed_current(&self, current: bool) {
        self.feed_current.store(current, Ordering::Release);
    }

    /// Whether the revocation feed was read to its end since start and has not refused the
    /// credentials since: until then, revoked tokens may be missing from this store.
    pub(crate) fn feed_current(&self) -> bool {
        self.feed_current.load(Ordering::Acquire)
    }

    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses a revoked principal with 401 ([`InvalidTokenReason::Revoked`]). Two atomic
    /// loads while nothing new was revoked since the principal was last checked.
    #[inline]
    pub(crate) fn check(&self, principal: &Principal) -> Result<(), AuthError> {
        let generation = self.generation.load(Ordering::Acquire);
        if generation == 0 || principal.revocation_checked() == generation {
            return Ok(());
        }
        self.check_slow(principal, generation)
    }

    #[cold]
    fn check_slow(&self, principal: &Principal, generation: u64) -> Result<(), AuthError> {
        if self.read().is_revoked(principal) {
            return Err(AuthError::invalid(InvalidTokenReason::Revoked));
        }
        principal.set_revocation_checked(generation);
        Ok(())
    }

    /// Whether `principal` is revoked (no shortcut).
    #[cfg(test)]
    pub(crate) fn is_revoked(&self, principal: &Principal) -> bool {
        self.read().is_revoked(principal)
    }

    /// The number of live entries (sessions and subjects).
    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }

    /// Applies revocations (after dropping expired entries); returns how many changed what is
    /// refused. Entries already past their expiry are ignored.
    pub(crate) fn apply(&self, revocations: impl IntoIterator<Item = Revocation>) -> usize {
        let now = unix_now();
        let leeway = self.leeway_secs;
        let live = |expires_at: u64| expires_at.saturating_add(leeway) > now;
        let mut tables = self.write();
        tables.pop_while(usize::MAX, |e| !live(e));
        let mut tightened = 0;
        let mut evicted = 0;
        for revocation in revocations {
            let (kind, key, not_before, expires_at) = match revocation {
                Revocation::Session { sid, expires_at } => (Kind::Session, sid, 0, expires_at),
                Revocation::Subject {
                    sub,
                    not_before,
                    expires_at,
                } => (Kind::Subject, sub, not_before, expires_at),
            };
            if !live(expires_at) || key.is_empty() {
                continue;
            }
            let exists = tables.current_expiry(kind, &key).is_some();
            if !exists && tables.len() >= self.max {
                evicted += tables.pop_while(1, |_| true);
                if tables.len() >= self.max {
                    continue;
                }
            }
            let (changed, pushed_back) = match kind {
                Kind::Session => match tables.sessions.get_mut(key.as_str()) {
                    Some(e) if *e >= expires_at => (false, false),
                    Some(e) => {
                        *e = expires_at;
                        (false, true)
                    }
                    None => {
                        tables.sessions.insert(Arc::from(key.as_str()), expires_at);
                        (true, true)
                    }
                },
                Kind::Subject => match tables.subjects.get_mut(key.as_str()) {
                    Some((nb, e)) => {
                        let changed = not_before > *nb;
                        let pushed_back = expires_at > *e;
                        *nb = (*nb).max(not_before);
                        *e = (*e).max(expires_at);
                        (changed, pushed_back)
                    }
                    None => {
                        tables
                            .subjects
                            .insert(Arc::from(key.as_str()), (not_before, expires_at));
                        (true, true)
                    }
                },
            };
            if pushed_back {
                let key = match kind {
                    Kind::Session => tables.sessions.get_key_value(key.as_str()).map(|(k, _)| k),
                    Kind::Subject => tables.subjects.get_key_value(key.as_str()).map(|(k, _)| k),
                }
                .cloned();
                if let Some(key) = key {
                    tables.expiry.push(Reverse((expires_at, kind, key)));
                }
            }
            if changed {
                tightened += 1;
            }
        }
        tables.compact();
        if tightened > 0 {
            // After the tables changed, under the write lock: a reader that sees the new
            // generation takes the read lock after this write and sees the new entries.
            self.generation.store(next_generation(), Ordering::Release);
        }
        let full = tables.len() >= self.max;
        drop(tables);
        if evicted > 0 && !self.full.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                max = self.max,
                "the revocation store is full: the entries closest to their expiry are dropped early"
            );
        } else if !full {
            self.full.store(false, Ordering::Release);
        }
        tightened
    }

    /// Drops the entries whose `expiresAt` (plus the leeway) has passed.
    pub(crate) fn purge(&self) {
        let now = unix_now();
        let leeway = self.leeway_secs;
        let due = |expires_at: u64| expires_at.saturating_add(leeway) <= now;
        // Read first: most calls find nothing to drop and need no write lock.
        let any_due = self
            .read()
            .expiry
            .peek()
            .is_some_and(|Reverse((e, _, _))| due(*e));
        if any_due {
            let mut tables = self.write();
            tables.pop_while(usize::MAX, due);
            tables.compact();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::ClaimMapping;
    use serde_json::json;

    fn principal(sub: &str, sid: Option<&str>, iat: Option<u64>) -> Principal {
        let mut claims = json!({"sub": sub, "exp": unix_now() + 3600});
        if let Some(sid) = sid {
            claims["sid"] = json!(sid);
        }
        if let Some(iat) = iat {
            claims["iat"] = json!(iat);
        }
        Principal::from_claims(
            claims.as_object().cloned().unwrap_or_default(),
            &ClaimMapping::default(),
        )
        .unwrap()
    }

    fn session(sid: &str, expires_at: u64) -> Revocation {
        Revocation::Session {
            sid: sid.to_owned(),
            expires_at,
        }
    }

    fn subject(sub: &str, not_before: u64, expires_at: u64) -> Revocation {
        Revocation::Subject {
            sub: sub.to_owned(),
            not_before,
            expires_at,
        }
    }

    #[test]
    fn sessions_and_subjects_are_refused_and_others_pass() {
        let store = RevocationStore::new(0);
        let later = unix_now() + 3600;
        let a = principal("u1", Some("s1"), Some(100));
        let b = principal("u2", Some("s2"), Some(100));
        assert!(store.check(&a).is_ok() && store.check(&b).is_ok());
        assert_eq!(store.apply([session("s1", later)]), 1);
        assert!(matches!(
            store.check(&a),
            Err(AuthError::InvalidToken {
                reason: InvalidTokenReason::Revoked
            })
        ));
        assert!(store.check(&b).is_ok());

        assert_eq!(store.apply([subject("u2", 150, later)]), 1);
        assert!(store.check(&b).is_err());
        assert!(store.check(&principal("u2", None, Some(150))).is_ok());
        assert!(store.check(&principal("u2", None, None)).is_err());
        // An older notBefore does not loosen the entry.
        assert_eq!(store.apply([subject("u2", 120, later)]), 0);
        assert!(store.is_revoked(&principal("u2", None, Some(149))));
        assert_eq!(store.apply([subject("u2", 200, later)]), 1);
        assert!(store.is_revoked(&principal("u2", None, Some(199))));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn a_checked_principal_is_checked_again_after_a_new_revocation() {
        let store = RevocationStore::new(0);
        let later = unix_now() + 3600;
        let p = principal("u", Some("s"), Some(1));
        store.apply([session("other", later)]);
        assert!(store.check(&p).is_ok());
        assert_eq!(
            p.revocation_checked(),
            store.generation.load(Ordering::Acquire)
        );
        store.apply([session("s", later)]);
        assert!(store.check(&p).is_err());
        // Another store's generation never matches this one's.
        let other = RevocationStore::new(0);
        other.apply([session("x", later)]);
        assert_ne!(
            other.generation.load(Ordering::Acquire),
            store.generation.load(Ordering::Acquire)
        );
    }

    #[test]
    fn expired_entries_are_forgotten_after_the_leeway() {
        let now = unix_now();
        let store = RevocationStore::new(2);
        store.apply([session("gone", now - 10), session("soon", now - 1)]);
        // `gone` was past its expiry plus leeway: never stored; `soon` is within the leeway.
        assert_eq!(store.len(), 1);
        store.apply([session("soon", now + 100)]); // pushed back: a stale heap item remains
        store.purge();
        assert_eq!(store.len(), 1);
        let store = RevocationStore::new(0);
        store.apply([session("a", now + 1), subject("b", now, now + 1)]);
        assert_eq!(store.len(), 2);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        store.purge();
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn a_full_store_drops_the_entries_closest_to_expiry() {
        let store = RevocationStore::with_max(0, 100);
        let now = unix_now();
        let batch = (0..100).map(|i| session(&format!("s{i}"), now + 1000 + i));
        store.apply(batch);
        assert_eq!(store.len(), 100);
        store.apply([session("new", now + 5000)]);
        assert_eq!(store.len(), 100);
        assert!(store.is_revoked(&principal("x", Some("new"), None)));
        assert!(!store.is_revoked(&principal("x", Some("s0"), None)));
        assert!(store.is_revoked(&principal("x", Some("s1"), None)));
    }
}
