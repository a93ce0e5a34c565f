//! Configuration: the `PLUGIN_AUTH_*` environment of SPEC §2, or a builder for code.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ConfigError;
use crate::keys::VerificationKey;
use crate::principal::{ClaimMapping, split_path};
use crate::shared_decisions::MIN_SECRET_BYTES;
use crate::store::Store;

/// How decisions are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Verify JWTs against the issuer's keys and evaluate RBAC in process (the default: no
    /// network call per request).
    #[default]
    Local,
    /// Ask the Auth service's `POST /v1/authorize` for every (cached) decision, as Lerian's Go
    /// `lib-auth` does.
    Remote,
}

/// Where the RBAC policy comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PolicySource {
    /// The built-in Midaz policy (SPEC §6).
    #[default]
    BuiltIn,
    /// A policy file (JSON, SPEC §6 format).
    File(PathBuf),
    /// Synchronised from the Auth service's `GET {host}/v1/policy` with the service's own
    /// application token (needs `PLUGIN_AUTH_CLIENT_ID` and `PLUGIN_AUTH_CLIENT_SECRET`), polled
    /// every [`AuthConfig::revocation_poll_interval`] with `If-None-Match`. Until the first
    /// policy arrives, requests that need a decision are answered 503; an invalid document is
    /// logged and the previous policy kept.
    Server,
    /// A policy document built in code (validated when the library is built).
    Document(Box<crate::policy::Policy>),
}

/// A secret string whose `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The library's configuration. Every field documents its default; [`AuthConfig::from_env`]
/// reads them from the environment, the chainable methods set them from code.
///
/// ```
/// use std::time::Duration;
/// use lib_auth::AuthConfig;
///
/// let config = AuthConfig::default()
///     .enabled(true)
///     .host("http://auth.internal:4000")
///     .audience("midaz")
///     .leeway(Duration::from_secs(10));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthConfig {
    /// Master switch (`PLUGIN_AUTH_ENABLED`). Default `false`, as in Lerian's library: a service
    /// must opt in. When `false` the layers pass every request through and one WARN is logged.
    pub enabled: bool,
    /// `PLUGIN_AUTH_MODE`. Default [`Mode::Local`].
    pub mode: Mode,
    /// Base URL of the Auth service (`PLUGIN_AUTH_HOST`, or `PLUGIN_AUTH_ADDRESS`). No default.
    pub host: Option<String>,
    /// Pinned `iss` (`PLUGIN_AUTH_ISSUER`). Default: `host`, which is what our server issues
    /// when `AUTH_ISSUER` is its public URL. Tokens without `iss` are refused when set.
    pub issuer: Option<String>,
    /// Required `aud` (`PLUGIN_AUTH_AUDIENCE`). Default none: `aud` is not checked.
    pub audience: Option<String>,
    /// Key source (`PLUGIN_AUTH_JWKS_URL`). Default `{host}/.well-known/jwks.json`.
    pub jwks_url: Option<String>,
    /// A JWKS file for offline verification (`PLUGIN_AUTH_JWKS_FILE`, an extension of SPEC §2).
    /// When set, no key is fetched.
    pub jwks_file: Option<PathBuf>,
    /// Keys given in code for offline verification (see [`AuthConfig::static_key`]). When
    /// non-empty, no key is fetched.
    pub static_keys: Vec<VerificationKey>,
    /// The guarded service's own client id (`PLUGIN_AUTH_CLIENT_ID`).
    pub client_id: Option<String>,
    /// The guarded service's own client secret (`PLUGIN_AUTH_CLIENT_SECRET`).
    pub client_secret: Option<Secret>,
    /// `PLUGIN_AUTH_POLICY`: a file path, `server`, or unset for the built-in policy.
    pub policy: PolicySource,
    /// How often local mode polls the Auth service's revocation feed (`GET
    /// {host}/v1/revocations`) and, with [`PolicySource::Server`], its policy
    /// (`PLUGIN_AUTH_REVOCATION_POLL_INTERVAL`). Default 5 s; must be positive. The feed needs
    /// `host`, `client_id` and `client_secret`.
    pub revocation_poll_interval: Duration,
    /// Decision cache TTL (`PLUGIN_AUTH_CACHE_TTL`). Default 30 s; never past a token's `exp`.
    pub cache_ttl: Duration,
    /// Clock skew allowed on `exp`/`nbf`/`iat` (`PLUGIN_AUTH_LEEWAY`). Default 30 s.
    pub leeway: Duration,
    /// `VALKEY_URL` (`redis://…`): with it, the revocation feed is read the moment the Auth
    /// service announces new revocations over Valkey pub/sub (the feed's polls stay the
    /// fallback; needs the client credentials). Default none: in-process state only.
    /// It may carry a password, so it is a [`Secret`] (never in `Debug` output).
    pub valkey_url: Option<Secret>,
    /// `VALKEY_PREFIX`: the namespace of every key and channel in Valkey, shared with the Auth
    /// service. Default `lib-auth`.
    pub valkey_prefix: String,
    /// `VALKEY_DECISION_SECRET`: in remote mode with `VALKEY_URL`, the secret (at least 32
    /// bytes, the same on every validator) that signs the decisions shared through Valkey, so
    /// that an entry written by anyone else is never believed. Without it remote mode's
    /// decisions stay in-process. Default none.
    pub valkey_decision_secret: Option<Secret>,
    /// Where remote mode shares its decisions instead of the Valkey of `valkey_url`: a
    /// [`LocalStore`](crate::LocalStore) shared by several [`Auth`](crate::Auth) in one
    /// process, or a [`Store`] of your own. Needs `valkey_decision_secret`. Default none.
    pub decision_store: Option<Arc<dyn Store>>,
    /// Where roles and groups are read from in the claims (`PLUGIN_AUTH_ROLES_CLAIM`,
    /// `PLUGIN_AUTH_GROUPS_CLAIM`). Default `roles` and `groups`.
    pub claim_mapping: ClaimMapping,
    /// Accept tokens whose `typ` is `JWT` or absent (`PLUGIN_AUTH_ACCEPT_JWT_TYP`). Default
    /// `false`: only `at+jwt`, so an ID token is never taken for an access token. Turn it on only
    /// for third-party issuers that do not implement RFC 9068.
    pub accept_plain_jwt: bool,
    /// Longest token accepted, in bytes. Default 8192.
    pub max_token_bytes: usize,
    /// Entries of each in-process cache (verified tokens, decisions). Default 100 000.
    pub cache_capacity: u64,
    /// Timeout of every call to the Auth service (JWKS, authorize, token). Default 5 s.
    pub http_timeout: Duration,
    /// Least time between two JWKS fetches caused by unknown `kid`s or failures. Default 5 s.
    pub jwks_min_refresh_interval: Duration,
    /// Age after which the JWKS is refreshed in the background. Default 5 min.
    pub jwks_max_age: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: false,
            mode: Mode::Local,
            host: None,
            issuer: None,
            audience: None,
            jwks_url: None,
            jwks_file: None,
            static_keys: Vec::new(),
            client_id: None,
            client_secret: None,
            policy: PolicySource::BuiltIn,
            revocation_poll_interval: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(30),
            leeway: Duration::from_secs(30),
            valkey_url: None,
            valkey_prefix: "lib-auth".to_owned(),
            valkey_decision_secret: None,
            decision_store: None,
            claim_mapping: ClaimMapping::default(),
            accept_plain_jwt: false,
            max_token_bytes: 8 * 1024,
            cache_capacity: 100_000,
            http_timeout: Duration::from_secs(5),
            jwks_min_refresh_interval: Duration::from_secs(5),
            jwks_max_age: Duration::from_secs(300),
        }
    }
}

/// Whether `url` is a Valkey URL the client can use: `redis://`, `rediss://`, `valkey://` or
/// `valkeys://`, naming a host, with a numeric port and database if any. Nothing is
/// connected.
pub fn is_valkey_url(url: &str) -> bool {
    ["redis://", "rediss://", "valkey://", "valkeys://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
        && redis::Client::open(url).is_ok()
}

/// Whether `prefix` can name keys and channels in Valkey: 1 to 64 of letters, digits and
/// `-_.:`.
pub fn is_valkey_prefix(prefix: &str) -> bool {
    (1..=64).contains(&prefix.len())
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
    ($(#[$doc:meta])* $name:ident: option $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.$name = Some(value.into());
            self
        }
    };
}

impl AuthConfig {
    setter!(/// Sets [`AuthConfig::enabled`].
        enabled: bool);
    setter!(/// Sets [`AuthConfig::mode`].
        mode: Mode);
    setter!(/// Sets [`AuthConfig::host`].
        host: option String);
    setter!(/// Sets [`AuthConfig::issuer`].
        issuer: option String);
    setter!(/// Sets [`AuthConfig::audience`].
        audience: option String);
    setter!(/// Sets [`AuthConfig::jwks_url`].
        jwks_url: option String);
    setter!(/// Sets [`AuthConfig::jwks_file`].
        jwks_file: option PathBuf);
    setter!(/// Sets [`AuthConfig::client_id`].
        client_id: option String);
    setter!(/// Sets [`AuthConfig::policy`].
        policy: PolicySource);
    setter!(/// Sets [`AuthConfig::revocation_poll_interval`].
        revocation_poll_interval: Duration);
    setter!(/// Sets [`AuthConfig::cache_ttl`].
        cache_ttl: Duration);
    setter!(/// Sets [`AuthConfig::leeway`].
        leeway: Duration);
    setter!(/// Sets [`AuthConfig::valkey_url`].
        valkey_url: option Secret);
    setter!(/// Sets [`AuthConfig::valkey_prefix`].
        valkey_prefix: String);

    /// Sets [`AuthConfig::valkey_decision_secret`].
    pub fn valkey_decision_secret(mut self, value: impl Into<String>) -> Self {
        self.valkey_decision_secret = Some(Secret::new(value));
        self
    }

    /// Sets [`AuthConfig::decision_store`].
    pub fn decision_store(mut self, store: Arc<dyn Store>) -> Self {
        self.decision_store = Some(store);
        self
    }
    setter!(/// Sets [`AuthConfig::claim_mapping`].
        claim_mapping: ClaimMapping);
    setter!(/// Sets [`AuthConfig::accept_plain_jwt`].
        accept_plain_jwt: bool);
    setter!(/// Sets [`AuthConfig::max_token_bytes`].
        max_token_bytes: usize);
    setter!(/// Sets [`AuthConfig::cache_capacity`].
        cache_capacity: u64);
    setter!(/// Sets [`AuthConfig::http_timeout`].
        http_timeout: Duration);
    setter!(/// Sets [`AuthConfig::jwks_min_refresh_interval`].
        jwks_min_refresh_interval: Duration);
    setter!(/// Sets [`AuthConfig::jwks_max_age`].
        jwks_max_age: Duration);

    /// Sets [`AuthConfig::client_secret`].
    pub fn client_secret(mut self, value: impl Into<String>) -> Self {
        self.client_secret = Some(Secret::new(value));
        self
    }

    /// Adds a key for offline verification ([`AuthConfig::static_keys`]).
    pub fn static_key(mut self, key: VerificationKey) -> Self {
        self.static_keys.push(key);
        self
    }

    /// Reads every `PLUGIN_AUTH_*` variable (and `VALKEY_URL`) from the process environment,
    /// then [validates](AuthConfig::validate). Unset variables keep their defaults.
    /// A value that is not UTF-8 is read lossily, so that it fails validation naming its
    /// variable rather than passing for unset (an unset `PLUGIN_AUTH_ENABLED` disables).
    pub fn from_env() -> Result<AuthConfig, ConfigError> {
        // Secrets are used byte for byte: one that is not UTF-8 is refused rather than
        // converted, which would replace its invalid bytes and weaken it.
        for variable in SECRET_VARIABLES {
            if std::env::var_os(variable).is_some_and(|value| value.to_str().is_none()) {
                return Err(ConfigError::InvalidValue {
                    variable,
                    value: "*** (not UTF-8)".to_owned(),
                    expected: "UTF-8 text: encode random bytes first (e.g. openssl rand -base64 32)",
                });
            }
        }
        Self::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// [`from_env`](AuthConfig::from_env) with another source of variables (tests, files).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<AuthConfig, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut c = AuthConfig::default();
        if let Some(v) = get("PLUGIN_AUTH_ENABLED") {
            c.enabled = parse_bool("PLUGIN_AUTH_ENABLED", &v)?;
        }
        if let Some(v) = get("PLUGIN_AUTH_MODE") {
            c.mode = match v.to_ascii_lowercase().as_str() {
                "local" => Mode::Local,
                "remote" => Mode::Remote,
                _ => return Err(invalid("PLUGIN_AUTH_MODE", &v, "local or remote")),
            };
        }
        c.host = get("PLUGIN_AUTH_HOST").or_else(|| get("PLUGIN_AUTH_ADDRESS"));
        c.issuer = get("PLUGIN_AUTH_ISSUER");
        c.audience = get("PLUGIN_AUTH_AUDIENCE");
        c.jwks_url = get("PLUGIN_AUTH_JWKS_URL");
        c.jwks_file = get("PLUGIN_AUTH_JWKS_FILE").map(PathBuf::from);
        c.client_id = get("PLUGIN_AUTH_CLIENT_ID");
        c.client_secret = lookup("PLUGIN_AUTH_CLIENT_SECRET")
            .filter(|v| !v.is_empty())
            .map(Secret::new);
        if let Some(v) = get("PLUGIN_AUTH_POLICY") {
            c.policy = if v.eq_ignore_ascii_case("server") {
                PolicySource::Server
            } else if v.eq_ignore_ascii_case("builtin") || v.eq_ignore_ascii_case("midaz") {
                PolicySource::BuiltIn
            } else {
                PolicySource::File(PathBuf::from(v))
            };
        }
        if let Some(v) = get("PLUGIN_AUTH_REVOCATION_POLL_INTERVAL") {
            c.revocation_poll_interval =
                parse_duration("PLUGIN_AUTH_REVOCATION_POLL_INTERVAL", &v)?;
            if c.revocation_poll_interval.is_zero() {
                return Err(invalid(
                    "PLUGIN_AUTH_REVOCATION_POLL_INTERVAL",
                    &v,
                    POLL_INTERVAL_EXPECTED,
                ));
            }
        }
        if let Some(v) = get("PLUGIN_AUTH_CACHE_TTL") {
            c.cache_ttl = parse_duration("PLUGIN_AUTH_CACHE_TTL", &v)?;
        }
        if let Some(v) = get("PLUGIN_AUTH_LEEWAY") {
            c.leeway = parse_duration("PLUGIN_AUTH_LEEWAY", &v)?;
            if c.leeway > MAX_LEEWAY {
                return Err(invalid("PLUGIN_AUTH_LEEWAY", &v, LEEWAY_EXPECTED));
            }
        }
        c.valkey_url = get("VALKEY_URL").map(Secret::new);
        if let Some(v) = get("VALKEY_PREFIX") {
            c.valkey_prefix = v.trim().to_owned();
        }
        c.valkey_decision_secret = lookup("VALKEY_DECISION_SECRET")
            .filter(|v| !v.is_empty())
            .map(Secret::new);
        if let Some(v) = get("PLUGIN_AUTH_ROLES_CLAIM") {
            c.claim_mapping.roles_path = split_path(&v);
        }
        if let Some(v) = get("PLUGIN_AUTH_GROUPS_CLAIM") {
            c.claim_mapping.groups_path = split_path(&v);
        }
        if let Some(v) = get("PLUGIN_AUTH_ACCEPT_JWT_TYP") {
            c.accept_plain_jwt = parse_bool("PLUGIN_AUTH_ACCEPT_JWT_TYP", &v)?;
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks that the settings fit together. Values are always checked (URLs, leeway,
    /// sizes); what an enabled library needs (a key source, a pinned issuer, a host for remote
    /// mode) only when `enabled`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let is_http = |url: &str| {
            reqwest::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        };
        for (variable, url) in [
            ("PLUGIN_AUTH_HOST", &self.host),
            ("PLUGIN_AUTH_JWKS_URL", &self.jwks_url),
        ] {
            if let Some(url) = url
                && !is_http(url)
            {
                return Err(invalid(
                    variable,
                    &redact_url(url),
                    "an absolute http:// or https:// URL",
                ));
            }
        }
        if let Some(url) = self.valkey_url.as_ref().map(Secret::expose)
            && !is_valkey_url(url)
        {
            return Err(invalid(
                "VALKEY_URL",
                &redact_url(url),
                "a redis://, rediss://, valkey:// or valkeys:// URL naming a host (numeric port and database, if any)",
            ));
        }
        if let Some(audience) = &self.audience
            && (audience.len() > 256
                || audience.is_empty()
                || audience
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(invalid(
                "PLUGIN_AUTH_AUDIENCE",
                audience,
                "one audience of 1 to 256 characters, without spaces",
            ));
        }
        if let Some(secret) = &self.valkey_decision_secret
            && secret.expose().len() < MIN_SECRET_BYTES
        {
            return Err(invalid(
                "VALKEY_DECISION_SECRET",
                &format!("*** ({} bytes)", secret.expose().len()),
                "a secret of at least 32 bytes",
            ));
        }
        if !is_valkey_prefix(&self.valkey_prefix) {
            return Err(invalid(
                "VALKEY_PREFIX",
                &self.valkey_prefix,
                "1 to 64 letters, digits, '-', '_', '.' or ':'",
            ));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(invalid(
                "PLUGIN_AUTH_LEEWAY",
                &format!("{}s", self.leeway.as_secs()),
                LEEWAY_EXPECTED,
            ));
        }
        if self.revocation_poll_interval.is_zero() {
            return Err(invalid(
                "PLUGIN_AUTH_REVOCATION_POLL_INTERVAL",
                "0",
                POLL_INTERVAL_EXPECTED,
            ));
        }
        if self.max_token_bytes == 0 {
            return Err(invalid(
                "max_token_bytes",
                "0",
                "a positive number of bytes",
            ));
        }
        if !self.enabled {
            return Ok(());
        }
        let shares_decisions = self.mode == Mode::Remote
            && self.valkey_decision_secret.is_some()
            && (self.valkey_url.is_some() || self.decision_store.is_some());
        if shares_decisions && (self.client_id.is_none() || self.client_secret.is_none()) {
            return Err(ConfigError::Missing {
                variable: if self.client_id.is_none() {
                    "PLUGIN_AUTH_CLIENT_ID"
                } else {
                    "PLUGIN_AUTH_CLIENT_SECRET"
                },
                why: "VALKEY_DECISION_SECRET shares decisions, which only a validator that receives revocations may read (an answer given before a logout would pass for one given after): set PLUGIN_AUTH_CLIENT_ID and PLUGIN_AUTH_CLIENT_SECRET",
            });
        }
        let has_offline_keys = !self.static_keys.is_empty() || self.jwks_file.is_some();
        match self.mode {
            Mode::Remote if self.host.is_none() => Err(ConfigError::Missing {
                variable: "PLUGIN_AUTH_HOST",
                why: "remote mode asks the Auth service for every decision",
            }),
            Mode::Local if self.host.is_none() && self.jwks_url.is_none() && !has_offline_keys => {
                Err(ConfigError::Missing {
                    variable: "PLUGIN_AUTH_HOST",
                    why: "local mode needs a key source: PLUGIN_AUTH_HOST, PLUGIN_AUTH_JWKS_URL or PLUGIN_AUTH_JWKS_FILE",
                })
            }
            Mode::Local if self.effective_issuer().is_none() => Err(ConfigError::Missing {
                variable: "PLUGIN_AUTH_ISSUER",
                why: "tokens must come from a pinned issuer; set it, or PLUGIN_AUTH_HOST",
            }),
            Mode::Local if self.policy == PolicySource::Server && self.host.is_none() => {
                Err(ConfigError::Missing {
                    variable: "PLUGIN_AUTH_HOST",
                    why: "PLUGIN_AUTH_POLICY=server syncs the policy from the Auth service",
                })
            }
            Mode::Local
                if self.policy == PolicySource::Server
                    && (self.client_id.is_none() || self.client_secret.is_none()) =>
            {
                Err(ConfigError::Missing {
                    variable: if self.client_id.is_none() {
                        "PLUGIN_AUTH_CLIENT_ID"
                    } else {
                        "PLUGIN_AUTH_CLIENT_SECRET"
                    },
                    why: "PLUGIN_AUTH_POLICY=server fetches the policy with the service's own application token: set PLUGIN_AUTH_CLIENT_ID and PLUGIN_AUTH_CLIENT_SECRET",
                })
            }
            _ => Ok(()),
        }
    }

    /// The issuer tokens must carry: `issuer`, else `host` without a trailing slash.
    pub fn effective_issuer(&self) -> Option<String> {
        self.issuer.clone().or_else(|| {
            self.host
                .as_ref()
                .map(|h| h.trim_end_matches('/').to_owned())
        })
    }

    /// The JWKS URL: `jwks_url`, else `{host}/.well-known/jwks.json`.
    pub fn effective_jwks_url(&self) -> Option<String> {
        self.jwks_url.clone().or_else(|| {
            self.host
                .as_ref()
                .map(|h| format!("{}/.well-known/jwks.json", h.trim_end_matches('/')))
        })
    }
}

/// `url` with any password replaced by `***`, for error messages and logs.
pub(crate) fn redact_url(url: &str) -> String {
    // Whatever precedes the last `@` may hold credentials, however malformed the URL (an
    // unencoded `/` in a password, `redis:/:pw@host`): all of it but the scheme is hidden.
    match url.rsplit_once('@') {
        Some((before, host)) => match before.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***@{host}"),
            None => format!("***@{host}"),
        },
        None => url.to_owned(),
    }
}

/// Clock skew beyond this means a broken clock, not skew.
const MAX_LEEWAY: Duration = Duration::from_secs(3600);
/// The variables whose values are secrets, never converted (see [`AuthConfig::from_env`]).
const SECRET_VARIABLES: [&str; 3] = [
    "PLUGIN_AUTH_CLIENT_SECRET",
    "VALKEY_DECISION_SECRET",
    "VALKEY_URL",
];
const LEEWAY_EXPECTED: &str = "at most 1h: clock skew larger than that means a broken clock";
const POLL_INTERVAL_EXPECTED: &str =
    "a positive duration such as 5s, 500ms or 1m (0 would poll without pause)";

fn invalid(variable: &'static str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::InvalidValue {
        variable,
        value: value.to_owned(),
        expected,
    }
}

fn parse_bool(variable: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(invalid(variable, value, "true, false, 1 or 0")),
    }
}

/// Parses `500ms`, `30s`, `5m`, `1h`, `2d`, or a bare number of seconds.
pub(crate) fn parse_duration(variable: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let bad = || {
        invalid(
            variable,
            value,
            "a duration such as 30s, 500ms, 5m, 1h or a number of seconds",
        )
    };
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<AuthConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AuthConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn empty_environment_is_disabled_local_builtin() {
        let c = from(&[]).unwrap();
        assert!(!c.enabled);
        assert_eq!(c.mode, Mode::Local);
        assert_eq!(c.policy, PolicySource::BuiltIn);
        assert_eq!(c.cache_ttl, Duration::from_secs(30));
        assert_eq!(c.leeway, Duration::from_secs(30));
        assert_eq!(c.revocation_poll_interval, Duration::from_secs(5));
    }

    #[test]
    fn a_zero_poll_interval_set_in_code_is_refused() {
        let err = AuthConfig::default()
            .revocation_poll_interval(Duration::ZERO)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("PLUGIN_AUTH_REVOCATION_POLL_INTERVAL"),
            "{err}"
        );
    }

    #[test]
    fn policy_from_the_server_needs_the_client_credentials() {
        let base = [
            ("PLUGIN_AUTH_ENABLED", "true"),
            ("PLUGIN_AUTH_HOST", "http://auth:4000"),
            ("PLUGIN_AUTH_POLICY", "server"),
        ];
        let err = from(&base).unwrap_err().to_string();
        assert!(
            err.contains("PLUGIN_AUTH_CLIENT_ID") && err.contains("PLUGIN_AUTH_CLIENT_SECRET"),
            "{err}"
        );
        let mut with_id = base.to_vec();
        with_id.push(("PLUGIN_AUTH_CLIENT_ID", "svc"));
        let err = from(&with_id).unwrap_err().to_string();
        assert!(err.starts_with("PLUGIN_AUTH_CLIENT_SECRET"), "{err}");
        let mut complete = with_id.clone();
        complete.push(("PLUGIN_AUTH_CLIENT_SECRET", "s"));
        assert_eq!(from(&complete).unwrap().policy, PolicySource::Server);
    }

    #[test]
    fn every_variable_is_read() {
        let c = from(&[
            ("PLUGIN_AUTH_ENABLED", "TRUE"),
            ("PLUGIN_AUTH_ADDRESS", "http://ignored:1"),
            ("PLUGIN_AUTH_HOST", "http://auth:4000/"),
            ("PLUGIN_AUTH_MODE", "Remote"),
            ("PLUGIN_AUTH_ISSUER", "http://issuer"),
            ("PLUGIN_AUTH_AUDIENCE", "midaz"),
            ("PLUGIN_AUTH_JWKS_URL", "http://keys/jwks.json"),
            ("PLUGIN_AUTH_CLIENT_ID", "svc"),
            ("PLUGIN_AUTH_CLIENT_SECRET", "s3cret"),
            ("PLUGIN_AUTH_POLICY", "/etc/policy.json"),
            ("PLUGIN_AUTH_CACHE_TTL", "2m"),
            ("PLUGIN_AUTH_REVOCATION_POLL_INTERVAL", "250ms"),
            ("PLUGIN_AUTH_LEEWAY", "5"),
            ("VALKEY_URL", "redis://127.0.0.1:6379"),
            ("PLUGIN_AUTH_ROLES_CLAIM", "realm_access.roles"),
        ])
        .unwrap();
        assert!(c.enabled);
        assert_eq!(c.host.as_deref(), Some("http://auth:4000/"));
        assert_eq!(c.mode, Mode::Remote);
        assert_eq!(c.issuer.as_deref(), Some("http://issuer"));
        assert_eq!(c.audience.as_deref(), Some("midaz"));
        assert_eq!(c.jwks_url.as_deref(), Some("http://keys/jwks.json"));
        assert_eq!(c.client_id.as_deref(), Some("svc"));
        assert_eq!(c.client_secret.as_ref().map(Secret::expose), Some("s3cret"));
        assert_eq!(c.policy, PolicySource::File("/etc/policy.json".into()));
        assert_eq!(c.cache_ttl, Duration::from_secs(120));
        assert_eq!(c.revocation_poll_interval, Duration::from_millis(250));
        assert_eq!(c.leeway, Duration::from_secs(5));
        assert_eq!(
            c.valkey_url.as_ref().map(Secret::expose),
            Some("redis://127.0.0.1:6379")
        );
        assert_eq!(c.claim_mapping.roles_path, ["realm_access", "roles"]);
    }

    #[test]
    fn address_is_used_when_host_is_absent_and_derives_issuer_and_jwks() {
        let c = from(&[
            ("PLUGIN_AUTH_ENABLED", "1"),
            ("PLUGIN_AUTH_ADDRESS", "http://auth:4000/"),
        ])
        .unwrap();
        assert_eq!(c.effective_issuer().as_deref(), Some("http://auth:4000"));
        assert_eq!(
            c.effective_jwks_url().as_deref(),
            Some("http://auth:4000/.well-known/jwks.json")
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        for (var, value) in [
            ("PLUGIN_AUTH_ENABLED", "yes"),
            ("PLUGIN_AUTH_MODE", "hybrid"),
            ("PLUGIN_AUTH_CACHE_TTL", "30 seconds"),
            ("PLUGIN_AUTH_LEEWAY", "-1s"),
            ("PLUGIN_AUTH_LEEWAY", "7200"),
            ("PLUGIN_AUTH_LEEWAY", "2h"),
            ("PLUGIN_AUTH_HOST", "auth:4000"),
            ("VALKEY_URL", "http://cache"),
            ("PLUGIN_AUTH_ACCEPT_JWT_TYP", "maybe"),
            ("PLUGIN_AUTH_REVOCATION_POLL_INTERVAL", "0"),
            ("PLUGIN_AUTH_REVOCATION_POLL_INTERVAL", "0ms"),
            ("PLUGIN_AUTH_REVOCATION_POLL_INTERVAL", "5 s"),
            ("PLUGIN_AUTH_REVOCATION_POLL_INTERVAL", "-1"),
        ] {
            let err = from(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var) && err.contains(value), "{var}: {err}");
        }
    }

    #[test]
    fn a_decision_secret_is_long_never_shown_and_shared_only_with_the_feed() {
        let remote = [
            ("PLUGIN_AUTH_ENABLED", "true"),
            ("PLUGIN_AUTH_MODE", "remote"),
            ("PLUGIN_AUTH_HOST", "http://auth:4000"),
            ("VALKEY_URL", "redis://:hunter2pw@cache:6379"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = remote.to_vec();
            vars.extend_from_slice(extra);
            from(&vars)
        };
        let short = with(&[("VALKEY_DECISION_SECRET", "thirty-one-bytes-is-one-too-few")])
            .unwrap_err()
            .to_string();
        assert!(
            short.contains("VALKEY_DECISION_SECRET") && short.contains("31 bytes"),
            "{short}"
        );
        assert!(!short.contains("thirty-one"), "{short}");
        let secret = (
            "VALKEY_DECISION_SECRET",
            "a-decision-secret-of-32-bytes-at-least",
        );
        let no_feed = with(&[secret]).unwrap_err().to_string();
        assert!(no_feed.contains("PLUGIN_AUTH_CLIENT_ID"), "{no_feed}");
        let config = with(&[
            secret,
            ("PLUGIN_AUTH_CLIENT_ID", "ledger"),
            ("PLUGIN_AUTH_CLIENT_SECRET", "ledger-secret"),
        ])
        .expect("with the feed's credentials");
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("hunter2pw") && !debug.contains("32-bytes"),
            "{debug}"
        );
        // Local mode has no decision cache to share: the secret changes nothing there.
        assert!(
            from(&[
                ("PLUGIN_AUTH_ENABLED", "true"),
                ("PLUGIN_AUTH_HOST", "http://auth:4000"),
                ("VALKEY_URL", "redis://cache:6379"),
                secret,
            ])
            .is_ok()
        );
    }

    /// Was: a URL of the right scheme that no client can use (no host, a port that is not a
    /// number) was taken at start, and failed only at the first use of Valkey.
    #[test]
    fn a_valkey_url_no_client_can_use_is_refused_at_start() {
        assert!(is_valkey_url("redis://127.0.0.1:6379"));
        assert!(is_valkey_url("rediss://:pw@cache:6380/2"));
        assert!(is_valkey_url("valkey://cache"));
        for url in [
            "redis://hunter2pw@",
            "redis://:hunter2pw@cache:port",
            "rediss://:hunter2pw@",
        ] {
            assert!(!is_valkey_url(url), "{url}");
            let err = from(&[
                ("PLUGIN_AUTH_ENABLED", "true"),
                ("PLUGIN_AUTH_JWKS_URL", "http://auth/jwks"),
                ("VALKEY_URL", url),
            ])
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("VALKEY_URL") && !err.contains("hunter2pw"),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn a_password_with_a_slash_in_a_url_is_hidden_whole() {
        let redacted = redact_url("redis://:p@ss/hunter2pw@host:6379");
        assert!(!redacted.contains("hunter2pw"), "{redacted}");
        assert!(redacted.ends_with("@host:6379"), "{redacted}");
        assert_eq!(
            redact_url("redis://user:pw@host:6379/0"),
            "redis://***@host:6379/0"
        );
        for malformed in [
            "redis:/:hunter2pw@cache:6379",
            "redis:hunter2pw@cache:6379",
            "redis:/user:hunter2pw@cache:6379",
        ] {
            assert_eq!(redact_url(malformed), "***@cache:6379");
        }
    }

    #[test]
    fn enabled_without_a_key_source_or_host_is_an_error() {
        let err = from(&[("PLUGIN_AUTH_ENABLED", "true")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("PLUGIN_AUTH_HOST"), "{err}");
        let err = from(&[
            ("PLUGIN_AUTH_ENABLED", "true"),
            ("PLUGIN_AUTH_MODE", "remote"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("PLUGIN_AUTH_HOST"), "{err}");
        let err = from(&[
            ("PLUGIN_AUTH_ENABLED", "true"),
            ("PLUGIN_AUTH_JWKS_URL", "https://idp/keys"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("PLUGIN_AUTH_ISSUER"), "{err}");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(
            parse_duration("X", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_duration("X", "24h").unwrap(),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            parse_duration("X", "3600").unwrap(),
            Duration::from_secs(3600)
        );
        assert!(parse_duration("X", "1.5s").is_err());
        assert!(parse_duration("X", "99999999999999999999s").is_err());
    }

    #[test]
    fn passwords_in_urls_never_show_in_errors() {
        for (var, value) in [
            ("VALKEY_URL", "http://user:hunter2@cache:6379"),
            ("PLUGIN_AUTH_HOST", "ftp://svc:hunter2@auth"),
            ("PLUGIN_AUTH_JWKS_URL", "not a url:hunter2@x"),
        ] {
            let err = from(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var) && !err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = AuthConfig::default().client_secret("hunter2-very-secret");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
