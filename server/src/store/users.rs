//! Users and their groups.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{StoreError, conflict, unix_now};

/// A stored user (the password hash stays inside the store module's callers that need it).
#[derive(Debug, Clone)]
pub struct User {
    /// UUID; the `sub` of the user's tokens.
    pub id: String,
    /// Login name as given (unique case-insensitively).
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Group ids.
    pub groups: Vec<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Last change, Unix seconds.
    pub updated_at: i64,
}

/// What creating a user needs.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Argon2id PHC string, already computed.
    pub password_hash: String,
    /// Group ids (must exist).
    pub groups: Vec<String>,
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        email: row.get(2)?,
        first_name: row.get(3)?,
        last_name: row.get(4)?,
        password_hash: row.get(5)?,
        groups: Vec::new(),
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

const USER_COLUMNS: &str =
    "id, username, email, first_name, last_name, password_hash, created_at, updated_at";

fn with_groups(connection: &Connection, mut user: User) -> Result<User, StoreError> {
    let mut statement = connection
        .prepare_cached("SELECT group_id FROM user_groups WHERE user_id = ?1 ORDER BY group_id")?;
    user.groups = statement
        .query_map([&user.id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(user)
}

/// The key usernames are unique by: lowercase.
pub fn username_key(username: &str) -> String {
    username.to_lowercase()
}

/// Creates a user; [`StoreError::Conflict`] if the username is taken.
pub fn create_user(connection: &mut Connection, new: &NewUser) -> Result<User, StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = unix_now();
    let tx = connection.transaction()?;
    tx.execute(
        "INSERT INTO users (id, username, username_key, email, first_name, last_name,
            password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        params![
            id,
            new.username,
            username_key(&new.username),
            new.email,
            new.first_name,
            new.last_name,
            new.password_hash,
            now
        ],
    )
    .map_err(conflict("username"))?;
    for group in &new.groups {
        tx.execute(
            "INSERT OR IGNORE INTO user_groups (user_id, group_id) VALUES (?1, ?2)",
            params![id, group],
        )?;
    }
    tx.commit()?;
    find_user(connection, &id)?.ok_or_else(|| StoreError::Corrupted("user vanished".into()))
}

/// The user with this id.
pub fn find_user(connection: &Connection, id: &str) -> Result<Option<User>, StoreError> {
    let user = connection
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
            [id],
            user_from_row,
        )
        .optional()?;
    user.map(|u| with_groups(connection, u)).transpose()
}

/// The user with this username (case-insensitive).
pub fn find_user_by_username(
    connection: &Connection,
    username: &str,
) -> Result<Option<User>, StoreError> {
    let user = connection
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = ?1"),
            [username_key(username)],
            user_from_row,
        )
        .optional()?;
    user.map(|u| with_groups(connection, u)).transpose()
}

/// How many users exist.
pub fn count_users(connection: &Connection) -> Result<i64, StoreError> {
    Ok(connection.query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))?)
}

/// Replaces a user's password hash.
pub fn set_password_hash(
    connection: &Connection,
    id: &str,
    password_hash: &str,
) -> Result<bool, StoreError> {
    let changed = connection.execute(
        "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, password_hash, unix_now()],
    )?;
    Ok(changed == 1)
}

/// One page of users, oldest first, and how many users exist.
pub fn list_users(
    connection: &Connection,
    offset: i64,
    limit: i64,
) -> Result<(Vec<User>, i64), StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users ORDER BY rowid LIMIT ?1 OFFSET ?2"
    ))?;
    let users: Vec<User> = statement
        .query_map(params![limit, offset], user_from_row)?
        .collect::<Result<_, _>>()?;
    let users = users
        .into_iter()
        .map(|u| with_groups(connection, u))
        .collect::<Result<_, _>>()?;
    Ok((users, count_users(connection)?))
}

/// Which fields of a user a change sets (`None`: left as it is).
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// New given name.
    pub first_name: Option<String>,
    /// New family name.
    pub last_name: Option<String>,
    /// New e-mail address.
    pub email: Option<String>,
    /// New group ids (the whole set; each must exist).
    pub groups: Option<Vec<String>>,
}

/// Applies `changes` to the user `id` in one transaction; answers the user before and after,
/// or `None` when there is no such user. When the groups change, every session of the user
/// ends and every token issued before now is revoked until `revoke_until`: a demoted user
/// loses the old rights at once.
pub fn update_user(
    connection: &mut Connection,
    id: &str,
    changes: &UserChanges,
    revoke_until: i64,
) -> Result<Option<(User, User)>, StoreError> {
    let tx = connection.transaction()?;
    let Some(before) = find_user(&tx, id)? else {
        return Ok(None);
    };
    let now = unix_now();
    tx.execute(
        "UPDATE users SET first_name = COALESCE(?2, first_name),
            last_name = COALESCE(?3, last_name), email = COALESCE(?4, email), updated_at = ?5
         WHERE id = ?1",
        params![
            id,
            changes.first_name,
            changes.last_name,
            changes.email,
            now
        ],
    )?;
    if let Some(groups) = &changes.groups {
        let mut wanted = groups.clone();
        wanted.sort();
        wanted.dedup();
        if wanted != before.groups {
            tx.execute("DELETE FROM user_groups WHERE user_id = ?1", [id])?;
            for group in &wanted {
                tx.execute(
                    "INSERT INTO user_groups (user_id, group_id) VALUES (?1, ?2)",
                    params![id, group],
                )?;
            }
            super::sessions::end_user_sessions_in(&tx, id, now, revoke_until)?;
        }
    }
    let after = find_user(&tx, id)?.ok_or_else(|| StoreError::Corrupted("user vanished".into()))?;
    tx.commit()?;
    Ok(Some((before, after)))
}

/// Deletes the user `id` (its sessions and refresh tokens go with it) and revokes every token
/// it holds until `revoke_until`; answers the deleted user.
pub fn delete_user(
    connection: &mut Connection,
    id: &str,
    revoke_until: i64,
) -> Result<Option<User>, StoreError> {
    let tx = connection.transaction()?;
    let Some(user) = find_user(&tx, id)? else {
        return Ok(None);
    };
    super::sessions::end_user_sessions_in(&tx, id, unix_now(), revoke_until)?;
    tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
    tx.commit()?;
    Ok(Some(user))
}

/// The ids among `groups` that are not groups of the store.
pub fn unknown_groups(
    connection: &Connection,
    groups: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut statement = connection.prepare_cached("SELECT 1 FROM groups WHERE id = ?1")?;
    let mut unknown = Vec::new();
    for group in groups {
        if !statement.exists([group])? {
            unknown.push(group.clone());
        }
    }
    Ok(unknown)
}

/// A group row: id, name, creation time.
#[derive(Debug, Clone)]
pub struct GroupRow {
    /// Its id (the policy's).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// One page of groups by id, and how many there are.
pub fn list_groups(
    connection: &Connection,
    offset: i64,
    limit: i64,
) -> Result<(Vec<GroupRow>, i64), StoreError> {
    let mut statement = connection
        .prepare_cached("SELECT id, name, created_at FROM groups ORDER BY id LIMIT ?1 OFFSET ?2")?;
    let rows = statement
        .query_map(params![limit, offset], group_from_row)?
        .collect::<Result<_, _>>()?;
    let total = connection.query_row("SELECT COUNT(*) FROM groups", [], |row| row.get(0))?;
    Ok((rows, total))
}

/// The group `id`.
pub fn find_group(connection: &Connection, id: &str) -> Result<Option<GroupRow>, StoreError> {
    Ok(connection
        .query_row(
            "SELECT id, name, created_at FROM groups WHERE id = ?1",
            [id],
            group_from_row,
        )
        .optional()?)
}

fn group_from_row(row: &Row<'_>) -> rusqlite::Result<GroupRow> {
    Ok(GroupRow {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at: row.get(2)?,
    })
}

/// The usernames of the members of group `id`, sorted.
pub fn group_members(connection: &Connection, id: &str) -> Result<Vec<String>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT u.username FROM user_groups g JOIN users u ON u.id = g.user_id
         WHERE g.group_id = ?1 ORDER BY u.username_key",
    )?;
    let members = statement
        .query_map([id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(members)
}
