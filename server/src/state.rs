//! What every handler shares: settings, store, keys, revocations, throttle, password hasher.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::HeaderMap;
use lib_auth::{AuthError, Policy, Principal};

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::keyring::{KeyRing, KeyRingError};
use crate::keys::KeyEncryptionKey;
use crate::password::Passwords;
use crate::push::Publisher;
use crate::revocation_index::RevocationIndex;
use crate::shared_throttle::SharedThrottle;
use crate::store::keys::key_table_version;
use crate::store::{Store, load_policy};
use crate::throttle::Throttle;
use lib_auth::ValkeyStore;

/// The server's shared state; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ServerConfig,
    store: Store,
    kek: KeyEncryptionKey,
    keyring: RwLock<Arc<KeyRing>>,
    policy: RwLock<(Arc<Policy>, String)>,
    revocations: RevocationIndex,
    throttle: Throttle,
    passwords: Passwords,
    /// With `VALKEY_URL`.
    publisher: Option<Publisher>,
    /// With `VALKEY_URL`.
    shared_throttle: Option<SharedThrottle>,
}

/// The state could not be built at start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The keys failed.
    #[error(transparent)]
    KeyRing(#[from] KeyRingError),
    /// The key-encryption key failed.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// Hashing the bootstrap admin's password failed.
    #[error(transparent)]
    Password(#[from] crate::password::PasswordError),
}

impl AppState {
    /// Loads the policy, keys and revocations from `store`.
    pub fn new(
        config: ServerConfig,
        store: Store,
        kek: KeyEncryptionKey,
    ) -> Result<AppState, StartError> {
        let (policy, etag) = store.run_now(load_policy)?;
        let keyring = KeyRing::load(&store, &kek, &config, &policy)?;
        let revocations = RevocationIndex::default();
        revocations.sync_now(&store)?;
        let throttle = Throttle::new(config.throttle_max_failures, config.throttle_window);
        let passwords = Passwords::new(config.password_hash_concurrency);
        let publisher = config
            .valkey_url
            .as_ref()
            .map(|url| Publisher::new(url.expose(), &config.valkey_prefix));
        let shared_throttle = config.valkey_url.as_ref().map(|url| {
            SharedThrottle::new(
                Arc::new(ValkeyStore::new(
                    url.expose(),
                    &config.valkey_prefix,
                    "shared login throttle",
                )),
                config.throttle_max_failures,
                config.throttle_window,
            )
        });
        if config.valkey_url.is_some() {
            tracing::info!(
                channel = %lib_auth::revocation_channel(&config.valkey_prefix),
                prefix = %config.valkey_prefix,
                "Valkey: new revocations are published, and the login throttle is shared by the replicas of this prefix"
            );
        }
        Ok(AppState {
            inner: Arc::new(Inner {
                config,
                store,
                kek,
                keyring: RwLock::new(Arc::new(keyring)),
                policy: RwLock::new((Arc::new(policy), etag)),
                revocations,
                throttle,
                passwords,
                publisher,
                shared_throttle,
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The current keys.
    pub fn keyring(&self) -> Arc<KeyRing> {
        Arc::clone(&self.inner.keyring.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The current policy and its ETag.
    pub fn policy(&self) -> (Arc<Policy>, String) {
        self.inner
            .policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The live revocations.
    pub fn revocations(&self) -> &RevocationIndex {
        &self.inner.revocations
    }

    /// Reads the revocations written since the last sync into the index (the server's own
    /// checks refuse their tokens from now on) and, with Valkey, tells validators to read them.
    pub async fn sync_revocations(&self) -> Result<(), crate::store::StoreError> {
        let items = self.inner.revocations.sync(&self.inner.store).await?;
        if let Some(publisher) = &self.inner.publisher
            && !items.is_empty()
        {
            publisher.notify();
        }
        Ok(())
    }

    /// The failed-attempt counters.
    pub fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }

    /// The failure counters shared with the other replicas, with `VALKEY_URL`.
    pub fn shared_throttle(&self) -> Option<&SharedThrottle> {
        self.inner.shared_throttle.as_ref()
    }

    /// The password hasher.
    pub fn passwords(&self) -> &Passwords {
        &self.inner.passwords
    }

    /// Verifies the access token of a request (`Authorization: Bearer <jwt>` or the bare
    /// `<jwt>`): signature and claims against this issuer's keys, then revocations.
    pub async fn verify_access(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let keyring = self.keyring();
        let principal = keyring
            .auth
            .authenticate_headers(headers)
            .await
            .map_err(token_error)?;
        if self.inner.revocations.is_revoked(&principal) {
            return Err(ApiError::InvalidToken);
        }
        Ok(principal)
    }

    /// Verifies an access token given as a string (revocation and introspection endpoints).
    pub async fn verify_access_token(&self, token: &str) -> Result<Principal, ApiError> {
        let mut headers = HeaderMap::new();
        let value = axum::http::HeaderValue::from_str(token).map_err(|_| ApiError::InvalidToken)?;
        headers.insert(axum::http::header::AUTHORIZATION, value);
        self.verify_access(&headers).await
    }

    /// Verifies an ID token of this issuer (`id_token_hint`), revocations included.
    pub async fn verify_id_token(&self, token: &str) -> Result<Principal, ApiError> {
        let mut headers = HeaderMap::new();
        let value = axum::http::HeaderValue::from_str(token).map_err(|_| ApiError::InvalidToken)?;
        headers.insert(axum::http::header::AUTHORIZATION, value);
        let principal = self
            .keyring()
            .id_token_auth
            .authenticate_headers(&headers)
            .await
            .map_err(token_error)?;
        if self.inner.revocations.is_revoked(&principal) {
            return Err(ApiError::InvalidToken);
        }
        Ok(principal)
    }

    /// Rebuilds the keyring when the key table changed (a rotation by the CLI).
    pub async fn reload_keys_if_changed(&self) -> Result<bool, StartError> {
        let version = self.inner.store.run(|c| key_table_version(c)).await?;
        if version == self.keyring().version {
            return Ok(false);
        }
        let state = self.clone();
        let keyring = tokio::task::spawn_blocking(move || {
            let (policy, _) = state.policy();
            KeyRing::load(
                &state.inner.store,
                &state.inner.kek,
                &state.inner.config,
                &policy,
            )
        })
        .await
        .map_err(|_| crate::store::StoreError::Task)??;
        *self
            .inner
            .keyring
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(keyring);
        Ok(true)
    }

    /// Background upkeep until the process ends: revocations every second, keys every five,
    /// purges of expired rows every hour.
    pub fn spawn_upkeep(&self) -> tokio::task::JoinHandle<()> {
        if let Some(publisher) = &self.inner.publisher {
            publisher.start();
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut ticks: u64 = 0;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let state = AppState { inner };
                if let Err(e) = state.sync_revocations().await {
                    tracing::warn!(error = %e, "revocation sync failed");
                }
                if ticks.is_multiple_of(5)
                    && let Err(e) = state.reload_keys_if_changed().await
                {
                    tracing::warn!(error = %e, "key reload failed");
                }
                if ticks.is_multiple_of(3600) {
                    let purged = state
                        .store()
                        .run(|c| {
                            Ok(crate::store::revocations::purge_revocations(c)?
                                + crate::store::sessions::purge_sessions(c)?)
                        })
                        .await;
                    if let Err(e) = purged {
                        tracing::warn!(error = %e, "purge failed");
                    }
                }
                ticks += 1;
            }
        })
    }
}

fn token_error(error: AuthError) -> ApiError {
    match error {
        AuthError::MissingToken => ApiError::MissingToken,
        AuthError::InvalidToken { .. } => ApiError::InvalidToken,
        other => ApiError::internal(other),
    }
}
