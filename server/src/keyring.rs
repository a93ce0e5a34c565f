//! The keys in use: the active signing key, the public JWKS (active + recently retired keys),
//! and a lib-auth verifier over the same keys and the stored policy.
//!
//! The key table is the source of truth; a [`KeyRing`] is a snapshot of it, rebuilt when the
//! table changes (a `keys rotate` run by another process is picked up within seconds).

use std::sync::Arc;

use lib_auth::{Auth, AuthConfig, Policy, PolicySource, VerificationKey};
use serde_json::{Value, json};

use crate::config::ServerConfig;
use crate::keys::{KeyEncryptionKey, KeyError, SigningAlgorithm, SigningKey};
use crate::store::keys::{StoredKey, activate_key, key_table_version, live_keys};
use crate::store::{Store, StoreError};

/// The keyring could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRingError {
    /// Reading or writing keys failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be generated or decrypted.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The verifier could not be built from the keys.
    #[error("cannot build the verifier: {0}")]
    Verifier(String),
}

/// A snapshot of the key table, ready to sign and verify.
#[derive(Debug)]
pub struct KeyRing {
    /// The key new tokens are signed with.
    pub active: SigningKey,
    /// `{"keys": [...]}`: every key whose tokens may still be valid.
    pub jwks: Value,
    /// Verifies this issuer's access tokens (signature, claims) and decides with the policy.
    pub auth: Auth,
    /// Verifies this issuer's ID tokens (`typ: JWT`), for `id_token_hint`.
    pub id_token_auth: Auth,
    /// The key table version this snapshot was built from.
    pub version: (i64, i64),
}

/// How long after retirement a key stays published: its last tokens' lifetime plus leeway.
pub fn retired_key_lifetime(config: &ServerConfig) -> i64 {
    i64::try_from(config.access_token_ttl.as_secs()).unwrap_or(i64::MAX / 2) + 60
}

/// Makes a new key the active one (the previous one stays published until its tokens expire).
pub fn rotate(
    store: &Store,
    kek: &KeyEncryptionKey,
    algorithm: SigningAlgorithm,
) -> Result<String, KeyRingError> {
    let key = SigningKey::generate(algorithm)?;
    let stored = StoredKey {
        kid: key.kid().to_owned(),
        alg: algorithm.name().to_owned(),
        sealed_private_key: kek.seal(key.kid(), &key.to_pkcs8()?)?,
        public_jwk: key.public_jwk().to_string(),
        created_at: 0,
        retired_at: None,
    };
    store.run_now(|c| activate_key(c, &stored))?;
    Ok(stored.kid)
}

impl KeyRing {
    /// The current key table as a keyring; generates the first key when there is none.
    pub fn load(
        store: &Store,
        kek: &KeyEncryptionKey,
        config: &ServerConfig,
        policy: &Policy,
    ) -> Result<KeyRing, KeyRingError> {
        let max_age = retired_key_lifetime(config);
        let mut keys = store.run_now(|c| live_keys(c, max_age))?;
        if !keys.iter().any(|k| k.retired_at.is_none()) {
            rotate(store, kek, config.signing_algorithm)?;
            keys = store.run_now(|c| live_keys(c, max_age))?;
        }
        let version = store.run_now(|c| key_table_version(c))?;
        let active_row = keys
            .iter()
            .find(|k| k.retired_at.is_none())
            .ok_or_else(|| StoreError::Corrupted("no active signing key".into()))?;
        let algorithm: SigningAlgorithm =
            active_row
                .alg
                .parse()
                .map_err(|()| KeyError::UnknownAlgorithm {
                    kid: active_row.kid.clone(),
                    alg: active_row.alg.clone(),
                })?;
        let pkcs8 = kek.open(&active_row.kid, &active_row.sealed_private_key)?;
        let active = SigningKey::from_pkcs8(algorithm, &pkcs8)?;

        let mut public = Vec::with_capacity(keys.len());
        let mut verification = Vec::with_capacity(keys.len());
        for key in &keys {
            let jwk: Value = serde_json::from_str(&key.public_jwk)
                .map_err(|e| StoreError::Corrupted(format!("public key {}: {e}", key.kid)))?;
            let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone())
                .map_err(|e| StoreError::Corrupted(format!("public key {}: {e}", key.kid)))?;
            verification.push(
                VerificationKey::from_jwk(&parsed)
                    .map_err(|e| KeyRingError::Verifier(e.to_string()))?,
            );
            public.push(jwk);
        }
        let auth = verifier(config, policy, &verification, false)?;
        let id_token_auth = verifier(config, policy, &verification, true)?;
        Ok(KeyRing {
            active,
            jwks: json!({ "keys": public }),
            auth,
            id_token_auth,
            version,
        })
    }
}

fn verifier(
    config: &ServerConfig,
    policy: &Policy,
    keys: &[VerificationKey],
    id_tokens: bool,
) -> Result<Auth, KeyRingError> {
    let mut auth_config = AuthConfig::default()
        .enabled(true)
        .issuer(config.issuer.clone())
        .leeway(std::time::Duration::from_secs(30))
        .policy(PolicySource::Document(Box::new(policy.clone())))
        .accept_plain_jwt(id_tokens);
    // Access tokens carry this server's audience; ID tokens carry their client's.
    if !id_tokens {
        auth_config = auth_config.audience(config.audience.clone());
    }
    for key in keys {
        auth_config = auth_config.static_key(key.clone());
    }
    Auth::new(auth_config).map_err(|e| KeyRingError::Verifier(e.to_string()))
}

/// A shared, swappable keyring.
pub type SharedKeyRing = Arc<std::sync::RwLock<Arc<KeyRing>>>;
