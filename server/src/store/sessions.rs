//! Sessions (a user's login) and their refresh tokens, single use, in families.
//!
//! A session is the family: every refresh token it ever had points to it. A refresh token is
//! stored only as its SHA-256. Presenting a used one ends the session, which revokes its `sid`
//! for every validator (a revocation row) and kills the newest refresh token too.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::revocations::insert_revocation;
use super::{StoreError, unix_now};

/// A user session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The `sid` claim of its tokens.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The client the user logged in through.
    pub client_id: String,
    /// Granted scope.
    pub scope: String,
    /// Unix seconds.
    pub created_at: i64,
    /// End of the refresh window, Unix seconds.
    pub expires_at: i64,
    /// When it was ended (logout, reuse, admin action), if it was.
    pub ended_at: Option<i64>,
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The token was valid and is now used; the new one is stored.
    Rotated(Session),
    /// The token had been used before: the session was ended (its family revoked).
    Reused,
    /// Unknown, expired, or of an ended session.
    Invalid,
}

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: row.get(0)?,
        user_id: row.get(1)?,
        client_id: row.get(2)?,
        scope: row.get(3)?,
        created_at: row.get(4)?,
        expires_at: row.get(5)?,
        ended_at: row.get(6)?,
    })
}

const SESSION_COLUMNS: &str = "id, user_id, client_id, scope, created_at, expires_at, ended_at";

/// Starts a session for `user_id` with its first refresh token.
pub fn create_session(
    connection: &mut Connection,
    user_id: &str,
    client_id: &str,
    scope: &str,
    refresh_hash: &[u8],
    ttl_secs: i64,
) -> Result<Session, StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = unix_now();
    let expires_at = now.saturating_add(ttl_secs);
    let tx = connection.transaction()?;
    tx.execute(
        "INSERT INTO sessions (id, user_id, client_id, scope, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, user_id, client_id, scope, now, expires_at],
    )?;
    tx.execute(
        "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![refresh_hash, id, now, expires_at],
    )?;
    tx.commit()?;
    Ok(Session {
        id,
        user_id: user_id.to_owned(),
        client_id: client_id.to_owned(),
        scope: scope.to_owned(),
        created_at: now,
        expires_at,
        ended_at: None,
    })
}

/// Uses the refresh token whose hash is `presented` and stores `replacement` in its family,
/// in one transaction: of two racing callers exactly one rotates, and the other, finding the
/// token used, ends the session. `revoke_until` bounds the revocation entry (the latest expiry
/// of an access token of the session).
pub fn rotate_refresh_token(
    connection: &mut Connection,
    presented: &[u8],
    replacement: &[u8],
    revoke_until: i64,
) -> Result<RefreshOutcome, StoreError> {
    let now = unix_now();
    let tx = connection.transaction()?;
    let found: Option<(String, i64, Option<i64>)> = tx
        .query_row(
            "SELECT session_id, expires_at, used_at FROM refresh_tokens WHERE hash = ?1",
            [presented],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    let Some((session_id, expires_at, used_at)) = found else {
        return Ok(RefreshOutcome::Invalid);
    };
    let session = tx
        .query_row(
            &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"),
            [&session_id],
            session_from_row,
        )
        .optional()?;
    let Some(session) = session else {
        return Ok(RefreshOutcome::Invalid);
    };
    if session.ended_at.is_some() {
        return Ok(RefreshOutcome::Invalid);
    }
    if used_at.is_some() {
        end_session_in(&tx, &session.id, now, revoke_until)?;
        tx.commit()?;
        return Ok(RefreshOutcome::Reused);
    }
    if expires_at <= now || session.expires_at <= now {
        return Ok(RefreshOutcome::Invalid);
    }
    tx.execute(
        "UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL",
        params![presented, now],
    )?;
    tx.execute(
        "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![replacement, session.id, now, session.expires_at],
    )?;
    tx.commit()?;
    Ok(RefreshOutcome::Rotated(session))
}

/// The session of a refresh token that is currently usable (for introspection and revocation).
pub fn session_of_refresh_token(
    connection: &Connection,
    presented: &[u8],
) -> Result<Option<Session>, StoreError> {
    let now = unix_now();
    let session = connection
        .query_row(
            "SELECT s.id, s.user_id, s.client_id, s.scope, s.created_at, s.expires_at,
                    s.ended_at FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
                 WHERE r.hash = ?1 AND r.used_at IS NULL AND r.expires_at > ?2
                   AND s.ended_at IS NULL",
            params![presented, now],
            session_from_row,
        )
        .optional()?;
    Ok(session)
}

/// The session with this id.
pub fn find_session(connection: &Connection, id: &str) -> Result<Option<Session>, StoreError> {
    Ok(connection
        .query_row(
            &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"),
            [id],
            session_from_row,
        )
        .optional()?)
}

fn end_session_in(
    tx: &Transaction<'_>,
    session_id: &str,
    now: i64,
    revoke_until: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE sessions SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL",
        params![session_id, now],
    )?;
    tx.execute(
        "UPDATE refresh_tokens SET used_at = ?2 WHERE session_id = ?1 AND used_at IS NULL",
        params![session_id, now],
    )?;
    // Revoked already (a replayed logout): the revocation in force covers every token of
    // the session, none of which can be issued once it has ended, so none is added; else
    // one ID token replayed to the logout endpoint added a row to the feed per call.
    let revoked: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM revocations WHERE sid = ?1 AND expires_at > ?2)",
        params![session_id, now],
        |row| row.get(0),
    )?;
    if !revoked {
        insert_revocation(tx, Some(session_id), None, None, revoke_until)?;
    }
    Ok(())
}

/// Ends a session (logout): its refresh tokens die and its `sid` is revoked until
/// `revoke_until`. Revoking a `sid` that has no session row (an application token's) records
/// the revocation alone.
pub fn end_session(
    connection: &mut Connection,
    session_id: &str,
    revoke_until: i64,
) -> Result<(), StoreError> {
    let tx = connection.transaction()?;
    end_session_in(&tx, session_id, unix_now(), revoke_until)?;
    tx.commit()?;
    Ok(())
}

/// Ends every session of a user and revokes every token of the user issued before now.
pub fn end_user_sessions(
    connection: &mut Connection,
    user_id: &str,
    revoke_until: i64,
) -> Result<(), StoreError> {
    let tx = connection.transaction()?;
    end_user_sessions_in(&tx, user_id, unix_now(), revoke_until)?;
    tx.commit()?;
    Ok(())
}

/// Ends every session of `user_id` except `keep` (a password change keeps the session that
/// made it): their refresh tokens die and their `sid`s are revoked until `revoke_until`.
/// Answers how many sessions ended.
pub fn end_other_sessions(
    connection: &mut Connection,
    user_id: &str,
    keep: Option<&str>,
    revoke_until: i64,
) -> Result<usize, StoreError> {
    let now = unix_now();
    let tx = connection.transaction()?;
    let ids: Vec<String> = {
        let mut statement = tx.prepare_cached(
            "SELECT id FROM sessions WHERE user_id = ?1 AND ended_at IS NULL AND expires_at > ?2",
        )?;
        statement
            .query_map(params![user_id, now], |row| row.get(0))?
            .collect::<Result<_, _>>()?
    };
    let mut ended = 0;
    for id in ids.iter().filter(|id| Some(id.as_str()) != keep) {
        end_session_in(&tx, id, now, revoke_until)?;
        ended += 1;
    }
    tx.commit()?;
    Ok(ended)
}

/// [`end_user_sessions`] inside the caller's transaction.
pub(super) fn end_user_sessions_in(
    tx: &Transaction<'_>,
    user_id: &str,
    now: i64,
    revoke_until: i64,
) -> Result<(), StoreError> {
    // Each live session's `sid` is revoked as well as the subject: a token of a session that
    // started just before this (in the same second, while its login was finishing) carries an
    // `iat` the subject revocation may not reach, but always its `sid`.
    let live: Vec<String> = {
        let mut statement = tx.prepare_cached(
            "SELECT id FROM sessions WHERE user_id = ?1 AND ended_at IS NULL AND expires_at > ?2",
        )?;
        statement
            .query_map(params![user_id, now], |row| row.get(0))?
            .collect::<Result<_, _>>()?
    };
    for sid in &live {
        insert_revocation(tx, Some(sid), None, None, revoke_until)?;
    }
    tx.execute(
        "UPDATE refresh_tokens SET used_at = ?2 WHERE used_at IS NULL
           AND session_id IN (SELECT id FROM sessions WHERE user_id = ?1)",
        params![user_id, now],
    )?;
    tx.execute(
        "UPDATE sessions SET ended_at = ?2 WHERE user_id = ?1 AND ended_at IS NULL",
        params![user_id, now],
    )?;
    super::revocations::revoke_subject_in(tx, user_id, revoke_until)?;
    Ok(())
}

/// Deletes sessions whose refresh window closed more than a day ago.
pub fn purge_sessions(connection: &Connection) -> Result<usize, StoreError> {
    Ok(connection.execute(
        "DELETE FROM sessions WHERE expires_at < ?1",
        [unix_now() - 86_400],
    )?)
}
