//! Revocations: what validators must refuse before the tokens expire. An entry revokes a
//! session (`sid`) or every token of a subject issued before `not_before`; it is kept until
//! `expires_at`, when every token it could match has expired.

use rusqlite::{Connection, Row, Transaction, params};
use serde::Serialize;

use super::{StoreError, unix_now};

/// One revocation, in the wire shape of `GET /v1/revocations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    /// Its position in the feed.
    #[serde(skip)]
    pub id: i64,
    /// A revoked session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// A subject whose tokens issued before `not_before` are revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Tokens of `sub` with `iat` before this (Unix seconds) are revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// When the entry can be forgotten (Unix seconds).
    pub expires_at: i64,
}

fn revocation_from_row(row: &Row<'_>) -> rusqlite::Result<Revocation> {
    Ok(Revocation {
        id: row.get(0)?,
        sid: row.get(1)?,
        sub: row.get(2)?,
        not_before: row.get(3)?,
        expires_at: row.get(4)?,
    })
}

pub(super) fn insert_revocation(
    tx: &Transaction<'_>,
    sid: Option<&str>,
    sub: Option<&str>,
    not_before: Option<i64>,
    expires_at: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO revocations (sid, sub, not_before, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![sid, sub, not_before, expires_at, unix_now()],
    )?;
    Ok(())
}

/// Records that every token of `sub` issued up to now is revoked (a demotion, a password
/// reset, a rotated application secret), until `revoke_until`; answers the `not_before`.
pub fn revoke_subject(
    connection: &mut Connection,
    sub: &str,
    revoke_until: i64,
) -> Result<i64, StoreError> {
    let tx = connection.transaction()?;
    let not_before = revoke_subject_in(&tx, sub, revoke_until)?;
    tx.commit()?;
    Ok(not_before)
}

/// [`revoke_subject`] inside the caller's transaction.
///
/// `iat` has a resolution of one second, so the entry refuses tokens issued before the next
/// second, and tokens issued after it carry that second as their `iat` (the issuer reads it
/// back). A second revocation within the same second must refuse those too: `not_before` is
/// therefore always past the subject's previous one.
pub(super) fn revoke_subject_in(
    tx: &Transaction<'_>,
    sub: &str,
    revoke_until: i64,
) -> Result<i64, StoreError> {
    let latest: Option<i64> = tx.query_row(
        "SELECT MAX(not_before) FROM revocations WHERE sub = ?1",
        [sub],
        |row| row.get(0),
    )?;
    let not_before = (unix_now() + 1).max(latest.map_or(0, |l| l.saturating_add(1)));
    insert_revocation(tx, None, Some(sub), Some(not_before), revoke_until)?;
    Ok(not_before)
}

/// Live entries after position `after` (all live entries for 0), oldest first, at most `limit`.
pub fn revocations_after(
    connection: &Connection,
    after: i64,
    limit: i64,
) -> Result<Vec<Revocation>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT id, sid, sub, not_before, expires_at FROM revocations
         WHERE id > ?1 AND expires_at > ?2 ORDER BY id LIMIT ?3",
    )?;
    let rows = statement
        .query_map(params![after, unix_now(), limit], revocation_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The position of the newest entry (0 when there is none).
pub fn last_revocation_id(connection: &Connection) -> Result<i64, StoreError> {
    Ok(
        connection.query_row("SELECT COALESCE(MAX(id), 0) FROM revocations", [], |row| {
            row.get(0)
        })?,
    )
}

/// Deletes entries whose tokens have all expired.
pub fn purge_revocations(connection: &Connection) -> Result<usize, StoreError> {
    Ok(connection.execute(
        "DELETE FROM revocations WHERE expires_at <= ?1",
        [unix_now()],
    )?)
}
