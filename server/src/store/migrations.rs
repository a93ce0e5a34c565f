//! Schema migrations, applied in order at open; `PRAGMA user_version` records the last one.

use rusqlite::Connection;

use super::StoreError;

/// Each entry is one migration; never edit a released one, append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the Auth service's tables.
    r#"
    CREATE TABLE policy_document (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        body TEXT NOT NULL,
        etag TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE groups (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        username_key TEXT NOT NULL UNIQUE,
        email TEXT NOT NULL,
        first_name TEXT NOT NULL,
        last_name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE user_groups (
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        group_id TEXT NOT NULL REFERENCES groups(id),
        PRIMARY KEY (user_id, group_id)
    );
    CREATE TABLE applications (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        client_id TEXT NOT NULL UNIQUE,
        secret_hash BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        secret_rotated_at INTEGER NOT NULL
    );
    CREATE TABLE application_roles (
        application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
        role_id TEXT NOT NULL,
        PRIMARY KEY (application_id, role_id)
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        client_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        ended_at INTEGER
    );
    CREATE INDEX sessions_by_user ON sessions(user_id);
    CREATE TABLE refresh_tokens (
        hash BLOB PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
    );
    CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id);
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        private_key BLOB NOT NULL,
        public_jwk TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        retired_at INTEGER
    );
    CREATE TABLE revocations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sid TEXT,
        sub TEXT,
        not_before INTEGER,
        expires_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        CHECK (sid IS NOT NULL OR (sub IS NOT NULL AND not_before IS NOT NULL))
    );
    CREATE INDEX revocations_by_expiry ON revocations(expires_at);
    "#,
    // 2: the Identity service's audit log; revocations looked up by subject.
    r#"
    CREATE TABLE audit_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor_id TEXT,
        actor_name TEXT,
        action TEXT NOT NULL,
        target_type TEXT,
        target_id TEXT,
        target_name TEXT,
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_events_by_actor ON audit_events(actor_id, at);
    CREATE INDEX audit_events_by_target ON audit_events(target_id, at);
    CREATE INDEX audit_events_by_time ON audit_events(at);
    CREATE INDEX revocations_by_subject ON revocations(sub);
    "#,
    // 3: revocations looked up by session (a session is revoked once).
    r#"
    CREATE INDEX revocations_by_session ON revocations(sid, expires_at);
    "#,
];

/// Applies the migrations the database has not seen, each in its own transaction.
pub(super) fn apply(connection: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(StoreError::Corrupted(format!(
            "the database has schema version {current}, newer than this server's {known}"
        )));
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        let tx = connection.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}
