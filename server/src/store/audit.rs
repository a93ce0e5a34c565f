//! The audit log: who did what to whom and when. Its writers put no secret in it: an event
//! names its actor and target and describes the change (`detail`, JSON), never a password, a
//! secret, a hash or a token.

use rusqlite::{Connection, Row, params};
use serde::Serialize;
use serde_json::Value;

use super::{StoreError, unix_now};

/// One event, in the wire shape of `GET /v1/audit-events`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Position in the log.
    pub id: i64,
    /// When, Unix seconds (answered as RFC 3339 by the API).
    #[serde(skip)]
    pub at: i64,
    /// The caller's `sub` (a user id or a client id); `None` for the CLI.
    pub actor_id: Option<String>,
    /// The caller's name (username, application name, or `cli`).
    pub actor_name: Option<String>,
    /// What happened: `user.created`, `application.secret_rotated`, `access.denied`, …
    pub action: String,
    /// `user`, `application`, or a resource of the Identity API.
    pub target_type: Option<String>,
    /// The target's id.
    pub target_id: Option<String>,
    /// The target's name (username, application name).
    pub target_name: Option<String>,
    /// What changed (JSON object).
    pub detail: Value,
}

/// An event to record.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEvent {
    /// See [`AuditEvent::actor_id`].
    pub actor_id: Option<String>,
    /// See [`AuditEvent::actor_name`].
    pub actor_name: Option<String>,
    /// See [`AuditEvent::action`].
    pub action: String,
    /// See [`AuditEvent::target_type`].
    pub target_type: Option<String>,
    /// See [`AuditEvent::target_id`].
    pub target_id: Option<String>,
    /// See [`AuditEvent::target_name`].
    pub target_name: Option<String>,
    /// See [`AuditEvent::detail`]; `Value::Null` is stored as `{}`.
    pub detail: Value,
}

/// Which events to list; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The actor's id.
    pub actor: Option<String>,
    /// The target's id.
    pub target: Option<String>,
    /// At or after (Unix seconds).
    pub from: Option<i64>,
    /// At or before (Unix seconds).
    pub to: Option<i64>,
}

/// Appends an event.
pub fn record(connection: &Connection, event: &NewAuditEvent) -> Result<(), StoreError> {
    let detail = if event.detail.is_null() {
        "{}".to_owned()
    } else {
        event.detail.to_string()
    };
    connection.execute(
        "INSERT INTO audit_events (at, actor_id, actor_name, action, target_type, target_id,
            target_name, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            unix_now(),
            event.actor_id,
            event.actor_name,
            event.action,
            event.target_type,
            event.target_id,
            event.target_name,
            detail
        ],
    )?;
    Ok(())
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    let detail: String = row.get(8)?;
    Ok(AuditEvent {
        id: row.get(0)?,
        at: row.get(1)?,
        actor_id: row.get(2)?,
        actor_name: row.get(3)?,
        action: row.get(4)?,
        target_type: row.get(5)?,
        target_id: row.get(6)?,
        target_name: row.get(7)?,
        detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
    })
}

/// One page of the events matching `filter`, newest first, and how many match.
pub fn list_events(
    connection: &Connection,
    filter: &AuditFilter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<AuditEvent>, i64), StoreError> {
    const WHERE: &str = "WHERE (?1 IS NULL OR actor_id = ?1) AND (?2 IS NULL OR target_id = ?2)
        AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR at <= ?4)";
    let mut statement = connection.prepare_cached(&format!(
        "SELECT id, at, actor_id, actor_name, action, target_type, target_id, target_name,
            detail FROM audit_events {WHERE} ORDER BY id DESC LIMIT ?5 OFFSET ?6"
    ))?;
    let events = statement
        .query_map(
            params![
                filter.actor,
                filter.target,
                filter.from,
                filter.to,
                limit,
                offset
            ],
            event_from_row,
        )?
        .collect::<Result<_, _>>()?;
    let total = connection.query_row(
        &format!("SELECT COUNT(*) FROM audit_events {WHERE}"),
        params![filter.actor, filter.target, filter.from, filter.to],
        |row| row.get(0),
    )?;
    Ok((events, total))
}
