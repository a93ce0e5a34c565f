//! `lib-auth-server`: the Auth service of lib-auth (SPEC §4) on SQLite.
//!
//! [`Server::start`] opens the store, bootstraps the admin on first start, loads the keys and
//! serves the Auth API on its listener; the binary wraps it with a CLI.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod config;
pub mod error;
pub mod keyring;
pub mod keys;
pub mod password;
pub mod revocation_index;
pub mod secret;
pub mod state;
pub mod store;
pub mod throttle;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;

pub use config::ServerConfig;
pub use state::AppState;

use crate::keys::KeyEncryptionKey;
use crate::state::StartError;
use crate::store::Store;
use crate::store::users::{NewUser, count_users, create_user};

/// The group of the bootstrap admin.
pub const ADMIN_GROUP: &str = "admin-group";

/// The server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Loading state failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the key-encryption key lives when `AUTH_KEY_ENCRYPTION_KEY` is unset: `<db>.kek`.
pub fn kek_file(config: &ServerConfig) -> PathBuf {
    let mut name = config.db_path.as_os_str().to_owned();
    name.push(".kek");
    PathBuf::from(name)
}

/// Opens the store (creating and seeding it), loads the key-encryption key.
pub fn open(config: &ServerConfig) -> Result<(Store, KeyEncryptionKey), StartError> {
    let store = Store::open(&config.db_path)?;
    // Seeds the built-in policy (and its groups) on first start.
    store.run_now(store::load_policy)?;
    let kek = KeyEncryptionKey::load(
        config
            .key_encryption_key
            .as_ref()
            .map(lib_auth::Secret::expose),
        &kek_file(config),
    )?;
    Ok((store, kek))
}

/// On a store without users, creates the admin (`AUTH_ADMIN_USERNAME`, in `admin-group`) and
/// returns the generated password when `AUTH_ADMIN_PASSWORD` was not given.
pub fn bootstrap_admin(config: &ServerConfig, store: &Store) -> Result<Option<String>, StartError> {
    if store.run_now(|c| count_users(c))? > 0 {
        return Ok(None);
    }
    let (password, generated) = match &config.admin_password {
        Some(p) => (p.expose().to_owned(), false),
        None => (
            secret::random_id(24).map_err(|_| keys::KeyError::Crypto {
                operation: "generating the admin password",
            })?,
            true,
        ),
    };
    let password_hash = password::hash_blocking(&password)?;
    let new = NewUser {
        username: config.admin_username.clone(),
        email: format!("{}@localhost", config.admin_username),
        first_name: "Admin".into(),
        last_name: String::new(),
        password_hash,
        groups: vec![ADMIN_GROUP.to_owned()],
    };
    store.run_now(|c| create_user(c, &new))?;
    tracing::info!(username = %config.admin_username, "bootstrap admin created");
    Ok(generated.then_some(password))
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// Where the Auth API listens.
    pub auth_address: SocketAddr,
    /// The shared state (for tests and embedding).
    pub state: AppState,
    task: tokio::task::JoinHandle<Result<(), std::io::Error>>,
}

impl Server {
    /// Opens the store, bootstraps the admin (printing a generated password once on stdout),
    /// binds the Auth listener and serves until `shutdown` completes.
    pub async fn start(
        config: ServerConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Server, ServeError> {
        let address = SocketAddr::new(config.bind_address, config.auth_port);
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ServeError::Bind { address, source })?;
        Server::start_on(config, listener, shutdown).await
    }

    /// [`start`](Self::start) on a listener bound by the caller.
    pub async fn start_on(
        config: ServerConfig,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Server, ServeError> {
        let state = tokio::task::spawn_blocking(move || -> Result<AppState, StartError> {
            let (store, kek) = open(&config)?;
            if let Some(password) = bootstrap_admin(&config, &store)? {
                println!(
                    "lib-auth-server: created the admin user {:?} with the password {password} \
                     (shown once; change it)",
                    config.admin_username
                );
            }
            AppState::new(config, store, kek)
        })
        .await
        .map_err(|_| StartError::Store(store::StoreError::Task))??;
        state.spawn_upkeep();
        let auth_address = listener.local_addr()?;
        let app = auth::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        });
        tracing::info!(%auth_address, "auth service listening");
        Ok(Server {
            auth_address,
            state,
            task,
        })
    }

    /// Waits until the server has shut down.
    pub async fn wait(self) -> Result<(), ServeError> {
        match self.task.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(ServeError::Io(std::io::Error::other("server task failed"))),
        }
    }
}
