//! Keys over time, over real HTTP: a rotated-in key is picked up by one JWKS refresh, refreshes
//! are single-flight and rate-limited, known keys keep working while the key source is down,
//! and offline keys (PEM in code, a JWKS file) need no key source at all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use jsonwebtoken::jwk::JwkSet;
use lib_auth::{Algorithm, Auth, AuthConfig, InvalidTokenReason, Principal, VerificationKey};
use lib_auth_testkit::{ISSUER, JwksServer, TestKey, serve, user_claims};
use serde_json::Value;

const PATH: &str = "/v1/organizations/o1/ledgers";

async fn whoami(axum::Extension(p): axum::Extension<Principal>) -> String {
    p.subject().to_owned()
}

struct App {
    url: String,
    client: reqwest::Client,
}

async fn start(config: AuthConfig) -> Arc<App> {
    let auth = Auth::new(config).expect("config is valid");
    let app = Router::new()
        .route(PATH, get(whoami))
        .route_layer(auth.require_method("midaz", "ledgers"));
    let addr = serve(app).await;
    Arc::new(App {
        url: format!("http://{addr}{PATH}"),
        client: reqwest::Client::new(),
    })
}

/// Local mode against `jwks`, with the given least time between two fetches.
fn fetching(jwks: &JwksServer, min_refresh: Duration) -> AuthConfig {
    AuthConfig::default()
        .enabled(true)
        .issuer(ISSUER)
        .jwks_url(jwks.jwks_url.clone())
        .jwks_min_refresh_interval(min_refresh)
}

impl App {
    /// `GET` with the token; the status and the body's `message` (or the text on success).
    async fn get(&self, token: &str) -> (u16, String) {
        let r = self
            .client
            .get(&self.url)
            .bearer_auth(token)
            .send()
            .await
            .expect("the server answers");
        let status = r.status().as_u16();
        let text = r.text().await.expect("a body");
        let message = match serde_json::from_str::<Value>(&text) {
            Ok(body) => body["message"].as_str().unwrap_or_default().to_owned(),
            Err(_) => text,
        };
        (status, message)
    }
}

/// A fresh viewer token of `key` (a new `sub` each time, so that no cache answers for it).
fn token(key: &TestKey, sub: &str) -> String {
    key.sign(&user_claims(sub, &["midaz-viewer-role"]))
}

fn unknown_key() -> (u16, String) {
    (401, InvalidTokenReason::UnknownKey.as_str().to_owned())
}

/// Waits until `jwks` has been fetched `n` times (background refreshes), or panics.
async fn wait_for_hits(jwks: &JwksServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while jwks.hits() < n {
        assert!(
            Instant::now() < deadline,
            "JWKS fetched {} times, expected {n}",
            jwks.hits()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `tokens` all at once and returns the answers.
async fn concurrently(app: &Arc<App>, tokens: Vec<String>) -> Vec<(u16, String)> {
    let start = Arc::new(tokio::sync::Barrier::new(tokens.len()));
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let app = app.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                app.get(&t).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("no request task panicked"));
    }
    answers
}

#[tokio::test]
async fn a_token_of_a_new_key_verifies_after_one_jwks_refresh() {
    let (a, b) = (TestKey::rsa_a(), TestKey::rsa_b());
    let jwks = JwksServer::start(&[&a]).await;
    let min_refresh = Duration::from_millis(200);
    let app = start(fetching(&jwks, min_refresh)).await;

    assert_eq!(app.get(&token(&a, "before")).await, (200, "before".into()));
    assert_eq!(jwks.hits(), 1);

    // The issuer rotates b in; once the refresh interval has passed, b's first token is
    // verified after exactly one more fetch, and a's tokens keep working without one.
    jwks.set_keys(&[&a, &b]);
    tokio::time::sleep(min_refresh + Duration::from_millis(100)).await;
    assert_eq!(
        app.get(&token(&b, "rotated")).await,
        (200, "rotated".into())
    );
    assert_eq!(jwks.hits(), 2);
    assert_eq!(app.get(&token(&b, "again")).await, (200, "again".into()));
    assert_eq!(
        app.get(&token(&a, "old-key")).await,
        (200, "old-key".into())
    );
    assert_eq!(jwks.hits(), 2);
}

#[tokio::test]
async fn fifty_concurrent_requests_with_a_new_kid_cause_exactly_one_fetch() {
    let (a, b) = (TestKey::rsa_a(), TestKey::rsa_b());
    let jwks = JwksServer::start(&[&a]).await;
    let min_refresh = Duration::from_millis(200);
    let app = start(fetching(&jwks, min_refresh)).await;
    assert_eq!(app.get(&token(&a, "warm")).await.0, 200);
    assert_eq!(jwks.hits(), 1);

    jwks.set_keys(&[&a, &b]);
    tokio::time::sleep(min_refresh + Duration::from_millis(100)).await;
    let new_kid = token(&b, "rotated");
    let answers = concurrently(&app, vec![new_kid; 50]).await;
    for answer in &answers {
        assert_eq!(answer, &(200, "rotated".to_owned()));
    }
    assert_eq!(jwks.hits(), 2, "one refresh for fifty requests");
}

#[tokio::test]
async fn fifty_concurrent_requests_at_cold_start_cause_exactly_one_fetch() {
    let a = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&a]).await;
    let app = start(fetching(&jwks, Duration::from_millis(1))).await;
    let tokens = (0..50).map(|i| token(&a, &format!("u{i}"))).collect();
    let answers = concurrently(&app, tokens).await;
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer, &(200, format!("u{i}")));
    }
    assert_eq!(jwks.hits(), 1, "one fetch for fifty first requests");
}

#[tokio::test]
async fn unknown_kids_within_the_refresh_interval_cause_at_most_one_fetch() {
    let (a, b, ec) = (TestKey::rsa_a(), TestKey::rsa_b(), TestKey::ec());
    let jwks = JwksServer::start(&[&a]).await;
    let min_refresh = Duration::from_secs(2);
    let app = start(fetching(&jwks, min_refresh)).await;
    assert_eq!(app.get(&token(&a, "warm")).await.0, 200);
    assert_eq!(jwks.hits(), 1);

    // Right after a fetch: unknown kids are refused without fetching again.
    for i in 0..10 {
        assert_eq!(app.get(&token(&b, &format!("b{i}"))).await, unknown_key());
    }
    assert_eq!(jwks.hits(), 1);

    // Once the interval has passed: a burst of unknown kids (sequential and concurrent, of
    // two unknown keys) is answered with one fetch at most, and every answer is UnknownKey.
    tokio::time::sleep(min_refresh + Duration::from_millis(100)).await;
    let started = Instant::now();
    for i in 0..10 {
        assert_eq!(app.get(&token(&ec, &format!("ec{i}"))).await, unknown_key());
    }
    let burst = (0..40)
        .map(|i| {
            if i % 2 == 0 {
                token(&b, &format!("b{i}"))
            } else {
                token(&ec, &format!("ec{i}"))
            }
        })
        .collect();
    for answer in concurrently(&app, burst).await {
        assert_eq!(answer, unknown_key());
    }
    assert!(
        started.elapsed() < min_refresh,
        "the burst must fit in one interval for this test to mean anything"
    );
    assert_eq!(jwks.hits(), 2);
}

#[tokio::test]
async fn known_keys_are_served_stale_while_the_key_source_is_down() {
    let (a, b) = (TestKey::rsa_a(), TestKey::rsa_b());
    let jwks = JwksServer::start(&[&a]).await;
    let short = Duration::from_millis(100);
    let app = start(fetching(&jwks, short).jwks_max_age(short)).await;
    assert_eq!(app.get(&token(&a, "cached")).await, (200, "cached".into()));
    assert_eq!(jwks.hits(), 1);

    jwks.set_failing(true);
    tokio::time::sleep(short * 2).await;
    // The keys are now older than jwks_max_age: a new token of a known key is verified with
    // them, and the background refresh that this triggers fails without harm.
    assert_eq!(app.get(&token(&a, "new-1")).await, (200, "new-1".into()));
    wait_for_hits(&jwks, 2).await;
    tokio::time::sleep(short * 2).await;
    assert_eq!(app.get(&token(&a, "new-2")).await, (200, "new-2".into()));
    // An unknown kid during the outage: the refresh fails, the answer is 401, not 503.
    tokio::time::sleep(short * 2).await;
    let before = jwks.hits();
    assert_eq!(app.get(&token(&b, "b-down")).await, unknown_key());
    assert!(jwks.hits() > before, "a refresh was attempted");

    // The source comes back with b rotated in: b's tokens verify.
    jwks.set_keys(&[&a, &b]);
    jwks.set_failing(false);
    tokio::time::sleep(short * 2).await;
    assert_eq!(app.get(&token(&b, "b-up")).await, (200, "b-up".into()));
    assert_eq!(app.get(&token(&a, "a-up")).await, (200, "a-up".into()));
}

#[tokio::test]
async fn es256_and_eddsa_tokens_verify_against_pem_keys_given_in_code_without_any_fetch() {
    let (ec, ed, rsa) = (TestKey::ec(), TestKey::ed(), TestKey::rsa_a());
    // A JWKS server is running and named as the host: with static keys it is never asked.
    let jwks = JwksServer::start(&[&ec, &ed, &rsa]).await;
    let config = AuthConfig::default()
        .enabled(true)
        .issuer(ISSUER)
        .host(jwks.base_url.clone())
        .static_key(
            VerificationKey::from_pem(Some(&ec.kid), Algorithm::ES256, ec.public_pem).unwrap(),
        )
        .static_key(
            VerificationKey::from_pem(Some(&ed.kid), Algorithm::EdDSA, ed.public_pem).unwrap(),
        );
    let app = start(config).await;

    assert_eq!(
        app.get(&token(&ec, "ec-user")).await,
        (200, "ec-user".into())
    );
    assert_eq!(
        app.get(&token(&ed, "ed-user")).await,
        (200, "ed-user".into())
    );
    // A key that is not among the static keys is unknown, even though the JWKS has it.
    assert_eq!(app.get(&token(&rsa, "rsa-user")).await, unknown_key());
    // An EdDSA token naming the EC key's kid is refused: the key decides the algorithm.
    let mut header = ed.header();
    header.kid = Some(ec.kid.clone());
    let crossed = ed.sign_with(&header, &user_claims("x", &["midaz-viewer-role"]));
    assert_eq!(
        app.get(&crossed).await,
        (
            401,
            InvalidTokenReason::AlgorithmNotAllowed.as_str().to_owned()
        )
    );
    assert_eq!(jwks.hits(), 0);
}

#[tokio::test]
async fn a_static_key_without_kid_verifies_tokens_of_its_algorithm() {
    let (ec, ed) = (TestKey::ec(), TestKey::ed());
    let config = AuthConfig::default()
        .enabled(true)
        .issuer(ISSUER)
        .static_key(VerificationKey::from_pem(None, Algorithm::EdDSA, ed.public_pem).unwrap());
    let app = start(config).await;
    assert_eq!(
        app.get(&token(&ed, "ed-user")).await,
        (200, "ed-user".into())
    );
    let mut header = ed.header();
    header.kid = None;
    let no_kid = ed.sign_with(&header, &user_claims("no-kid", &["midaz-viewer-role"]));
    assert_eq!(app.get(&no_kid).await, (200, "no-kid".into()));
    assert_eq!(
        app.get(&token(&ec, "ec-user")).await,
        (401, InvalidTokenReason::UnknownKey.as_str().to_owned())
    );
}

#[tokio::test]
async fn es256_and_eddsa_tokens_verify_against_a_jwks_file() {
    let (ec, ed, rsa) = (TestKey::ec(), TestKey::ed(), TestKey::rsa_a());
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("key_rotation-{}.jwks.json", std::process::id()));
    let set = JwkSet {
        keys: vec![ec.jwk.clone(), ed.jwk.clone()],
    };
    std::fs::write(&path, serde_json::to_vec(&set).unwrap()).unwrap();
    let app = start(
        AuthConfig::default()
            .enabled(true)
            .issuer(ISSUER)
            .jwks_file(path.clone()),
    )
    .await;
    std::fs::remove_file(&path).unwrap();

    // Read once at start: the file is gone and the keys still verify.
    assert_eq!(
        app.get(&token(&ec, "ec-user")).await,
        (200, "ec-user".into())
    );
    assert_eq!(
        app.get(&token(&ed, "ed-user")).await,
        (200, "ed-user".into())
    );
    assert_eq!(app.get(&token(&rsa, "rsa-user")).await, unknown_key());
}

#[test]
fn a_jwks_file_without_a_usable_key_is_a_startup_error() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "key_rotation-{}-empty.jwks.json",
        std::process::id()
    ));
    std::fs::write(
        &path,
        br#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#,
    )
    .unwrap();
    let result = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .issuer(ISSUER)
            .jwks_file(path.clone()),
    );
    std::fs::remove_file(&path).unwrap();
    assert!(result.is_err());
}
