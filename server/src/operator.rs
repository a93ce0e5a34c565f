//! What the operator's CLI does on the database, without a running server: create, list and
//! reset users; create, list, rotate and delete applications. The rules are the Identity API's
//! (same validation, same revocations, same audit events, with `cli` as the actor); a running
//! server picks the changes up within a second.

use serde_json::{Value, json};

use crate::admin::{CreatedApplication, rotate_secret};
use crate::config::ServerConfig;
use crate::identity::applications::{ApplicationView, checked_application};
use crate::identity::users::{UserView, check_email, check_name, check_password, check_username};
use crate::identity::{IdentityError, Paging};
use crate::password::hash_blocking;
use crate::secret::random_id;
use crate::store::Store;
use crate::store::applications::{delete_application, find_application, list_applications};
use crate::store::audit::{NewAuditEvent, record};
use crate::store::sessions::end_user_sessions;
use crate::store::users::{
    NewUser, User, create_user, find_user, find_user_by_username, list_users, set_password_hash,
    unknown_groups,
};

/// A CLI command failed; the message is for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OperatorError(String);

impl From<IdentityError> for OperatorError {
    fn from(error: IdentityError) -> OperatorError {
        OperatorError(error.to_string())
    }
}

impl From<crate::store::StoreError> for OperatorError {
    fn from(error: crate::store::StoreError) -> OperatorError {
        OperatorError(error.to_string())
    }
}

impl From<crate::admin::AdminError> for OperatorError {
    fn from(error: crate::admin::AdminError) -> OperatorError {
        OperatorError(error.to_string())
    }
}

/// What creating a user from the CLI takes.
#[derive(Debug, Clone)]
pub struct NewUserCommand {
    /// Login name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Group ids.
    pub groups: Vec<String>,
    /// The password; `None` generates one, answered once.
    pub password: Option<String>,
}

/// The operator's access to one database.
#[derive(Debug, Clone)]
pub struct Operator {
    store: Store,
    config: ServerConfig,
}

impl Operator {
    /// Works on `store` with the settings in `config`.
    pub fn new(store: Store, config: ServerConfig) -> Operator {
        Operator { store, config }
    }

    fn revoke_until(&self) -> i64 {
        crate::auth::issue::revocation_horizon_for(&self.config)
    }

    fn audit(&self, action: &str, kind: &str, id: &str, name: &str, detail: Value) {
        let event = NewAuditEvent {
            actor_id: None,
            actor_name: Some("cli".into()),
            action: action.to_owned(),
            target_type: Some(kind.to_owned()),
            target_id: Some(id.to_owned()),
            target_name: Some(name.to_owned()),
            detail,
        };
        if let Err(error) = self.store.run_now(|c| record(c, &event)) {
            tracing::warn!(%error, "the audit event could not be written");
        }
    }

    /// Creates a user; answers it and, when it was generated, its password (shown once).
    pub fn create_user(
        &self,
        command: NewUserCommand,
    ) -> Result<(UserView, Option<String>), OperatorError> {
        check_username(&command.username)?;
        check_email(&command.email)?;
        check_name("first name", &command.first_name, 0)?;
        check_name("last name", &command.last_name, 0)?;
        let (password, generated) = given_or_generated(command.password)?;
        check_password(&password, &command.username, &command.email)?;
        let unknown = self.store.run_now(|c| unknown_groups(c, &command.groups))?;
        if !unknown.is_empty() {
            return Err(IdentityError::UnknownGroups(unknown.join(", ")).into());
        }
        if self
            .store
            .run_now(|c| find_user_by_username(c, &command.username))?
            .is_some()
        {
            return Err(IdentityError::UsernameTaken.into());
        }
        let password_hash = hash_blocking(&password).map_err(|e| OperatorError(e.to_string()))?;
        let new = NewUser {
            username: command.username,
            email: command.email,
            first_name: command.first_name,
            last_name: command.last_name,
            password_hash,
            groups: command.groups,
        };
        let user = self
            .store
            .run_now(|c| create_user(c, &new))
            .map_err(|e| match e {
                crate::store::StoreError::Conflict(_) => IdentityError::UsernameTaken.into(),
                other => OperatorError::from(other),
            })?;
        self.audit(
            "user.created",
            "user",
            &user.id,
            &user.username,
            json!({"groups": user.groups}),
        );
        Ok((user.into(), generated.then_some(password)))
    }

    /// One page of users.
    pub fn list_users(&self, paging: Paging) -> Result<Vec<UserView>, OperatorError> {
        let (users, _) = self
            .store
            .run_now(|c| list_users(c, paging.offset(), paging.limit))?;
        Ok(users.into_iter().map(UserView::from).collect())
    }

    /// Sets a new password for the user with this id or username, ending all its sessions;
    /// answers the generated password when none was given.
    pub fn reset_password(
        &self,
        user: &str,
        password: Option<String>,
    ) -> Result<Option<String>, OperatorError> {
        let user = self.find_user(user)?;
        let (password, generated) = given_or_generated(password)?;
        check_password(&password, &user.username, &user.email)?;
        let hash = hash_blocking(&password).map_err(|e| OperatorError(e.to_string()))?;
        let until = self.revoke_until();
        self.store.run_now(|c| {
            set_password_hash(c, &user.id, &hash)?;
            end_user_sessions(c, &user.id, until)
        })?;
        self.audit(
            "user.password_reset",
            "user",
            &user.id,
            &user.username,
            json!({"sessionsEnded": true}),
        );
        Ok(generated.then_some(password))
    }

    fn find_user(&self, id_or_username: &str) -> Result<User, OperatorError> {
        let found = self
            .store
            .run_now(|c| match find_user(c, id_or_username)? {
                Some(user) => Ok(Some(user)),
                None => find_user_by_username(c, id_or_username),
            })?;
        found.ok_or_else(|| OperatorError(format!("no user {id_or_username:?}")))
    }

    /// Creates an application; answers it with its secret (shown once).
    pub fn create_application(
        &self,
        name: &str,
        description: &str,
        roles: Option<Vec<String>>,
    ) -> Result<Value, OperatorError> {
        let (policy, _) = self.store.run_now(crate::store::load_policy)?;
        let roles = checked_application(&policy, name, description, roles)?;
        let runtime = runtime()?;
        let created = runtime.block_on(crate::admin::new_application(
            &self.store,
            name,
            description,
            roles,
        ))?;
        let app = &created.application;
        self.audit(
            "application.created",
            "application",
            &app.id,
            &app.name,
            json!({"clientId": app.client_id, "roles": app.roles}),
        );
        Ok(with_secret(created))
    }

    /// One page of applications, without secrets.
    pub fn list_applications(&self, paging: Paging) -> Result<Vec<ApplicationView>, OperatorError> {
        let (apps, _) = self
            .store
            .run_now(|c| list_applications(c, paging.offset(), paging.limit))?;
        Ok(apps.into_iter().map(ApplicationView::from).collect())
    }

    /// A new secret for the application with this id or client id (shown once); its tokens
    /// are revoked.
    pub fn rotate_application(&self, id: &str) -> Result<Value, OperatorError> {
        let app_id = self.application_id(id)?;
        let runtime = runtime()?;
        let created = runtime
            .block_on(rotate_secret(&self.store, &app_id, self.revoke_until()))?
            .ok_or_else(|| OperatorError(format!("no application {id:?}")))?;
        let app = &created.application;
        self.audit(
            "application.secret_rotated",
            "application",
            &app.id,
            &app.name,
            json!({"clientId": app.client_id, "tokensRevoked": true}),
        );
        Ok(with_secret(created))
    }

    /// Deletes the application with this id or client id; its tokens are revoked.
    pub fn delete_application(&self, id: &str) -> Result<ApplicationView, OperatorError> {
        let app_id = self.application_id(id)?;
        let until = self.revoke_until();
        let app = self
            .store
            .run_now(|c| delete_application(c, &app_id, until))?
            .ok_or_else(|| OperatorError(format!("no application {id:?}")))?;
        self.audit(
            "application.deleted",
            "application",
            &app.id,
            &app.name,
            json!({"clientId": app.client_id}),
        );
        Ok(app.into())
    }

    fn application_id(&self, id_or_client_id: &str) -> Result<String, OperatorError> {
        let found = self
            .store
            .run_now(|c| match find_application(c, id_or_client_id)? {
                Some(app) => Ok(Some(app)),
                None => {
                    crate::store::applications::find_application_by_client_id(c, id_or_client_id)
                }
            })?;
        found
            .map(|app| app.id)
            .ok_or_else(|| OperatorError(format!("no application {id_or_client_id:?}")))
    }
}

/// The given password, or a generated one (`true`: to be shown once).
fn given_or_generated(password: Option<String>) -> Result<(String, bool), OperatorError> {
    match password {
        Some(p) => Ok((p, false)),
        None => random_id(24)
            .map(|p| (p, true))
            .map_err(|_| OperatorError("no random password".into())),
    }
}

fn with_secret(created: CreatedApplication) -> Value {
    let mut answer = serde_json::to_value(ApplicationView::from(created.application))
        .unwrap_or_else(|_| json!({}));
    answer["clientSecret"] = Value::String(created.client_secret);
    answer
}

fn runtime() -> Result<tokio::runtime::Runtime, OperatorError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OperatorError(e.to_string()))
}
