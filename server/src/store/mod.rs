//! The SQLite store: one connection in WAL mode with foreign keys, schema migrations applied at
//! open, and every query run off the async runtime.
//!
//! One writer connection serializes all changes, which is what makes the refresh-token race
//! (two requests with the same token) have exactly one winner: the check and the update happen
//! in one transaction that nothing else can interleave with.

pub mod applications;
pub mod audit;
pub mod keys;
mod migrations;
pub mod policy;
pub mod revocations;
pub mod sessions;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

pub use applications::{Application, NewApplication};
pub use keys::StoredKey;
pub use revocations::Revocation;
pub use sessions::{RefreshOutcome, Session};
pub use users::{NewUser, User};

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite refused the operation.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database directory could not be created.
    #[error("cannot create the database directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stored value does not parse (a corrupted row or a newer schema).
    #[error("corrupted data: {0}")]
    Corrupted(String),
    /// The blocking task running the query was lost.
    #[error("database task failed")]
    Task,
    /// A unique value already exists (a username, a client id).
    #[error("{0} already exists")]
    Conflict(&'static str),
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The database, shared by every request (cheap to clone).
#[derive(Clone, Debug)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating the file and its directory if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        create_private(path).map_err(|source| StoreError::Directory {
            path: path.to_path_buf(),
            source,
        })?;
        let mut connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations::apply(&mut connection)?;
        Ok(Store {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut guard = connection.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|_| StoreError::Task)?
    }

    /// Runs `f` with the connection on the current thread (start-up, CLI).
    pub fn run_now<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut guard = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

/// Creates the database file readable by its owner only (it holds password and token hashes);
/// SQLite gives its `-wal` and `-shm` files the same mode. An existing file is left as it is.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
fn conflict(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation
                && f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StoreError::Conflict(what)
        }
        _ => StoreError::Sqlite(e),
    }
}

pub use policy::{load_policy, store_policy};
