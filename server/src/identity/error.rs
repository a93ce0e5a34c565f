//! Errors of the Identity API: the `{code, title, message}` envelope with `IDE-nnnn` codes
//! (SPEC §5). Token and permission refusals keep the Auth codes (`AUT-0006`, `AUT-0007`,
//! `AUT-0008`), as every service guarded by lib-auth answers them.
//!
//! | code | status | meaning |
//! |---|---|---|
//! | IDE-0001 | 400 | a required field is missing |
//! | IDE-0002 | 400 | a field the endpoint does not take |
//! | IDE-0003 | 400 | the body is not a JSON object, or a field has the wrong type |
//! | IDE-0004 | 400 | an id in the path is not a UUID (users, applications) or not an id (groups, roles) |
//! | IDE-0005 | 400 | `page` or `limit` out of range |
//! | IDE-0006 | 400 | a username breaks the username rules |
//! | IDE-0007 | 400 | an e-mail address is not one |
//! | IDE-0008 | 400 | a group that does not exist |
//! | IDE-0009 | 400 | a role that does not exist |
//! | IDE-0010 | 409 | the username is taken |
//! | IDE-0011 | 400 | the username cannot be changed |
//! | IDE-0012 | 400 | an application name that is not a product |
//! | IDE-0013 | 403 | only the user may change their own password |
//! | IDE-0014 | 400 | the old password is wrong |
//! | IDE-0015 | 400 | a name or description too long or with control characters |
//! | IDE-0016 | 400 | a bad audit filter (`from`, `to` not RFC 3339, or an empty value) |
//! | IDE-0017 | 409 | a user cannot delete themselves |
//! | IDE-0018 | 413 | the body is larger than the limit |
//! | IDE-0019 | 403 | the caller would grant, or act on, rights it does not hold itself |
//! | IDE-0020 | 400 | a password breaks the password rules |
//! | IDE-1001 | 404 | no such application |
//! | IDE-1003 | 404 | no such user |
//! | IDE-1006 | 404 | no such group |
//! | IDE-1007 | 404 | no such role |
//! | IDE-0404 | 404 | no such route |
//! | IDE-0405 | 405 | the route does not take this method |
//! | IDE-0500 | 500 | an internal failure (logged, never detailed) |

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, envelope};
use crate::store::StoreError;

/// An error of an Identity endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// IDE-0001.
    #[error("missing fields: {0}")]
    MissingFields(String),
    /// IDE-0002.
    #[error("unknown fields: {0}")]
    UnknownFields(String),
    /// IDE-0003.
    #[error("invalid body: {0}")]
    InvalidBody(String),
    /// IDE-0004: what kind of id.
    #[error("invalid {0} id")]
    InvalidId(&'static str),
    /// IDE-0005.
    #[error("invalid paging: {0}")]
    InvalidPaging(String),
    /// IDE-0006.
    #[error("invalid username")]
    InvalidUsername,
    /// IDE-0007.
    #[error("invalid email")]
    InvalidEmail,
    /// IDE-0008.
    #[error("unknown groups: {0}")]
    UnknownGroups(String),
    /// IDE-0009.
    #[error("unknown roles: {0}")]
    UnknownRoles(String),
    /// IDE-0010.
    #[error("username taken")]
    UsernameTaken,
    /// IDE-0011.
    #[error("immutable field {0}")]
    ImmutableField(&'static str),
    /// IDE-0012.
    #[error("application name {0:?} is not a product")]
    NotAProduct(String),
    /// IDE-0013.
    #[error("not the caller's own user")]
    NotYourself,
    /// IDE-0014.
    #[error("wrong old password")]
    WrongPassword,
    /// IDE-0015: the field and the rule.
    #[error("invalid text in {0}: {1}")]
    InvalidText(&'static str, &'static str),
    /// IDE-0016.
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// IDE-0017.
    #[error("self deletion")]
    SelfDeletion,
    /// IDE-0018.
    #[error("body too large")]
    BodyTooLarge,
    /// IDE-0019.
    #[error("insufficient rights")]
    InsufficientRights,
    /// IDE-0020: the rule broken.
    #[error("invalid password: {0}")]
    InvalidPassword(&'static str),
    /// IDE-1001.
    #[error("application not found")]
    ApplicationNotFound,
    /// IDE-1003.
    #[error("user not found")]
    UserNotFound,
    /// IDE-1006.
    #[error("group not found")]
    GroupNotFound,
    /// IDE-1007.
    #[error("role not found")]
    RoleNotFound,
    /// IDE-0404.
    #[error("no such route")]
    NoSuchRoute,
    /// IDE-0405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A refusal answered with the Auth service's codes (401, 403, 429) or an internal error.
    #[error(transparent)]
    Auth(#[from] ApiError),
    /// IDE-0500: logged with its detail, answered without it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl IdentityError {
    /// The internal error for `detail`.
    pub fn internal(detail: impl std::fmt::Display) -> IdentityError {
        IdentityError::Internal(detail.to_string())
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        use IdentityError as E;
        const BAD: StatusCode = StatusCode::BAD_REQUEST;
        match self {
            E::MissingFields(f) => (
                BAD,
                "IDE-0001",
                "Missing Fields in Request",
                format!("The request is missing required fields: {f}."),
            ),
            E::UnknownFields(f) => (
                BAD,
                "IDE-0002",
                "Unexpected Fields in Request",
                format!("The request has fields this endpoint does not take: {f}."),
            ),
            E::InvalidBody(why) => (
                BAD,
                "IDE-0003",
                "Invalid Request Body",
                format!("The request body is invalid: {why}."),
            ),
            E::InvalidId(what) => (
                BAD,
                "IDE-0004",
                "Invalid ID",
                format!("The {what} id in the path is not valid."),
            ),
            E::InvalidPaging(why) => (
                BAD,
                "IDE-0005",
                "Invalid Pagination",
                format!("Invalid pagination: {why}."),
            ),
            E::InvalidUsername => (
                BAD,
                "IDE-0006",
                "Invalid Username",
                "A username has 3 to 64 characters: letters, digits, '.', '_', '-' or '@'.".into(),
            ),
            E::InvalidEmail => (
                BAD,
                "IDE-0007",
                "Invalid Email",
                "The email address is not valid.".into(),
            ),
            E::UnknownGroups(g) => (
                BAD,
                "IDE-0008",
                "Group Not Found",
                format!("These groups do not exist: {g}."),
            ),
            E::UnknownRoles(r) => (
                BAD,
                "IDE-0009",
                "Role Not Found",
                format!("These roles do not exist: {r}."),
            ),
            E::UsernameTaken => (
                StatusCode::CONFLICT,
                "IDE-0010",
                "Username Already Exists",
                "A user with this username already exists.".into(),
            ),
            E::ImmutableField(f) => (
                BAD,
                "IDE-0011",
                "Immutable Field",
                format!("The field {f} cannot be changed."),
            ),
            E::NotAProduct(name) => (
                BAD,
                "IDE-0012",
                "Invalid Application Name",
                format!(
                    "The application name {name:?} is not a product name (midaz, routing, plugin-fees, plugin-crm, plugin-smart-templates, reporter, plugin-identity, …)."
                ),
            ),
            E::NotYourself => (
                StatusCode::FORBIDDEN,
                "IDE-0013",
                "Not Your Own User",
                "Only the user may change their own password; an administrator resets it.".into(),
            ),
            E::WrongPassword => (
                BAD,
                "IDE-0014",
                "Wrong Password",
                "The old password is not correct.".into(),
            ),
            E::InvalidText(field, rule) => (
                BAD,
                "IDE-0015",
                "Invalid Text",
                format!("The field {field} {rule}."),
            ),
            E::InvalidFilter(why) => (
                BAD,
                "IDE-0016",
                "Invalid Filter",
                format!("Invalid filter: {why}."),
            ),
            E::SelfDeletion => (
                StatusCode::CONFLICT,
                "IDE-0017",
                "Cannot Delete Yourself",
                "A user cannot delete their own user.".into(),
            ),
            E::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "IDE-0018",
                "Request Body Too Large",
                "The request body is larger than this endpoint takes.".into(),
            ),
            E::InsufficientRights => (
                StatusCode::FORBIDDEN,
                "IDE-0019",
                "Insufficient Rights",
                "The caller may grant, and manage, only rights it holds itself.".into(),
            ),
            E::InvalidPassword(rule) => (
                BAD,
                "IDE-0020",
                "Invalid Password",
                format!("The password {rule}."),
            ),
            E::ApplicationNotFound => (
                StatusCode::NOT_FOUND,
                "IDE-1001",
                "Application Not Found",
                "No application has this id.".into(),
            ),
            E::UserNotFound => (
                StatusCode::NOT_FOUND,
                "IDE-1003",
                "User Not Found",
                "No user has this id.".into(),
            ),
            E::GroupNotFound => (
                StatusCode::NOT_FOUND,
                "IDE-1006",
                "Group Not Found",
                "No group has this id.".into(),
            ),
            E::RoleNotFound => (
                StatusCode::NOT_FOUND,
                "IDE-1007",
                "Role Not Found",
                "No role has this id.".into(),
            ),
            E::NoSuchRoute => (
                StatusCode::NOT_FOUND,
                "IDE-0404",
                "Not Found",
                "The Identity API has no such route.".into(),
            ),
            E::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "IDE-0405",
                "Method Not Allowed",
                "This route does not take this method.".into(),
            ),
            E::Auth(_) | E::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "IDE-0500",
                "Internal Error",
                "The server could not complete the request.".into(),
            ),
        }
    }
}

impl From<StoreError> for IdentityError {
    fn from(error: StoreError) -> IdentityError {
        match error {
            StoreError::Conflict("username") => IdentityError::UsernameTaken,
            other => IdentityError::internal(other),
        }
    }
}

impl From<crate::admin::AdminError> for IdentityError {
    fn from(error: crate::admin::AdminError) -> IdentityError {
        match error {
            crate::admin::AdminError::Store(store) => store.into(),
            other => IdentityError::internal(other),
        }
    }
}

impl IntoResponse for IdentityError {
    fn into_response(self) -> Response {
        match self {
            IdentityError::Auth(ApiError::Internal(detail)) | IdentityError::Internal(detail) => {
                tracing::error!(%detail, "identity request failed");
                let (status, code, title, message) = IdentityError::Internal(String::new()).parts();
                envelope(status, code, title, &message)
            }
            IdentityError::Auth(auth) => auth.into_response(),
            other => {
                let (status, code, title, message) = other.parts();
                envelope(status, code, title, &message)
            }
        }
    }
}
