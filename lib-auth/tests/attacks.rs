//! Attacks on lib-auth that the other suites do not cover: hostile or broken key sources and
//! Auth services (huge, slow, endless, redirected, ill-typed answers), weak keys in a JWKS,
//! keys pulled or changed between fetches, odd token and header shapes, hostile policies, odd
//! configuration, concurrency, and leaks into error bodies and logs.
//!
//! Every server is real HTTP on 127.0.0.1:0 and every test is bounded in time, so that a hang
//! fails instead of blocking CI. A test is either a regression guard (the attack is refused
//! today and must stay refused) or was written first, failing, for a hole since fixed; those
//! say "Was:" in their comment.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lib_auth::{
    Action, Auth, AuthConfig, CompiledPolicy, InvalidTokenReason, Mode, Policy, Principal,
};
use lib_auth_testkit::{
    ISSUER, JwksServer, TestKey, app_claims, capture_logs, now, serve, user_claims,
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const LEDGERS: &str = "/v1/organizations/o1/ledgers";
const ME: &str = "/v1/me";
const AUDIENCE: &str = "midaz";

/// Fails the test instead of hanging it.
async fn bounded<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs} s (hang)"))
}

// ---------------------------------------------------------------------------------------------
// The guarded service.

async fn whoami(axum::Extension(p): axum::Extension<Principal>) -> String {
    p.subject().to_owned()
}

struct App {
    base: String,
    addr: std::net::SocketAddr,
    client: reqwest::Client,
}

/// `LEDGERS` requires midaz/ledgers by method; `ME` only authenticates.
async fn start_app(config: AuthConfig) -> Arc<App> {
    let auth = Auth::new(config).expect("config is valid");
    let app = Router::new()
        .route(LEDGERS, get(whoami).post(whoami).delete(whoami))
        .route_layer(auth.require_method("midaz", "ledgers"))
        .route(ME, get(whoami).route_layer(auth.authenticate()));
    let addr = serve(app).await;
    Arc::new(App {
        base: format!("http://{addr}"),
        addr,
        client: reqwest::Client::new(),
    })
}

/// What the guarded service answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn message(&self) -> String {
        serde_json::from_str::<Value>(&self.text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn code(&self) -> String {
        serde_json::from_str::<Value>(&self.text)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

impl App {
    async fn send(&self, method: reqwest::Method, path: &str, token: &str) -> Answer {
        let r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .expect("the guarded service answers");
        Answer {
            status: r.status().as_u16(),
            text: r.text().await.expect("a body"),
        }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(reqwest::Method::GET, path, token).await
    }

    /// `GET LEDGERS` written byte for byte, so that the server sees exactly `authorization`.
    async fn get_raw(&self, authorization: &[u8]) -> Answer {
        let mut request = format!(
            "GET {LEDGERS} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization:",
            self.addr
        )
        .into_bytes();
        request.extend_from_slice(authorization);
        request.extend_from_slice(b"\r\n\r\n");
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        stream.write_all(&request).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {text}"));
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        Answer {
            status,
            text: body.to_owned(),
        }
    }
}

fn local(jwks_url: &str) -> AuthConfig {
    AuthConfig::default()
        .enabled(true)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .jwks_url(jwks_url)
        .http_timeout(Duration::from_millis(700))
}

fn remote(host: &str) -> AuthConfig {
    AuthConfig::default()
        .enabled(true)
        .mode(Mode::Remote)
        .host(host)
        .http_timeout(Duration::from_millis(700))
}

fn editor(sub: &str) -> Value {
    user_claims(sub, &["midaz-editor-role"])
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token whose header and claims are exactly the given JSON texts, signed by `key`.
fn sign_text(key: &TestKey, header: &str, claims: &str) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding, key.alg).expect("signs");
    format!("{message}.{signature}")
}

fn header_text(key: &TestKey) -> String {
    json!({"alg": format!("{:?}", key.alg), "typ": "at+jwt", "kid": key.kid}).to_string()
}

fn jwk_value(key: &TestKey) -> Value {
    serde_json::to_value(&key.jwk).expect("a JWK serializes")
}

fn jwks_text(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

// ---------------------------------------------------------------------------------------------
// Scriptable servers.

/// An HTTP server answering every path with a status and body the test sets, after a delay.
#[derive(Clone)]
struct Doc {
    base: String,
    state: Arc<DocState>,
}

struct DocState {
    status: Mutex<u16>,
    body: Mutex<String>,
    delay: Mutex<Duration>,
    hits: AtomicUsize,
}

async fn serve_doc(State(s): State<Arc<DocState>>) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let delay = *s.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = StatusCode::from_u16(*s.status.lock().unwrap()).unwrap();
    let body = s.body.lock().unwrap().clone();
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

impl Doc {
    async fn start(status: u16, body: impl Into<String>) -> Doc {
        let state = Arc::new(DocState {
            status: Mutex::new(status),
            body: Mutex::new(body.into()),
            delay: Mutex::new(Duration::ZERO),
            hits: AtomicUsize::new(0),
        });
        let addr = serve(Router::new().fallback(serve_doc).with_state(state.clone())).await;
        Doc {
            base: format!("http://{addr}"),
            state,
        }
    }

    fn url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.base)
    }

    fn set(&self, status: u16, body: impl Into<String>) {
        *self.state.status.lock().unwrap() = status;
        *self.state.body.lock().unwrap() = body.into();
    }

    fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

/// A TCP server on 127.0.0.1:0 whose every connection is handled by `handle`; its base URL.
async fn raw_server<F, Fut>(handle: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = Arc::new(handle);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handle = handle.clone();
            tokio::spawn(async move { handle(stream).await });
        }
    });
    format!("http://{addr}")
}

/// Reads a request's head (the body, if any, is left unread).
async fn read_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
}

/// Answers 200 with a chunked body: `prefix`, then one byte every 50 ms, forever.
async fn trickle(mut stream: TcpStream, prefix: &'static str) {
    read_head(&mut stream).await;
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let first = format!("{:x}\r\n{prefix}\r\n", prefix.len());
    if stream.write_all(first.as_bytes()).await.is_err() {
        return;
    }
    loop {
        if stream.write_all(b"1\r\n \r\n").await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Accepts the request and never answers.
async fn silent(mut stream: TcpStream) {
    read_head(&mut stream).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// Answers 200 with `body`, with a `Content-Length` or chunked.
async fn big_answer(mut stream: TcpStream, body: Arc<Vec<u8>>, chunked: bool) {
    read_head(&mut stream).await;
    let head = if chunked {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_owned()
    } else {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
    };
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    if chunked {
        for chunk in body.chunks(64 * 1024) {
            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(chunk);
            framed.extend_from_slice(b"\r\n");
            if stream.write_all(&framed).await.is_err() {
                return;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
    } else {
        let _ = stream.write_all(&body).await;
    }
    let _ = stream.flush().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
}

/// `{"keys":[key],"pad":"aaa…"}` (or `{"authorized":true,"pad":…}`): valid JSON of `size` bytes.
fn padded(start: &str, size: usize) -> Arc<Vec<u8>> {
    let mut body = format!("{start},\"pad\":\"").into_bytes();
    body.resize(size - 2, b'a');
    body.extend_from_slice(b"\"}");
    Arc::new(body)
}

// ---------------------------------------------------------------------------------------------
// Hostile key sources.

#[tokio::test]
async fn a_jwks_over_one_mib_is_refused_with_or_without_content_length() {
    let a = TestKey::rsa_a();
    let token = a.sign(&editor("u"));
    let keys = jwks_text(&[jwk_value(&a)]);
    let body = padded(&keys[..keys.len() - 1], 4 * 1024 * 1024);
    assert!(serde_json::from_slice::<Value>(&body).is_ok());
    for chunked in [false, true] {
        let body = body.clone();
        let url = raw_server(move |s| big_answer(s, body.clone(), chunked)).await;
        let app = start_app(local(&format!("{url}/jwks"))).await;
        let r = bounded(5, "huge JWKS", app.get(LEDGERS, &token)).await;
        assert_eq!(r.status, 503, "chunked={chunked}: {r:?}");
        assert_eq!(r.code(), "AUT-0009");
    }
}

#[tokio::test]
async fn a_jwks_that_trickles_or_never_answers_is_503_within_the_timeout() {
    let a = TestKey::rsa_a();
    let token = a.sign(&editor("u"));
    let trickling = raw_server(|s| trickle(s, "{\"keys\":[")).await;
    let mute = raw_server(silent).await;
    for url in [trickling, mute] {
        let app = start_app(local(&format!("{url}/jwks"))).await;
        let started = Instant::now();
        let r = bounded(5, "slow JWKS", app.get(LEDGERS, &token)).await;
        assert_eq!(r.status, 503, "{url}: {r:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{url}");
        // Requests behind the stuck fetch are not stuck forever either.
        let r = bounded(5, "slow JWKS again", app.get(LEDGERS, &token)).await;
        assert_eq!(r.status, 503, "{url}: {r:?}");
    }
}

#[tokio::test]
async fn invalid_or_redirected_jwks_is_503_and_known_keys_survive_it() {
    let a = TestKey::rsa_a();
    let token = a.sign(&editor("u"));
    let doc = Doc::start(200, "{\"keys\":[{").await;
    let app = start_app(local(&doc.url()).jwks_min_refresh_interval(Duration::ZERO)).await;
    for garbage in ["{\"keys\":[{", "null", "[]", "<html>", "{\"keys\":{}}", ""] {
        doc.set(200, garbage);
        let r = bounded(5, "garbage JWKS", app.get(LEDGERS, &token)).await;
        assert_eq!(r.status, 503, "{garbage:?}: {r:?}");
    }
    // A redirect to a key source of the attacker's is not followed.
    let attacker = Doc::start(200, jwks_text(&[jwk_value(&a)])).await;
    let redirecting = raw_server({
        let target = attacker.url();
        move |mut s| {
            let target = target.clone();
            async move {
                read_head(&mut s).await;
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n"
                );
                let _ = s.write_all(answer.as_bytes()).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    })
    .await;
    let app2 = start_app(local(&format!("{redirecting}/jwks"))).await;
    let r = bounded(5, "redirected JWKS", app2.get(LEDGERS, &token)).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(attacker.hits(), 0, "the redirect was followed");

    // Keys fetched once survive a key source that turns to garbage.
    doc.set(200, jwks_text(&[jwk_value(&a)]));
    let fresh = a.sign(&editor("v"));
    assert_eq!(app.get(LEDGERS, &fresh).await.status, 200);
    doc.set(200, "{not json");
    let mut header = a.header();
    header.kid = Some("rotated-in?".to_owned());
    let r = app.get(LEDGERS, &a.sign_with(&header, &editor("w"))).await;
    assert_eq!(r.status, 401, "{r:?}");
    let other = a.sign(&editor("w"));
    let r = bounded(5, "garbage after keys", app.get(LEDGERS, &other)).await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// Was: one key entry the `jsonwebtoken` JWK type cannot read (not an object, a numeric `kid`,
/// an `x5c` or `key_ops` of the wrong type) made the whole JWKS unreadable,
/// so one odd entry of a third-party issuer's JWKS locked every caller out (503).
#[tokio::test]
async fn a_jwks_with_keys_of_unknown_types_still_serves_the_usable_ones() {
    let a = TestKey::rsa_a();
    let token = a.sign(&editor("u"));
    let odd = [
        json!({"kty": "AKP", "alg": "ML-DSA-44", "kid": "pq", "pub": "AAAA"}),
        json!({"kty": "EC", "crv": "secp256k1", "kid": "k1", "alg": "ES256K",
               "x": "AAAA", "y": "AAAA"}),
        json!({"kty": "RSA", "kid": "weird-alg", "alg": "RS1", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "no-n"}),
        json!("not even an object"),
        json!({"kty": "RSA", "kid": 7, "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "x5c", "x5c": "MIIB…", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "ops", "key_ops": "verify", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "OKP", "crv": "X448", "kid": "x448", "x": "AAAA"}),
    ];
    for bad in odd {
        let doc = Doc::start(200, jwks_text(&[bad.clone(), jwk_value(&a)])).await;
        let app = start_app(local(&doc.url())).await;
        let r = bounded(5, "odd key", app.get(LEDGERS, &token)).await;
        assert_eq!(r.status, 200, "{bad}: {r:?}");
    }
}

#[tokio::test]
async fn duplicate_kids_never_let_an_unpublished_key_in() {
    let a = TestKey::rsa_a();
    let b = TestKey::rsa_b();
    let ec = TestKey::ec();
    // Two different keys published under the same kid, one of another type.
    let mut ec_as_a = jwk_value(&ec);
    ec_as_a["kid"] = json!(a.kid);
    let mut b_as_a = jwk_value(&b);
    b_as_a["kid"] = json!(a.kid);
    let doc = Doc::start(200, jwks_text(&[jwk_value(&a), ec_as_a, b_as_a])).await;
    let app = start_app(local(&doc.url())).await;
    let outsider = TestKey::ed();
    let mut header = outsider.header();
    header.kid = Some(a.kid.clone());
    let forged = outsider.sign_with(&header, &editor("mallory"));
    let r = bounded(5, "duplicate kid", app.get(LEDGERS, &forged)).await;
    assert_eq!(r.status, 401, "{r:?}");
    // And whatever the publisher meant, nothing panics or answers 5xx.
    for key in [&a, &b] {
        let mut header = key.header();
        header.kid = Some(a.kid.clone());
        let r = app
            .get(LEDGERS, &key.sign_with(&header, &editor("u")))
            .await;
        assert!(matches!(r.status, 200 | 401), "{r:?}");
    }
}

/// Weak RSA keys in a JWKS: fewer than 2048 bits, more than 8192 bits, or `e = 1` (with which
/// the "signature" is the padded digest itself: anyone can forge).
#[tokio::test]
async fn weak_or_absurd_rsa_keys_in_the_jwks_verify_nothing() {
    // Tokens really signed by a 512- and a 1024-bit key (made with openssl, see below).
    const WEAK: [(&str, &str, &str); 2] = [
        (
            "weak-k512",
            "ucLiytXYD_2j0iKK_mXZjKoW0uI0c-FkezgfAdBJpyZTZ7K9z3DgifZRBZNo2UR_8gSujUhV-yE-wCas5uKLgw",
            "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6IndlYWstazUxMiJ9.eyJpc3MiOiJodHRwOi8vaXNzdWVyLnRlc3QiLCJzdWIiOiJ3ZWFrLWtleS11c2VyIiwiYXVkIjoibWlkYXoiLCJleHAiOjQxMDI0NDQ4MDAsInJvbGVzIjpbIm1pZGF6LWVkaXRvci1yb2xlIl0sInR5cGUiOiJub3JtYWwtdXNlciJ9.D7bTHg-Ph4dl1eZRJiE7x2P2xgjzS1hJ0NqNgjUTtgptFmI_v502w3Rkj-tO40i_-jJ6GZQR5aScIUociO1gGg",
        ),
        (
            "weak-k1024",
            "2yPVTeAmfCoTsrglSHgvCDIGvGrNry-Ee6K38EwS9SbJozDsc_kK1EBudAGEVtzrxTPRwAAvqq56Vo7WZee0U7rpIcesqopykEDtBknEzwYpKvQzGZiR3bZYU93shC9eAGnt3ByA7-39HKr6R8IFE_c_g5kDQOBXRNZ9zK-QJ2c",
            "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6IndlYWstazEwMjQifQ.eyJpc3MiOiJodHRwOi8vaXNzdWVyLnRlc3QiLCJzdWIiOiJ3ZWFrLWtleS11c2VyIiwiYXVkIjoibWlkYXoiLCJleHAiOjQxMDI0NDQ4MDAsInJvbGVzIjpbIm1pZGF6LWVkaXRvci1yb2xlIl0sInR5cGUiOiJub3JtYWwtdXNlciJ9.N_0GSYUqkcEgp53dS6VY8A_8sciQMMqoVq1EVUuGO8CleqeM2LTOdidqEjauiUeoCe8isp4qSfw_fcQlcjhiCRzgUWxs1w2NwjcgPqaFkPqBs3qgWeRJmhtxy6FP1TfnEqZhgrrTfMnkd69WRZ0GPXn05Ioo8UeWomV7WrTXK8Q",
        ),
    ];
    let a = TestKey::rsa_a();
    let mut keys: Vec<Value> = WEAK
        .iter()
        .map(|(kid, n, _)| json!({"kty": "RSA", "kid": kid, "alg": "RS256", "n": n, "e": "AQAB"}))
        .collect();

    // e = 1 with a real 2048-bit modulus: the forged signature is EMSA-PKCS1-v1_5(digest).
    let n_a = jwk_value(&a)["n"].as_str().unwrap().to_owned();
    keys.push(json!({"kty": "RSA", "kid": "e-one", "alg": "RS256", "n": n_a, "e": "AQ"}));
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "e-one"}).to_string();
    let message = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(editor("forger").to_string().as_bytes())
    );
    let digest_info: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    let k = URL_SAFE_NO_PAD.decode(&n_a).unwrap().len();
    let mut em = vec![0x00, 0x01];
    em.resize(k - digest_info.len() - 32 - 1, 0xff);
    em.push(0x00);
    em.extend_from_slice(&digest_info);
    em.extend_from_slice(&Sha256::digest(message.as_bytes()));
    let e_one = format!("{message}.{}", b64(&em));

    // A 16384-bit modulus (refused by the crypto library, so no slow big-number work).
    let mut n_huge = Vec::with_capacity(2048);
    let mut block = Sha256::digest(b"seed").to_vec();
    while n_huge.len() < 2048 {
        n_huge.extend_from_slice(&block);
        block = Sha256::digest(&block).to_vec();
    }
    n_huge[0] |= 0x80;
    n_huge[2047] |= 1;
    keys.push(json!({"kty": "RSA", "kid": "huge", "alg": "RS256", "n": b64(&n_huge), "e": "AQAB"}));
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "huge"}).to_string();
    let mut sig = n_huge.clone();
    sig[0] = 0x01;
    let huge = format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(editor("forger").to_string().as_bytes()),
        b64(&sig)
    );

    keys.push(jwk_value(&a));
    let doc = Doc::start(200, jwks_text(&keys)).await;
    let app = start_app(local(&doc.url())).await;
    assert_eq!(app.get(LEDGERS, &a.sign(&editor("u"))).await.status, 200);
    let started = Instant::now();
    for (name, token) in [
        ("512-bit", WEAK[0].2.to_owned()),
        ("1024-bit", WEAK[1].2.to_owned()),
        ("e = 1", e_one),
        ("16384-bit", huge),
    ] {
        for _ in 0..20 {
            let r = bounded(5, name, app.get(LEDGERS, &token)).await;
            assert_eq!(r.status, 401, "{name}: {r:?}");
        }
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// An Ed25519 "key" that is the identity point (a small-order point) verifies the all-zero
/// signature `R = identity, S = 0` for every message under a cofactorless check.
#[tokio::test]
async fn a_small_order_ed25519_key_in_the_jwks_verifies_nothing() {
    let a = TestKey::rsa_a();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = json!({"kty": "OKP", "crv": "Ed25519", "kid": "weak-ed", "alg": "EdDSA",
                      "x": b64(&identity)});
    let doc = Doc::start(200, jwks_text(&[weak, jwk_value(&a)])).await;
    let app = start_app(local(&doc.url())).await;
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "weak-ed"}).to_string();
    let mut sig = [0u8; 64];
    sig[0] = 1;
    let forged = format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(editor("forger").to_string().as_bytes()),
        b64(&sig)
    );
    let r = bounded(5, "small-order Ed25519", app.get(LEDGERS, &forged)).await;
    assert_eq!(r.status, 401, "{r:?}");

    // Nor is such a key accepted as a PEM key given in code (whatever its sign bit).
    for last in [0x00, 0x80] {
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&identity[..31]);
        der.push(last);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        let key = lib_auth::VerificationKey::from_pem(
            Some("weak"),
            lib_auth::Algorithm::EdDSA,
            pem.as_bytes(),
        );
        let err = key.expect_err("a small-order PEM key was accepted");
        assert!(err.to_string().contains("small order"), "{err}");
    }
    // A real Ed25519 PEM key still is.
    let ed = TestKey::ed();
    assert!(
        lib_auth::VerificationKey::from_pem(Some("ok"), lib_auth::Algorithm::EdDSA, ed.public_pem)
            .is_ok()
    );
}

/// Was: a token verified once was served from the cache of verified tokens for up to an hour,
/// even after the issuer pulled its key from the JWKS (a compromised key, say) and the library
/// had fetched the new key set.
#[tokio::test]
async fn tokens_of_a_key_pulled_from_the_jwks_stop_working_once_the_keys_are_refetched() {
    let a = TestKey::rsa_a();
    let b = TestKey::rsa_b();
    let jwks = JwksServer::start(&[&a, &b]).await;
    let app =
        start_app(local(&jwks.jwks_url).jwks_min_refresh_interval(Duration::from_millis(50))).await;
    let of_a = a.sign(&editor("signed-by-a"));
    assert_eq!(app.get(LEDGERS, &of_a).await.status, 200);
    assert_eq!(app.get(LEDGERS, &of_a).await.status, 200);

    // The issuer pulls key A; a token of a new key makes the library refetch.
    let c = TestKey::ec();
    jwks.set_keys(&[&b, &c]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.get(LEDGERS, &c.sign(&editor("c"))).await.status, 200);
    assert_eq!(jwks.hits(), 2);

    let r = app.get(LEDGERS, &of_a).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.message(), InvalidTokenReason::UnknownKey.as_str());
    // Tokens of the keys still published keep working.
    assert_eq!(app.get(LEDGERS, &b.sign(&editor("b"))).await.status, 200);
}

/// Was: as above, when the issuer reuses a kid for a key of another type.
#[tokio::test]
async fn a_kid_whose_key_changes_type_stops_the_tokens_of_the_old_key() {
    let a = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&a]).await;
    let app =
        start_app(local(&jwks.jwks_url).jwks_min_refresh_interval(Duration::from_millis(50))).await;
    let of_a = a.sign(&editor("signed-by-a"));
    assert_eq!(app.get(LEDGERS, &of_a).await.status, 200);

    let mut ec = TestKey::ec();
    ec.kid = a.kid.clone();
    ec.jwk.common.key_id = Some(a.kid.clone());
    let ed = TestKey::ed();
    jwks.set_keys(&[&ec, &ed]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.get(LEDGERS, &ed.sign(&editor("d"))).await.status, 200);

    let r = app.get(LEDGERS, &of_a).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(app.get(LEDGERS, &ec.sign(&editor("e"))).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_distinct_unknown_kids_during_a_slow_fetch_causes_one_fetch() {
    let a = TestKey::rsa_a();
    let doc = Doc::start(200, jwks_text(&[jwk_value(&a)])).await;
    doc.set_delay(Duration::from_millis(300));
    let app = start_app(local(&doc.url()).jwks_min_refresh_interval(Duration::from_secs(5))).await;
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let app = app.clone();
            let mut header = a.header();
            header.kid = Some(format!("unknown-{i}"));
            let token = a.sign_with(&header, &editor("u"));
            tokio::spawn(async move { app.get(LEDGERS, &token).await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(bounded(10, "unknown kid flood", t).await.unwrap(), 401);
    }
    assert_eq!(doc.hits(), 1, "one fetch for the whole flood");
}

/// Was: the least interval between two fetches ran from the *start* of the previous fetch, so
/// a key source slower than the interval (a struggling one, typically) was fetched back to back
/// for as long as unknown kids kept coming.
#[tokio::test]
async fn the_refresh_interval_runs_from_the_end_of_a_slow_fetch() {
    let a = TestKey::rsa_a();
    let doc = Doc::start(200, jwks_text(&[jwk_value(&a)])).await;
    doc.set_delay(Duration::from_millis(600));
    let app = start_app(
        local(&doc.url())
            .jwks_min_refresh_interval(Duration::from_millis(500))
            .http_timeout(Duration::from_secs(3)),
    )
    .await;
    assert_eq!(app.get(LEDGERS, &a.sign(&editor("u"))).await.status, 200);
    assert_eq!(doc.hits(), 1);
    let mut header = a.header();
    header.kid = Some("unknown".to_owned());
    let r = app.get(LEDGERS, &a.sign_with(&header, &editor("u"))).await;
    assert_eq!(r.status, 401);
    assert_eq!(doc.hits(), 1, "fetched again right after a slow fetch");
}

// ---------------------------------------------------------------------------------------------
// Token and header shapes.

#[tokio::test]
async fn odd_token_shapes_are_401_and_the_server_stays_up() {
    let a = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&a]).await;
    let app = start_app(local(&jwks.jwks_url)).await;
    let good = a.sign(&editor("u"));
    let (good_header, _) = good.split_once('.').unwrap();
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let cases: Vec<(&str, String)> = vec![
        ("8 KiB of dots", ".".repeat(8192)),
        ("4096 segments", "a.".repeat(4095) + "a"),
        (
            "deeply nested unknown header field",
            format!(
                "{}.{}.{}",
                b64(format!(
                    r#"{{"alg":"RS256","typ":"at+jwt","kid":"{}","x":{}}}"#,
                    a.kid,
                    nested(2500)
                )
                .as_bytes()),
                b64(b"{}"),
                "c2ln"
            ),
        ),
        (
            "deeply nested crit",
            format!(
                "{}.{}.{}",
                b64(format!(
                    r#"{{"alg":"RS256","typ":"at+jwt","crit":{}}}"#,
                    nested(2500)
                )
                .as_bytes()),
                b64(b"{}"),
                "c2ln"
            ),
        ),
        (
            "duplicate alg in the header",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"RS256","alg":"none","typ":"at+jwt"}"#),
                good.split('.').nth(1).unwrap()
            ),
        ),
        (
            "header is a JSON string",
            format!("{}.e30.c2ln", b64(br#""RS256""#)),
        ),
        (
            "header with a NUL byte",
            format!("{}.e30.c2ln", b64(b"{\"alg\":\"RS256\0\"}")),
        ),
        (
            "a valid header, a 6 KiB signature",
            format!("{good_header}.e30.{}", "A".repeat(6000)),
        ),
    ];
    for (name, token) in &cases {
        assert!(token.len() <= 8192, "{name}: {}", token.len());
        let r = bounded(5, name, app.get(LEDGERS, token)).await;
        assert_eq!(r.status, 401, "{name}: {r:?}");
        assert_eq!(r.code(), "AUT-0007", "{name}");
    }
    assert_eq!(app.get(LEDGERS, &good).await.status, 200);
}

#[tokio::test]
async fn signed_claims_of_odd_shape_are_decided_safely() {
    let a = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&a]).await;
    let app = start_app(local(&jwks.jwks_url)).await;
    let header = header_text(&a);
    let now = now();
    let base = |rest: &str| {
        format!(r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","type":"normal-user",{rest}}}"#)
    };
    let roles = r#""roles":["midaz-editor-role"]"#;
    let later = now + 3600;
    let cases: Vec<(&str, String, u16)> = vec![
        // Duplicate keys: refused, whichever a parser would pick.
        (
            "sub twice",
            base(&format!(
                r#""sub":"victim","exp":{later},{roles},"sub":"mallory""#
            )),
            401,
        ),
        (
            "roles twice",
            base(&format!(r#""sub":"u","exp":{later},"roles":[],{roles}"#)),
            401,
        ),
        (
            "exp twice",
            base(&format!(r#""sub":"u","exp":1,{roles},"exp":{later}"#)),
            401,
        ),
        // NumericDate edge cases.
        (
            "exp fractional",
            base(&format!(r#""sub":"u","exp":{later}.9,{roles}"#)),
            200,
        ),
        (
            "exp 1e300",
            base(&format!(r#""sub":"u","exp":1e300,{roles}"#)),
            200,
        ),
        (
            "exp past u64",
            base(&format!(r#""sub":"u","exp":18446744073709551616,{roles}"#)),
            200,
        ),
        (
            "exp 1e400",
            base(&format!(r#""sub":"u","exp":1e400,{roles}"#)),
            401,
        ),
        (
            "exp -0.0",
            base(&format!(r#""sub":"u","exp":-0.0,{roles}"#)),
            401,
        ),
        (
            "exp null",
            base(&format!(r#""sub":"u","exp":null,{roles}"#)),
            401,
        ),
        (
            "exp true",
            base(&format!(r#""sub":"u","exp":true,{roles}"#)),
            401,
        ),
        (
            "exp object",
            base(&format!(r#""sub":"u","exp":{{"v":{later}}},{roles}"#)),
            401,
        ),
        (
            "nbf -1",
            base(&format!(r#""sub":"u","exp":{later},"nbf":-1,{roles}"#)),
            401,
        ),
        // Roles of the wrong shape grant nothing.
        (
            "roles nested",
            base(&format!(
                r#""sub":"u","exp":{later},"roles":[["midaz-editor-role"]]"#
            )),
            403,
        ),
        (
            "roles object",
            base(&format!(
                r#""sub":"u","exp":{later},"roles":{{"midaz-editor-role":true}}"#
            )),
            403,
        ),
        (
            "roles with NUL",
            base(&format!(
                r#""sub":"u","exp":{later},"roles":["midaz-editor-role\u0000"]"#
            )),
            403,
        ),
        (
            "role case",
            base(&format!(
                r#""sub":"u","exp":{later},"roles":["MIDAZ-EDITOR-ROLE"]"#
            )),
            403,
        ),
        (
            "a deeply nested custom claim",
            base(&format!(
                r#""sub":"u","exp":{later},{roles},"x":{}{}"#,
                "[".repeat(2000),
                "]".repeat(2000)
            )),
            200,
        ),
    ];
    for (name, claims, expected) in cases {
        let token = sign_text(&a, &header, &claims);
        let r = bounded(5, name, app.send(reqwest::Method::DELETE, LEDGERS, &token)).await;
        assert_eq!(r.status, expected, "{name}: {r:?}");
        // Served from the cache the second time: same answer.
        let r = app.send(reqwest::Method::DELETE, LEDGERS, &token).await;
        assert_eq!(r.status, expected, "{name} (again): {r:?}");
    }

    // Six hundred roles in one token, the granting one last: still a few hash lookups.
    let mut many: Vec<String> = (0..600).map(|i| format!("r{i}")).collect();
    many.push("midaz-editor-role".to_owned());
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "many", "exp": later,
                        "roles": many});
    let token = a.sign(&claims);
    assert!(token.len() <= 8192);
    let started = Instant::now();
    for _ in 0..200 {
        assert_eq!(app.get(LEDGERS, &token).await.status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn whitespace_and_obs_text_around_the_token_in_raw_headers() {
    let a = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&a]).await;
    let app = start_app(local(&jwks.jwks_url)).await;
    let good = a.sign(&editor("u"));
    let ok = |v: String| v.into_bytes();
    // Optional whitespace around the field value is not part of it (RFC 9110 §5.5).
    for value in [
        format!("\tBearer {good}\t"),
        format!(" \t Bearer {good} \t "),
        format!("Bearer \t {good}"),
    ] {
        let r = bounded(5, "OWS", app.get_raw(&ok(value.clone()))).await;
        assert_eq!(r.status, 200, "{value:?}: {r:?}");
    }
    let mut obs_end = format!("Bearer {good}").into_bytes();
    obs_end.push(0x80);
    let mut obs_mid = format!("Bearer {}", &good[..20]).into_bytes();
    obs_mid.push(0xff);
    obs_mid.extend_from_slice(&good.as_bytes()[21..]);
    let latin1_nbsp = {
        let mut v = b"Bearer\xa0".to_vec();
        v.extend_from_slice(good.as_bytes());
        v
    };
    for (name, value) in [
        (
            "tab between scheme and token",
            ok(format!("Bearer\t{good}")),
        ),
        ("obs-text after the token", obs_end),
        ("obs-text inside the token", obs_mid),
        ("latin-1 no-break space", latin1_nbsp),
        ("vertical tab", ok(format!("Bearer {good}\x0b"))),
    ] {
        let r = bounded(5, name, app.get_raw(&value)).await;
        // 400 when the HTTP parser refuses the header line itself.
        assert!(matches!(r.status, 400 | 401), "{name}: {r:?}");
        assert!(!r.text.contains(&good[good.len() - 20..]), "{name}: echoed");
    }
    // The good token still works afterwards (no odd variant poisoned the cache).
    assert_eq!(app.get(LEDGERS, &good).await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Hostile or broken Auth services (remote mode).

/// A fake Auth service answering `/v1/authorize` with `authorize` and `/v1/userinfo` with
/// `userinfo` (status, body), counting calls.
struct FakeAuth {
    url: String,
    calls: Arc<AtomicUsize>,
}

async fn fake_auth(authorize: (u16, String), userinfo: (u16, String)) -> FakeAuth {
    let calls = Arc::new(AtomicUsize::new(0));
    let answer = |(status, body): (u16, String), calls: Arc<AtomicUsize>| {
        move || {
            let body = body.clone();
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                (
                    StatusCode::from_u16(status).unwrap(),
                    [(CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response()
            }
        }
    };
    let app = Router::new()
        .route("/v1/authorize", post(answer(authorize, calls.clone())))
        .route("/v1/userinfo", get(answer(userinfo, calls.clone())));
    let addr = serve(app).await;
    FakeAuth {
        url: format!("http://{addr}"),
        calls,
    }
}

/// Was: the answer of `/v1/authorize` was read whole, however large: a 200 of many megabytes
/// was buffered (memory) and, being valid JSON, obeyed.
#[tokio::test]
async fn a_huge_authorize_answer_is_503_not_buffered() {
    let key = TestKey::rsa_a();
    let token = key.sign(&user_claims("u", &[]));
    let body = padded("{\"authorized\":true", 8 * 1024 * 1024);
    assert!(serde_json::from_slice::<Value>(&body).is_ok());
    for chunked in [false, true] {
        let body = body.clone();
        let url = raw_server(move |s| big_answer(s, body.clone(), chunked)).await;
        let app = start_app(remote(&url)).await;
        let r = bounded(5, "huge authorize answer", app.get(LEDGERS, &token)).await;
        assert_eq!(r.status, 503, "chunked={chunked}: {r:?}");
        assert_eq!(r.code(), "AUT-0009");
    }
}

#[tokio::test]
async fn an_auth_service_that_trickles_or_never_answers_is_503_within_the_timeout() {
    let key = TestKey::rsa_a();
    let token = key.sign(&user_claims("u", &[]));
    let trickling = raw_server(|s| trickle(s, "{\"authorized\":true")).await;
    let mute = raw_server(silent).await;
    // (`/v1/userinfo` is judged by its status alone: a trickling 200 there is an answer.)
    for (url, paths) in [(trickling, &[LEDGERS][..]), (mute, &[LEDGERS, ME][..])] {
        let app = start_app(remote(&url)).await;
        for &path in paths {
            let started = Instant::now();
            let r = bounded(5, "slow Auth service", app.get(path, &token)).await;
            assert_eq!(r.status, 503, "{url}{path}: {r:?}");
            assert!(started.elapsed() < Duration::from_secs(3), "{url}{path}");
        }
    }
}

#[tokio::test]
async fn an_auth_service_redirect_is_not_followed() {
    let key = TestKey::rsa_a();
    let token = key.sign(&user_claims("u", &[]));
    let elsewhere = fake_auth(
        (200, r#"{"authorized":true}"#.to_owned()),
        (200, "{}".to_owned()),
    )
    .await;
    let target = elsewhere.url.clone();
    let redirecting = Router::new().fallback(move |uri: axum::http::Uri| {
        let to = format!("{target}{}", uri.path());
        async move { (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, to)]).into_response() }
    });
    let addr = serve(redirecting).await;
    let app = start_app(remote(&format!("http://{addr}"))).await;
    for path in [LEDGERS, ME] {
        let r = bounded(5, "redirect", app.get(path, &token)).await;
        assert_eq!(r.status, 503, "{path}: {r:?}");
    }
    assert_eq!(elsewhere.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn authorize_answers_that_are_not_a_json_boolean_never_allow() {
    let key = TestKey::rsa_a();
    let token = key.sign(&user_claims("u", &[]));
    for body in [
        r#"{"authorized":"true"}"#,
        r#"{"authorized":1}"#,
        r#"{"authorized":null}"#,
        r#"{"authorized":[true]}"#,
        r#"{"authorized":{"value":true}}"#,
        r#"{"Authorized":true}"#,
        r#"{"authorized":false,"authorized":true}"#,
        r#"{"authorized":true,"authorized":true}"#,
        r#"{}"#,
        r#"true"#,
        r#"[{"authorized":true}]"#,
        r#"{"authorized":true"#,
        "",
    ] {
        let fake = fake_auth((200, body.to_owned()), (200, "{}".to_owned())).await;
        let app = start_app(remote(&fake.url)).await;
        let r = bounded(5, body, app.get(LEDGERS, &token)).await;
        assert_eq!(r.status, 503, "{body}: {r:?}");
    }
    // Statuses other than 200/401/403 never allow either, whatever the body says.
    for status in [201, 202, 204, 206, 300, 304, 400, 404, 429, 500, 502] {
        let fake = fake_auth(
            (status, r#"{"authorized":true}"#.to_owned()),
            (200, "{}".to_owned()),
        )
        .await;
        let app = start_app(remote(&fake.url)).await;
        let r = bounded(5, "status", app.get(LEDGERS, &token)).await;
        assert_ne!(r.status, 200, "{status}: {r:?}");
    }
}

/// Was: a 403 from `/v1/authorize` (a proxy, a WAF, or a service that says 403 for a bad
/// token) was remembered as "the Auth service accepted this token", so the same forged token
/// then passed routes that only authenticate, without the service ever validating it.
#[tokio::test]
async fn a_403_from_authorize_does_not_vouch_for_the_token() {
    let outsider = TestKey::ed();
    let forged = outsider.sign(&user_claims("mallory", &["midaz-editor-role"]));
    let fake = fake_auth(
        (403, r#"{"code":"AUT-0008"}"#.to_owned()),
        (401, r#"{"code":"AUT-0007"}"#.to_owned()),
    )
    .await;
    let app = start_app(remote(&fake.url)).await;
    assert_eq!(app.get(LEDGERS, &forged).await.status, 403);
    let r = app.get(ME, &forged).await;
    assert_eq!(r.status, 401, "{r:?}");
}

/// Was: remote mode read an unverified token's claims into a map where the last duplicate
/// wins, where local mode refuses duplicate claims: a token with `sub` twice named one
/// principal to the handler and possibly another to the Auth service's parser.
#[tokio::test]
async fn remote_mode_refuses_duplicate_claims_before_any_call() {
    let key = TestKey::rsa_a();
    let fake = fake_auth(
        (200, r#"{"authorized":true}"#.to_owned()),
        (200, "{}".to_owned()),
    )
    .await;
    let app = start_app(remote(&fake.url)).await;
    let later = now() + 3600;
    let claims = format!(
        r#"{{"iss":"{ISSUER}","sub":"victim","exp":{later},"type":"normal-user","sub":"mallory"}}"#
    );
    let token = sign_text(&key, &header_text(&key), &claims);
    for path in [LEDGERS, ME] {
        let r = bounded(5, "duplicate sub", app.get(path, &token)).await;
        assert_eq!(r.status, 401, "{path}: {r:?}");
        assert!(
            !r.text.contains("mallory") && !r.text.contains("victim"),
            "{r:?}"
        );
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);

    // Deeply nested claims in an unverified token: no stack overflow; the service decides.
    let refusing = fake_auth(
        (401, r#"{"code":"AUT-0007"}"#.to_owned()),
        (401, r#"{"code":"AUT-0007"}"#.to_owned()),
    )
    .await;
    let app = start_app(remote(&refusing.url)).await;
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for claims in [
        format!(r#"{{"sub":"u","exp":{later},"x":{}}}"#, nested(3000)),
        format!(r#"{{"sub":"u","exp":{later},"roles":{}}}"#, nested(3000)),
    ] {
        let token = format!(
            "{}.{}.c2ln",
            b64(header_text(&key).as_bytes()),
            b64(claims.as_bytes())
        );
        let r = bounded(5, "nested", app.get(LEDGERS, &token)).await;
        assert_eq!(r.status, 401, "{r:?}");
    }
}

#[tokio::test]
async fn remote_mode_with_far_future_exp_and_absurd_cache_ttl_does_not_panic() {
    let key = TestKey::rsa_a();
    let fake = fake_auth(
        (200, r#"{"authorized":true}"#.to_owned()),
        (200, "{}".to_owned()),
    )
    .await;
    let app = start_app(
        remote(&fake.url)
            .cache_ttl(Duration::from_secs(u64::MAX / 4))
            .cache_capacity(0),
    )
    .await;
    for exp in [json!(u64::MAX), json!(1e300), json!(4_102_444_800u64)] {
        let mut claims = user_claims("u", &[]);
        claims["exp"] = exp.clone();
        let token = key.sign(&claims);
        for path in [LEDGERS, ME, LEDGERS] {
            let r = bounded(5, "far exp", app.get(path, &token)).await;
            assert_eq!(r.status, 200, "{exp} {path}: {r:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile policies.

/// Runs `f` on its own thread and fails if it takes longer than `secs` (the thread is left
/// behind: a test runtime would wait for it).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn");
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what}: not done within {secs} s (or panicked)"))
}

/// Was: compiling a policy computed each role's inclusion closure with linear searches and
/// rebuilt an index per role: cubic in the length of an inclusion chain (minutes for 10 000).
#[test]
fn a_chain_of_ten_thousand_included_roles_loads_and_compiles_quickly() {
    let n = 10_000;
    let mut roles = Vec::with_capacity(n);
    for i in 0..n {
        let mut role = json!({"id": format!("r{i}")});
        if i + 1 < n {
            role["includes"] = json!([format!("r{}", i + 1)]);
        } else {
            role["permissions"] = json!([{"product": "p", "resource": "x", "actions": ["get"]}]);
        }
        roles.push(role);
    }
    let text = json!({"version": 1, "roles": roles}).to_string();
    let compiled = within(10, "10k chain", move || {
        CompiledPolicy::compile(&Policy::from_json(&text).expect("valid")).expect("compiles")
    });
    let none: &[&str] = &[];
    for top in ["r0", "r5000", "r9999"] {
        assert!(
            compiled
                .decide_for(&[top], none, false, "p", "x", Action::Get)
                .is_allowed(),
            "{top}"
        );
    }
    assert!(
        !compiled
            .decide_for(&["r0"], none, false, "p", "x", Action::Post)
            .is_allowed()
    );

    // The same chain closed into a cycle is refused, without a stack overflow.
    let mut roles: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("r{i}"), "includes": [format!("r{}", (i + 1) % n)]}))
        .collect();
    roles.push(
        json!({"id": "wide", "includes": (0..n).map(|i| format!("r{i}")).collect::<Vec<_>>()}),
    );
    let text = json!({"version": 1, "roles": roles}).to_string();
    let err = within(10, "10k cycle", move || {
        Policy::from_json(&text).map(|_| ())
    });
    assert!(err.is_err());
}

#[test]
fn many_roles_including_many_roles_compile_quickly() {
    // 2000 roles, each including every role after it: a dense DAG.
    let n = 2000;
    let roles: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "id": format!("r{i}"),
                "includes": ((i + 1)..n).step_by(7).map(|j| format!("r{j}")).collect::<Vec<_>>(),
                "permissions": [{"product": "p", "resource": format!("res{i}"), "actions": ["get"]}]
            })
        })
        .collect();
    let text = json!({"version": 1, "roles": roles}).to_string();
    let compiled = within(20, "dense DAG", move || {
        CompiledPolicy::compile(&Policy::from_json(&text).expect("valid")).expect("compiles")
    });
    let none: &[&str] = &[];
    assert!(
        compiled
            .decide_for(&["r0"], none, false, "p", "res1995", Action::Get)
            .is_allowed()
    );
    assert!(
        !compiled
            .decide_for(&["r1"], none, false, "p", "res0", Action::Get)
            .is_allowed()
    );
}

/// Was: groups are looked up by id *and* by name in one table, so a group whose name was
/// another group's id silently replaced it: a token in group `viewers` got the roles of the
/// group *named* `viewers`.
#[test]
fn a_group_name_cannot_shadow_another_group() {
    let text = json!({"version": 1,
    "roles": [
        {"id": "viewer", "permissions": [{"product": "p", "resource": "r", "actions": ["get"]}]},
        {"id": "admin", "permissions": [{"product": "p", "resource": "*", "actions": ["*"]}]}
    ],
    "groups": [
        {"id": "viewers", "name": "Viewers", "roles": ["viewer"]},
        {"id": "ops", "name": "viewers", "roles": ["admin"]}
    ]})
    .to_string();
    match Policy::from_json(&text) {
        Err(e) => assert!(e.to_string().contains("viewers"), "{e}"),
        Ok(policy) => {
            let compiled = CompiledPolicy::compile(&policy);
            let Ok(compiled) = compiled else { return };
            let none: &[&str] = &[];
            assert!(
                !compiled
                    .decide_for(none, &["viewers"], true, "p", "r", Action::Delete)
                    .is_allowed(),
                "group viewers got the roles of the group named viewers"
            );
        }
    }
    // Two groups of the same name are ambiguous as well.
    let text = json!({"version": 1,
    "roles": [{"id": "viewer"}, {"id": "admin"}],
    "groups": [
        {"id": "g1", "name": "Team", "roles": ["viewer"]},
        {"id": "g2", "name": "Team", "roles": ["admin"]}
    ]})
    .to_string();
    assert!(Policy::from_json(&text).is_err());
    // A group named as its own id is the normal case.
    let text = json!({"version": 1, "roles": [{"id": "viewer"}],
        "groups": [{"id": "g", "name": "g", "roles": ["viewer"]}]})
    .to_string();
    assert!(Policy::from_json(&text).is_ok());
}

#[test]
fn empty_ids_are_refused_and_unicode_ids_are_exact() {
    for doc in [
        json!({"version": 1, "roles": [{"id": ""}]}),
        json!({"version": 1, "roles": [{"id": "a"}], "groups": [{"id": "", "name": "g", "roles": ["a"]}]}),
        json!({"version": 1, "roles": [{"id": "a"}], "groups": [{"id": "g", "name": "", "roles": ["a"]}]}),
    ] {
        assert!(Policy::from_json(&doc.to_string()).is_err(), "{doc}");
    }
    // Unicode ids are compared byte for byte: a look-alike or another normal form grants nothing.
    let text = json!({"version": 1, "roles": [
        {"id": "r\u{e9}le", "permissions": [{"product": "p", "resource": "r", "actions": ["get"]}]}
    ]})
    .to_string();
    let compiled = CompiledPolicy::compile(&Policy::from_json(&text).unwrap()).unwrap();
    let none: &[&str] = &[];
    assert!(
        compiled
            .decide_for(&["r\u{e9}le"], none, false, "p", "r", Action::Get)
            .is_allowed()
    );
    for lookalike in ["re\u{301}le", "R\u{c9}LE", "r\u{e9}le ", "r\u{e9}le\0"] {
        assert!(
            !compiled
                .decide_for(&[lookalike], none, false, "p", "r", Action::Get)
                .is_allowed(),
            "{lookalike:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration.

fn from(vars: &[(&str, &str)]) -> Result<AuthConfig, lib_auth::ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    AuthConfig::from_lookup(move |name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}

#[test]
fn the_master_switch_accepts_padding_but_no_other_spelling() {
    let host = ("PLUGIN_AUTH_HOST", "http://auth.internal:4000");
    for on in [" true", "true\t", "\nTRUE ", " 1 "] {
        assert!(
            from(&[("PLUGIN_AUTH_ENABLED", on), host]).unwrap().enabled,
            "{on:?}"
        );
    }
    for off in ["false", " 0 ", "FALSE"] {
        assert!(
            !from(&[("PLUGIN_AUTH_ENABLED", off), host]).unwrap().enabled,
            "{off:?}"
        );
    }
    for bad in [
        "yes",
        "on",
        "tru e",
        "2",
        "true;",
        "t",
        "enabled",
        "\u{200b}true",
    ] {
        assert!(
            from(&[("PLUGIN_AUTH_ENABLED", bad), host]).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn absurd_durations_are_startup_errors() {
    for (var, value) in [
        ("PLUGIN_AUTH_LEEWAY", "2h"),
        ("PLUGIN_AUTH_LEEWAY", "99999999999999999999"),
        ("PLUGIN_AUTH_LEEWAY", "-5"),
        ("PLUGIN_AUTH_LEEWAY", "1e3"),
        ("PLUGIN_AUTH_CACHE_TTL", "18446744073709551615d"),
        ("PLUGIN_AUTH_CACHE_TTL", "5 s"),
        ("PLUGIN_AUTH_CACHE_TTL", "5sec"),
    ] {
        assert!(
            from(&[
                ("PLUGIN_AUTH_ENABLED", "true"),
                ("PLUGIN_AUTH_HOST", "http://a:1"),
                (var, value)
            ])
            .is_err(),
            "{var}={value}"
        );
    }
}

#[tokio::test]
async fn a_cache_capacity_of_zero_still_decides_correctly() {
    let a = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&a]).await;
    let app = start_app(local(&jwks.jwks_url).cache_capacity(0)).await;
    let viewer = a.sign(&user_claims("v", &["midaz-viewer-role"]));
    for _ in 0..3 {
        assert_eq!(app.get(LEDGERS, &viewer).await.status, 200);
        assert_eq!(
            app.send(reqwest::Method::DELETE, LEDGERS, &viewer)
                .await
                .status,
            403
        );
        assert_eq!(
            app.get(LEDGERS, &TestKey::ed().sign(&editor("x")))
                .await
                .status,
            401
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Concurrency.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundreds_of_concurrent_first_uses_of_one_token_all_pass_with_one_fetch() {
    let a = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&a]).await;
    let app = start_app(local(&jwks.jwks_url)).await;
    let token = a.sign(&editor("u"));
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let app = app.clone();
            let token = token.clone();
            tokio::spawn(async move { app.get(LEDGERS, &token).await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(bounded(10, "same token", t).await.unwrap(), 200);
    }
    assert_eq!(jwks.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_rotation_under_load_never_fails_a_token_of_a_key_still_published() {
    let a = TestKey::rsa_a();
    let b = TestKey::rsa_b();
    let jwks = JwksServer::start(&[&a]).await;
    let app = start_app(
        local(&jwks.jwks_url)
            .jwks_min_refresh_interval(Duration::ZERO)
            .http_timeout(Duration::from_secs(5)),
    )
    .await;
    assert_eq!(app.get(LEDGERS, &a.sign(&editor("warm"))).await.status, 200);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rotator = {
        let (jwks, stop) = (jwks.clone(), stop.clone());
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            let mut with_b = false;
            while !stop.load(Ordering::SeqCst) {
                with_b = !with_b;
                if with_b {
                    jwks.set_keys(&[&a, &b]);
                } else {
                    jwks.set_keys(&[&a]);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let app = app.clone();
            let (a, b) = (a.clone(), b.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    (
                        "a",
                        app.get(LEDGERS, &a.sign(&editor(&format!("a{}", i % 20))))
                            .await
                            .status,
                    )
                } else {
                    (
                        "b",
                        app.get(LEDGERS, &b.sign(&editor(&format!("b{}", i % 20))))
                            .await
                            .status,
                    )
                }
            })
        })
        .collect();
    for t in tasks {
        let (signer, status) = bounded(15, "rotation", t).await.unwrap();
        match signer {
            "a" => assert_eq!(status, 200, "a token of a published key"),
            _ => assert!(matches!(status, 200 | 401), "{status}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    rotator.await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Leaks.

/// Error bodies, challenges and the library's own log lines never carry the token, even when
/// a hostile Auth service or key source echoes it back.
#[tokio::test]
async fn tokens_never_reach_error_bodies_or_log_lines() {
    let (logs, _guard) = capture_logs("lib_auth=trace");

    let key = TestKey::rsa_a();
    let token = key.sign(&app_claims(
        "svc-with-a-secret-token",
        &["midaz-viewer-role"],
    ));
    let signature = token.rsplit('.').next().unwrap().to_owned();
    let mut seen = Vec::new();

    // Remote mode: the service echoes the token in every kind of bad answer.
    for (status, body) in [
        (200, json!({"authorized": token}).to_string()),
        (200, format!("{{\"authorized\":\"{token}")),
        (500, json!({"message": token}).to_string()),
        (400, json!({"code": token}).to_string()),
        (401, json!({"message": token}).to_string()),
    ] {
        let fake = fake_auth((status, body.clone()), (status, body)).await;
        let app = start_app(remote(&fake.url)).await;
        for path in [LEDGERS, ME] {
            let r = bounded(5, "echo", app.get(path, &token)).await;
            // (A 200 of `/v1/userinfo` is an acceptance, whatever its body.)
            assert!(r.status != 200 || (path == ME && status == 200), "{r:?}");
            seen.push(r.text);
        }
    }
    // Local mode: a token refused for each kind of reason.
    let jwks = JwksServer::start(&[&key]).await;
    let app = start_app(local(&jwks.jwks_url)).await;
    let mut expired = user_claims("u", &[]);
    expired["exp"] = json!(1);
    for bad in [
        key.sign(&expired),
        format!("{token}x"),
        TestKey::ed().sign(&editor("x")),
        key.sign(&user_claims("viewer", &["midaz-viewer-role"])),
    ] {
        let r = app.send(reqwest::Method::DELETE, LEDGERS, &bad).await;
        assert_ne!(r.status, 200);
        let bad_sig = bad.rsplit('.').next().unwrap();
        assert!(!r.text.contains(bad_sig), "{}", r.text);
    }

    for text in &seen {
        assert!(!text.contains(&signature), "token in a body: {text}");
    }
    let text = logs.text();
    assert!(text.contains("lib_auth"), "nothing logged");
    assert!(!text.contains(&signature), "token in the logs:\n{text}");
}

// ---------------------------------------------------------------------------------------------
// The service's own application token (M2M client).

const M2M_SECRET: &str = "s3cr3t-Value-0123456789abcdef";

fn m2m_client(url: &str) -> lib_auth::ApplicationToken {
    lib_auth::ApplicationToken::from_config(
        &AuthConfig::default()
            .host(url)
            .client_id("svc")
            .client_secret(M2M_SECRET)
            .http_timeout(Duration::from_millis(700)),
    )
    .expect("valid settings")
}

#[tokio::test]
async fn a_token_endpoint_that_trickles_never_answers_or_floods_fails_in_time() {
    let trickling = raw_server(|s| trickle(s, "{\"accessToken\":\"t\"")).await;
    let mute = raw_server(silent).await;
    let huge = padded("{\"accessToken\":\"t\",\"expiresIn\":60", 8 * 1024 * 1024);
    let flooding = raw_server(move |s| big_answer(s, huge.clone(), true)).await;
    for url in [trickling, mute, flooding] {
        let tokens = m2m_client(&url);
        let started = Instant::now();
        let err = bounded(5, "token endpoint", tokens.token())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                lib_auth::ApplicationTokenError::Unavailable { .. }
                    | lib_auth::ApplicationTokenError::BadAnswer { .. }
            ),
            "{url}: {err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "{url}");
    }
}

/// Was: a token endpoint that echoed the client secret back (in `code`/`error`, `tokenType`, or
/// a field of the wrong type) got it into the error returned to the application — whose
/// `Display` the library also logs at WARN.
#[tokio::test]
async fn an_echoing_token_endpoint_never_gets_the_secret_into_errors_or_logs() {
    let (logs, _guard) = capture_logs("lib_auth=trace");

    let s = M2M_SECRET;
    for (status, body) in [
        (400, json!({"code": s}).to_string()),
        (401, json!({"error": s}).to_string()),
        (403, json!({"code": format!("x{s}x")}).to_string()),
        (
            200,
            json!({"accessToken": "t", "tokenType": s, "expiresIn": 60}).to_string(),
        ),
        (
            200,
            json!({"accessToken": "t", "tokenType": "Bearer", "expiresIn": s}).to_string(),
        ),
        (
            200,
            json!({"accessToken": "t", "refreshToken": 1, "expiresIn": [s]}).to_string(),
        ),
        (
            200,
            json!({"accessToken": [s], "expiresIn": 60}).to_string(),
        ),
        (
            200,
            json!({"accessToken": format!("{s} x"), "expiresIn": 60}).to_string(),
        ),
        (
            200,
            json!({"accessToken": "t", "expiresIn": 60, "tokenType": "Bearer"}).to_string() + s,
        ),
    ] {
        let endpoint = Router::new().route(
            "/v1/login/oauth/access_token",
            post(move || {
                let body = body.clone();
                async move {
                    (
                        StatusCode::from_u16(status).unwrap(),
                        [(CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        );
        let addr = serve(endpoint).await;
        let tokens = m2m_client(&format!("http://{addr}"));
        let err = bounded(5, "echo", tokens.token()).await.unwrap_err();
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(s), "{status}: secret in the error: {shown}");
        }
    }
    let text = logs.text();
    assert!(text.contains("application token"), "nothing logged");
    assert!(!text.contains(s), "secret in the logs:\n{text}");
}

/// Was: the JWKS fetch ran inside the request that triggered it, so a client that hung up
/// mid-fetch cancelled it — after it had used up the refresh interval. Repeated once per
/// interval, that kept the library without keys (503 for everyone) or without a rotated-in
/// key (401 for its tokens).
#[tokio::test]
async fn a_client_hanging_up_mid_fetch_does_not_cancel_the_fetch() {
    let a = TestKey::rsa_a();
    let doc = Doc::start(200, jwks_text(&[jwk_value(&a)])).await;
    doc.set_delay(Duration::from_millis(300));
    let app = start_app(
        local(&doc.url())
            .jwks_min_refresh_interval(Duration::from_secs(5))
            .http_timeout(Duration::from_secs(3)),
    )
    .await;
    let token = a.sign(&editor("u"));
    // The attacker's request starts the first fetch, then hangs up.
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let request = format!(
        "GET {LEDGERS} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
        app.addr
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(doc.hits(), 1);
    let r = bounded(5, "after a hang-up", app.get(LEDGERS, &token)).await;
    assert_eq!(r.status, 200, "{r:?}");
}
