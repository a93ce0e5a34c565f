//! Errors of authentication and authorization, and the one place that maps them to HTTP.

use std::fmt;

use http::StatusCode;

/// Why a presented token was refused. Every variant maps to `401 Unauthorized`.
///
/// The text of each reason is safe to show to the caller: it names the failed check and
/// never echoes the token, a key or an internal error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTokenReason {
    /// The `Authorization` header is present but carries no token (`Bearer` alone).
    EmptyToken,
    /// More than one `Authorization` header was sent.
    MultipleAuthorizationHeaders,
    /// The header uses a scheme other than `Bearer` (e.g. `Basic`).
    UnsupportedScheme,
    /// The header value is not visible ASCII.
    NotAscii,
    /// The token is longer than the configured maximum (8 KiB by default).
    TooLarge,
    /// The token is not three base64url segments of a JSON header, JSON payload and signature.
    Malformed,
    /// The header's `alg` is not allowed for the selected key (includes `none` and HS* tricks).
    AlgorithmNotAllowed,
    /// The header's `typ` is not `at+jwt` (an ID token or another JWT was presented).
    WrongType,
    /// The header lists `crit` extensions, none of which this verifier understands.
    UnsupportedCriticalHeader,
    /// No key of the key set matches the token's `kid`, even after a refresh.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    IssuedInFuture,
    /// `iss` is not the pinned issuer.
    WrongIssuer,
    /// `aud` does not contain the required audience.
    WrongAudience,
    /// A required claim (`exp`, `sub`, `iss` or `aud`) is missing or has the wrong type.
    MissingClaim,
    /// The token's session or subject was revoked (logout, demotion).
    Revoked,
    /// The authorization service refused the token (remote mode).
    RejectedByAuthService,
}

impl InvalidTokenReason {
    /// A short, caller-safe sentence describing the failed check.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmptyToken => "the Authorization header carries no token",
            Self::MultipleAuthorizationHeaders => "more than one Authorization header was sent",
            Self::UnsupportedScheme => "the Authorization scheme must be Bearer",
            Self::NotAscii => "the Authorization header is not visible ASCII",
            Self::TooLarge => "the token is too large",
            Self::Malformed => "the token is not a well-formed JWT",
            Self::AlgorithmNotAllowed => "the token's algorithm is not allowed for its key",
            Self::WrongType => "the token is not an access token (typ must be at+jwt)",
            Self::UnsupportedCriticalHeader => {
                "the token has unsupported critical header parameters"
            }
            Self::UnknownKey => "the token was signed by an unknown key",
            Self::BadSignature => "the token's signature is invalid",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::IssuedInFuture => "the token was issued in the future",
            Self::WrongIssuer => "the token's issuer is not trusted",
            Self::WrongAudience => "the token's audience does not match",
            Self::MissingClaim => "the token lacks a required claim",
            Self::Revoked => "the token has been revoked",
            Self::RejectedByAuthService => "the token was refused by the authorization service",
        }
    }
}

impl fmt::Display for InvalidTokenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authentication or authorization failure, as seen by the middleware.
///
/// Each variant maps to exactly one HTTP status ([`AuthError::status`]) and one error code of
/// the `{code,title,message}` envelope ([`AuthError::code`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization` header: 401, code `AUT-0006`.
    #[error("missing bearer token")]
    MissingToken,
    /// A token was presented and refused: 401, code `AUT-0007`.
    #[error("invalid token: {reason}")]
    InvalidToken {
        /// The check that failed.
        reason: InvalidTokenReason,
    },
    /// The token is valid but the principal lacks the permission: 403, code `AUT-0008`.
    #[error("{subject} may not {action} {product}/{resource}")]
    Forbidden {
        /// The principal's subject (`sub`).
        subject: String,
        /// The product of the refused permission.
        product: String,
        /// The resource of the refused permission.
        resource: String,
        /// The action of the refused permission.
        action: String,
    },
    /// The HTTP method has no RBAC action (e.g. `TRACE` on a `require_method` route): 403.
    #[error("method {method} maps to no action")]
    MethodNotMapped {
        /// The request's method.
        method: String,
    },
    /// Keys could not be fetched and none are cached, or the remote authorizer is down: 503,
    /// code `AUT-0009`. The detail is logged, never sent to the caller.
    #[error("authorization service unavailable: {detail}")]
    Unavailable {
        /// What failed (for logs only).
        detail: String,
    },
}

impl AuthError {
    /// Shorthand for [`AuthError::InvalidToken`].
    pub fn invalid(reason: InvalidTokenReason) -> Self {
        Self::InvalidToken { reason }
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } | Self::MethodNotMapped { .. } => StatusCode::FORBIDDEN,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The error code of the JSON envelope (Lerian's codes where they exist).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "AUT-0006",
            Self::InvalidToken { .. } => "AUT-0007",
            Self::Forbidden { .. } | Self::MethodNotMapped { .. } => "AUT-0008",
            Self::Unavailable { .. } => "AUT-0009",
        }
    }

    /// The title of the JSON envelope.
    pub fn title(&self) -> &'static str {
        match self {
            Self::MissingToken => "Missing Token",
            Self::InvalidToken { .. } => "Invalid Token",
            Self::Forbidden { .. } | Self::MethodNotMapped { .. } => "Insufficient Privileges",
            Self::Unavailable { .. } => "Authorization Unavailable",
        }
    }

    /// The caller-safe message of the JSON envelope: never internals, never the token.
    pub fn public_message(&self) -> &'static str {
        match self {
            Self::MissingToken => "an Authorization header with a bearer token is required",
            Self::InvalidToken { reason } => reason.as_str(),
            Self::Forbidden { .. } | Self::MethodNotMapped { .. } => {
                "you do not have permission to perform this action"
            }
            Self::Unavailable { .. } => "authorization is temporarily unavailable, try again later",
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3) for 401 and 403 answers.
    pub fn www_authenticate(&self) -> Option<String> {
        match self {
            Self::MissingToken => Some("Bearer".to_owned()),
            Self::InvalidToken { reason } => Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                reason.as_str()
            )),
            Self::Forbidden { .. } | Self::MethodNotMapped { .. } => {
                Some("Bearer error=\"insufficient_scope\"".to_owned())
            }
            Self::Unavailable { .. } => None,
        }
    }

    /// The JSON envelope `{code,title,message}` as bytes.
    pub fn body_json(&self) -> Vec<u8> {
        let body = serde_json::json!({
            "code": self.code(),
            "title": self.title(),
            "message": self.public_message(),
        });
        // Serializing a map of static strings cannot fail; fall back to a fixed body anyway.
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
    }
}

impl From<InvalidTokenReason> for AuthError {
    fn from(reason: InvalidTokenReason) -> Self {
        Self::InvalidToken { reason }
    }
}

/// A configuration or policy that cannot be used. Raised at startup, never per request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An environment variable has a value that cannot be parsed.
    #[error("{variable}={value:?} is invalid: {expected}")]
    InvalidValue {
        /// The variable's name.
        variable: &'static str,
        /// The offending value (never a secret: secrets are not parsed).
        value: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// A required setting is missing.
    #[error("{variable} is required: {why}")]
    Missing {
        /// The variable's (or builder field's) name.
        variable: &'static str,
        /// Why it is required.
        why: &'static str,
    },
    /// A key given for offline verification cannot be used.
    #[error("invalid verification key {name}: {reason}")]
    InvalidKey {
        /// Which key (kid, file name or index).
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// The policy cannot be loaded.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The policy file named by `PLUGIN_AUTH_POLICY` cannot be loaded.
    #[error("PLUGIN_AUTH_POLICY={path:?}: {source}")]
    PolicyFile {
        /// The file's path.
        path: String,
        /// What is wrong with it.
        source: PolicyError,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// A policy document that cannot be loaded: each variant names the culprit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        /// The file's path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The document is not valid JSON of the policy format.
    #[error("policy document is not valid: {0}")]
    Parse(String),
    /// Two roles share an id.
    #[error("role {role} is defined twice")]
    DuplicateRole {
        /// The duplicated id.
        role: String,
    },
    /// Two groups share an id.
    #[error("group {group} is defined twice")]
    DuplicateGroup {
        /// The duplicated id.
        group: String,
    },
    /// A role, group or default list refers to a role that does not exist.
    #[error("{referrer} refers to unknown role {role}")]
    UnknownRole {
        /// Who refers to it (`role x`, `group y`, `defaultUserRoles`).
        referrer: String,
        /// The unknown role id.
        role: String,
    },
    /// Roles include each other in a cycle.
    #[error("role {role} includes itself through {path}")]
    Cycle {
        /// A role on the cycle.
        role: String,
        /// The cycle, as `a -> b -> a`.
        path: String,
    },
    /// A permission names an action outside `get post put patch delete head *`.
    #[error("role {role} has unknown action {action}")]
    UnknownAction {
        /// The role holding the permission.
        role: String,
        /// The unknown action.
        action: String,
    },
    /// A permission has an empty product or resource.
    #[error("role {role} has a permission with an empty {field}")]
    EmptyField {
        /// The role holding the permission.
        role: String,
        /// `product` or `resource`.
        field: &'static str,
    },
}
