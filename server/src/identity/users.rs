//! Users: create, list, get, update, delete, change and reset passwords, forced logout.
//!
//! A change that alters what a user may do or who may use the account — new groups, deletion,
//! a password reset, a forced logout — ends the user's sessions and revokes every token issued
//! before it, so the old rights die at once, not at token expiry. A password change by the user
//! ends the user's other sessions and keeps the one that made it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::body::Body;
use super::rights::holds_groups;
use super::{
    Caller, IdentityError, Page, Paging, audit, query_map, rfc3339, sync_revocations, uuid_path,
};
use crate::admin::{UserRequest, new_user};
use crate::auth::ClientAddress;
use crate::auth::issue::revocation_horizon;
use crate::state::AppState;
use crate::store::sessions::{end_other_sessions, end_user_sessions};
use crate::store::users::{
    User, UserChanges, delete_user, find_user, find_user_by_username, list_users,
    set_password_hash, unknown_groups, update_user, username_key,
};

/// A user as the API shows it: never a password or a hash.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    id: String,
    first_name: String,
    last_name: String,
    username: String,
    email: String,
    groups: Vec<String>,
    created_at: String,
    updated_at: String,
}

impl From<User> for UserView {
    fn from(user: User) -> UserView {
        UserView {
            id: user.id,
            first_name: user.first_name,
            last_name: user.last_name,
            username: user.username,
            email: user.email,
            groups: user.groups,
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
        }
    }
}

/// `POST /v1/users`: 201 with the user.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IdentityError> {
    let body = Body::read(
        &headers,
        body,
        &[
            "firstName",
            "lastName",
            "username",
            "email",
            "password",
            "groups",
        ],
        &[],
    )?;
    let username = body.required_string("username")?;
    let email = body.required_string("email")?;
    let first_name = body.required_string("firstName")?;
    let last_name = body.required_string("lastName")?;
    let password = body.required_string("password")?;
    let groups = body
        .strings("groups")?
        .ok_or_else(|| IdentityError::MissingFields("groups".into()))?;
    check_username(&username)?;
    check_email(&email)?;
    check_name("firstName", &first_name, 1)?;
    check_name("lastName", &last_name, 0)?;
    check_password(&password, &username, &email)?;
    let groups = known_groups(&state, groups).await?;
    if !holds_groups(&state, &caller.principal, &groups) {
        return Err(caller
            .refuse_escalation(
                &state,
                "user",
                "",
                &username,
                "create a user in groups the caller's rights do not cover",
            )
            .await);
    }
    // A taken username is answered before the password is hashed; the unique index still
    // decides races between two creates of the same name.
    let name = username.clone();
    if state
        .store()
        .run(move |c| find_user_by_username(c, &name))
        .await?
        .is_some()
    {
        return Err(IdentityError::UsernameTaken);
    }
    let user = new_user(
        state.store(),
        state.passwords(),
        UserRequest {
            username,
            password,
            email,
            first_name,
            last_name,
            groups,
        },
    )
    .await?;
    audit::record(
        &state,
        caller.event(
            "user.created",
            Some("user"),
            Some(&user.id),
            Some(&user.username),
            json!({"groups": user.groups}),
        ),
    )
    .await?;
    tracing::info!(actor = %caller.id(), user = %user.id, "user created");
    Ok((StatusCode::CREATED, Json(UserView::from(user))).into_response())
}

/// `GET /v1/users`: a page of users.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Page<UserView>>, IdentityError> {
    let paging = Paging::from_query(&query_map(query.as_deref())?)?;
    let (users, total) = state
        .store()
        .run(move |c| list_users(c, paging.offset(), paging.limit))
        .await?;
    let items = users.into_iter().map(UserView::from).collect();
    Ok(Json(Page::new(items, paging, total)))
}

/// `GET /v1/users/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<UserView>, IdentityError> {
    Ok(Json(UserView::from(existing_user(&state, id).await?)))
}

/// `PATCH /v1/users/{id}`: `{firstName?, lastName?, email?, groups?}`; the username cannot be
/// changed (IDE-0011). New groups end the user's sessions and revoke its tokens.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<UserView>, IdentityError> {
    uuid_path(&id, "user")?;
    let body = Body::read(
        &headers,
        body,
        &[],
        &["firstName", "lastName", "email", "groups", "username"],
    )?;
    if body.has("username") {
        return Err(IdentityError::ImmutableField("username"));
    }
    let changes = UserChanges {
        first_name: body.string("firstName")?,
        last_name: body.string("lastName")?,
        email: body.string("email")?,
        groups: body.strings("groups")?,
    };
    let current = manageable_user(&state, &caller, id.clone(), "change a user").await?;
    // Only values that change are checked: a client that sends back the user it read (the
    // bootstrap admin's `admin@localhost`, say) is not refused for what it did not change.
    if let Some(first_name) = changes
        .first_name
        .as_ref()
        .filter(|v| **v != current.first_name)
    {
        check_name("firstName", first_name, 1)?;
    }
    if let Some(last_name) = changes
        .last_name
        .as_ref()
        .filter(|v| **v != current.last_name)
    {
        check_name("lastName", last_name, 0)?;
    }
    if let Some(email) = changes.email.as_ref().filter(|v| **v != current.email) {
        check_email(email)?;
    }
    let changes = UserChanges {
        groups: match changes.groups {
            Some(groups) => Some(known_groups(&state, groups).await?),
            None => None,
        },
        ..changes
    };
    if let Some(groups) = &changes.groups
        && !holds_groups(&state, &caller.principal, groups)
    {
        return Err(caller
            .refuse_escalation(
                &state,
                "user",
                &current.id,
                &current.username,
                "put a user in groups the caller's rights do not cover",
            )
            .await);
    }
    let horizon = revocation_horizon(&state);
    let target = id.clone();
    // The audit event is written in the same store step as the change, so that concurrent
    // changes are logged in the order they happened, each with what it really replaced.
    let actor = caller.clone();
    let (before, after) = state
        .store()
        .run(move |c| {
            let changed = update_user(c, &target, &changes, horizon)?;
            if let Some((before, after)) = &changed {
                crate::store::audit::record(c, &update_event(&actor, before, after))?;
            }
            Ok(changed)
        })
        .await?
        .ok_or(IdentityError::UserNotFound)?;
    if before.groups != after.groups {
        sync_revocations(&state).await?;
    }
    Ok(Json(UserView::from(after)))
}

/// The audit event of a user change: which fields changed, and the groups before and after.
fn update_event(
    caller: &Caller,
    before: &User,
    after: &User,
) -> crate::store::audit::NewAuditEvent {
    let mut changed = Vec::new();
    if before.first_name != after.first_name {
        changed.push("firstName");
    }
    if before.last_name != after.last_name {
        changed.push("lastName");
    }
    if before.email != after.email {
        changed.push("email");
    }
    let detail = if before.groups == after.groups {
        json!({ "changed": changed })
    } else {
        changed.push("groups");
        json!({
            "changed": changed,
            "groups": {"from": before.groups, "to": after.groups},
            "sessionsEnded": true,
        })
    };
    caller.event(
        "user.updated",
        Some("user"),
        Some(&after.id),
        Some(&after.username),
        detail,
    )
}

/// `DELETE /v1/users/{id}`: 204; the user's tokens die with it. Nobody deletes themselves
/// (IDE-0017), which also keeps the last admin from locking everyone out by accident.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, IdentityError> {
    uuid_path(&id, "user")?;
    if id == caller.id() {
        let detail = json!({"reason": "a deletion of the caller's own user", "code": "IDE-0017"});
        return Err(caller
            .refuse(
                &state,
                ("user", &id, None),
                detail,
                IdentityError::SelfDeletion,
            )
            .await);
    }
    manageable_user(&state, &caller, id.clone(), "delete a user").await?;
    let horizon = revocation_horizon(&state);
    let target = id.clone();
    let user = state
        .store()
        .run(move |c| delete_user(c, &target, horizon))
        .await?
        .ok_or(IdentityError::UserNotFound)?;
    sync_revocations(&state).await?;
    audit::record(
        &state,
        caller.event(
            "user.deleted",
            Some("user"),
            Some(&user.id),
            Some(&user.username),
            json!({}),
        ),
    )
    .await?;
    tracing::info!(actor = %caller.id(), user = %user.id, "user deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH /v1/users/{id}/update-password`: `{oldPassword, newPassword}` by the user `{id}`
/// only (IDE-0013). Wrong old passwords count towards the login throttle of the username.
pub async fn update_password(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddress(address): ClientAddress,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IdentityError> {
    uuid_path(&id, "user")?;
    if id != caller.id() {
        let detail = json!({"reason": "a password change of another user", "code": "IDE-0013"});
        return Err(caller
            .refuse(
                &state,
                ("user", &id, None),
                detail,
                IdentityError::NotYourself,
            )
            .await);
    }
    let body = Body::read(&headers, body, &["oldPassword", "newPassword"], &[])?;
    let old_password = body.required_string("oldPassword")?;
    let new_password = body.required_string("newPassword")?;
    let user = existing_user(&state, id).await?;
    let keys = [
        format!("user:{}", username_key(&user.username)),
        format!("address:{address}"),
    ];
    let attempt = state
        .throttle()
        .begin(&keys)
        .map_err(crate::error::ApiError::Throttled)?;
    // As for a login: admitted by every replica before the check, counted by all after it.
    let reservation = match state.shared_throttle() {
        Some(shared) => Some(
            shared
                .reserve(&keys)
                .await
                .map_err(crate::error::ApiError::Throttled)?,
        ),
        None => None,
    };
    let matches = state
        .passwords()
        .verify(old_password, Some(user.password_hash.clone()))
        .await
        .map_err(IdentityError::internal)?;
    if !matches {
        attempt.failed();
        if let Some(reservation) = reservation {
            reservation.failed().await;
        }
        audit::record(
            &state,
            caller.event(
                "user.password_change_failed",
                Some("user"),
                Some(&user.id),
                Some(&user.username),
                json!({}),
            ),
        )
        .await?;
        return Err(IdentityError::WrongPassword);
    }
    attempt.succeeded();
    if let Some(reservation) = reservation {
        reservation.succeeded().await;
    }
    check_password(&new_password, &user.username, &user.email)?;
    let hash = state
        .passwords()
        .hash(new_password)
        .await
        .map_err(IdentityError::internal)?;
    let horizon = revocation_horizon(&state);
    let (target, keep) = (user.id.clone(), caller.session_id().map(str::to_owned));
    let ended = state
        .store()
        .run(move |c| {
            set_password_hash(c, &target, &hash)?;
            end_other_sessions(c, &target, keep.as_deref(), horizon)
        })
        .await?;
    sync_revocations(&state).await?;
    audit::record(
        &state,
        caller.event(
            "user.password_changed",
            Some("user"),
            Some(&user.id),
            Some(&user.username),
            json!({ "otherSessionsEnded": ended }),
        ),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH /v1/users/{id}/reset-password`: `{newPassword}`, by an administrator; ends every
/// session of the user.
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IdentityError> {
    uuid_path(&id, "user")?;
    let body = Body::read(&headers, body, &["newPassword"], &[])?;
    let new_password = body.required_string("newPassword")?;
    let user = manageable_user(&state, &caller, id, "reset a password").await?;
    check_password(&new_password, &user.username, &user.email)?;
    let hash = state
        .passwords()
        .hash(new_password)
        .await
        .map_err(IdentityError::internal)?;
    let horizon = revocation_horizon(&state);
    let target = user.id.clone();
    state
        .store()
        .run(move |c| {
            set_password_hash(c, &target, &hash)?;
            end_user_sessions(c, &target, horizon)
        })
        .await?;
    sync_revocations(&state).await?;
    audit::record(
        &state,
        caller.event(
            "user.password_reset",
            Some("user"),
            Some(&user.id),
            Some(&user.username),
            json!({ "sessionsEnded": true }),
        ),
    )
    .await?;
    tracing::info!(actor = %caller.id(), user = %user.id, "password reset");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/users/{id}/logout`: ends every session of the user and revokes its tokens.
pub async fn force_logout(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, IdentityError> {
    let user = manageable_user(&state, &caller, id, "log a user out").await?;
    let horizon = revocation_horizon(&state);
    let target = user.id.clone();
    state
        .store()
        .run(move |c| end_user_sessions(c, &target, horizon))
        .await?;
    sync_revocations(&state).await?;
    audit::record(
        &state,
        caller.event(
            "user.logged_out",
            Some("user"),
            Some(&user.id),
            Some(&user.username),
            json!({ "sessionsEnded": true }),
        ),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The user `id`, if the caller holds every right of the user's groups (else IDE-0019,
/// recorded): nobody manages an account stronger than their own.
async fn manageable_user(
    state: &AppState,
    caller: &Caller,
    id: String,
    what: &str,
) -> Result<User, IdentityError> {
    let user = existing_user(state, id).await?;
    if holds_groups(state, &caller.principal, &user.groups) {
        Ok(user)
    } else {
        Err(caller
            .refuse_escalation(state, "user", &user.id, &user.username, what)
            .await)
    }
}

async fn existing_user(state: &AppState, id: String) -> Result<User, IdentityError> {
    uuid_path(&id, "user")?;
    state
        .store()
        .run(move |c| find_user(c, &id))
        .await?
        .ok_or(IdentityError::UserNotFound)
}

/// `groups` sorted and deduplicated, each an existing group (else IDE-0008 naming them).
async fn known_groups(
    state: &AppState,
    mut groups: Vec<String>,
) -> Result<Vec<String>, IdentityError> {
    groups.sort();
    groups.dedup();
    if groups.len() > 64 {
        return Err(IdentityError::InvalidBody(
            "a user can be in at most 64 groups".into(),
        ));
    }
    let asked = groups.clone();
    let unknown = state
        .store()
        .run(move |c| unknown_groups(c, &asked))
        .await?;
    if !unknown.is_empty() {
        let shown: Vec<String> = unknown
            .iter()
            .take(5)
            .map(|g| format!("{:?}", g.chars().take(64).collect::<String>()))
            .collect();
        return Err(IdentityError::UnknownGroups(shown.join(", ")));
    }
    Ok(groups)
}

/// Usernames: 3 to 64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_username(username: &str) -> Result<(), IdentityError> {
    let length = username.chars().count();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if (3..=64).contains(&length) && username.chars().all(allowed) {
        Ok(())
    } else {
        Err(IdentityError::InvalidUsername)
    }
}

/// E-mail addresses: `local@domain`, printable ASCII without spaces, a dotted domain of
/// non-empty labels, at most 254 characters.
pub fn check_email(email: &str) -> Result<(), IdentityError> {
    let valid = email.len() <= 254
        && email.bytes().all(|b| b.is_ascii_graphic())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.len() <= 64
                    && !domain.contains('@')
                    && domain.contains('.')
                    && domain.split('.').all(|label| {
                        !label.is_empty()
                            && !label.starts_with('-')
                            && !label.ends_with('-')
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    })
            }
            None => false,
        };
    if valid {
        Ok(())
    } else {
        Err(IdentityError::InvalidEmail)
    }
}

/// Names: `min` to 100 characters, no control characters (IDE-0015 naming `field`).
pub fn check_name(field: &'static str, value: &str, min: usize) -> Result<(), IdentityError> {
    let length = value.chars().count();
    if length < min || length > 100 {
        return Err(IdentityError::InvalidText(
            field,
            if min == 0 {
                "must have at most 100 characters"
            } else {
                "must have 1 to 100 characters"
            },
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() || is_invisible_format(c))
    {
        return Err(IdentityError::InvalidText(
            field,
            "must not contain control, direction or invisible format characters",
        ));
    }
    Ok(())
}

/// Characters that reorder or hide text (bidirectional overrides and isolates, zero-width
/// characters, the byte order mark): in a name they can make one user look like another.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Passwords: 12 to 256 characters, not the username or the e-mail address (in any case),
/// no control characters, not only white space.
pub fn check_password(password: &str, username: &str, email: &str) -> Result<(), IdentityError> {
    let length = password.chars().count();
    if !(12..=256).contains(&length) {
        return Err(IdentityError::InvalidPassword(
            "must have 12 to 256 characters",
        ));
    }
    if password.chars().any(char::is_control) {
        return Err(IdentityError::InvalidPassword(
            "must not contain control characters",
        ));
    }
    if password.chars().all(char::is_whitespace) {
        return Err(IdentityError::InvalidPassword(
            "must not be only white space",
        ));
    }
    let lowered = password.to_lowercase();
    if lowered == username.to_lowercase() || lowered == email.to_lowercase() {
        return Err(IdentityError::InvalidPassword(
            "must not be the username or the email address",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for good in ["bob", "alice.smith", "a_b-c@d", &"x".repeat(64)] {
            assert!(check_username(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "",
            "has space",
            "tab\t",
            "ünï",
            &"x".repeat(65),
            "a/b",
        ] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        for good in ["a@b.co", "first.last+tag@example.test"] {
            assert!(check_email(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "plain",
            "@b.co",
            "a@",
            "a@b",
            "a@b..co",
            "a b@c.de",
            "a@b@c.de",
            "a@exa_mple.com",
            "a@-ex.com",
            "a@ex-.com",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(check_password("twelve chars", "bob", "b@x.io").is_ok());
        assert!(check_password("short", "bob", "b@x.io").is_err());
        assert!(check_password(&"p".repeat(257), "bob", "b@x.io").is_err());
        assert!(check_password("Robert.Smith", "robert.smith", "b@x.io").is_err());
        assert!(check_password("BOB@EXAMPLE.IO", "bob", "bob@example.io").is_err());
        assert!(check_password(&"\0".repeat(12), "bob", "b@x.io").is_err());
        assert!(check_password(&" ".repeat(12), "bob", "b@x.io").is_err());
        assert!(check_password("spaces inside are fine", "bob", "b@x.io").is_ok());
    }

    #[test]
    fn names_refuse_direction_and_invisible_characters() {
        assert!(check_name("firstName", "Zoë O'Brien-Łukasz", 1).is_ok());
        for bad in ["a\u{202E}b", "a\u{200B}b", "\u{FEFF}x", "a\u{2066}b"] {
            assert!(check_name("firstName", bad, 1).is_err(), "{bad:?}");
        }
    }
}
