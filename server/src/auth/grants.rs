//! The three grants, independent of the wire they arrive on (Lerian JSON or RFC 6749 form):
//! `password`, `client_credentials`, `refresh_token`. Credential failures are throttled per
//! username or client id and per client address.

use std::net::IpAddr;

use crate::auth::issue::{
    DEFAULT_USER_SCOPE, DIRECT_LOGIN_CLIENT, TokenSet, application_token, new_refresh_token,
    parse_scope, revocation_horizon, user_tokens,
};
use crate::error::ApiError;
use crate::secret::{constant_time_eq, sha256};
use crate::state::AppState;
use crate::store::applications::{Application, find_application_by_client_id};
use crate::store::sessions::{
    RefreshOutcome, create_session, rotate_refresh_token, session_of_refresh_token,
};
use crate::store::unix_now;
use crate::store::users::{find_user, find_user_by_username, username_key};

/// A grant request, whatever its wire.
#[derive(Debug, Default)]
pub struct GrantRequest {
    /// `password`, `client_credentials` or `refresh_token`.
    pub grant_type: String,
    /// Password grant.
    pub username: Option<String>,
    /// Password grant.
    pub password: Option<String>,
    /// Client authentication.
    pub client_id: Option<String>,
    /// Client authentication.
    pub client_secret: Option<String>,
    /// Refresh grant.
    pub refresh_token: Option<String>,
    /// Requested scope.
    pub scope: Option<String>,
    /// Refresh grant: a session of a confidential client is refreshed only by that client,
    /// authenticated (RFC 6749 §6). Set on `/oauth/token`; Lerian's JSON endpoints take a
    /// bare refresh token by design, so they leave it unset.
    pub confidential_client_must_authenticate: bool,
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// Runs the grant of `request` for a caller at `address`.
pub async fn grant(
    state: &AppState,
    request: GrantRequest,
    address: IpAddr,
) -> Result<TokenSet, ApiError> {
    match request.grant_type.as_str() {
        "password" => password_grant(state, request, address).await,
        "client_credentials" => client_credentials_grant(state, request, address).await,
        "refresh_token" => refresh_grant(state, request, address).await,
        "" => Err(ApiError::MissingFields("grantType".into())),
        other => Err(ApiError::UnsupportedGrantType(
            other.chars().take(64).collect(),
        )),
    }
}

/// Checks a client id and secret; throttled like passwords. `Ok(None)` never happens: an
/// unknown client and a wrong secret are the same [`ApiError::InvalidClient`].
pub async fn authenticate_client(
    state: &AppState,
    client_id: &str,
    client_secret: &str,
    address: IpAddr,
) -> Result<Application, ApiError> {
    let keys = [format!("client:{client_id}"), format!("address:{address}")];
    let address_key = &keys[1..];
    // A locked address is refused before anything; a locked client id is not (below).
    state
        .throttle()
        .check(address_key)
        .map_err(ApiError::Throttled)?;
    if let Some(wait) = shared_lock(state, address_key).await {
        return Err(ApiError::Throttled(wait));
    }
    let id = client_id.to_owned();
    let app = state
        .store()
        .run(move |c| find_application_by_client_id(c, &id))
        .await
        .map_err(ApiError::internal)?;
    // Reserved only now, around a comparison with no await in it: a client's own concurrent
    // token requests never find each other in flight, and guesses are still counted one by
    // one. When only the client id is locked, the comparison still runs without a
    // reservation: the right secret passes (256 random bits are never guessed, so a lock must
    // not let whoever knows a client id lock the client out), a wrong one gets the 429.
    let attempt = match state.throttle().begin(&keys) {
        Ok(attempt) => Ok(attempt),
        Err(wait) => {
            state
                .throttle()
                .check(address_key)
                .map_err(ApiError::Throttled)?;
            Err(wait)
        }
    };
    let presented = sha256(client_secret);
    // Compare even for an unknown client, so both cases take the same path.
    let expected = app
        .as_ref()
        .map_or_else(|| sha256(""), |a| a.secret_hash.clone());
    let matches = constant_time_eq(&presented, &expected);
    match app {
        Some(app) if matches => {
            if let Ok(attempt) = attempt {
                attempt.succeeded();
            }
            Ok(app)
        }
        _ => {
            tracing::info!(client_id = ?truncate(client_id), %address, "client authentication failed");
            // The client id locked by any replica: a wrong secret gets the 429 (the right
            // one passed above).
            let shared_wait = match state.shared_throttle() {
                Some(shared) => {
                    let locked = shared.locked(&keys).await;
                    shared.failed(&keys).await;
                    locked
                }
                None => None,
            };
            match attempt {
                Ok(attempt) => {
                    attempt.failed();
                    Err(shared_wait.map_or(ApiError::InvalidClient, ApiError::Throttled))
                }
                Err(wait) => Err(ApiError::Throttled(wait)),
            }
        }
    }
}

async fn client_credentials_grant(
    state: &AppState,
    request: GrantRequest,
    address: IpAddr,
) -> Result<TokenSet, ApiError> {
    let (Some(client_id), Some(client_secret)) =
        (present(&request.client_id), present(&request.client_secret))
    else {
        return Err(ApiError::MissingFields(missing(&[
            ("clientId", &request.client_id),
            ("clientSecret", &request.client_secret),
        ])));
    };
    let scope = parse_scope(request.scope.as_deref())?.unwrap_or_default();
    let app = authenticate_client(state, client_id, client_secret, address).await?;
    // As for a login: a rotation by the CLI (another process) must not make the new token die
    // a second later. Only a secret rotated in the last seconds can have a revocation the
    // index has not read yet, so only then is it read (tokens are issued by the thousand).
    if unix_now() - app.secret_rotated_at <= 2 {
        state.sync_revocations().await.map_err(ApiError::internal)?;
    }
    application_token(state, &app, scope)
}

async fn password_grant(
    state: &AppState,
    request: GrantRequest,
    address: IpAddr,
) -> Result<TokenSet, ApiError> {
    if !state.config().password_grant_enabled {
        return Err(ApiError::PasswordGrantDisabled);
    }
    let (Some(username), Some(password)) = (present(&request.username), present(&request.password))
    else {
        return Err(ApiError::MissingFields(missing(&[
            ("username", &request.username),
            ("password", &request.password),
        ])));
    };
    let scope =
        parse_scope(request.scope.as_deref())?.unwrap_or_else(|| DEFAULT_USER_SCOPE.to_owned());
    // A client that names itself must prove it; a user may also log in directly, through the
    // server's own public client (named or not). A secret without a client is refused, never
    // ignored.
    let client_id = match (present(&request.client_id), present(&request.client_secret)) {
        (Some(id), Some(secret)) => {
            authenticate_client(state, id, secret, address)
                .await?
                .client_id
        }
        (Some(id), None) if id == DIRECT_LOGIN_CLIENT => DIRECT_LOGIN_CLIENT.to_owned(),
        (Some(_), None) => return Err(ApiError::MissingFields("clientSecret".into())),
        (None, Some(_)) => return Err(ApiError::MissingFields("clientId".into())),
        (None, None) => DIRECT_LOGIN_CLIENT.to_owned(),
    };
    let keys = [
        format!("user:{}", username_key(username)),
        format!("address:{address}"),
    ];
    let attempt = state.throttle().begin(&keys).map_err(ApiError::Throttled)?;
    // Admitted by every replica before the (slow) check, as the local throttle admits it.
    let reservation = match state.shared_throttle() {
        Some(shared) => Some(shared.reserve(&keys).await.map_err(ApiError::Throttled)?),
        None => None,
    };
    let name = username.to_owned();
    let user = state
        .store()
        .run(move |c| find_user_by_username(c, &name))
        .await
        .map_err(ApiError::internal)?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let valid = state
        .passwords()
        .verify(password.to_owned(), hash)
        .await
        .map_err(ApiError::internal)?;
    let user = match user {
        Some(user) if valid => user,
        _ => {
            attempt.failed();
            tracing::info!(username = ?truncate(username), %address, "login failed");
            if let Some(reservation) = reservation {
                reservation.failed().await;
            }
            return Err(ApiError::InvalidCredentials);
        }
    };
    attempt.succeeded();
    if let Some(reservation) = reservation {
        reservation.succeeded().await;
    }
    let refresh_token = new_refresh_token()?;
    let refresh_hash = sha256(&refresh_token);
    let ttl = i64::try_from(state.config().refresh_token_ttl.as_secs()).unwrap_or(86_400);
    let (user_id, verified_hash) = (user.id.clone(), user.password_hash.clone());
    // The session starts from the user as it is now, in one step with reading it: a deletion,
    // a password reset or new groups that landed while the password was being checked win
    // (the reset ended the sessions it saw; this one would not have been among them).
    let started = state
        .store()
        .run(move |c| match find_user(c, &user_id)? {
            Some(fresh) if fresh.password_hash == verified_hash => {
                let session = create_session(c, &user_id, &client_id, &scope, &refresh_hash, ttl)?;
                Ok(Some((fresh, session)))
            }
            _ => Ok(None),
        })
        .await
        .map_err(ApiError::internal)?;
    let Some((user, session)) = started else {
        return Err(ApiError::InvalidCredentials);
    };
    // Revocations written by another process (the CLI) reach the index within a second; read
    // them now, so that the token is not issued before a revocation of its subject.
    state.sync_revocations().await.map_err(ApiError::internal)?;
    tracing::info!(user_id = %user.id, sid = %session.id, "user logged in");
    user_tokens(state, &user, &session, refresh_token)
}

async fn refresh_grant(
    state: &AppState,
    request: GrantRequest,
    address: IpAddr,
) -> Result<TokenSet, ApiError> {
    let Some(presented) = present(&request.refresh_token) else {
        return Err(ApiError::MissingFields("refreshToken".into()));
    };
    let requested_scope = parse_scope(request.scope.as_deref())?;
    // A client that presents credentials must prove them (RFC 6749 §6); one that only names
    // itself must be the token's client; a secret without a client is refused, never ignored.
    let (client, named) = match (present(&request.client_id), present(&request.client_secret)) {
        (Some(id), Some(secret)) => (
            Some(authenticate_client(state, id, secret, address).await?),
            None,
        ),
        (Some(id), None) => (None, Some(id)),
        (None, Some(_)) => return Err(ApiError::MissingFields("clientId".into())),
        (None, None) => (None, None),
    };
    let presented_hash = sha256(presented);
    // Refusals that must not use the token up: a wider scope, another client's token. A
    // session's scope and client never change, so checking before rotating is safe.
    let lookup = presented_hash.clone();
    let current = state
        .store()
        .run(move |c| session_of_refresh_token(c, &lookup))
        .await
        .map_err(ApiError::internal)?;
    if let Some(current) = &current {
        if named.is_some_and(|id| id != current.client_id) {
            return Err(ApiError::InvalidRefreshToken);
        }
        match &client {
            Some(client) if client.client_id != current.client_id => {
                return Err(ApiError::InvalidRefreshToken);
            }
            None if request.confidential_client_must_authenticate
                && current.client_id != DIRECT_LOGIN_CLIENT =>
            {
                return Err(ApiError::InvalidClient);
            }
            _ => {}
        }
        if let Some(requested) = &requested_scope
            && widens(&current.scope, requested)
        {
            return Err(ApiError::InvalidScope(requested.clone()));
        }
    }
    let replacement = new_refresh_token()?;
    let replacement_hash = sha256(&replacement);
    let horizon = revocation_horizon(state);
    let outcome = state
        .store()
        .run(move |c| rotate_refresh_token(c, &presented_hash, &replacement_hash, horizon))
        .await
        .map_err(ApiError::internal)?;
    let mut session = match outcome {
        RefreshOutcome::Rotated(session) => session,
        RefreshOutcome::Reused => {
            tracing::warn!("a used refresh token was presented again: its session was ended");
            state.sync_revocations().await.map_err(ApiError::internal)?;
            return Err(ApiError::InvalidRefreshToken);
        }
        RefreshOutcome::Invalid => return Err(ApiError::InvalidRefreshToken),
    };
    if let Some(requested) = requested_scope {
        // RFC 6749 §6: a refresh may narrow the scope, never widen it.
        if widens(&session.scope, &requested) {
            return Err(ApiError::InvalidScope(requested));
        }
        session.scope = requested;
    }
    let user_id = session.user_id.clone();
    let user = state
        .store()
        .run(move |c| find_user(c, &user_id))
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::InvalidRefreshToken)?;
    user_tokens(state, &user, &session, replacement)
}

/// The lock another replica (or this one) set on one of `keys` through Valkey, if any.
async fn shared_lock(state: &AppState, keys: &[String]) -> Option<std::time::Duration> {
    state.shared_throttle()?.locked(keys).await
}

/// Whether `requested` asks for a scope that `granted` does not hold.
fn widens(granted: &str, requested: &str) -> bool {
    requested
        .split(' ')
        .any(|s| !granted.split(' ').any(|g| g == s))
}

fn missing(fields: &[(&str, &Option<String>)]) -> String {
    fields
        .iter()
        .filter(|(_, v)| present(v).is_none())
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// At most 64 characters of a caller-supplied name, for logs.
/// A caller-given name for a log line: at most 64 characters, logged with `?` so that quotes,
/// line breaks and escape sequences are escaped and cannot forge log lines or fields.
fn truncate(value: &str) -> String {
    value.chars().take(64).collect()
}
