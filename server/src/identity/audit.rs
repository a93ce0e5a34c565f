//! The audit log's API: `GET /v1/audit-events`, newest first, filtered by `actor` (an id),
//! `target` (an id), `from` and `to` (RFC 3339, inclusive), paginated.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{IdentityError, Page, Paging, query_map, rfc3339};
use crate::state::AppState;
use crate::store::audit::{AuditEvent, AuditFilter, NewAuditEvent, list_events};

/// An event with its time in RFC 3339.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    #[serde(flatten)]
    event: AuditEvent,
    at: String,
}

/// Appends `event` to the log.
pub async fn record(state: &AppState, event: NewAuditEvent) -> Result<(), IdentityError> {
    state
        .store()
        .run(move |c| crate::store::audit::record(c, &event))
        .await
        .map_err(IdentityError::from)
}

/// `GET /v1/audit-events`.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Page<EventView>>, IdentityError> {
    let query = query_map(query.as_deref()).map_err(|e| match e {
        IdentityError::InvalidPaging(why) => IdentityError::InvalidFilter(why),
        other => other,
    })?;
    let paging = Paging::from_query(&query)?;
    let text = |name: &str| -> Result<Option<String>, IdentityError> {
        match query.get(name) {
            None => Ok(None),
            Some(v) if v.is_empty() || v.len() > 256 => Err(IdentityError::InvalidFilter(format!(
                "{name} must have 1 to 256 characters"
            ))),
            Some(v) => Ok(Some(v.clone())),
        }
    };
    let instant = |name: &str| -> Result<Option<i64>, IdentityError> {
        match query.get(name) {
            None => Ok(None),
            Some(v) => OffsetDateTime::parse(v, &Rfc3339)
                .map(|t| Some(t.unix_timestamp()))
                .map_err(|_| {
                    IdentityError::InvalidFilter(format!(
                        "{name} must be an RFC 3339 time such as 2026-01-31T12:00:00Z"
                    ))
                }),
        }
    };
    let filter = AuditFilter {
        actor: text("actor")?,
        target: text("target")?,
        from: instant("from")?,
        to: instant("to")?,
    };
    let (events, total) = state
        .store()
        .run(move |c| list_events(c, &filter, paging.offset(), paging.limit))
        .await?;
    let items = events
        .into_iter()
        .map(|event| EventView {
            at: rfc3339(event.at),
            event,
        })
        .collect();
    Ok(Json(Page::new(items, paging, total)))
}
