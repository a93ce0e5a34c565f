//! Verification keys and key sets: each key carries the one algorithm it may verify.
//!
//! The algorithm is decided by the key (its JWK `alg`, or its type and curve), never by the
//! token header alone: a token whose header names another algorithm is refused, which closes
//! the `alg: none` and "HS256 signed with the RSA public key" attacks.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::error::ConfigError;

/// A public key allowed to verify tokens of exactly one algorithm.
#[derive(Clone)]
pub struct VerificationKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
    /// SHA-256 of the algorithm and the public key material: tells whether a key fetched again
    /// is the same key.
    fingerprint: [u8; 32],
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

/// The Ed25519 points of small order, as libsodium lists them (the sign bit, the top bit of
/// the last byte, is ignored when comparing). With such a "public key" the cofactorless check
/// accepts `R = identity, S = 0` — or a few other fixed signatures — for *every* message.
const ED25519_SMALL_ORDER: [[u8; 32]; 7] = {
    let mut ff = [0xff; 32];
    ff[31] = 0x7f;
    let mut p_minus_1 = ff;
    p_minus_1[0] = 0xec;
    let mut p = ff;
    p[0] = 0xed;
    let mut p_plus_1 = ff;
    p_plus_1[0] = 0xee;
    let mut one = [0; 32];
    one[0] = 1;
    [
        [0; 32],
        one,
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
            0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
            0x6d, 0x53, 0xfc, 0x05,
        ],
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ],
        p_minus_1,
        p,
        p_plus_1,
    ]
};

fn is_small_order_ed25519(key: &[u8]) -> bool {
    key.len() == 32
        && ED25519_SMALL_ORDER
            .iter()
            .any(|weak| key[..31] == weak[..31] && key[31] & 0x7f == weak[31])
}

/// Final checks of a decoded key, and its fingerprint.
fn checked(
    name: &str,
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
) -> Result<VerificationKey, ConfigError> {
    let mut hash = Sha256::new();
    hash.update(format!("{algorithm:?}").as_bytes());
    match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => {
            if algorithm == Algorithm::EdDSA && (bytes.len() != 32 || is_small_order_ed25519(bytes))
            {
                return Err(key_error(
                    name,
                    "not a usable Ed25519 public key (wrong length or a point of small order)",
                ));
            }
            hash.update(b"\0der\0");
            hash.update(bytes);
        }
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            hash.update(b"\0n\0");
            hash.update((n.len() as u64).to_be_bytes());
            hash.update(n);
            hash.update(b"\0e\0");
            hash.update(e);
        }
    }
    Ok(VerificationKey {
        kid,
        algorithm,
        key,
        fingerprint: hash.finalize().into(),
    })
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
        checked(name, kid.map(str::to_owned), algorithm, key)
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
        checked(&name, kid, algorithm, key)
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
    /// keys, unsupported curves, key types or algorithms unknown to this library, malformed or
    /// weak keys) are skipped with a debug log, so one odd key of a third-party JWKS does not
    /// disable the others.
    pub fn from_jwks_json(text: &[u8]) -> Result<KeySet, ConfigError> {
        /// The document's shape only: each key is parsed on its own, so that one key of a
        /// type `Jwk` cannot represent does not make the whole document unreadable.
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let jwks: Document = serde_json::from_slice(text)
            .map_err(|e| key_error("<jwks>", format!("not a JWKS document: {e}")))?;
        let mut set = KeySet::default();
        for value in jwks.keys {
            let jwk = match Jwk::deserialize(value) {
                Ok(jwk) => jwk,
                Err(e) => {
                    tracing::debug!(error = %e, "skipping a JWKS key of an unknown form");
                    continue;
                }
            };
            match VerificationKey::from_jwk(&jwk) {
                Ok(key) => set.insert(key),
                Err(e) => tracing::debug!(error = %e, "skipping a JWKS key"),
            }
        }
        Ok(set)
    }

    /// Whether every key of `old` is in this set, unchanged (same `kid`, algorithm and key
    /// material). When not, tokens verified with `old` may no longer be trusted.
    pub(crate) fn retains_all_of(&self, old: &KeySet) -> bool {
        let by_kid = old.by_kid.iter().all(|(kid, key)| {
            self.by_kid
                .get(kid)
                .is_some_and(|now| now.fingerprint == key.fingerprint)
        });
        by_kid
            && old.unnamed.iter().all(|key| {
                self.unnamed
                    .iter()
                    .any(|now| now.fingerprint == key.fingerprint)
            })
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
