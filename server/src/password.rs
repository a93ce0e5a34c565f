//! Password hashing with argon2id (m = 19 MiB, t = 2, p = 1), off the async runtime and bounded
//! in concurrency so a login flood cannot starve the rest of the server.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

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

/// Hashes and verifies passwords on blocking threads, at most `concurrency` at once.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// A hasher running at most `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> Result<Passwords, PasswordError> {
        Ok(Passwords {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            // Verified against when the user does not exist, so that an unknown user and a
            // wrong password cost the same time.
            dummy_hash: hash_now("dummy password for timing equalization")?.into(),
        })
    }

    /// The argon2id PHC string of `password`.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Task)?;
        tokio::task::spawn_blocking(move || hash_now(&password))
            .await
            .map_err(|_| PasswordError::Task)?
    }

    /// Whether `password` matches `hash`; with `None` (unknown user), verifies against a dummy
    /// hash and answers `false`, taking the same time.
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Task)?;
        let dummy = Arc::clone(&self.dummy_hash);
        tokio::task::spawn_blocking(move || match hash {
            Some(hash) => verify_now(&password, &hash),
            None => {
                let _ = verify_now(&password, &dummy);
                false
            }
        })
        .await
        .map_err(|_| PasswordError::Task)
    }
}

/// The argon2id hash of `password`, on the current thread (CLI, bootstrap).
pub fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    hash_now(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hasher = Passwords::new(2).expect("hasher");
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
}
