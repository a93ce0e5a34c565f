//! Test support for lib-auth: throw-away signing keys (checked in under `fixtures/`, see its
//! README), token minting, and a JWKS endpoint served by a real axum server on 127.0.0.1:0.
//!
//! Nothing here is used by the library itself; tests, benchmarks and examples link it.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The issuer every minted token carries unless a test overrides `iss`.
pub const ISSUER: &str = "http://issuer.test";

/// A signing key with its public half.
#[derive(Clone)]
pub struct TestKey {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The one algorithm this key signs with.
    pub alg: Algorithm,
    /// The private key.
    pub encoding: EncodingKey,
    /// The public key as a JWK (with `kid`, `alg` and `use: sig`).
    pub jwk: Jwk,
    /// The public key as PEM (SPKI).
    pub public_pem: &'static [u8],
}

impl TestKey {
    fn load(alg: Algorithm, private_pem: &[u8], public_pem: &'static [u8]) -> TestKey {
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(private_pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(private_pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem),
            other => panic!("no fixture for {other:?}"),
        }
        .expect("fixture key parses");
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("public JWK");
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).expect("thumbprint");
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(match alg {
            Algorithm::RS256 => KeyAlgorithm::RS256,
            Algorithm::ES256 => KeyAlgorithm::ES256,
            _ => KeyAlgorithm::EdDSA,
        });
        TestKey {
            kid,
            alg,
            encoding,
            jwk,
            public_pem,
        }
    }

    /// RSA 2048, RS256 (the server's default).
    pub fn rsa_a() -> TestKey {
        Self::load(
            Algorithm::RS256,
            include_bytes!("../fixtures/rsa-a.key.pem"),
            include_bytes!("../fixtures/rsa-a.pub.pem"),
        )
    }

    /// A second RSA key, for rotation tests.
    pub fn rsa_b() -> TestKey {
        Self::load(
            Algorithm::RS256,
            include_bytes!("../fixtures/rsa-b.key.pem"),
            include_bytes!("../fixtures/rsa-b.pub.pem"),
        )
    }

    /// P-256, ES256.
    pub fn ec() -> TestKey {
        Self::load(
            Algorithm::ES256,
            include_bytes!("../fixtures/ec.key.pem"),
            include_bytes!("../fixtures/ec.pub.pem"),
        )
    }

    /// Ed25519, EdDSA.
    pub fn ed() -> TestKey {
        Self::load(
            Algorithm::EdDSA,
            include_bytes!("../fixtures/ed.key.pem"),
            include_bytes!("../fixtures/ed.pub.pem"),
        )
    }

    /// The header of an access token: `typ: at+jwt`, this key's `alg` and `kid`.
    pub fn header(&self) -> Header {
        let mut header = Header::new(self.alg);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(self.kid.clone());
        header
    }

    /// Signs `claims` as an access token.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(&self.header(), claims)
    }

    /// Signs `claims` with a header of the caller's making.
    pub fn sign_with(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).expect("signing works")
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The claims of a user access token of our server: valid for an hour, issued by [`ISSUER`].
pub fn user_claims(sub: &str, roles: &[&str]) -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "sub": sub,
        "aud": "midaz",
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "jti": format!("jti-{sub}-{now}"),
        "sid": format!("sid-{sub}"),
        "client_id": "midaz-console",
        "scope": "openid profile",
        "owner": "lerian",
        "type": "normal-user",
        "name": sub,
        "roles": roles,
    })
}

/// The claims of an application access token (`client_credentials`): `sub` = client id.
pub fn app_claims(client_id: &str, roles: &[&str]) -> Value {
    let mut claims = user_claims(client_id, roles);
    claims["type"] = json!("application");
    claims["client_id"] = json!(client_id);
    if let Some(map) = claims.as_object_mut() {
        map.remove("sid");
    }
    claims
}

#[derive(Default)]
struct JwksState {
    keys: RwLock<Vec<Jwk>>,
    hits: AtomicUsize,
    failing: AtomicBool,
}

/// A JWKS endpoint on 127.0.0.1:0 whose keys a test can change, count fetches of, and break.
#[derive(Clone)]
pub struct JwksServer {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub base_url: String,
    /// The JWKS URL (`{base_url}/.well-known/jwks.json`).
    pub jwks_url: String,
    state: Arc<JwksState>,
}

async fn serve_jwks(State(state): State<Arc<JwksState>>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if state.failing.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    let keys = state.keys.read().map(|k| k.clone()).unwrap_or_default();
    axum::Json(JwkSet { keys }).into_response()
}

impl JwksServer {
    /// Starts serving the public halves of `keys`.
    pub async fn start(keys: &[&TestKey]) -> JwksServer {
        let state = Arc::new(JwksState::default());
        let server = JwksServer {
            base_url: String::new(),
            jwks_url: String::new(),
            state,
        };
        server.set_keys(keys);
        let app = Router::new()
            .route("/.well-known/jwks.json", get(serve_jwks))
            .with_state(server.state.clone());
        let addr = serve(app).await;
        JwksServer {
            base_url: format!("http://{addr}"),
            jwks_url: format!("http://{addr}/.well-known/jwks.json"),
            ..server
        }
    }

    /// Replaces the served keys.
    pub fn set_keys(&self, keys: &[&TestKey]) {
        if let Ok(mut k) = self.state.keys.write() {
            *k = keys.iter().map(|k| k.jwk.clone()).collect();
        }
    }

    /// Makes the endpoint answer 500 (or work again).
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// How many times the JWKS was fetched.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

/// Serves `app` on 127.0.0.1:0 in the background and returns its address.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// What `tracing` wrote while a [`capture_logs`] guard was alive.
#[derive(Clone, Default)]
pub struct CapturedLogs {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl CapturedLogs {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        self.buffer
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.buffer.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures the log lines that pass `filter` (an `EnvFilter` directive such as `trace` or
/// `lib_auth=trace`), without colours, from this thread until the guard is dropped.
pub fn capture_logs(filter: &str) -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
    let logs = CapturedLogs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // A callsite first reached on another test's thread while this subscriber was being set
    // can keep the interest it had before (none): recompute them all with it in place.
    tracing::callsite::rebuild_interest_cache();
    (logs, guard)
}
