//! Minting tokens: RFC 9068 access tokens with the claims of SPEC §3, OIDC ID tokens, opaque
//! refresh tokens.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::secret::random_token;
use crate::state::AppState;
use crate::store::applications::Application;
use crate::store::sessions::Session;
use crate::store::unix_now;
use crate::store::users::User;

/// Scopes this server knows. Access is decided by roles, not scopes; scopes only shape what
/// is answered (`openid` asks for an ID token).
pub const KNOWN_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// The scope granted to a user who asked for none.
pub const DEFAULT_USER_SCOPE: &str = "openid profile email";

/// The client id recorded for a user who logged in without naming a client.
pub const DIRECT_LOGIN_CLIENT: &str = "lib-auth";

/// What a token endpoint answers.
#[derive(Debug)]
pub struct TokenSet {
    /// The access token (JWT).
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: u64,
    /// The new refresh token, for users.
    pub refresh_token: Option<String>,
    /// The ID token, when `openid` was granted.
    pub id_token: Option<String>,
    /// The granted scope (space-separated; may be empty).
    pub scope: String,
}

/// Checks a requested scope against [`KNOWN_SCOPES`]; returns it normalized (deduplicated,
/// in request order).
pub fn parse_scope(requested: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(requested) = requested.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let mut granted: Vec<&str> = Vec::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        if !KNOWN_SCOPES.contains(&scope) {
            return Err(ApiError::InvalidScope(scope.chars().take(64).collect()));
        }
        if !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    Ok(Some(granted.join(" ")))
}

fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|s| s == wanted)
}

/// `iat` for a new token of `sub`: now, or later if a revocation of `sub` ends later (so a
/// token issued right after a forced logout is not caught by it).
fn issue_time(state: &AppState, sub: &str) -> i64 {
    let now = unix_now();
    state
        .revocations()
        .earliest_issue_time(sub)
        .map_or(now, |not_before| now.max(not_before))
}

fn ttl_secs(state: &AppState) -> i64 {
    i64::try_from(state.config().access_token_ttl.as_secs()).unwrap_or(3600)
}

fn new_jti() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The roles a user's groups grant, in policy order, without duplicates.
pub fn user_roles(state: &AppState, user: &User) -> Vec<String> {
    let (policy, _) = state.policy();
    let mut roles: Vec<String> = Vec::new();
    for group in policy.groups.iter().filter(|g| user.groups.contains(&g.id)) {
        for role in &group.roles {
            if !roles.contains(role) {
                roles.push(role.clone());
            }
        }
    }
    roles
}

/// The names of a user's groups.
pub fn user_group_names(state: &AppState, user: &User) -> Vec<String> {
    let (policy, _) = state.policy();
    policy
        .groups
        .iter()
        .filter(|g| user.groups.contains(&g.id))
        .map(|g| g.name.clone())
        .collect()
}

fn display_name(user: &User) -> String {
    format!("{} {}", user.first_name, user.last_name)
        .trim()
        .to_owned()
}

/// Access (and ID) tokens for a user's session; `refresh_token` is the session's new one.
pub fn user_tokens(
    state: &AppState,
    user: &User,
    session: &Session,
    refresh_token: String,
) -> Result<TokenSet, ApiError> {
    let config = state.config();
    let iat = issue_time(state, &user.id);
    let now = unix_now();
    let exp = now + ttl_secs(state);
    let claims = json!({
        "iss": config.issuer,
        "sub": user.id,
        "aud": config.audience,
        "exp": exp,
        "iat": iat,
        "nbf": now,
        "jti": new_jti(),
        "client_id": session.client_id,
        "scope": session.scope,
        "sid": session.id,
        "owner": config.owner,
        "type": "normal-user",
        "name": user.username,
        "displayName": display_name(user),
        "preferred_username": user.username,
        "roles": user_roles(state, user),
        "groups": user_group_names(state, user),
    });
    let keyring = state.keyring();
    let access_token = keyring
        .active
        .sign("at+jwt", &claims)
        .map_err(ApiError::internal)?;
    let id_token = if has_scope(&session.scope, "openid") {
        let mut id_claims = json!({
            "iss": config.issuer,
            "sub": user.id,
            "aud": session.client_id,
            "exp": exp,
            "iat": iat,
            "auth_time": session.created_at,
            "sid": session.id,
        });
        if let Some(map) = id_claims.as_object_mut() {
            if has_scope(&session.scope, "profile") {
                map.insert("name".into(), Value::String(display_name(user)));
                map.insert(
                    "preferred_username".into(),
                    Value::String(user.username.clone()),
                );
                map.insert("given_name".into(), Value::String(user.first_name.clone()));
                map.insert("family_name".into(), Value::String(user.last_name.clone()));
            }
            if has_scope(&session.scope, "email") {
                map.insert("email".into(), Value::String(user.email.clone()));
                map.insert("email_verified".into(), Value::Bool(false));
            }
        }
        Some(
            keyring
                .active
                .sign("JWT", &id_claims)
                .map_err(ApiError::internal)?,
        )
    } else {
        None
    };
    Ok(TokenSet {
        access_token,
        expires_in: config.access_token_ttl.as_secs(),
        refresh_token: Some(refresh_token),
        id_token,
        scope: session.scope.clone(),
    })
}

/// An access token for an application (`client_credentials`): its own roles, a fresh `sid`
/// (so that it can be revoked alone), no refresh token.
pub fn application_token(
    state: &AppState,
    app: &Application,
    scope: String,
) -> Result<TokenSet, ApiError> {
    let config = state.config();
    let iat = issue_time(state, &app.client_id);
    let now = unix_now();
    let claims = json!({
        "iss": config.issuer,
        "sub": app.client_id,
        "aud": config.audience,
        "exp": now + ttl_secs(state),
        "iat": iat,
        "nbf": now,
        "jti": new_jti(),
        "client_id": app.client_id,
        "scope": scope,
        "sid": new_jti(),
        "owner": config.owner,
        "type": "application",
        "name": app.name,
        "displayName": app.name,
        "roles": app.roles,
    });
    let access_token = state
        .keyring()
        .active
        .sign("at+jwt", &claims)
        .map_err(ApiError::internal)?;
    Ok(TokenSet {
        access_token,
        expires_in: config.access_token_ttl.as_secs(),
        refresh_token: None,
        id_token: None,
        scope,
    })
}

/// A new opaque refresh token.
pub fn new_refresh_token() -> Result<String, ApiError> {
    random_token().map_err(|_| ApiError::internal("random refresh token"))
}

/// The latest `exp` an access token issued now can have, plus leeway: how long a revocation
/// must be kept.
pub fn revocation_horizon(state: &AppState) -> i64 {
    revocation_horizon_for(state.config())
}

/// [`revocation_horizon`] for the settings `config` (the CLI has no running state).
pub fn revocation_horizon_for(config: &crate::config::ServerConfig) -> i64 {
    let ttl = i64::try_from(config.access_token_ttl.as_secs()).unwrap_or(3600);
    unix_now() + ttl + 60
}
