//! Verification keys and key sets: each key carries the one algorithm it may verify.
//!
//! The algorithm is decided by the key (its JWK `alg`, or its type and curve), never by the
//! token header alone: a token whose header names another algorithm is refused, which closes
//! the `alg: none` and "HS256 signed with the RSA public key" attacks.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::error::ConfigError;

/// A public key allowed to verify tokens of exactly one algorithm.
#[derive(Clone)]
pub struct VerificationKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The asymmetric algorithms a key may be bound to. HMAC is never accepted: a verifier that
/// holds a shared secret could mint tokens.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn key_error(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidKey {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

impl VerificationKey {
    /// A key from a PEM public key (SPKI, or PKCS#1 for RSA) for `algorithm`.
    pub fn from_pem(
        kid: Option<&str>,
        algorithm: Algorithm,
        pem: &[u8],
    ) -> Result<VerificationKey, ConfigError> {
        let name = kid.unwrap_or("<pem>");
        let key = match algorithm {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem),
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            _ => return Err(key_error(name, "only asymmetric algorithms are accepted")),
        }
        .map_err(|e| key_error(name, e.to_string()))?;
        Ok(VerificationKey {
            kid: kid.map(str::to_owned),
            algorithm,
            key,
        })
    }

    /// A key from a JWK. The algorithm is the JWK's `alg` when present (it must fit the key
    /// type), else RS256 for RSA, ES256/ES384 by curve, EdDSA for Ed25519. Symmetric (`oct`)
    /// and encryption (`use: enc`) keys are refused.
    pub fn from_jwk(jwk: &Jwk) -> Result<VerificationKey, ConfigError> {
        let kid = jwk.common.key_id.clone();
        let name = kid.clone().unwrap_or_else(|| "<jwk>".to_owned());
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Err(key_error(
                &name,
                "an encryption key cannot verify signatures",
            ));
        }
        let declared =
            match jwk.common.key_algorithm {
                None => None,
                Some(alg) => Some(signing_algorithm(alg).ok_or_else(|| {
                    key_error(&name, format!("algorithm {alg:?} is not accepted"))
                })?),
            };
        let fits = |alg: Algorithm, family: &[Algorithm]| family.contains(&alg);
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => {
                let family = &ASYMMETRIC[..6];
                match declared {
                    Some(a) if fits(a, family) => a,
                    Some(a) => {
                        return Err(key_error(&name, format!("{a:?} does not fit an RSA key")));
                    }
                    None => Algorithm::RS256,
                }
            }
            AlgorithmParameters::EllipticCurve(ec) => {
                let by_curve = match ec.curve {
                    EllipticCurve::P256 => Algorithm::ES256,
                    EllipticCurve::P384 => Algorithm::ES384,
                    ref other => {
                        return Err(key_error(
                            &name,
                            format!("curve {other:?} is not supported"),
                        ));
                    }
                };
                match declared {
                    Some(a) if a != by_curve => {
                        return Err(key_error(
                            &name,
                            format!("{a:?} does not fit the key's curve"),
                        ));
                    }
                    _ => by_curve,
                }
            }
            AlgorithmParameters::OctetKeyPair(okp) => {
                if okp.curve != EllipticCurve::Ed25519 {
                    return Err(key_error(
                        &name,
                        "only Ed25519 octet key pairs are supported",
                    ));
                }
                match declared {
                    Some(a) if a != Algorithm::EdDSA => {
                        return Err(key_error(
                            &name,
                            format!("{a:?} does not fit an Ed25519 key"),
                        ));
                    }
                    _ => Algorithm::EdDSA,
                }
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(key_error(&name, "symmetric keys are never accepted"));
            }
            _ => return Err(key_error(&name, "unsupported key type")),
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| key_error(&name, e.to_string()))?;
        Ok(VerificationKey {
            kid,
            algorithm,
            key,
        })
    }

    /// The key id (`kid`), if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

fn signing_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The algorithms a key may ever be bound to (no HMAC, no `none`).
pub(crate) fn is_accepted_algorithm(alg: Algorithm) -> bool {
    ASYMMETRIC.contains(&alg)
}

/// A set of verification keys, looked up by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<VerificationKey>>,
    unnamed: Vec<Arc<VerificationKey>>,
}

/// What looking a key up found.
pub(crate) enum KeyLookup<'a> {
    /// A key that verifies this algorithm.
    Found(&'a VerificationKey),
    /// A key with this `kid` exists but is bound to another algorithm.
    WrongAlgorithm,
    /// No key with this `kid` (or, without `kid`, no unnamed key of this algorithm).
    Unknown,
}

impl KeySet {
    /// A key set of the given keys.
    pub fn new(keys: impl IntoIterator<Item = VerificationKey>) -> KeySet {
        let mut set = KeySet::default();
        for key in keys {
            set.insert(key);
        }
        set
    }

    fn insert(&mut self, key: VerificationKey) {
        let key = Arc::new(key);
        match key.kid.clone() {
            Some(kid) => {
                self.by_kid.insert(kid, key);
            }
            None => self.unnamed.push(key),
        }
    }

    /// Parses a JWKS document. Keys that cannot verify signatures (encryption keys, symmetric
    /// keys, unsupported curves) are skipped with a debug log, so one odd key of a third-party
    /// JWKS does not disable the others.
    pub fn from_jwks_json(text: &[u8]) -> Result<KeySet, ConfigError> {
        let jwks: JwkSet = serde_json::from_slice(text)
            .map_err(|e| key_error("<jwks>", format!("not a JWKS document: {e}")))?;
        let mut set = KeySet::default();
        for jwk in &jwks.keys {
            match VerificationKey::from_jwk(jwk) {
                Ok(key) => set.insert(key),
                Err(e) => tracing::debug!(error = %e, "skipping a JWKS key"),
            }
        }
        Ok(set)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> KeyLookup<'_> {
        if let Some(kid) = kid
            && let Some(key) = self.by_kid.get(kid)
        {
            return if key.algorithm == alg {
                KeyLookup::Found(key)
            } else {
                KeyLookup::WrongAlgorithm
            };
        }
        let mut wrong = false;
        for key in &self.unnamed {
            if key.algorithm == alg {
                return KeyLookup::Found(key);
            }
            wrong = true;
        }
        if wrong && kid.is_none() {
            KeyLookup::WrongAlgorithm
        } else {
            KeyLookup::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_encryption_keys_are_skipped() {
        let jwks = br#"{"keys":[
            {"kty":"oct","kid":"h","k":"c2VjcmV0"},
            {"kty":"OKP","crv":"Ed25519","kid":"e","use":"enc","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"OKP","crv":"Ed25519","kid":"ok","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}"#;
        let set = KeySet::from_jwks_json(jwks).unwrap();
        assert_eq!(set.len(), 1);
        assert!(matches!(
            set.lookup(Some("ok"), Algorithm::EdDSA),
            KeyLookup::Found(_)
        ));
        assert!(matches!(
            set.lookup(Some("ok"), Algorithm::HS256),
            KeyLookup::WrongAlgorithm
        ));
        assert!(matches!(
            set.lookup(Some("h"), Algorithm::HS256),
            KeyLookup::Unknown
        ));
    }

    #[test]
    fn declared_algorithm_must_fit_the_key_type() {
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519","alg":"RS256","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        assert!(VerificationKey::from_jwk(&jwk).is_err());
    }

    #[test]
    fn not_a_jwks_is_an_error() {
        assert!(KeySet::from_jwks_json(b"[1,2]").is_err());
        assert!(KeySet::from_jwks_json(b"").is_err());
    }
}
