//! `lib-auth-server`: the Auth service of lib-auth (SPEC §4) on SQLite.
//!
//! [`Server::start`] opens the store, bootstraps the admin on first start, loads the keys and
//! serves the Auth API and the Identity API on their listeners; the binary wraps it with a
//! CLI.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod config;
pub mod error;
pub mod identity;
pub mod keyring;
pub mod keys;
mod memory;
pub mod operator;
pub mod password;
pub mod push;
pub mod revocation_index;
pub mod secret;
pub mod serve;
pub mod shared_throttle;
pub mod state;
pub mod store;
pub mod throttle;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;

pub use config::ServerConfig;
pub use identity::IdentityError;
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
    /// Where the Identity API listens, when it runs.
    pub identity_address: Option<SocketAddr>,
    /// The shared state (for tests and embedding).
    pub state: AppState,
    tasks: Vec<tokio::task::JoinHandle<Result<(), std::io::Error>>>,
}

/// The listeners a server serves on: Auth always, Identity when given.
#[derive(Debug)]
pub struct Listeners {
    /// The Auth API's.
    pub auth: TcpListener,
    /// The Identity API's.
    pub identity: Option<TcpListener>,
}

impl Server {
    /// Opens the store, bootstraps the admin (printing a generated password once on stdout),
    /// binds the Auth listener (`AUTH_PORT`) and the Identity listener (`IDENTITY_PORT`) and
    /// serves both until `shutdown` completes.
    pub async fn start(
        config: ServerConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Server, ServeError> {
        let bind = |port: u16| async move {
            let address = SocketAddr::new(config.bind_address, port);
            TcpListener::bind(address)
                .await
                .map_err(|source| ServeError::Bind { address, source })
        };
        let auth = bind(config.auth_port).await?;
        let identity = bind(config.identity_port).await?;
        let listeners = Listeners {
            auth,
            identity: Some(identity),
        };
        Server::start_on(config, listeners, shutdown).await
    }

    /// [`start`](Self::start) on listeners bound by the caller.
    pub async fn start_on(
        config: ServerConfig,
        listeners: Listeners,
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
        // One shutdown signal for every listener.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let auth_address = listeners.auth.local_addr()?;
        let mut tasks = Vec::with_capacity(2);
        let header_timeout = state.config().header_read_timeout;
        let app = auth::router(state.clone());
        tasks.push(tokio::spawn(serve::serve(
            listeners.auth,
            app,
            header_timeout,
            stopped(),
        )));
        tracing::info!(%auth_address, "auth service listening");
        let identity_address = match listeners.identity {
            Some(listener) => {
                let address = listener.local_addr()?;
                let app = identity::router(state.clone());
                tasks.push(tokio::spawn(serve::serve(
                    listener,
                    app,
                    header_timeout,
                    stopped(),
                )));
                tracing::info!(identity_address = %address, "identity service listening");
                Some(address)
            }
            None => None,
        };
        Ok(Server {
            auth_address,
            identity_address,
            state,
            tasks,
        })
    }

    /// Waits until every listener has shut down.
    pub async fn wait(self) -> Result<(), ServeError> {
        for task in self.tasks {
            match task.await {
                Ok(result) => result?,
                Err(_) => return Err(ServeError::Io(std::io::Error::other("server task failed"))),
            }
        }
        Ok(())
    }
}
