//! Signing keys, stored with the private half encrypted (see [`crate::keys`]).

use rusqlite::{Connection, Row, params};

use super::{StoreError, unix_now};

/// A stored signing key.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// JOSE algorithm name.
    pub alg: String,
    /// PKCS#8, sealed with the key-encryption key.
    pub sealed_private_key: Vec<u8>,
    /// The public JWK, JSON text.
    pub public_jwk: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When a newer key replaced it (Unix seconds); `None` for the active key.
    pub retired_at: Option<i64>,
}

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<StoredKey> {
    Ok(StoredKey {
        kid: row.get(0)?,
        alg: row.get(1)?,
        sealed_private_key: row.get(2)?,
        public_jwk: row.get(3)?,
        created_at: row.get(4)?,
        retired_at: row.get(5)?,
    })
}

/// Keys whose tokens may still be valid: the active one and those retired less than
/// `max_token_age` seconds ago, newest first.
pub fn live_keys(
    connection: &Connection,
    max_token_age: i64,
) -> Result<Vec<StoredKey>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT kid, alg, private_key, public_jwk, created_at, retired_at FROM signing_keys
         WHERE retired_at IS NULL OR retired_at > ?1 ORDER BY created_at DESC, rowid DESC",
    )?;
    let keys = statement
        .query_map([unix_now() - max_token_age], key_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(keys)
}

/// Stores `key` as the active key and retires the previous one, in one transaction.
pub fn activate_key(connection: &mut Connection, key: &StoredKey) -> Result<(), StoreError> {
    let now = unix_now();
    let tx = connection.transaction()?;
    tx.execute(
        "UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL",
        [now],
    )?;
    tx.execute(
        "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            key.kid,
            key.alg,
            key.sealed_private_key,
            key.public_jwk,
            now
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// A fingerprint of the key table that changes whenever a key is added or retired.
pub fn key_table_version(connection: &Connection) -> Result<(i64, i64), StoreError> {
    Ok(connection.query_row(
        "SELECT COUNT(*), COALESCE(MAX(COALESCE(retired_at, 0) + created_at), 0) FROM signing_keys",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?)
}
