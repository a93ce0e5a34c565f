//! The revocation feed and policy sync: what they log (one WARN per outage, per invalid policy,
//! or for missing credentials; never a secret or token).
//!
//! A test binary of its own, in which every test captures its logs: `tracing` caches a
//! callsite's interest when the callsite is first hit, and with a single thread-local
//! subscriber alive it asks only the dispatcher of the thread hitting it — a test without a
//! subscriber on another thread would silence that callsite for the capturing test.

mod common;

use std::time::Duration;

use common::*;
use lib_auth::{Auth, AuthConfig, MIDAZ_POLICY_JSON};
use lib_auth_testkit::{ISSUER, TestKey, capture_logs, now};
use serde_json::json;

#[tokio::test]
async fn a_feed_that_goes_down_keeps_known_revocations_and_applies_new_ones_when_back() {
    let (logs, _guard) = capture_logs("lib_auth=debug");
    let key = TestKey::rsa_a();
    let mut fake = FakeAuth::start(&key).await;
    let auth = Auth::new(config(&fake)).unwrap();
    let app = start_app(&auth).await;
    let [a, b, c] = ["frank", "grace", "heidi"].map(|s| token(&key, s, VIEWER, now()));
    for tok in [&a, &b, &c] {
        assert_eq!(app.get("/v1/ledgers", tok).await, 200);
    }
    fake.publish(json!({"sid": "sid-frank", "expiresAt": now() + 3600}));
    eventually(Duration::from_secs(2), "frank refused", || async {
        app.get("/v1/ledgers", &a).await == 401
    })
    .await;

    // 503: what is known stays enforced; nothing new arrives; one WARN for the outage.
    fake.set_feed(Answer::Down);
    let failing_since = fake.feed_requests().len();
    fake.publish(json!({"sid": "sid-grace", "expiresAt": now() + 3600}));
    eventually(Duration::from_secs(3), "several failed polls", || async {
        fake.feed_requests().len() >= failing_since + 4
    })
    .await;
    assert_eq!(app.get("/v1/ledgers", &a).await, 401);
    assert_eq!(app.get("/v1/ledgers", &b).await, 200);
    let warnings = |text: &str| {
        text.lines()
            .filter(|l| l.contains("WARN") && l.contains("revocation feed failed"))
            .count()
    };
    assert_eq!(warnings(&logs.text()), 1, "{}", logs.text());

    fake.set_feed(Answer::Normal);
    eventually(
        Duration::from_secs(2),
        "grace refused once back",
        || async { app.get("/v1/ledgers", &b).await == 401 },
    )
    .await;
    assert!(logs.text().contains("answering again"));

    // Connection refused: the same.
    fake.stop().await;
    let refused_from = fake.feed_requests().len();
    tokio::time::sleep(POLL * 5).await;
    assert_eq!(fake.feed_requests().len(), refused_from, "the fake is down");
    assert_eq!(app.get("/v1/ledgers", &a).await, 401);
    assert_eq!(app.get("/v1/ledgers", &b).await, 401);
    assert_eq!(app.get("/v1/ledgers", &c).await, 200);
    fake.publish(json!({"sid": "sid-heidi", "expiresAt": now() + 3600}));
    fake.restart().await;
    eventually(
        Duration::from_secs(3),
        "heidi refused once back",
        || async { app.get("/v1/ledgers", &c).await == 401 },
    )
    .await;
    assert_eq!(warnings(&logs.text()), 2, "one WARN per outage");
    let text = logs.text();
    for secret in [SECRET, "app-token-1", &a[a.len() - 20..]] {
        assert!(!text.contains(secret), "{secret} logged");
    }
}

#[tokio::test]
async fn without_credentials_local_mode_warns_once_and_polls_nothing() {
    let (logs, _guard) = capture_logs("lib_auth=info");
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    let auth = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .host(fake.url.clone())
            .issuer(ISSUER)
            .revocation_poll_interval(POLL),
    )
    .unwrap();
    let app = start_app(&auth).await;
    let tok = token(&key, "leo", VIEWER, now());
    for _ in 0..3 {
        assert_eq!(app.get("/v1/ledgers", &tok).await, 200);
    }
    tokio::time::sleep(POLL * 3).await;
    assert!(fake.feed_requests().is_empty());
    assert_eq!(fake.token_hits(), 0);
    let text = logs.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains("PLUGIN_AUTH_CLIENT_ID")
            && warnings[0].contains("only take effect when the tokens expire"),
        "{text}"
    );
}

#[tokio::test]
async fn an_invalid_policy_document_keeps_the_previous_policy() {
    let (logs, _guard) = capture_logs("lib_auth=debug");
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    fake.set_policy(viewer_policy("post"));
    let auth = Auth::new(synced(&fake)).unwrap();
    let app = start_app(&auth).await;
    let viewer = token(&key, "niaj", VIEWER, now());
    eventually(Duration::from_secs(2), "policy loaded", || async {
        app.post("/v1/ledgers", &viewer).await == 200
    })
    .await;

    for invalid in [
        // A group granting a role that does not exist.
        MIDAZ_POLICY_JSON.replacen(
            "\"name\": \"admin-group\", \"roles\": [",
            "\"name\": \"admin-group\", \"roles\": [\"ghost-role\", ",
            1,
        ),
        "{\"version\":1,\"roles\":".to_owned(),
        "<html>oops</html>".to_owned(),
    ] {
        assert!(lib_auth::Policy::from_json(&invalid).is_err(), "{invalid}");
        let before = fake.policy_counts().0;
        fake.set_policy(invalid);
        eventually(
            Duration::from_secs(2),
            "the invalid document fetched",
            || async { fake.policy_counts().0 > before },
        )
        .await;
        tokio::time::sleep(POLL * 3).await;
        assert_eq!(
            app.post("/v1/ledgers", &viewer).await,
            200,
            "previous policy kept"
        );
    }
    let text = logs.text();
    let warnings = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("policy is invalid"))
        .count();
    assert_eq!(warnings, 3, "one WARN per invalid document:\n{text}");
    assert!(text.contains("ghost-role"), "the culprit is named:\n{text}");

    fake.set_policy(MIDAZ_POLICY_JSON.to_owned());
    eventually(
        Duration::from_secs(2),
        "a valid document applied",
        || async { app.post("/v1/ledgers", &viewer).await == 403 },
    )
    .await;
}
