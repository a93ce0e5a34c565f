//! Signing keys: generation (RS256, ES256, EdDSA), RFC 7638 thumbprints as `kid`, JWS signing,
//! public JWKs, and the encryption of private keys at rest.
//!
//! A private key is kept in the database only encrypted (AES-256-GCM) under a key-encryption
//! key (KEK) that never enters the database: `AUTH_KEY_ENCRYPTION_KEY` (32 bytes, base64) or,
//! without it, a random key in a file next to the database (mode 0600). A stolen database file
//! alone yields no signing key.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A key could not be made, read, decrypted or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The cryptographic library refused an operation.
    #[error("{operation} failed")]
    Crypto {
        /// What was attempted.
        operation: &'static str,
    },
    /// The key-encryption key is unusable.
    #[error("key-encryption key {source_name}: {reason}")]
    Kek {
        /// `AUTH_KEY_ENCRYPTION_KEY` or the file's path.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A stored key names an algorithm this server does not know.
    #[error("stored key {kid} has unknown algorithm {alg}")]
    UnknownAlgorithm {
        /// The key.
        kid: String,
        /// Its algorithm.
        alg: String,
    },
}

fn crypto(operation: &'static str) -> impl Fn(aws_lc_rs::error::Unspecified) -> KeyError {
    move |_| KeyError::Crypto { operation }
}

/// Algorithm of the keys this server generates (`AUTH_SIGNING_ALG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys (the default: every verifier knows it).
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl SigningAlgorithm {
    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::EdDsa => "EdDSA",
        }
    }
}

impl FromStr for SigningAlgorithm {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "RS256" => Ok(SigningAlgorithm::Rs256),
            "ES256" => Ok(SigningAlgorithm::Es256),
            "EdDSA" => Ok(SigningAlgorithm::EdDsa),
            _ => Err(()),
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key with its `kid` (RFC 7638 thumbprint) and public JWK.
pub struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    pair: Pair,
    public_jwk: Value,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate(algorithm: SigningAlgorithm) -> Result<SigningKey, KeyError> {
        let pair = match algorithm {
            SigningAlgorithm::Rs256 => Pair::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).map_err(crypto("RSA key generation"))?,
            ),
            SigningAlgorithm::Es256 => Pair::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(crypto("EC key generation"))?,
            ),
            SigningAlgorithm::EdDsa => {
                Pair::Ed(Ed25519KeyPair::generate().map_err(crypto("Ed25519 key generation"))?)
            }
        };
        Ok(SigningKey::from_pair(algorithm, pair))
    }

    /// The key of a PKCS#8 document.
    pub fn from_pkcs8(algorithm: SigningAlgorithm, der: &[u8]) -> Result<SigningKey, KeyError> {
        let rejected = |_| KeyError::Crypto {
            operation: "parsing a stored private key",
        };
        let pair = match algorithm {
            SigningAlgorithm::Rs256 => Pair::Rsa(RsaKeyPair::from_pkcs8(der).map_err(rejected)?),
            SigningAlgorithm::Es256 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(rejected)?,
            ),
            SigningAlgorithm::EdDsa => Pair::Ed(Ed25519KeyPair::from_pkcs8(der).map_err(rejected)?),
        };
        Ok(SigningKey::from_pair(algorithm, pair))
    }

    fn from_pair(algorithm: SigningAlgorithm, pair: Pair) -> SigningKey {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        // The members of RFC 7638 §3.2, in lexicographic order, no whitespace.
        let required = match &pair {
            Pair::Rsa(key) => {
                let public = key.public_key();
                let e = b64(public.exponent().big_endian_without_leading_zero());
                let n = b64(public.modulus().big_endian_without_leading_zero());
                json!({"e": e, "kty": "RSA", "n": n})
            }
            Pair::Ec(key) => {
                // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = key.public_key().as_ref();
                let x = point.get(1..33).unwrap_or_default();
                let y = point.get(33..65).unwrap_or_default();
                json!({"crv": "P-256", "kty": "EC", "x": b64(x), "y": b64(y)})
            }
            Pair::Ed(key) => {
                json!({"crv": "Ed25519", "kty": "OKP", "x": b64(key.public_key().as_ref())})
            }
        };
        // serde_json's map is ordered by key, which is the order RFC 7638 asks for.
        let kid = b64(&Sha256::digest(required.to_string().as_bytes()));
        let mut public_jwk = required;
        if let Some(jwk) = public_jwk.as_object_mut() {
            jwk.insert("kid".into(), Value::String(kid.clone()));
            jwk.insert("alg".into(), Value::String(algorithm.name().into()));
            jwk.insert("use".into(), Value::String("sig".into()));
        }
        SigningKey {
            kid,
            algorithm,
            pair,
            public_jwk,
        }
    }

    /// The key's id: its RFC 7638 SHA-256 thumbprint, base64url.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The public key as a JWK with `kid`, `alg` and `use: sig`.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// The private key as PKCS#8 DER (to be encrypted before it is stored).
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, KeyError> {
        let der = match &self.pair {
            Pair::Rsa(key) => key
                .as_der()
                .map(|d| d.as_ref().to_vec())
                .map_err(crypto("RSA key export"))?,
            Pair::Ec(key) => key
                .to_pkcs8v1()
                .map(|d| d.as_ref().to_vec())
                .map_err(crypto("EC key export"))?,
            Pair::Ed(key) => key
                .to_pkcs8v1()
                .map(|d| d.as_ref().to_vec())
                .map_err(crypto("Ed25519 key export"))?,
        };
        Ok(der)
    }

    /// A compact JWS of `claims` with header `{alg, typ, kid}`.
    pub fn sign(&self, typ: &str, claims: &Value) -> Result<String, KeyError> {
        let header = json!({"alg": self.algorithm.name(), "typ": typ, "kid": self.kid});
        let mut token = String::with_capacity(1024);
        URL_SAFE_NO_PAD.encode_string(header.to_string().as_bytes(), &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string().as_bytes(), &mut token);
        let signature = self.sign_bytes(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }

    fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(crypto("RSA signing"))?;
                Ok(signature)
            }
            Pair::Ec(key) => key
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(crypto("ECDSA signing")),
            Pair::Ed(key) => Ok(key.sign(message).as_ref().to_vec()),
        }
    }
}

/// Encrypts and decrypts private keys at rest (AES-256-GCM, random nonce, `kid` as associated
/// data so a blob cannot be moved to another key's row).
pub struct KeyEncryptionKey {
    key: LessSafeKey,
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey(..)")
    }
}

impl KeyEncryptionKey {
    /// From 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<KeyEncryptionKey, KeyError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| KeyError::Kek {
            source_name: "key-encryption key".into(),
            reason: "must be exactly 32 bytes".into(),
        })?;
        Ok(KeyEncryptionKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// `AUTH_KEY_ENCRYPTION_KEY` (base64 of 32 bytes) when set, else the key in `file`, created
    /// with 32 random bytes (mode 0600) when absent.
    pub fn load(env_value: Option<&str>, file: &Path) -> Result<KeyEncryptionKey, KeyError> {
        if let Some(value) = env_value {
            let bytes = STANDARD.decode(value.trim()).map_err(|_| KeyError::Kek {
                source_name: "AUTH_KEY_ENCRYPTION_KEY".into(),
                reason: "is not base64".into(),
            })?;
            return KeyEncryptionKey::from_bytes(&bytes).map_err(|_| KeyError::Kek {
                source_name: "AUTH_KEY_ENCRYPTION_KEY".into(),
                reason: "must decode to exactly 32 bytes".into(),
            });
        }
        let file_error = |reason: String| KeyError::Kek {
            source_name: file.display().to_string(),
            reason,
        };
        match std::fs::read(file) {
            Ok(text) => {
                let bytes = STANDARD
                    .decode(String::from_utf8_lossy(&text).trim())
                    .map_err(|_| file_error("is not base64".into()))?;
                KeyEncryptionKey::from_bytes(&bytes)
                    .map_err(|_| file_error("must decode to exactly 32 bytes".into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut bytes)
                    .map_err(crypto("random key-encryption key"))?;
                write_private_file(file, STANDARD.encode(bytes).as_bytes())
                    .map_err(|e| file_error(e.to_string()))?;
                KeyEncryptionKey::from_bytes(&bytes)
            }
            Err(e) => Err(file_error(e.to_string())),
        }
    }

    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(crypto("random nonce"))?;
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut sealed,
            )
            .map_err(crypto("key encryption"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plaintext of [`seal`](Self::seal)'s output; fails with a wrong KEK or a tampered blob.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = KeyError::Kek {
            source_name: "key-encryption key".into(),
            reason: format!(
                "cannot decrypt signing key {kid}: wrong key-encryption key or corrupted row"
            ),
        };
        if sealed.len() < NONCE_LEN {
            return Err(failed);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Crypto {
            operation: "reading a nonce",
        })?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buffer)
            .map_err(|_| failed)?;
        Ok(plaintext.to_vec())
    }
}

/// Writes `contents` to a new file readable by its owner only.
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verifies our JWS with lib-auth's verification path, independent of our signer.
    fn verify_with_jwk(token: &str, jwk: &Value) -> bool {
        let jwks = json!({ "keys": [jwk] });
        let Ok(set) = lib_auth::KeySet::from_jwks_json(jwks.to_string().as_bytes()) else {
            return false;
        };
        let config = lib_auth::AuthConfig::default()
            .enabled(true)
            .issuer("http://issuer.test")
            .jwks_url("http://127.0.0.1:9/unused");
        let Ok(verifier) = lib_auth::TokenVerifier::new(&config, reqwest::Client::new()) else {
            return false;
        };
        verifier.verify_with(token, &set).is_ok()
    }

    #[test]
    fn every_algorithm_signs_tokens_lib_auth_verifies() {
        for algorithm in [
            SigningAlgorithm::Rs256,
            SigningAlgorithm::Es256,
            SigningAlgorithm::EdDsa,
        ] {
            let key = SigningKey::generate(algorithm).expect("generate");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let claims = json!({"iss": "http://issuer.test", "sub": "s", "iat": now, "nbf": now, "exp": now + 60});
            let token = key.sign("at+jwt", &claims).expect("sign");
            assert!(verify_with_jwk(&token, key.public_jwk()), "{algorithm}");
            // Round trip through PKCS#8 keeps the kid.
            let again = SigningKey::from_pkcs8(algorithm, &key.to_pkcs8().expect("export"))
                .expect("import");
            assert_eq!(again.kid(), key.kid());
        }
    }

    #[test]
    fn thumbprint_follows_rfc_7638() {
        // RFC 7638 §3.1's example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let canonical = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#);
        let expected = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        let value: Value = serde_json::from_str(&canonical).expect("json");
        let ours = URL_SAFE_NO_PAD.encode(Sha256::digest(
            serde_json::to_string(&value).expect("json").as_bytes(),
        ));
        assert_eq!(ours, expected);
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_kek_and_kid() {
        let kek = KeyEncryptionKey::from_bytes(&[7; 32]).expect("kek");
        let sealed = kek.seal("kid-1", b"private").expect("seal");
        assert_eq!(kek.open("kid-1", &sealed).expect("open"), b"private");
        assert!(kek.open("kid-2", &sealed).is_err());
        let other = KeyEncryptionKey::from_bytes(&[8; 32]).expect("kek");
        assert!(other.open("kid-1", &sealed).is_err());
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(kek.open("kid-1", &tampered).is_err());
        assert!(kek.open("kid-1", &[1, 2]).is_err());
    }

    #[test]
    fn a_kek_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        let first = KeyEncryptionKey::load(None, &path).expect("create");
        let sealed = first.seal("k", b"x").expect("seal");
        let second = KeyEncryptionKey::load(None, &path).expect("reuse");
        assert_eq!(second.open("k", &sealed).expect("open"), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(KeyEncryptionKey::load(Some("not base64!"), &path).is_err());
        assert!(KeyEncryptionKey::load(Some("AAAA"), &path).is_err());
    }
}
