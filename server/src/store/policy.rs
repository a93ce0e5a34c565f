//! The policy document (roles and groups): seeded from lib-auth's built-in Midaz policy, so the
//! library and the server share one source of truth.

use lib_auth::Policy;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{StoreError, unix_now};

/// The stored policy and its ETag; seeds the built-in policy on first use.
pub fn load_policy(connection: &mut Connection) -> Result<(Policy, String), StoreError> {
    let row: Option<(String, String)> = connection
        .query_row(
            "SELECT body, etag FROM policy_document WHERE id = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    match row {
        Some((body, etag)) => {
            let policy = Policy::from_json(&body)
                .map_err(|e| StoreError::Corrupted(format!("stored policy: {e}")))?;
            Ok((policy, etag))
        }
        None => {
            let policy = Policy::midaz();
            let etag = store_policy(connection, &policy)?;
            Ok((policy, etag))
        }
    }
}

/// Replaces the policy (validated by the caller) and makes sure every group exists as a row
/// users can reference. Returns the new ETag.
pub fn store_policy(connection: &mut Connection, policy: &Policy) -> Result<String, StoreError> {
    let body = serde_json::to_string(policy)
        .map_err(|e| StoreError::Corrupted(format!("policy serialization: {e}")))?;
    let digest = Sha256::digest(body.as_bytes());
    let etag = format!("\"{}\"", hex(&digest[..16]));
    let now = unix_now();
    let tx = connection.transaction()?;
    tx.execute(
        "INSERT INTO policy_document (id, body, etag, updated_at) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET body = ?1, etag = ?2, updated_at = ?3",
        params![body, etag, now],
    )?;
    for group in &policy.groups {
        tx.execute(
            "INSERT INTO groups (id, name, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET name = ?2",
            params![group.id, group.name, now],
        )?;
    }
    tx.commit()?;
    Ok(etag)
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
