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
