//! Operations shared by the CLI and the Identity API: creating users and
//! applications with their secrets handled correctly.

use crate::password::{PasswordError, Passwords};
use crate::secret::{random_id, random_token, sha256};
use crate::store::applications::{
    Application, NewApplication, create_application, rotate_application_secret,
};
use crate::store::users::{NewUser, User, create_user};
use crate::store::{Store, StoreError};

/// Creating a user or an application failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The store refused (a taken username is [`StoreError::Conflict`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing the password failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The system's random generator failed.
    #[error("the system random generator failed")]
    Random,
}

/// A new application and its secret, which exists only here: the store keeps its hash.
#[derive(Debug)]
pub struct CreatedApplication {
    /// The stored application.
    pub application: Application,
    /// The client secret, to be shown once.
    pub client_secret: String,
}

/// Creates an application with a random client id and secret, holding `roles`.
pub async fn new_application(
    store: &Store,
    name: &str,
    description: &str,
    roles: Vec<String>,
) -> Result<CreatedApplication, AdminError> {
    let client_id = random_id(24).map_err(|_| AdminError::Random)?;
    let client_secret = random_token().map_err(|_| AdminError::Random)?;
    let new = NewApplication {
        name: name.to_owned(),
        description: description.to_owned(),
        client_id,
        secret_hash: sha256(&client_secret),
        roles,
    };
    let application = store.run(move |c| create_application(c, &new)).await?;
    Ok(CreatedApplication {
        application,
        client_secret,
    })
}

/// What creating a user takes (the password in clear, hashed here).
#[derive(Debug, Clone)]
pub struct UserRequest {
    /// Login name.
    pub username: String,
    /// Password in clear.
    pub password: String,
    /// E-mail.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Group ids.
    pub groups: Vec<String>,
}

/// Creates a user, hashing the password with `passwords`.
pub async fn new_user(
    store: &Store,
    passwords: &Passwords,
    request: UserRequest,
) -> Result<User, AdminError> {
    let password_hash = passwords.hash(request.password).await?;
    let new = NewUser {
        username: request.username,
        email: request.email,
        first_name: request.first_name,
        last_name: request.last_name,
        password_hash,
        groups: request.groups,
    };
    Ok(store.run(move |c| create_user(c, &new)).await?)
}

/// A new secret for the application `id` (the old one stops working and the tokens issued
/// before are revoked until `revoke_until`); `None` when there is no such application.
pub async fn rotate_secret(
    store: &Store,
    id: &str,
    revoke_until: i64,
) -> Result<Option<CreatedApplication>, AdminError> {
    let client_secret = random_token().map_err(|_| AdminError::Random)?;
    let hash = sha256(&client_secret);
    let id = id.to_owned();
    let application = store
        .run(move |c| rotate_application_secret(c, &id, &hash, revoke_until))
        .await?;
    Ok(application.map(|application| CreatedApplication {
        application,
        client_secret,
    }))
}
