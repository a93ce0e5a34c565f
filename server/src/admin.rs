//! Operations shared by the CLI, the bootstrap and (later) the Identity API: creating users and
//! applications with their secrets handled correctly.

use crate::error::ApiError;
use crate::password::Passwords;
use crate::secret::{random_id, random_token, sha256};
use crate::store::Store;
use crate::store::applications::{Application, NewApplication, create_application};
use crate::store::users::{NewUser, User, create_user};

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
) -> Result<CreatedApplication, ApiError> {
    let client_id = random_id(24).map_err(|_| ApiError::internal("random client id"))?;
    let client_secret = random_token().map_err(|_| ApiError::internal("random client secret"))?;
    let new = NewApplication {
        name: name.to_owned(),
        description: description.to_owned(),
        client_id,
        secret_hash: sha256(&client_secret),
        roles,
    };
    let application = store
        .run(move |c| create_application(c, &new))
        .await
        .map_err(ApiError::internal)?;
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
) -> Result<User, ApiError> {
    let password_hash = passwords
        .hash(request.password)
        .await
        .map_err(ApiError::internal)?;
    let new = NewUser {
        username: request.username,
        email: request.email,
        first_name: request.first_name,
        last_name: request.last_name,
        password_hash,
        groups: request.groups,
    };
    store
        .run(move |c| create_user(c, &new))
        .await
        .map_err(ApiError::internal)
}
