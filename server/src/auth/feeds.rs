//! The feeds local-mode validators poll with their application token: `GET /v1/policy` (the
//! policy document, with `ETag`) and `GET /v1/revocations?since=<cursor>`.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lib_auth::{Principal, PrincipalKind};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::revocations::{last_revocation_id, revocations_after};

/// Entries answered at most per call; a validator gets the rest on its next poll.
pub const MAX_FEED_ITEMS: i64 = 10_000;

async fn application_caller(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let principal = state.verify_access(headers).await?;
    if principal.kind() != PrincipalKind::Application {
        return Err(ApiError::Forbidden);
    }
    Ok(principal)
}

/// `GET /v1/policy`: the policy document; 304 when `If-None-Match` names the current ETag.
pub async fn policy(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    application_caller(&state, &headers).await?;
    let (policy, etag) = state.policy();
    let etag_value = HeaderValue::from_str(&etag).map_err(ApiError::internal)?;
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        // If-None-Match compares weakly (RFC 9110 §13.1.2): `W/"x"` matches `"x"`.
        .map(|candidate| candidate.trim())
        .any(|candidate| {
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
        });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Json(policy.as_ref()).into_response()
    };
    response.headers_mut().insert(header::ETAG, etag_value);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// `?since=<cursor>`.
#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    since: Option<String>,
}

/// `GET /v1/revocations?since=<cursor>`: `{cursor, items: [{sid?, sub?, notBefore?,
/// expiresAt}]}`, live entries after the cursor (all live entries without one).
pub async fn revocations(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    application_caller(&state, &headers).await?;
    let Query(query) = query.map_err(|_| ApiError::InvalidBody("bad query string".into()))?;
    let since: i64 =
        match query.since.as_deref().filter(|s| !s.is_empty()) {
            None => 0,
            Some(s) => s.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
                ApiError::InvalidBody("since must be a cursor from this feed".into())
            })?,
        };
    let (items, last) = state
        .store()
        .run(move |c| {
            let last = last_revocation_id(c)?;
            // A cursor from the future (a database restored from backup) restarts the feed.
            let since = if since > last { 0 } else { since };
            Ok((revocations_after(c, since, MAX_FEED_ITEMS)?, last))
        })
        .await
        .map_err(ApiError::internal)?;
    let full = i64::try_from(items.len()).unwrap_or(i64::MAX) >= MAX_FEED_ITEMS;
    // A full page ends at its last item; otherwise everything up to the newest entry is seen.
    let cursor = match items.last() {
        Some(item) if full => item.id,
        _ => last,
    };
    Ok(Json(json!({"cursor": cursor.to_string(), "items": items})).into_response())
}
