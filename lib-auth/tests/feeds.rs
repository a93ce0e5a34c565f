//! The revocation feed and policy sync of local mode over real HTTP (the fake Auth service is
//! in `common/`). The tests that assert on log lines are in `feeds_logs.rs`.

mod common;

use std::time::Duration;

use common::*;
use lib_auth::{
    Action, Auth, AuthConfig, ConfigError, MIDAZ_POLICY_JSON, Mode, PolicySource, Principal,
};
use lib_auth_testkit::{ISSUER, TestKey, now, user_claims};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Revocation feed.

#[tokio::test]
async fn a_revoked_session_is_refused_within_one_poll_even_when_cached() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    let auth = Auth::new(config(&fake)).unwrap();
    let app = start_app(&auth).await;
    let alice = token(&key, "alice", VIEWER, now());
    let bob = token(&key, "bob", VIEWER, now());
    for _ in 0..3 {
        assert_eq!(app.get("/v1/ledgers", &alice).await, 200);
        assert_eq!(app.get("/v1/me", &bob).await, 200);
    }
    // The poller reads the feed with the application token it got by client_credentials.
    eventually(Duration::from_secs(2), "first feed read", || async {
        !fake.feed_requests().is_empty()
    })
    .await;
    let (since, authorization) = fake.feed_requests()[0].clone();
    assert_eq!(since, None, "the first call sends no cursor");
    assert_eq!(authorization.as_deref(), Some("Bearer app-token-1"));

    fake.publish(json!({"sid": "sid-alice", "expiresAt": now() + 3600}));
    let took = eventually(Duration::from_secs(2), "alice refused", || async {
        app.get("/v1/me", &alice).await == 401
    })
    .await;
    assert!(took < POLL * 8, "refused after {took:?}");
    let refused = app.send(reqwest::Method::GET, "/v1/ledgers", &alice).await;
    assert_eq!(refused.status, 401);
    assert!(
        refused
            .challenge
            .starts_with("Bearer error=\"invalid_token\"")
            && refused.challenge.contains("revoked"),
        "{}",
        refused.challenge
    );
    let body: Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(body["code"], "AUT-0007");
    // Other sessions pass, and keep passing.
    assert_eq!(app.get("/v1/ledgers", &bob).await, 200);
    tokio::time::sleep(POLL * 3).await;
    assert_eq!(app.get("/v1/ledgers", &bob).await, 200);
    assert_eq!(app.get("/v1/ledgers", &alice).await, 401);
    assert_eq!(auth.revocation_count(), 1);
    // The authenticate-only path and authenticate_headers refuse it too.
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {alice}").parse().unwrap());
    assert!(matches!(
        auth.authenticate_headers(&headers).await,
        Err(lib_auth::AuthError::InvalidToken {
            reason: lib_auth::InvalidTokenReason::Revoked
        })
    ));
}

#[tokio::test]
async fn a_subject_revocation_refuses_older_tokens_and_accepts_newer_ones() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    let auth = Auth::new(config(&fake)).unwrap();
    let app = start_app(&auth).await;
    let t = now();
    let older = token(&key, "carol", VIEWER, t - 100);
    let just_before = token(&key, "carol", VIEWER, t - 11);
    let at_not_before = token(&key, "carol", VIEWER, t - 10);
    let newer = token(&key, "carol", VIEWER, t);
    let someone_else = token(&key, "dave", VIEWER, t - 100);
    for tok in [&older, &just_before, &at_not_before, &newer, &someone_else] {
        assert_eq!(app.get("/v1/ledgers", tok).await, 200);
    }

    fake.publish(json!({"sub": "carol", "notBefore": t - 10, "expiresAt": t + 3600}));
    eventually(Duration::from_secs(2), "older token refused", || async {
        app.get("/v1/ledgers", &older).await == 401
    })
    .await;
    assert_eq!(app.get("/v1/ledgers", &just_before).await, 401);
    assert_eq!(app.get("/v1/ledgers", &at_not_before).await, 200);
    assert_eq!(app.get("/v1/ledgers", &newer).await, 200);
    assert_eq!(app.get("/v1/ledgers", &someone_else).await, 200);
    // A token first seen after the revocation (not from the cache) is refused as well.
    let fresh_but_old = token(&key, "carol", &["midaz-editor-role"], t - 50);
    assert_eq!(app.get("/v1/ledgers", &fresh_but_old).await, 401);
}

#[tokio::test]
async fn entries_are_forgotten_after_expires_at_and_the_cursor_is_sent_back() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    // No leeway, so that an entry is forgotten right at its expiresAt.
    let auth = Auth::new(config(&fake).leeway(Duration::ZERO)).unwrap();
    let app = start_app(&auth).await;
    // A token that outlives its revocation entry (a real server never publishes that), so
    // that forgetting the entry shows.
    let erin = token(&key, "erin", VIEWER, now());
    assert_eq!(app.get("/v1/ledgers", &erin).await, 200);
    let expires_at = now() + 2;
    fake.publish(json!({"sid": "sid-erin", "expiresAt": expires_at, "extra": {"ignored": 1}}));
    eventually(Duration::from_secs(2), "erin refused", || async {
        app.get("/v1/ledgers", &erin).await == 401
    })
    .await;
    assert_eq!(auth.revocation_count(), 1);

    eventually(Duration::from_secs(5), "entry forgotten", || async {
        auth.revocation_count() == 0
    })
    .await;
    assert!(now() >= expires_at);
    assert_eq!(app.get("/v1/ledgers", &erin).await, 200);

    // The cursor of each answer came back as `since`, URL-encoded and decoded intact.
    let requests = fake.feed_requests();
    assert_eq!(requests[0].0, None);
    let sinces: Vec<String> = requests.iter().filter_map(|(s, _)| s.clone()).collect();
    assert!(sinces.contains(&cursor_of(0)), "{sinces:?}");
    assert!(sinces.contains(&cursor_of(1)), "{sinces:?}");
    assert_eq!(sinces.last(), Some(&cursor_of(1)));
}

#[tokio::test]
async fn a_401_from_the_feed_renews_the_application_token() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    let auth = Auth::new(config(&fake)).unwrap();
    let app = start_app(&auth).await;
    eventually(Duration::from_secs(2), "first feed read", || async {
        !fake.feed_requests().is_empty()
    })
    .await;
    assert_eq!(fake.token_hits(), 1);

    // The Auth service stops accepting the application token (secret rotated, token revoked).
    fake.refuse_issued_tokens();
    eventually(
        Duration::from_secs(2),
        "a new application token",
        || async { fake.token_hits() >= 2 },
    )
    .await;
    eventually(Duration::from_secs(2), "the feed read with it", || async {
        fake.feed_requests()
            .iter()
            .any(|(_, a)| a.as_deref() == Some("Bearer app-token-2"))
    })
    .await;
    let ivan = token(&key, "ivan", VIEWER, now());
    assert_eq!(app.get("/v1/ledgers", &ivan).await, 200);
    fake.publish(json!({"sid": "sid-ivan", "expiresAt": now() + 3600}));
    eventually(Duration::from_secs(2), "ivan refused", || async {
        app.get("/v1/ledgers", &ivan).await == 401
    })
    .await;
    // Shared with the service's own outgoing calls.
    assert_eq!(auth.application_token().await.unwrap(), "app-token-2");
}

#[tokio::test]
async fn revocations_can_be_applied_in_code() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    // No client credentials: no feed, revocations come from the caller.
    let auth = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .host(fake.url.clone())
            .issuer(ISSUER),
    )
    .unwrap();
    let app = start_app(&auth).await;
    let t = now();
    let judy = token(&key, "judy", VIEWER, t - 5);
    let ken = token(&key, "ken", VIEWER, t - 5);
    assert_eq!(app.get("/v1/ledgers", &judy).await, 200);
    assert_eq!(app.get("/v1/ledgers", &ken).await, 200);
    assert!(auth.revoke_session("sid-judy", t + 3600));
    assert_eq!(app.get("/v1/ledgers", &judy).await, 401);
    assert!(auth.revoke_subject_before("ken", t, t + 3600));
    assert_eq!(app.get("/v1/ledgers", &ken).await, 401);
    assert_eq!(
        app.get("/v1/ledgers", &token(&key, "ken", VIEWER, t)).await,
        200
    );
    assert_eq!(auth.revocation_count(), 2);
    assert!(fake.feed_requests().is_empty());

    let remote = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .mode(Mode::Remote)
            .host(fake.url.clone()),
    )
    .unwrap();
    // Remote mode drops what it cached about the session's tokens.
    assert!(remote.revoke_session("sid-judy", t + 3600));
    assert_eq!(remote.revocation_count(), 1);
    assert!(
        !Auth::new(AuthConfig::default())
            .unwrap()
            .revoke_session("s", t + 60)
    );
}

#[tokio::test]
async fn the_poller_stops_when_the_last_auth_is_dropped() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    let auth = Auth::new(config(&fake)).unwrap();
    let clone = auth.clone();
    let layer = auth.authenticate();
    eventually(Duration::from_secs(2), "polling", || async {
        fake.feed_requests().len() >= 2
    })
    .await;
    drop(auth);
    drop(clone);
    tokio::time::sleep(POLL * 2).await;
    // The layer still holds a clone.
    let polled = fake.feed_requests().len();
    tokio::time::sleep(POLL * 3).await;
    assert!(fake.feed_requests().len() > polled);
    drop(layer);
    tokio::time::sleep(POLL * 2).await;
    let polled = fake.feed_requests().len();
    tokio::time::sleep(POLL * 5).await;
    assert_eq!(fake.feed_requests().len(), polled, "still polling");
}

#[test]
fn an_auth_built_outside_a_runtime_starts_polling_on_its_first_request() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = TestKey::rsa_a();
    let fake = runtime.block_on(FakeAuth::start(&key));
    // No runtime here: the task cannot be spawned yet.
    let auth = Auth::new(config(&fake)).unwrap();
    std::thread::sleep(POLL * 3);
    assert!(fake.feed_requests().is_empty());
    let auth = runtime.block_on(async move {
        let mut headers = http::HeaderMap::new();
        let tok = token(&key, "peggy", VIEWER, now());
        headers.insert("authorization", format!("Bearer {tok}").parse().unwrap());
        assert!(auth.authenticate_headers(&headers).await.is_ok());
        eventually(Duration::from_secs(2), "polling started", || async {
            fake.feed_requests().len() >= 2
        })
        .await;
        auth
    });
    drop(auth);
    drop(runtime);
}

// ---------------------------------------------------------------------------------------------
// Policy sync.

#[tokio::test]
async fn a_synced_policy_change_flips_the_decision_after_one_poll() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    fake.set_policy(MIDAZ_POLICY_JSON.to_owned());
    let auth = Auth::new(synced(&fake)).unwrap();
    let app = start_app(&auth).await;
    let viewer = token(&key, "mallory", VIEWER, now());
    eventually(Duration::from_secs(2), "policy loaded", || async {
        app.get("/v1/ledgers", &viewer).await == 200
    })
    .await;
    assert_eq!(app.post("/v1/ledgers", &viewer).await, 403);

    // The role gains post on ledgers on the server.
    fake.set_policy(viewer_policy("post"));
    let took = eventually(Duration::from_secs(2), "post allowed", || async {
        app.post("/v1/ledgers", &viewer).await == 200
    })
    .await;
    assert!(took < POLL * 8, "applied after {took:?}");
    let principal = Principal::from_claims(
        user_claims("mallory", VIEWER).as_object().cloned().unwrap(),
        &Default::default(),
    )
    .unwrap();
    assert!(
        auth.decide(&principal, "midaz", "ledgers", Action::Post)
            .is_some_and(|d| d.is_allowed())
    );
    assert!(auth.policy().is_some());

    // ETag honoured: each version is fetched once, then answered 304.
    tokio::time::sleep(POLL * 5).await;
    let (full, not_modified) = fake.policy_counts();
    assert_eq!(full, 2, "one full fetch per version");
    assert!(not_modified >= 4, "{not_modified} answers 304");
    let sent = fake.state.if_none_match.lock().unwrap().clone();
    assert_eq!(sent[0], None);
    assert_eq!(sent.last().unwrap().as_deref(), Some("\"v2\""));

    // And back.
    fake.set_policy(MIDAZ_POLICY_JSON.to_owned());
    eventually(Duration::from_secs(2), "post denied again", || async {
        app.post("/v1/ledgers", &viewer).await == 403
    })
    .await;
}

#[tokio::test]
async fn no_policy_yet_answers_503_and_authentication_still_works() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    // The server has no policy to give (503) for now.
    let auth = Auth::new(synced(&fake)).unwrap();
    let app = start_app(&auth).await;
    let viewer = token(&key, "olivia", VIEWER, now());
    tokio::time::sleep(POLL * 3).await;
    let r = app.send(reqwest::Method::GET, "/v1/ledgers", &viewer).await;
    assert_eq!(r.status, 503);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["code"], "AUT-0009");
    assert_eq!(app.get("/v1/me", &viewer).await, 200);
    assert!(auth.policy().is_none());
    assert!(
        auth.decide(
            &Principal::from_claims(
                user_claims("olivia", VIEWER).as_object().cloned().unwrap(),
                &Default::default(),
            )
            .unwrap(),
            "midaz",
            "ledgers",
            Action::Get
        )
        .is_none()
    );
    // A bad or missing token is still 401, not 503.
    assert_eq!(app.get("/v1/ledgers", "not-a-token").await, 401);

    fake.set_policy(MIDAZ_POLICY_JSON.to_owned());
    eventually(Duration::from_secs(2), "policy arrives", || async {
        app.get("/v1/ledgers", &viewer).await == 200
    })
    .await;
}

#[tokio::test]
async fn policy_from_the_server_without_credentials_is_a_config_error() {
    let base = AuthConfig::default()
        .enabled(true)
        .host("http://127.0.0.1:9")
        .policy(PolicySource::Server);
    let err = Auth::new(base.clone()).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Missing {
                variable: "PLUGIN_AUTH_CLIENT_ID",
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("PLUGIN_AUTH_CLIENT_ID") && text.contains("PLUGIN_AUTH_CLIENT_SECRET"),
        "{text}"
    );
    let err = Auth::new(base.client_id("svc")).unwrap_err().to_string();
    assert!(err.starts_with("PLUGIN_AUTH_CLIENT_SECRET"), "{err}");

    let env = |name: &str| match name {
        "PLUGIN_AUTH_ENABLED" => Some("true".to_owned()),
        "PLUGIN_AUTH_HOST" => Some("http://127.0.0.1:9".to_owned()),
        "PLUGIN_AUTH_POLICY" => Some("server".to_owned()),
        _ => None,
    };
    let err = AuthConfig::from_lookup(env).unwrap_err().to_string();
    assert!(err.contains("PLUGIN_AUTH_CLIENT_ID"), "{err}");
    let err = AuthConfig::from_lookup(|name| match name {
        "PLUGIN_AUTH_REVOCATION_POLL_INTERVAL" => Some("0".to_owned()),
        other => env(other),
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("PLUGIN_AUTH_REVOCATION_POLL_INTERVAL"),
        "{err}"
    );
}
