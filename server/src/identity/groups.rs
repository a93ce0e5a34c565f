//! Groups and roles, read-only: they come from the policy document (SPEC §6), which the
//! library and the server share.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use lib_auth::Role;
use serde::Serialize;

use super::{IdentityError, Page, Paging, query_map, rfc3339};
use crate::state::AppState;
use crate::store::users::{GroupRow, find_group, group_members, list_groups};

/// A group with its roles and the usernames of its members.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    id: String,
    name: String,
    created_at: String,
    roles: Vec<String>,
    users: Vec<String>,
}

fn group_view(state: &AppState, row: GroupRow, users: Vec<String>) -> GroupView {
    let (policy, _) = state.policy();
    let roles = policy
        .groups
        .iter()
        .find(|g| g.id == row.id)
        .map(|g| g.roles.clone())
        .unwrap_or_default();
    GroupView {
        id: row.id,
        name: row.name,
        created_at: rfc3339(row.created_at),
        roles,
        users,
    }
}

/// `GET /v1/groups`: a page of groups.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Page<GroupView>>, IdentityError> {
    let paging = Paging::from_query(&query_map(query.as_deref())?)?;
    let (rows, members, total) = state
        .store()
        .run(move |c| {
            let (rows, total) = list_groups(c, paging.offset(), paging.limit)?;
            let members = rows
                .iter()
                .map(|row| group_members(c, &row.id))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((rows, members, total))
        })
        .await?;
    let items = rows
        .into_iter()
        .zip(members)
        .map(|(row, users)| group_view(&state, row, users))
        .collect();
    Ok(Json(Page::new(items, paging, total)))
}

/// `GET /v1/groups/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<GroupView>, IdentityError> {
    policy_id(&id, "group")?;
    let (row, users) = state
        .store()
        .run(move |c| {
            let Some(row) = find_group(c, &id)? else {
                return Ok(None);
            };
            let users = group_members(c, &row.id)?;
            Ok(Some((row, users)))
        })
        .await?
        .ok_or(IdentityError::GroupNotFound)?;
    Ok(Json(group_view(&state, row, users)))
}

/// `GET /v1/roles`: a page of the policy's roles with their permissions.
pub async fn list_roles(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Page<Role>>, IdentityError> {
    let paging = Paging::from_query(&query_map(query.as_deref())?)?;
    let (policy, _) = state.policy();
    let total = i64::try_from(policy.roles.len()).unwrap_or(i64::MAX);
    let items = policy
        .roles
        .iter()
        .skip(usize::try_from(paging.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(paging.limit).unwrap_or(0))
        .cloned()
        .collect();
    Ok(Json(Page::new(items, paging, total)))
}

/// `GET /v1/roles/{id}`.
pub async fn get_role(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Role>, IdentityError> {
    policy_id(&id, "role")?;
    let (policy, _) = state.policy();
    policy
        .roles
        .iter()
        .find(|r| r.id == id)
        .cloned()
        .map(Json)
        .ok_or(IdentityError::RoleNotFound)
}

/// Policy ids (groups, roles): 1 to 128 of letters, digits, `-`, `_`, `.`, `:`.
fn policy_id(id: &str, what: &'static str) -> Result<(), IdentityError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if (1..=128).contains(&id.len()) && id.chars().all(allowed) {
        Ok(())
    } else {
        Err(IdentityError::InvalidId(what))
    }
}
