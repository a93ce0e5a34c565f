//! Every kind of bad token, sent over real HTTP to an axum service guarded by
//! `require_method("midaz", "ledgers")` in local mode, with its keys served by a real JWKS
//! endpoint. Each one must be refused with 401, the RFC 6750 challenge, the `AUT-0007` envelope
//! (`AUT-0006` when no token was sent) and the reason of the check that failed — never 403, 500,
//! 503 or a dropped connection.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use lib_auth::{Auth, AuthConfig, InvalidTokenReason, Principal};
use lib_auth_testkit::{ISSUER, JwksServer, TestKey, now, serve, user_claims};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const PATH: &str = "/v1/organizations/o1/ledgers";
const AUDIENCE: &str = "midaz";

async fn whoami(axum::Extension(p): axum::Extension<Principal>) -> String {
    p.subject().to_owned()
}

/// The guarded service and a client for it.
struct App {
    addr: SocketAddr,
    client: reqwest::Client,
}

async fn start(config: AuthConfig) -> App {
    let auth = Auth::new(config).expect("config is valid");
    let app = Router::new()
        .route(PATH, get(whoami).post(whoami))
        .route_layer(auth.require_method("midaz", "ledgers"));
    App {
        addr: serve(app).await,
        client: reqwest::Client::new(),
    }
}

fn config(jwks: &JwksServer) -> AuthConfig {
    AuthConfig::default()
        .enabled(true)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .jwks_url(jwks.jwks_url.clone())
}

/// What the server answered, whichever way the request was sent.
#[derive(Debug)]
struct Answer {
    status: u16,
    challenge: Option<String>,
    body: Value,
}

impl App {
    /// Sends `GET PATH` with one `Authorization` header per value, through reqwest.
    async fn get(&self, authorization: &[Vec<u8>]) -> Answer {
        let mut req = self.client.get(format!("http://{}{PATH}", self.addr));
        for value in authorization {
            let value = reqwest::header::HeaderValue::from_bytes(value).expect("a header value");
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        let r = req.send().await.expect("the server answers");
        let status = r.status().as_u16();
        let challenge = r
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().expect("ASCII challenge").to_owned());
        let text = r.text().await.expect("a body");
        Answer {
            status,
            challenge,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// The same request written byte for byte on a TCP stream, so that no client library
    /// normalises the header lines: the server sees exactly these bytes.
    async fn get_raw(&self, authorization: &[Vec<u8>]) -> Answer {
        let mut request = format!(
            "GET {PATH} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        )
        .into_bytes();
        for value in authorization {
            request.extend_from_slice(b"Authorization: ");
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        stream.write_all(&request).await.expect("write request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read answer");

        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete HTTP answer");
        let head = String::from_utf8(raw[..split].to_vec()).expect("ASCII head");
        let body = &raw[split + 4..];
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let challenge = lines.find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("www-authenticate")
                .then(|| value.trim().to_owned())
        });
        Answer {
            status,
            challenge,
            body: serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
        }
    }
}

/// What a case must be answered with.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Missing,
    Invalid(InvalidTokenReason),
}

fn check(case: &str, answer: &Answer, expect: Expect) {
    assert!(
        !matches!(answer.status, 403 | 500 | 503),
        "{case}: a bad token must never be {}: {answer:?}",
        answer.status
    );
    assert_eq!(answer.status, 401, "{case}: {answer:?}");
    let challenge = answer
        .challenge
        .as_deref()
        .unwrap_or_else(|| panic!("{case}: no WWW-Authenticate: {answer:?}"));
    match expect {
        Expect::Missing => {
            assert_eq!(challenge, "Bearer", "{case}");
            assert_eq!(answer.body["code"], "AUT-0006", "{case}: {answer:?}");
        }
        Expect::Invalid(reason) => {
            assert!(
                challenge.starts_with("Bearer error=\"invalid_token\""),
                "{case}: {challenge}"
            );
            assert_eq!(answer.body["code"], "AUT-0007", "{case}: {answer:?}");
            assert_eq!(
                answer.body["message"],
                reason.as_str(),
                "{case}: expected {reason:?}, got {answer:?}"
            );
        }
    }
    assert!(answer.body["title"].is_string(), "{case}: {answer:?}");
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_json(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

/// A token with a header of our own making, signed by `key` with `alg`.
fn sign_raw(key: &EncodingKey, alg: Algorithm, header: &Value, claims: &Value) -> String {
    let message = format!("{}.{}", b64_json(header), b64_json(claims));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("signs");
    format!("{message}.{signature}")
}

/// An HMAC key made of `secret`: the attacker's view of a public key.
fn hmac(secret: &[u8]) -> EncodingKey {
    EncodingKey::from_secret(secret).expect("any bytes make an HMAC key")
}

fn bearer(token: &str) -> Vec<Vec<u8>> {
    vec![format!("Bearer {token}").into_bytes()]
}

fn viewer_claims() -> Value {
    user_claims("viewer-1", &["midaz-viewer-role"])
}

/// `claims` with `edit` applied.
fn claims_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut claims = viewer_claims();
    edit(claims.as_object_mut().expect("an object"));
    claims
}

/// The table of bad requests: a name, the `Authorization` header values sent, the answer due.
fn bad_requests() -> Vec<(&'static str, Vec<Vec<u8>>, Expect)> {
    use InvalidTokenReason as R;
    let a = TestKey::rsa_a();
    let b = TestKey::rsa_b();
    let ec = TestKey::ec();
    let good = a.sign(&viewer_claims());
    let (good_header, rest) = good.split_once('.').unwrap();
    let (good_payload, good_signature) = rest.split_once('.').unwrap();
    let now = now();

    let none_header = json!({"alg": "none", "typ": "at+jwt", "kid": a.kid});
    let none_unsigned = format!(
        "{}.{}.",
        b64_json(&none_header),
        b64_json(&user_claims("admin", &["midaz-editor-role"]))
    );
    let none_junk = format!("{none_unsigned}anVuaw");
    let none_mixed_case = format!(
        "{}.{}.{good_signature}",
        b64_json(&json!({"alg": "nOnE", "typ": "at+jwt", "kid": a.kid})),
        good_payload
    );

    let hs256_with_rsa_public_key = sign_raw(
        &hmac(a.public_pem),
        Algorithm::HS256,
        &json!({"alg": "HS256", "typ": "at+jwt", "kid": a.kid}),
        &user_claims("admin", &["midaz-editor-role"]),
    );
    let rs384_with_an_rs256_key = sign_raw(
        &a.encoding,
        Algorithm::RS384,
        &json!({"alg": "RS384", "typ": "at+jwt", "kid": a.kid}),
        &viewer_claims(),
    );
    let es256_with_the_rsa_kid = sign_raw(
        &ec.encoding,
        Algorithm::ES256,
        &json!({"alg": "ES256", "typ": "at+jwt", "kid": a.kid}),
        &viewer_claims(),
    );

    let expired = a.sign(&claims_with(|c| {
        c.insert("exp".into(), json!(now - 120));
        c.insert("iat".into(), json!(now - 3720));
        c.insert("nbf".into(), json!(now - 3720));
    }));
    let not_yet_valid = a.sign(&claims_with(|c| {
        c.insert("nbf".into(), json!(now + 600));
    }));
    let issued_in_future = a.sign(&claims_with(|c| {
        c.insert("iat".into(), json!(now + 600));
    }));
    let wrong_issuer = a.sign(&claims_with(|c| {
        c.insert("iss".into(), json!("http://evil.test"));
    }));
    let missing_issuer = a.sign(&claims_with(|c| {
        c.remove("iss");
    }));
    let wrong_audience = a.sign(&claims_with(|c| {
        c.insert("aud".into(), json!("plugin-fees"));
    }));
    let missing_audience = a.sign(&claims_with(|c| {
        c.remove("aud");
    }));
    let missing_subject = a.sign(&claims_with(|c| {
        c.remove("sub");
    }));
    let numeric_subject = a.sign(&claims_with(|c| {
        c.insert("sub".into(), json!(42));
    }));
    let missing_expiry = a.sign(&claims_with(|c| {
        c.remove("exp");
    }));
    let string_expiry = a.sign(&claims_with(|c| {
        c.insert("exp".into(), json!((now + 3600).to_string()));
    }));
    let negative_expiry = a.sign(&claims_with(|c| {
        c.insert("exp".into(), json!(-1));
    }));
    let string_issued_at = a.sign(&claims_with(|c| {
        c.insert("iat".into(), json!(now.to_string()));
    }));
    let issued_at_end_of_time = a.sign(&claims_with(|c| {
        c.insert("iat".into(), json!(u64::MAX));
    }));
    let valid_from_end_of_time = a.sign(&claims_with(|c| {
        c.insert("nbf".into(), json!(u64::MAX));
    }));
    let expired_at_epoch = a.sign(&claims_with(|c| {
        c.insert("exp".into(), json!(0));
    }));

    let unknown_kid = b.sign(&viewer_claims());
    let spoofed_kid = b.sign_with(&a.header(), &viewer_claims());
    let mut attacker_jwk = b.jwk.clone();
    attacker_jwk.common.key_id = Some("attacker-key".to_owned());
    let mut embedded_jwk_header = b.header();
    embedded_jwk_header.kid = Some("attacker-key".to_owned());
    embedded_jwk_header.jwk = Some(attacker_jwk.clone());
    let embedded_jwk = b.sign_with(&embedded_jwk_header, &viewer_claims());
    let mut embedded_jwk_no_kid_header = b.header();
    embedded_jwk_no_kid_header.kid = None;
    embedded_jwk_no_kid_header.jwk = Some(attacker_jwk);
    let embedded_jwk_no_kid = b.sign_with(&embedded_jwk_no_kid_header, &viewer_claims());
    let mut jku_header = b.header();
    jku_header.kid = Some("attacker-key".to_owned());
    jku_header.jku = Some("http://127.0.0.1:9/.well-known/jwks.json".to_owned());
    let attacker_jku = b.sign_with(&jku_header, &viewer_claims());

    let tampered_payload = format!(
        "{good_header}.{}.{good_signature}",
        b64_json(&user_claims("viewer-1", &["midaz-editor-role"]))
    );
    let tampered_subject = format!(
        "{good_header}.{}.{good_signature}",
        b64_json(&claims_with(|c| {
            c.insert("sub".into(), json!("admin"));
        }))
    );
    // RS256 signatures are 342 base64url characters; dropping two leaves 255 whole bytes.
    let short_signature = &good[..good.len() - 2];
    let truncated_in_payload = &good[..good_header.len() + 1 + good_payload.len() / 2];
    let four_segments = format!("{good}.{good_signature}");
    let two_segments = format!("{good_header}.{good_payload}");
    let star_in_header = format!("{}*{}", &good[..5], &good[6..]);
    let standard_base64_signature =
        format!("{good_header}.{good_payload}.+/{}", &good_signature[2..]);
    let padded_signature = format!("{good}==");
    let header_not_json = format!("{}.{good_payload}.{good_signature}", b64(b"not json"));
    // Correctly signed, so that the signature check passes and the payload is parsed.
    let payload_not_json = {
        let message = format!("{good_header}.{}", b64(b"[1,2"));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &a.encoding, a.alg).expect("signs");
        format!("{message}.{signature}")
    };
    let payload_not_json_unsigned = format!("{good_header}.{}.{good_signature}", b64(b"[1,2"));
    let empty_segments = "..".to_owned();

    let huge = a.sign(&claims_with(|c| {
        c.insert("padding".into(), json!("x".repeat(9 * 1024)));
    }));
    assert!(huge.len() > 9 * 1024);

    let mut jwt_header = a.header();
    jwt_header.typ = Some("JWT".to_owned());
    let id_token_claims = json!({
        "iss": ISSUER, "sub": "viewer-1", "aud": AUDIENCE, "exp": now + 3600, "iat": now,
        "nbf": now, "sid": "sid-viewer-1", "name": "viewer-1",
    });
    let id_token = a.sign_with(&jwt_header, &id_token_claims);
    let mut untyped_header = a.header();
    untyped_header.typ = None;
    let untyped = a.sign_with(&untyped_header, &viewer_claims());
    let other_type = sign_raw(
        &a.encoding,
        Algorithm::RS256,
        &json!({"alg": "RS256", "typ": "secevent+jwt", "kid": a.kid}),
        &viewer_claims(),
    );
    let crit = sign_raw(
        &a.encoding,
        Algorithm::RS256,
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": a.kid, "crit": ["exp"], "exp": now}),
        &viewer_claims(),
    );
    let crit_b64 = sign_raw(
        &a.encoding,
        Algorithm::RS256,
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": a.kid, "crit": ["b64"], "b64": true}),
        &viewer_claims(),
    );

    vec![
        ("no Authorization header", vec![], Expect::Missing),
        (
            "alg none, empty signature",
            bearer(&none_unsigned),
            Expect::Invalid(R::AlgorithmNotAllowed),
        ),
        (
            "alg none, junk signature",
            bearer(&none_junk),
            Expect::Invalid(R::AlgorithmNotAllowed),
        ),
        (
            "alg nOnE, a real signature",
            bearer(&none_mixed_case),
            Expect::Invalid(R::AlgorithmNotAllowed),
        ),
        (
            "HS256 signed with the RSA public key PEM",
            bearer(&hs256_with_rsa_public_key),
            Expect::Invalid(R::AlgorithmNotAllowed),
        ),
        (
            "RS384 against a key bound to RS256",
            bearer(&rs384_with_an_rs256_key),
            Expect::Invalid(R::AlgorithmNotAllowed),
        ),
        (
            "ES256 naming the RSA key's kid",
            bearer(&es256_with_the_rsa_kid),
            Expect::Invalid(R::AlgorithmNotAllowed),
        ),
        (
            "expired beyond the leeway",
            bearer(&expired),
            Expect::Invalid(R::Expired),
        ),
        (
            "nbf in the future beyond the leeway",
            bearer(&not_yet_valid),
            Expect::Invalid(R::NotYetValid),
        ),
        (
            "iat in the future beyond the leeway",
            bearer(&issued_in_future),
            Expect::Invalid(R::IssuedInFuture),
        ),
        (
            "wrong iss",
            bearer(&wrong_issuer),
            Expect::Invalid(R::WrongIssuer),
        ),
        (
            "missing iss",
            bearer(&missing_issuer),
            Expect::Invalid(R::MissingClaim),
        ),
        (
            "wrong aud",
            bearer(&wrong_audience),
            Expect::Invalid(R::WrongAudience),
        ),
        (
            "missing aud",
            bearer(&missing_audience),
            Expect::Invalid(R::MissingClaim),
        ),
        (
            "missing sub",
            bearer(&missing_subject),
            Expect::Invalid(R::MissingClaim),
        ),
        (
            "numeric sub",
            bearer(&numeric_subject),
            Expect::Invalid(R::MissingClaim),
        ),
        (
            "missing exp",
            bearer(&missing_expiry),
            Expect::Invalid(R::MissingClaim),
        ),
        (
            "exp as a string",
            bearer(&string_expiry),
            Expect::Invalid(R::MissingClaim),
        ),
        (
            "negative exp",
            bearer(&negative_expiry),
            Expect::Invalid(R::MissingClaim),
        ),
        (
            "exp 0",
            bearer(&expired_at_epoch),
            Expect::Invalid(R::Expired),
        ),
        (
            "iat as a string",
            bearer(&string_issued_at),
            Expect::Invalid(R::MissingClaim),
        ),
        (
            "iat at the end of time",
            bearer(&issued_at_end_of_time),
            Expect::Invalid(R::IssuedInFuture),
        ),
        (
            "nbf at the end of time",
            bearer(&valid_from_end_of_time),
            Expect::Invalid(R::NotYetValid),
        ),
        (
            "kid not in the JWKS",
            bearer(&unknown_kid),
            Expect::Invalid(R::UnknownKey),
        ),
        (
            "another key spoofing a known kid",
            bearer(&spoofed_kid),
            Expect::Invalid(R::BadSignature),
        ),
        (
            "header embeds the attacker's jwk",
            bearer(&embedded_jwk),
            Expect::Invalid(R::UnknownKey),
        ),
        (
            "header embeds a jwk and names no kid",
            bearer(&embedded_jwk_no_kid),
            Expect::Invalid(R::UnknownKey),
        ),
        (
            "header points jku at the attacker",
            bearer(&attacker_jku),
            Expect::Invalid(R::UnknownKey),
        ),
        (
            "payload tampered: roles",
            bearer(&tampered_payload),
            Expect::Invalid(R::BadSignature),
        ),
        (
            "payload tampered: sub",
            bearer(&tampered_subject),
            Expect::Invalid(R::BadSignature),
        ),
        (
            "signature truncated",
            bearer(short_signature),
            Expect::Invalid(R::BadSignature),
        ),
        (
            "token truncated in the payload",
            bearer(truncated_in_payload),
            Expect::Invalid(R::Malformed),
        ),
        (
            "two segments",
            bearer(&two_segments),
            Expect::Invalid(R::Malformed),
        ),
        (
            "four segments",
            bearer(&four_segments),
            Expect::Invalid(R::Malformed),
        ),
        (
            "empty segments",
            bearer(&empty_segments),
            Expect::Invalid(R::Malformed),
        ),
        (
            "not a JWT at all",
            bearer("not-a-jwt"),
            Expect::Invalid(R::Malformed),
        ),
        (
            "non-base64url character in the header",
            bearer(&star_in_header),
            Expect::Invalid(R::Malformed),
        ),
        (
            "standard base64 characters in the signature",
            bearer(&standard_base64_signature),
            Expect::Invalid(R::Malformed),
        ),
        (
            "padded base64 signature",
            bearer(&padded_signature),
            Expect::Invalid(R::Malformed),
        ),
        (
            "header is not JSON",
            bearer(&header_not_json),
            Expect::Invalid(R::Malformed),
        ),
        (
            "payload is not JSON, signed",
            bearer(&payload_not_json),
            Expect::Invalid(R::Malformed),
        ),
        (
            "payload is not JSON, signature of another payload",
            bearer(&payload_not_json_unsigned),
            Expect::Invalid(R::BadSignature),
        ),
        ("a 9 KiB token", bearer(&huge), Expect::Invalid(R::TooLarge)),
        (
            "a 9 KiB bare value",
            vec![vec![b'a'; 9 * 1024]],
            Expect::Invalid(R::TooLarge),
        ),
        (
            "two Authorization headers",
            [bearer(&good), bearer(&good)].concat(),
            Expect::Invalid(R::MultipleAuthorizationHeaders),
        ),
        (
            "Bearer with no token",
            vec![b"Bearer".to_vec()],
            Expect::Invalid(R::EmptyToken),
        ),
        (
            "Bearer and spaces",
            vec![b"Bearer    ".to_vec()],
            Expect::Invalid(R::EmptyToken),
        ),
        (
            "empty Authorization header",
            vec![Vec::new()],
            Expect::Invalid(R::EmptyToken),
        ),
        (
            "Basic scheme",
            vec![b"Basic dmlld2VyLTE6cGFzc3dvcmQ=".to_vec()],
            Expect::Invalid(R::UnsupportedScheme),
        ),
        (
            "a valid token under another scheme",
            vec![format!("Token {good}").into_bytes()],
            Expect::Invalid(R::UnsupportedScheme),
        ),
        (
            "two tokens in one header",
            vec![format!("Bearer {good} {good}").into_bytes()],
            Expect::Invalid(R::Malformed),
        ),
        (
            "non-ASCII bytes",
            vec![b"Bearer \xe2\x82\xac.\xff.\xfe".to_vec()],
            Expect::Invalid(R::NotAscii),
        ),
        (
            "typ JWT: an ID token",
            bearer(&id_token),
            Expect::Invalid(R::WrongType),
        ),
        ("no typ", bearer(&untyped), Expect::Invalid(R::WrongType)),
        (
            "typ of another kind of JWT",
            bearer(&other_type),
            Expect::Invalid(R::WrongType),
        ),
        (
            "crit header",
            bearer(&crit),
            Expect::Invalid(R::UnsupportedCriticalHeader),
        ),
        (
            "crit b64 header",
            bearer(&crit_b64),
            Expect::Invalid(R::UnsupportedCriticalHeader),
        ),
    ]
}

#[tokio::test]
async fn every_bad_token_is_401_with_its_reason_over_http() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let app = start(config(&jwks)).await;

    // The harness itself works: a good token of the same key is let through.
    let good = key.sign(&viewer_claims());
    let ok = app.get(&bearer(&good)).await;
    assert_eq!(ok.status, 200, "{ok:?}");

    for (case, authorization, expect) in bad_requests() {
        let answer = app.get(&authorization).await;
        check(case, &answer, expect);
        // Once more, written raw on the socket: no client library in the way.
        let answer = app.get_raw(&authorization).await;
        check(&format!("{case} (raw)"), &answer, expect);
    }

    // Still serving, and the good token still works.
    assert_eq!(app.get(&bearer(&good)).await.status, 200);
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let app = start(config(&jwks)).await;
    // Whatever form the "public key as HMAC secret" takes: PEM, PEM without its trailing
    // newline, the DER inside it.
    let pem = key.public_pem;
    let text = std::str::from_utf8(pem).unwrap();
    let trimmed = text.trim_end().as_bytes();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body is base64");
    for secret in [pem, trimmed, &der] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let header = json!({"alg": format!("{alg:?}"), "typ": "at+jwt", "kid": key.kid});
            let token = sign_raw(
                &hmac(secret),
                alg,
                &header,
                &user_claims("admin", &["midaz-editor-role"]),
            );
            check(
                &format!("{alg:?}"),
                &app.get(&bearer(&token)).await,
                Expect::Invalid(InvalidTokenReason::AlgorithmNotAllowed),
            );
        }
    }
}

#[tokio::test]
async fn alg_none_is_refused_as_a_disallowed_algorithm() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let app = start(config(&jwks)).await;
    let header = json!({"alg": "none", "typ": "at+jwt", "kid": key.kid});
    let unsigned = format!("{}.{}.", b64_json(&header), b64_json(&viewer_claims()));
    for token in [unsigned.clone(), format!("{unsigned}c2lnbmF0dXJl")] {
        check(
            &token,
            &app.get(&bearer(&token)).await,
            Expect::Invalid(InvalidTokenReason::AlgorithmNotAllowed),
        );
    }
}

#[tokio::test]
async fn plain_jwt_typ_is_accepted_only_when_opted_in() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let strict = start(config(&jwks)).await;
    let lenient = start(config(&jwks).accept_plain_jwt(true)).await;

    let mut jwt = key.header();
    jwt.typ = Some("JWT".to_owned());
    let plain = key.sign_with(&jwt, &viewer_claims());
    let mut untyped_header = key.header();
    untyped_header.typ = None;
    let untyped = key.sign_with(&untyped_header, &viewer_claims());
    let other = sign_raw(
        &key.encoding,
        Algorithm::RS256,
        &json!({"alg": "RS256", "typ": "secevent+jwt", "kid": key.kid}),
        &viewer_claims(),
    );
    let access = key.sign(&viewer_claims());

    for token in [&plain, &untyped] {
        check(
            "strict",
            &strict.get(&bearer(token)).await,
            Expect::Invalid(InvalidTokenReason::WrongType),
        );
        let r = lenient.get(&bearer(token)).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, "viewer-1");
    }
    // The opt-in widens `typ` to JWT only; every other check still applies.
    check(
        "lenient, other typ",
        &lenient.get(&bearer(&other)).await,
        Expect::Invalid(InvalidTokenReason::WrongType),
    );
    let mut expired_claims = viewer_claims();
    expired_claims["exp"] = json!(now() - 120);
    check(
        "lenient, expired",
        &lenient
            .get(&bearer(&key.sign_with(&jwt, &expired_claims)))
            .await,
        Expect::Invalid(InvalidTokenReason::Expired),
    );
    assert_eq!(strict.get(&bearer(&access)).await.status, 200);
    assert_eq!(lenient.get(&bearer(&access)).await.status, 200);
}

#[tokio::test]
async fn leeway_tolerates_small_clock_skew_only() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let app = start(config(&jwks)).await;
    let now = now();
    // 10 s past `exp`, `nbf` and `iat` 10 s ahead: inside the 30 s default leeway.
    let skewed = key.sign(&claims_with(|c| {
        c.insert("exp".into(), json!(now - 10));
        c.insert("nbf".into(), json!(now + 10));
        c.insert("iat".into(), json!(now + 10));
    }));
    let r = app.get(&bearer(&skewed)).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn two_hundred_concurrent_garbage_tokens_are_all_401_and_the_server_stays_up() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let app = start(config(&jwks)).await;
    let app = std::sync::Arc::new(app);

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let app = app.clone();
        tasks.spawn(async move {
            let token = match i % 4 {
                0 => format!("garbage-{i}"),
                1 => format!("{}.{}.{}", b64(b"{}"), b64(b"{}"), b64(&i.to_be_bytes())),
                2 => format!("eyJ{i}.eyJ{i}.{i}"),
                _ => format!("{}.x.y", b64_json(&json!({"alg": "RS256", "kid": i}))),
            };
            let answer = if i % 2 == 0 {
                app.get(&bearer(&token)).await
            } else {
                app.get_raw(&bearer(&token)).await
            };
            (i, answer)
        });
    }
    let mut answered = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, answer) = joined.expect("no request task panicked");
        assert_eq!(answer.status, 401, "request {i}: {answer:?}");
        assert_eq!(answer.body["code"], "AUT-0007", "request {i}: {answer:?}");
        answered += 1;
    }
    assert_eq!(answered, 200);

    // The server is still up and still verifies.
    let r = app.get(&bearer(&key.sign(&viewer_claims()))).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn malformed_tokens_are_401_without_fetching_keys_even_when_the_key_source_is_down() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    jwks.set_failing(true);
    let app = start(config(&jwks).jwks_min_refresh_interval(Duration::from_millis(1))).await;

    let good = key.sign(&viewer_claims());
    let (header, rest) = good.split_once('.').unwrap();
    let none = format!(
        "{}.{}.",
        b64_json(&json!({"alg": "none", "typ": "at+jwt"})),
        b64_json(&viewer_claims())
    );
    let hs256 = sign_raw(
        &hmac(key.public_pem),
        Algorithm::HS256,
        &json!({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}),
        &viewer_claims(),
    );
    let mut jwt = key.header();
    jwt.typ = Some("JWT".to_owned());
    let id_token = key.sign_with(&jwt, &viewer_claims());
    use InvalidTokenReason as R;
    let cases = [
        ("garbage", "garbage".to_owned(), R::Malformed),
        (
            "two segments",
            format!("{header}.{}", rest.split('.').next().unwrap()),
            R::Malformed,
        ),
        ("four segments", format!("{good}.x"), R::Malformed),
        ("alg none", none, R::AlgorithmNotAllowed),
        ("HS256", hs256, R::AlgorithmNotAllowed),
        ("typ JWT", id_token, R::WrongType),
    ];
    for (case, token, reason) in cases {
        check(
            case,
            &app.get(&bearer(&token)).await,
            Expect::Invalid(reason),
        );
    }
    // Nothing that can be refused from the token alone made the verifier go for keys.
    assert_eq!(jwks.hits(), 0);

    // A well-formed token does need the keys: the source is down and nothing is cached.
    let r = app.get(&bearer(&good)).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(jwks.hits(), 1);
}

#[tokio::test]
async fn a_far_future_exp_is_verified_and_served_from_cache_without_overflow() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let app = start(config(&jwks)).await;
    for exp in [u64::MAX, u64::MAX - 10, i64::MAX as u64, 253_402_300_799] {
        let token = key.sign(&claims_with(|c| {
            c.insert("exp".into(), json!(exp));
        }));
        // The second request is answered from the verified-token cache.
        for attempt in 0..2 {
            let r = app.get(&bearer(&token)).await;
            assert_eq!(r.status, 200, "exp {exp}, attempt {attempt}: {r:?}");
        }
    }
}

#[tokio::test]
async fn tokens_up_to_8_kib_are_accepted_and_longer_ones_refused() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let app = start(config(&jwks)).await;
    let padded = |n: usize| {
        key.sign(&claims_with(|c| {
            c.insert("padding".into(), json!("x".repeat(n)));
        }))
    };
    // The longest token of at most 8192 bytes that padding can make.
    // Each padding byte adds 4/3 characters: jump close, then step.
    let mut n = 5000 + (8192 - padded(5000).len()) * 3 / 4 - 4;
    while padded(n + 1).len() <= 8192 {
        n += 1;
    }
    let at_limit = padded(n);
    assert!(
        at_limit.len() > 8188 && at_limit.len() <= 8192,
        "{}",
        at_limit.len()
    );
    let r = app.get(&bearer(&at_limit)).await;
    assert_eq!(r.status, 200, "{} bytes: {r:?}", at_limit.len());

    let over = padded(n + 1);
    assert!(over.len() > 8192);
    check(
        &format!("{} bytes", over.len()),
        &app.get(&bearer(&over)).await,
        Expect::Invalid(InvalidTokenReason::TooLarge),
    );
}
