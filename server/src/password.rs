//! Password hashing with argon2id (m = 19 MiB, t = 2, p = 1), off the async runtime and bounded
//! in concurrency so a login flood cannot starve the rest of the server.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::memory::release_free_memory;

/// Hashing could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The hasher failed (never for valid input).
    #[error("password hashing failed")]
    Hash,
    /// The blocking task was lost or the server is shutting down.
    #[error("password hashing task failed")]
    Task,
}

fn argon2() -> Argon2<'static> {
    // OWASP's first argon2id configuration: 19 MiB, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| PasswordError::Hash)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Hash)?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hash)
}

fn verify_now(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Verified against when the user does not exist, so that an unknown user and a wrong password
/// cost the same time: the argon2id hash, with the parameters of [`argon2`], of a password
/// nobody has ("dummy password for timing equalization"). A constant rather than a hash made
/// at start, which would cost every start a hash and its 19 MiB; a test checks that its
/// parameters are the ones real hashes get.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$OOthB546oBc4rnGaoGfREA$5UoKnRaAHnN2/YaH/rQhsiEjM9w9HZT8euICN+zijIA";

/// Hashes and verifies passwords on blocking threads, at most `concurrency` at once.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    concurrency: usize,
}

impl Passwords {
    /// A hasher running at most `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> Passwords {
        let concurrency = concurrency.max(1);
        Passwords {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
        }
    }

    /// The argon2id PHC string of `password`.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let permit = self.permit().await?;
        let idle = self.idle_check();
        tokio::task::spawn_blocking(move || {
            let hashed = hash_now(&password);
            idle.release_if_last(permit);
            hashed
        })
        .await
        .map_err(|_| PasswordError::Task)?
    }

    /// A hashing slot. It moves into the blocking task and is released only when the hash is
    /// done: a caller that goes away (a dropped connection) cannot free its slot early, so a
    /// client that sends logins and disconnects cannot run more hashes at once than the bound.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, PasswordError> {
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::Task)
    }

    fn idle_check(&self) -> IdleCheck {
        IdleCheck {
            permits: Arc::clone(&self.permits),
            concurrency: self.concurrency,
        }
    }

    /// Hashing slots free now.
    #[cfg(test)]
    fn free_slots(&self) -> usize {
        self.permits.available_permits()
    }

    /// Whether `password` matches `hash`; with `None` (unknown user), verifies against a dummy
    /// hash and answers `false`, taking the same time.
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, PasswordError> {
        let permit = self.permit().await?;
        let idle = self.idle_check();
        tokio::task::spawn_blocking(move || {
            let valid = match hash {
                Some(hash) => verify_now(&password, &hash),
                None => {
                    let _ = verify_now(&password, DUMMY_HASH);
                    false
                }
            };
            idle.release_if_last(permit);
            valid
        })
        .await
        .map_err(|_| PasswordError::Task)
    }
}

/// Run by a finished hash on its blocking thread: the last hash running gives its 19 MiB back
/// to the system, so an idle server does not keep it. While logins keep coming, other hashes
/// are running and nothing is given back, so a flood does not pay for it.
struct IdleCheck {
    permits: Arc<Semaphore>,
    concurrency: usize,
}

impl IdleCheck {
    fn release_if_last(self, permit: OwnedSemaphorePermit) {
        let last = self.permits.available_permits() + 1 == self.concurrency;
        drop(permit);
        if last {
            release_free_memory();
        }
    }
}

/// The argon2id hash of `password`, on the current thread (CLI, bootstrap), its memory given
/// back to the system once done.
pub fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let hashed = hash_now(password);
    release_free_memory();
    hashed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hasher = Passwords::new(2);
        let hash = hasher
            .hash("correct horse battery".into())
            .await
            .expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            hasher
                .verify("correct horse battery".into(), Some(hash.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify("wrong".into(), Some(hash))
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify("anything".into(), None)
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify("x".into(), Some("not a phc string".into()))
                .await
                .expect("verify")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_verification_keeps_its_slot_until_the_hash_is_done() {
        let hasher = Passwords::new(1);
        let hash = hasher
            .hash("correct horse battery".into())
            .await
            .expect("hash");
        let started = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.verify("guess".into(), Some(hash)).await })
        };
        // Wait until the verification holds the one slot, then drop the caller, as a client
        // that disconnects mid-login does.
        while hasher.free_slots() == 1 {
            tokio::task::yield_now().await;
        }
        started.abort();
        assert!(started.await.is_err_and(|e| e.is_cancelled()));
        assert_eq!(
            hasher.free_slots(),
            0,
            "the hash still runs, so its slot must stay taken"
        );
        // The next caller waits for that hash, then gets the slot.
        assert!(!hasher.verify("other".into(), None).await.expect("verify"));
        assert_eq!(hasher.free_slots(), 1);
    }

    #[test]
    fn the_dummy_hash_has_the_parameters_of_real_hashes() {
        let real = hash_now("any password at all").expect("hash");
        let params = |phc: &str| phc.rsplitn(3, '$').nth(2).map(str::to_owned);
        assert_eq!(params(DUMMY_HASH), params(&real));
        assert!(verify_now(
            "dummy password for timing equalization",
            DUMMY_HASH
        ));
    }
}
