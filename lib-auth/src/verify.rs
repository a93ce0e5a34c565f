//! Token verification (SPEC §3): header checks, key selection, signature, claims; and the
//! cache of verified tokens, so that a token's signature is checked once, not per request.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use foldhash::fast::RandomState;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;

use crate::bearer::check_token_chars;
use crate::config::AuthConfig;
use crate::error::{AuthError, ConfigError, InvalidTokenReason};
use crate::jwks::JwksSource;
use crate::keys::{KeyLookup, KeySet, is_accepted_algorithm};
use crate::principal::{ClaimMapping, Principal, TokenClaims, numeric_date};

/// Where the verifier's keys come from.
#[derive(Debug)]
enum Keys {
    /// Given in code or read from a JWKS file: never fetched.
    Fixed(KeySet),
    /// Fetched from a JWKS URL.
    Fetched(Arc<JwksSource>),
}

/// The JOSE header fields we read. Parsed by us (not by `jsonwebtoken`) so that `alg: none`
/// and unknown algorithms are refused with a precise reason.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// A verified token's principal, with the key epoch of the keys that verified it.
#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    epoch: u64,
}

/// What [`TokenVerifier::check_header`] learnt from a token's header.
struct CheckedHeader {
    alg: Algorithm,
    kid: Option<String>,
}

/// How long a verified token stays cached at most. Each hit also checks the token's own `exp`
/// exactly, so this only bounds memory held by long-lived tokens. (A per-entry expiry policy
/// costs moka ~300 ns per read; a fixed TTL plus one clock read is cheaper.)
const VERIFIED_TOKEN_TTL: Duration = Duration::from_secs(3600);

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Verifies access tokens and remembers the ones that passed.
#[derive(Debug)]
pub struct TokenVerifier {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
    accept_plain_jwt: bool,
    leeway_secs: u64,
    max_token_bytes: usize,
    mapping: ClaimMapping,
    cache: moka::sync::Cache<Arc<str>, Verified, RandomState>,
}

impl TokenVerifier {
    /// A verifier for `config`: fixed keys when `static_keys` or `jwks_file` are set, else the
    /// JWKS URL. `client` is used for key fetches.
    pub fn new(config: &AuthConfig, client: reqwest::Client) -> Result<TokenVerifier, ConfigError> {
        let keys = if !config.static_keys.is_empty() {
            Keys::Fixed(KeySet::new(config.static_keys.iter().cloned()))
        } else if let Some(path) = &config.jwks_file {
            let text = std::fs::read(path).map_err(|e| ConfigError::InvalidKey {
                name: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let set = KeySet::from_jwks_json(&text)?;
            if set.is_empty() {
                return Err(ConfigError::InvalidKey {
                    name: path.display().to_string(),
                    reason: "the JWKS holds no usable signature key".to_owned(),
                });
            }
            Keys::Fixed(set)
        } else {
            let url = config.effective_jwks_url().ok_or(ConfigError::Missing {
                variable: "PLUGIN_AUTH_JWKS_URL",
                why: "local mode needs keys: a JWKS URL, a JWKS file or static keys",
            })?;
            Keys::Fetched(Arc::new(JwksSource::new(
                url,
                client,
                config.jwks_min_refresh_interval,
                config.jwks_max_age,
            )))
        };
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.cache_capacity)
            .time_to_live(VERIFIED_TOKEN_TTL)
            .build_with_hasher(RandomState::default());
        Ok(TokenVerifier {
            keys,
            issuer: config.effective_issuer(),
            audience: config.audience.clone(),
            accept_plain_jwt: config.accept_plain_jwt,
            leeway_secs: config.leeway.as_secs(),
            max_token_bytes: config.max_token_bytes,
            mapping: config.claim_mapping.clone(),
            cache,
        })
    }

    /// The principal of a token verified before and still valid, without any I/O.
    #[inline]
    pub fn cached(&self, token: &str) -> Option<Principal> {
        let verified = self.cache.get(token)?;
        // Verified with keys the issuer has since dropped or changed: verify again.
        if verified.epoch != self.key_epoch() {
            return None;
        }
        // moka's expiry is approximate; the exact check is one clock read.
        // Saturating: `exp` is the issuer's number and may be as large as u64::MAX.
        let principal = verified.principal;
        (principal.expires_at().saturating_add(self.leeway_secs) > unix_now()).then_some(principal)
    }

    /// The epoch of the current keys (always 0 for fixed keys).
    #[inline]
    fn key_epoch(&self) -> u64 {
        match &self.keys {
            Keys::Fixed(_) => 0,
            Keys::Fetched(source) => source.epoch(),
        }
    }

    /// Drops `token` from the cache of verified tokens: its next use is verified again.
    pub fn forget(&self, token: &str) {
        self.cache.invalidate(token);
    }

    /// Verifies `token` (cache first) and returns its principal.
    ///
    /// Fetches the JWKS when no key is known yet, and once more (single-flight, rate-limited)
    /// when the token's `kid` is unknown — that is how a rotated key is picked up. A token
    /// that can be refused from its own bytes (size, shape, `alg`, `typ`, `crit`) is refused
    /// before any key is fetched.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if let Some(principal) = self.cached(token) {
            return Ok(principal);
        }
        let header = self.check_header(token)?;
        let (principal, epoch) = match &self.keys {
            Keys::Fixed(keys) => (self.verify_checked(token, &header, keys)?, 0),
            Keys::Fetched(source) => {
                let mut fetched = match source.current() {
                    Some(f) => f,
                    None => source.refresh(None).await?,
                };
                if source.is_stale(&fetched) {
                    source.refresh_in_background(fetched.clone());
                }
                let principal = match self.verify_checked(token, &header, &fetched.keys) {
                    Err(AuthError::InvalidToken {
                        reason: InvalidTokenReason::UnknownKey,
                    }) => {
                        fetched = source.refresh(Some(&fetched)).await?;
                        self.verify_checked(token, &header, &fetched.keys)?
                    }
                    other => other?,
                };
                (principal, fetched.epoch)
            }
        };
        if principal.expires_at() > unix_now() {
            let verified = Verified {
                principal: principal.clone(),
                epoch,
            };
            self.cache.insert(Arc::from(token), verified);
        }
        Ok(principal)
    }

    /// Verifies `token` against `keys`: every check of SPEC §3, no cache, no I/O.
    pub fn verify_with(&self, token: &str, keys: &KeySet) -> Result<Principal, AuthError> {
        let header = self.check_header(token)?;
        self.verify_checked(token, &header, keys)
    }

    /// The checks that need no key: size, three segments, a JSON header whose `alg` may ever
    /// be accepted, `typ`, `crit`. Returns the `alg` and `kid` for key selection.
    fn check_header(&self, token: &str) -> Result<CheckedHeader, AuthError> {
        use InvalidTokenReason as R;
        if token.len() > self.max_token_bytes {
            return Err(R::TooLarge.into());
        }
        check_token_chars(token)?;
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(R::Malformed.into());
        };
        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| AuthError::from(R::Malformed))?;
        let header: JoseHeader =
            serde_json::from_slice(&header_json).map_err(|_| AuthError::from(R::Malformed))?;

        // `alg` before the empty-signature check, so that the classic unsigned
        // `alg: none` token (`header.payload.`) is reported as the algorithm attack it is.
        let alg: Algorithm = header
            .alg
            .parse()
            .map_err(|_| AuthError::from(R::AlgorithmNotAllowed))?;
        if !is_accepted_algorithm(alg) {
            return Err(R::AlgorithmNotAllowed.into());
        }
        if !self.is_accepted_type(header.typ.as_deref()) {
            return Err(R::WrongType.into());
        }
        if header.crit.is_some() {
            return Err(R::UnsupportedCriticalHeader.into());
        }
        if payload.is_empty() || signature.is_empty() {
            return Err(R::Malformed.into());
        }
        Ok(CheckedHeader {
            alg,
            kid: header.kid,
        })
    }

    /// Key selection, signature and claims, for a token whose header passed `check_header`.
    fn verify_checked(
        &self,
        token: &str,
        header: &CheckedHeader,
        keys: &KeySet,
    ) -> Result<Principal, AuthError> {
        use InvalidTokenReason as R;
        let alg = header.alg;
        let key = match keys.lookup(header.kid.as_deref(), alg) {
            KeyLookup::Found(key) => key,
            KeyLookup::WrongAlgorithm => return Err(R::AlgorithmNotAllowed.into()),
            KeyLookup::Unknown => return Err(R::UnknownKey.into()),
        };
        // Signature first: nothing of the payload is read before it is authenticated.
        let (message, signature) = token
            .rsplit_once('.')
            .ok_or(AuthError::from(R::Malformed))?;
        let signed =
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), key.decoding_key(), alg)
                .map_err(|_| AuthError::from(R::Malformed))?;
        if !signed {
            return Err(R::BadSignature.into());
        }
        let payload = message
            .split_once('.')
            .map(|(_, payload)| payload)
            .ok_or(AuthError::from(R::Malformed))?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| AuthError::from(R::Malformed))?;
        let claims: TokenClaims =
            serde_json::from_slice(&json).map_err(|_| AuthError::from(R::Malformed))?;
        self.check_claims(&claims)?;
        Principal::from_token(claims, &json, &self.mapping).ok_or_else(|| R::MissingClaim.into())
    }

    /// The registered claims of SPEC §3: `exp` required, `nbf` and `iat` checked when present,
    /// all with the leeway; `iss` required and equal to the pinned issuer; `aud` required and
    /// containing the configured audience, when one is configured. `sub` is required by
    /// [`Principal::from_claims`].
    fn check_claims(&self, claims: &TokenClaims) -> Result<(), AuthError> {
        use InvalidTokenReason as R;
        let now = unix_now();
        let leeway = self.leeway_secs;
        let date = |claim: &Option<Value>| -> Result<Option<u64>, AuthError> {
            match claim {
                None => Ok(None),
                Some(v) => numeric_date(v).map(Some).ok_or(R::MissingClaim.into()),
            }
        };
        let exp = date(&claims.exp)?.ok_or(AuthError::from(R::MissingClaim))?;
        if exp.saturating_add(leeway) < now {
            return Err(R::Expired.into());
        }
        if let Some(nbf) = date(&claims.nbf)?
            && nbf > now.saturating_add(leeway)
        {
            return Err(R::NotYetValid.into());
        }
        if let Some(iat) = date(&claims.iat)?
            && iat > now.saturating_add(leeway)
        {
            return Err(R::IssuedInFuture.into());
        }
        if let Some(issuer) = &self.issuer {
            match &claims.iss {
                Some(Value::String(iss)) if iss == issuer => {}
                Some(Value::String(_)) => return Err(R::WrongIssuer.into()),
                _ => return Err(R::MissingClaim.into()),
            }
        }
        if let Some(audience) = &self.audience {
            check_audience(claims.aud.as_ref(), audience)?;
        }
        Ok(())
    }

    fn is_accepted_type(&self, typ: Option<&str>) -> bool {
        match typ {
            Some(t)
                if t.eq_ignore_ascii_case("at+jwt")
                    || t.eq_ignore_ascii_case("application/at+jwt") =>
            {
                true
            }
            Some(t) if t.eq_ignore_ascii_case("jwt") => self.accept_plain_jwt,
            None => self.accept_plain_jwt,
            Some(_) => false,
        }
    }
}

/// Refuses a token whose `aud` (a string or an array of strings, RFC 7519 §4.1.3) does not
/// name `audience`.
pub(crate) fn check_audience(aud: Option<&Value>, audience: &str) -> Result<(), AuthError> {
    let matches = match aud {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
        _ => return Err(InvalidTokenReason::MissingClaim.into()),
    };
    if matches {
        Ok(())
    } else {
        Err(InvalidTokenReason::WrongAudience.into())
    }
}
