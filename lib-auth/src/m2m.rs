//! Machine-to-machine: the guarded service's own application token, obtained with the
//! `client_credentials` grant from the Auth service (`POST {host}/v1/login/oauth/access_token`,
//! SPEC §4, Lerian's wire), cached, and renewed before it expires. See [`ApplicationToken`]
//! for the renewal rule.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::config::{AuthConfig, Secret};
use crate::error::ConfigError;

/// The longest answer read from the token endpoint.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Lifetimes above this are taken as this (a year): they only delay renewal.
const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why no application token could be had.
///
/// No variant ever carries the client secret or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplicationTokenError {
    /// The library is disabled (`PLUGIN_AUTH_ENABLED=false`), so no token is fetched. Lerian's
    /// library answers an empty token in this case; a caller wanting that behaviour can send
    /// its request without an `Authorization` header.
    #[error("lib-auth is disabled (PLUGIN_AUTH_ENABLED=false): no application token is fetched")]
    Disabled,
    /// A setting needed to fetch a token is missing.
    #[error("{variable} is required to fetch an application token")]
    NotConfigured {
        /// The missing variable: `PLUGIN_AUTH_HOST`, `PLUGIN_AUTH_CLIENT_ID` or
        /// `PLUGIN_AUTH_CLIENT_SECRET`.
        variable: &'static str,
    },
    /// The Auth service refused the client id or secret (401, e.g. `AUT-1004`).
    #[error("the Auth service refused the application credentials (code {code})")]
    BadCredentials {
        /// The error code of the answer, or `none`.
        code: String,
    },
    /// The Auth service refused the request for another reason (a 4xx other than 401 and 429).
    #[error("the Auth service refused the token request: HTTP {status} (code {code})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error code of the answer, or `none`.
        code: String,
    },
    /// The Auth service could not be reached, timed out, throttled (429) or failed (5xx).
    #[error("the Auth service is unavailable: {detail}")]
    Unavailable {
        /// What failed (never a secret).
        detail: String,
    },
    /// The Auth service answered success with something that is not a usable token.
    #[error("the Auth service's answer is not a usable token: {detail}")]
    BadAnswer {
        /// What is wrong with it.
        detail: String,
    },
}

impl ApplicationTokenError {
    fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable {
            detail: detail.into(),
        }
    }

    fn bad_answer(detail: impl Into<String>) -> Self {
        Self::BadAnswer {
            detail: detail.into(),
        }
    }
}

/// The body of the token request, as Lerian's library sends it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenRequest<'a> {
    grant_type: &'static str,
    client_id: &'a str,
    client_secret: &'a str,
}

/// The fields of the answer this client uses (`refreshToken`, `scope`, … are ignored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenAnswer {
    access_token: String,
    token_type: Option<String>,
    expires_in: Option<u64>,
}

/// The error envelope of the Auth service (`code`), or of RFC 6749 (`error`).
#[derive(Deserialize)]
struct ErrorAnswer {
    code: Option<String>,
    error: Option<String>,
}

/// A token in hand.
struct Current {
    token: Secret,
    /// From here on a caller fetches a new one.
    renew_at: Instant,
    /// Until here the token is still handed out when a renewal fails.
    usable_until: Instant,
}

/// Time left before the renewal of a token of this lifetime: see [`ApplicationToken`].
fn renew_margin(lifetime: Duration) -> Duration {
    (lifetime / 5)
        .max(Duration::from_secs(30))
        .min(lifetime / 2)
}

/// Time kept before expiry when an old token is handed out because a renewal failed.
fn safety_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(5))
}

/// A client of the Auth service's token endpoint for one application: fetches a
/// `client_credentials` token (`POST {host}/v1/login/oauth/access_token` with JSON
/// `{"grantType":"client_credentials","clientId","clientSecret"}`), caches it, renews it before
/// expiry, and shares one fetch among concurrent callers.
///
/// Cheap to clone (one `Arc`); clones share the cached token.
///
/// # Renewal rule
///
/// A token obtained with a lifetime `L` (its `expiresIn`, counted from the moment the request
/// was sent) is reused until less than `max(20 % of L, 30 s)` of it remains, that margin being
/// capped at half of `L` so that short-lived tokens are still reused. For a one-hour token this
/// renews after 48 minutes; for a 60 s token after 30 s; for a 2 s token after 1 s.
///
/// If a renewal fails while the current token has more than `min(10 % of L, 5 s)` left, that
/// token is returned (and a WARN logged) rather than the error: a brief outage of the Auth
/// service does not break outgoing calls. Failures are not cached: the next caller tries again.
///
/// Concurrent callers share one request (single flight), including its failure. Neither the
/// client secret nor any token is ever logged or shown by `Debug`; redirects of the token
/// endpoint are not followed (the request body carries the secret).
///
/// ```no_run
/// use lib_auth::{ApplicationToken, Secret};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = ApplicationToken::new(
///     "http://auth.internal:4000",
///     "my-client-id",
///     Secret::new(std::env::var("PLUGIN_AUTH_CLIENT_SECRET")?),
/// )?;
/// let token = tokens.token().await?; // send as `Authorization: Bearer {token}`
/// # let _ = token;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ApplicationToken {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    client_id: String,
    client_secret: Secret,
    client: reqwest::Client,
    current: RwLock<Option<Current>>,
    /// Held while fetching; holds the error of the last fetch if it failed.
    fetching: tokio::sync::Mutex<Option<ApplicationTokenError>>,
    /// Fetches completed so far (tells a waiter whether a fetch ended while it waited).
    attempts: AtomicU64,
}

impl fmt::Debug for ApplicationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationToken")
            .field("url", &self.inner.url)
            .field("client_id", &self.inner.client_id)
            .field("client_secret", &self.inner.client_secret)
            .finish_non_exhaustive()
    }
}

impl ApplicationToken {
    /// A client of `{host}/v1/login/oauth/access_token` for the application `client_id`, with
    /// the default timeout of 5 s per request.
    pub fn new(
        host: &str,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Result<ApplicationToken, ConfigError> {
        Self::build(
            host,
            client_id.into(),
            client_secret,
            AuthConfig::default().http_timeout,
        )
    }

    /// A client from the configuration: `host`, `client_id`, `client_secret` and
    /// `http_timeout` (`PLUGIN_AUTH_HOST`, `PLUGIN_AUTH_CLIENT_ID`, `PLUGIN_AUTH_CLIENT_SECRET`).
    /// Whether the library is enabled is not considered here.
    pub fn from_config(config: &AuthConfig) -> Result<ApplicationToken, ConfigError> {
        const WHY: &str = "fetching the service's application token needs the Auth service's address and the application's credentials";
        let missing = |variable| ConfigError::Missing { variable, why: WHY };
        let host = config
            .host
            .as_deref()
            .ok_or_else(|| missing("PLUGIN_AUTH_HOST"))?;
        let client_id = config
            .client_id
            .clone()
            .ok_or_else(|| missing("PLUGIN_AUTH_CLIENT_ID"))?;
        let client_secret = config
            .client_secret
            .clone()
            .ok_or_else(|| missing("PLUGIN_AUTH_CLIENT_SECRET"))?;
        Self::build(host, client_id, client_secret, config.http_timeout)
    }

    fn build(
        host: &str,
        client_id: String,
        client_secret: Secret,
        timeout: Duration,
    ) -> Result<ApplicationToken, ConfigError> {
        let base = host.trim_end_matches('/');
        let valid = reqwest::Url::parse(base)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if !valid {
            return Err(ConfigError::InvalidValue {
                variable: "PLUGIN_AUTH_HOST",
                value: host.to_owned(),
                expected: "an absolute http(s) URL",
            });
        }
        if client_id.is_empty() {
            return Err(ConfigError::Missing {
                variable: "PLUGIN_AUTH_CLIENT_ID",
                why: "an application token is requested for a client id",
            });
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // The body carries the secret: never replay it to wherever a redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?;
        Ok(ApplicationToken {
            inner: Arc::new(Inner {
                url: format!("{base}/v1/login/oauth/access_token"),
                client_id,
                client_secret,
                client,
                current: RwLock::new(None),
                fetching: tokio::sync::Mutex::new(None),
                attempts: AtomicU64::new(0),
            }),
        })
    }

    /// The application's client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// An access token for outgoing calls (`Authorization: Bearer {token}`): the cached one
    /// while it is fresh, else a new one from the Auth service. Concurrent callers share one
    /// fetch.
    pub async fn token(&self) -> Result<String, ApplicationTokenError> {
        self.token_logged(true).await
    }

    /// [`token`](ApplicationToken::token), with its failures logged at WARN when `warn` (else at
    /// DEBUG: the caller, such as the feed poller, logs outages once itself).
    pub(crate) async fn token_logged(&self, warn: bool) -> Result<String, ApplicationTokenError> {
        if let Some(token) = self.cached(|c, now| now < c.renew_at) {
            return Ok(token);
        }
        let seen = self.inner.attempts.load(Ordering::Acquire);
        let mut last_error = self.inner.fetching.lock().await;
        // Another caller may have renewed the token while this one waited.
        if let Some(token) = self.cached(|c, now| now < c.renew_at) {
            return Ok(token);
        }
        // Or failed to: its failure is this caller's answer too (no retry storm).
        if self.inner.attempts.load(Ordering::Acquire) != seen
            && let Some(error) = last_error.as_ref()
        {
            return self.still_usable().ok_or_else(|| error.clone());
        }
        let fetched = self.fetch().await;
        self.inner.attempts.fetch_add(1, Ordering::AcqRel);
        match fetched {
            Ok(current) => {
                *last_error = None;
                let token = current.token.expose().to_owned();
                if let Ok(mut slot) = self.inner.current.write() {
                    *slot = Some(current);
                }
                Ok(token)
            }
            Err(error) => {
                *last_error = Some(error.clone());
                match self.still_usable() {
                    Some(token) => {
                        if warn {
                            tracing::warn!(client_id = %self.inner.client_id, %error,
                                "renewing the application token failed; using the current one until it nears expiry");
                        } else {
                            tracing::debug!(client_id = %self.inner.client_id, %error,
                                "renewing the application token failed; using the current one until it nears expiry");
                        }
                        Ok(token)
                    }
                    None => {
                        if warn {
                            tracing::warn!(client_id = %self.inner.client_id, %error,
                                "fetching the application token failed");
                        } else {
                            tracing::debug!(client_id = %self.inner.client_id, %error,
                                "fetching the application token failed");
                        }
                        Err(error)
                    }
                }
            }
        }
    }

    /// Forgets the cached token, so that the next [`token`](ApplicationToken::token) call fetches
    /// a new one (e.g. after a downstream service refused it with 401).
    pub fn invalidate(&self) {
        if let Ok(mut slot) = self.inner.current.write() {
            *slot = None;
        }
    }

    fn cached(&self, fresh: impl Fn(&Current, Instant) -> bool) -> Option<String> {
        let slot = self.inner.current.read().ok()?;
        let current = slot.as_ref()?;
        fresh(current, Instant::now()).then(|| current.token.expose().to_owned())
    }

    fn still_usable(&self) -> Option<String> {
        self.cached(|c, now| now < c.usable_until)
    }

    /// One request to the token endpoint.
    async fn fetch(&self) -> Result<Current, ApplicationTokenError> {
        let sent_at = Instant::now();
        let body = TokenRequest {
            grant_type: "client_credentials",
            client_id: &self.inner.client_id,
            client_secret: self.inner.client_secret.expose(),
        };
        let mut response = self
            .inner
            .client
            .post(&self.inner.url)
            .header(http::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                ApplicationTokenError::unavailable(format!(
                    "token request failed: {}",
                    e.without_url()
                ))
            })?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            ApplicationTokenError::unavailable(format!(
                "reading the token answer failed: {}",
                e.without_url()
            ))
        })? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(if status.is_success() {
                    ApplicationTokenError::bad_answer("the answer is too large")
                } else {
                    ApplicationTokenError::unavailable(format!("token endpoint answered {status}"))
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(refusal(status, &bytes, self.inner.client_secret.expose()));
        }
        // Not the parser's message: it may quote the answer, and an answer may echo the secret.
        let answer: TokenAnswer = serde_json::from_slice(&bytes).map_err(|e| {
            ApplicationTokenError::bad_answer(format!(
                "not the expected JSON ({:?} error at column {})",
                e.classify(),
                e.column()
            ))
        })?;
        let token = answer.access_token;
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApplicationTokenError::bad_answer(
                "accessToken is empty or not visible ASCII",
            ));
        }
        if let Some(kind) = &answer.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            // The value itself is not shown: an answer may echo the secret.
            return Err(ApplicationTokenError::bad_answer("tokenType is not Bearer"));
        }
        let lifetime = match answer.expires_in {
            Some(secs) if secs > 0 => Duration::from_secs(secs).min(MAX_LIFETIME),
            _ => {
                return Err(ApplicationTokenError::bad_answer(
                    "expiresIn is missing or not positive",
                ));
            }
        };
        let expires_at = sent_at + lifetime;
        tracing::debug!(client_id = %self.inner.client_id, expires_in = lifetime.as_secs(),
            "fetched an application token");
        Ok(Current {
            token: Secret::new(token),
            renew_at: expires_at - renew_margin(lifetime),
            usable_until: expires_at - safety_margin(lifetime),
        })
    }
}

/// The error for a non-success answer of the token endpoint. The answer's `code` (or `error`)
/// is kept only if it looks like a code and does not echo the client secret.
fn refusal(status: StatusCode, body: &[u8], secret: &str) -> ApplicationTokenError {
    let code = serde_json::from_slice::<ErrorAnswer>(body)
        .ok()
        .and_then(|e| e.code.or(e.error))
        .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic()))
        .filter(|c| secret.is_empty() || !c.contains(secret))
        .unwrap_or_else(|| "none".to_owned());
    match status {
        StatusCode::UNAUTHORIZED => ApplicationTokenError::BadCredentials { code },
        StatusCode::TOO_MANY_REQUESTS => {
            ApplicationTokenError::unavailable(format!("token endpoint answered {status}"))
        }
        s if s.is_client_error() => ApplicationTokenError::Refused {
            status: s.as_u16(),
            code,
        },
        s => ApplicationTokenError::unavailable(format!("token endpoint answered {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_margin_follows_the_documented_rule() {
        let s = Duration::from_secs;
        assert_eq!(renew_margin(s(3600)), s(720));
        assert_eq!(renew_margin(s(300)), s(60));
        assert_eq!(renew_margin(s(100)), s(30));
        assert_eq!(renew_margin(s(60)), s(30));
        assert_eq!(renew_margin(s(2)), s(1));
        assert_eq!(safety_margin(s(3600)), s(5));
        assert_eq!(safety_margin(s(2)), Duration::from_millis(200));
    }

    #[test]
    fn refusals_are_classified_and_codes_sanitised() {
        let body = br#"{"code":"AUT-1004","title":"x","message":"bad client"}"#;
        assert_eq!(
            refusal(StatusCode::UNAUTHORIZED, body, "zz-secret-zz"),
            ApplicationTokenError::BadCredentials {
                code: "AUT-1004".to_owned()
            }
        );
        assert_eq!(
            refusal(
                StatusCode::BAD_REQUEST,
                br#"{"error":"invalid_request"}"#,
                "zz-secret-zz"
            ),
            ApplicationTokenError::Refused {
                status: 400,
                code: "invalid_request".to_owned()
            }
        );
        assert!(matches!(
            refusal(StatusCode::TOO_MANY_REQUESTS, b"", "zz-secret-zz"),
            ApplicationTokenError::Unavailable { .. }
        ));
        assert!(matches!(
            refusal(StatusCode::BAD_GATEWAY, b"<html>", "zz-secret-zz"),
            ApplicationTokenError::Unavailable { .. }
        ));
        assert_eq!(
            refusal(
                StatusCode::UNAUTHORIZED,
                br#"{"code":"the-s3cret-echoed"}"#,
                "s3cret"
            ),
            ApplicationTokenError::BadCredentials {
                code: "none".to_owned()
            }
        );
        assert_eq!(
            refusal(
                StatusCode::UNAUTHORIZED,
                br#"{"code":"has space"}"#,
                "zz-secret-zz"
            ),
            ApplicationTokenError::BadCredentials {
                code: "none".to_owned()
            }
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = ApplicationToken::new("http://127.0.0.1:1", "app", Secret::new("s3cr3t-value"))
            .unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("app"), "{shown}");
    }

    #[test]
    fn bad_hosts_and_missing_settings_are_config_errors() {
        assert!(ApplicationToken::new("not a url", "app", Secret::new("s")).is_err());
        assert!(ApplicationToken::new("ftp://h", "app", Secret::new("s")).is_err());
        assert!(ApplicationToken::new("http://h", "", Secret::new("s")).is_err());
        let config = AuthConfig::default().host("http://h").client_id("app");
        assert!(matches!(
            ApplicationToken::from_config(&config),
            Err(ConfigError::Missing {
                variable: "PLUGIN_AUTH_CLIENT_SECRET",
                ..
            })
        ));
        assert!(ApplicationToken::from_config(&config.client_secret("s")).is_ok());
    }
}
