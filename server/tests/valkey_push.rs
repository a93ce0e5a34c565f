//! Revocations pushed over Valkey pub/sub, against a real Redis-protocol server: the CI
//! machine's on 127.0.0.1:6379 (`LIB_AUTH_TEST_VALKEY_URL` to use another), each test under a
//! key prefix of its own; and, for the outage tests, a `redis-server` process of the test's
//! own, killed and restarted. Validators poll the feed only once a minute here, so a refusal
//! within a second can only have come by push, or by the poll run at once on resubscribing.

mod common;

use std::time::{Duration, Instant};

use common::valkey::{free_port, shared_valkey, start_redis, unique_prefix};
use common::{TestServer, bearer_headers};
use lib_auth::{Auth, AuthConfig, Mode, Secret};

/// A poll interval no test waits for.
const SLOW_POLL: Duration = Duration::from_secs(60);

async fn server_with(url: &str, prefix: &str) -> TestServer {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    TestServer::start_with(move |c| {
        c.valkey_url = Some(Secret::new(url));
        c.valkey_prefix = prefix;
    })
    .await
}

/// A validator of `server` in `mode`, subscribed to `url` under `prefix`, polling every `poll`.
async fn validator(
    server: &TestServer,
    mode: Mode,
    url: &str,
    prefix: &str,
    poll: Duration,
) -> Auth {
    let (client_id, client_secret) = server.create_app("midaz", &["midaz-viewer-role"]).await;
    Auth::new(
        AuthConfig::default()
            .enabled(true)
            .mode(mode)
            .host(server.base.clone())
            .issuer(server.config.issuer.clone())
            .client_id(client_id)
            .client_secret(client_secret)
            .revocation_poll_interval(poll)
            .valkey_url(url)
            .valkey_prefix(prefix.to_owned()),
    )
    .expect("validator")
}

async fn accepts(validator: &Auth, token: &str) -> bool {
    validator
        .authenticate_headers(&bearer_headers(token))
        .await
        .is_ok()
}

/// Polls until `validator` refuses `token`; how long it took, or `None` after `limit`.
async fn refused_within(validator: &Auth, token: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while accepts(validator, token).await {
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Some(start.elapsed())
}

async fn fresh_token(server: &TestServer) -> String {
    server.login_admin().await["accessToken"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// Starts the validator's background tasks with one check, then gives its subscription time
/// to be in place.
async fn settle(validator: &Auth, server: &TestServer) {
    let warm = fresh_token(server).await;
    assert!(accepts(validator, &warm).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_logout_is_pushed_to_local_and_remote_validators_within_a_second() {
    let (url, prefix) = (shared_valkey(), unique_prefix("push"));
    let server = server_with(&url, &prefix).await;
    for mode in [Mode::Local, Mode::Remote] {
        let validator = validator(&server, mode, &url, &prefix, SLOW_POLL).await;
        settle(&validator, &server).await;
        let token = fresh_token(&server).await;
        assert!(accepts(&validator, &token).await, "{mode:?}: a fresh token");
        server.logout(&token).await;
        let took = refused_within(&validator, &token, Duration::from_secs(1)).await;
        assert!(
            took.is_some(),
            "{mode:?}: the logout was not pushed within 1 s"
        );
    }
}

#[tokio::test]
async fn another_prefix_hears_nothing() {
    let url = shared_valkey();
    let server = server_with(&url, &unique_prefix("publisher")).await;
    let validator = validator(
        &server,
        Mode::Local,
        &url,
        &unique_prefix("listener"),
        SLOW_POLL,
    )
    .await;
    settle(&validator, &server).await;
    let token = fresh_token(&server).await;
    assert!(accepts(&validator, &token).await);
    server.logout(&token).await;
    assert!(
        refused_within(&validator, &token, Duration::from_millis(800))
            .await
            .is_none(),
        "a validator under another prefix must not apply this server's revocations"
    );
}

#[tokio::test]
async fn with_valkey_unreachable_the_server_serves_and_validators_fall_back_to_polling() {
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let prefix = unique_prefix("down");
    let server = server_with(&closed, &prefix).await;
    let poll = Duration::from_millis(300);
    let validator = validator(&server, Mode::Local, &closed, &prefix, poll).await;
    let token = fresh_token(&server).await;
    assert!(accepts(&validator, &token).await);
    server.logout(&token).await;
    let took = refused_within(&validator, &token, poll * 4).await;
    assert!(took.is_some(), "the poll did not take over from the push");
}

#[tokio::test]
async fn valkey_killed_and_restarted_mid_run_never_fails_open_and_pushes_again() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = unique_prefix("restart");
    let mut redis = start_redis(port);
    let server = server_with(&url, &prefix).await;
    let validator = validator(&server, Mode::Local, &url, &prefix, SLOW_POLL).await;
    settle(&validator, &server).await;

    let before = fresh_token(&server).await;
    assert!(accepts(&validator, &before).await);
    server.logout(&before).await;
    assert!(
        refused_within(&validator, &before, Duration::from_secs(1))
            .await
            .is_some()
    );

    redis.kill();
    // Valkey gone: the server still logs users in, the validator still serves them, and what
    // it knew to be revoked stays refused.
    let during = fresh_token(&server).await;
    assert!(
        accepts(&validator, &during).await,
        "service continues without Valkey"
    );
    assert!(!accepts(&validator, &before).await, "never fails open");
    // A logout while Valkey is down is published to nobody…
    server.logout(&during).await;

    let _redis = start_redis(port);
    // …and reaches the validator when it resubscribes and polls at once to catch up.
    assert!(
        refused_within(&validator, &during, Duration::from_secs(8))
            .await
            .is_some(),
        "the logout made during the outage was not caught up after Valkey came back"
    );
    // Pushes flow again.
    let after = fresh_token(&server).await;
    assert!(accepts(&validator, &after).await);
    server.logout(&after).await;
    assert!(
        refused_within(&validator, &after, Duration::from_secs(1))
            .await
            .is_some(),
        "no push after Valkey came back"
    );
}

#[tokio::test]
async fn two_server_replicas_share_the_login_throttle() {
    let (url, prefix) = (shared_valkey(), unique_prefix("throttle"));
    let a = server_with(&url, &prefix).await;
    let b = server_with(&url, &prefix).await;
    async fn wrong(server: &TestServer) -> common::Answer {
        server
            .token(&serde_json::json!({
                "grantType": "password",
                "username": common::ADMIN,
                "password": "not the password",
            }))
            .await
    }
    // Five failures spread over the two replicas: three on one, two on the other.
    for server in [&a, &a, &a, &b, &b] {
        wrong(server)
            .await
            .assert_error(reqwest::StatusCode::UNAUTHORIZED, "AUT-1002");
    }
    // Both replicas now refuse the username, the right password included, with Retry-After.
    for server in [&a, &b] {
        let answer = server
            .token(&serde_json::json!({
                "grantType": "password",
                "username": common::ADMIN,
                "password": common::ADMIN_PASSWORD,
            }))
            .await;
        assert_eq!(
            answer.status,
            reqwest::StatusCode::TOO_MANY_REQUESTS,
            "{answer:?}"
        );
        assert!(answer.header("retry-after").is_some(), "{answer:?}");
    }
    // Without the shared counters each replica would have seen fewer than five: a replica
    // under another prefix still logs the admin in.
    let alone = server_with(&url, &unique_prefix("alone")).await;
    alone.login_admin().await;
}

async fn wrong_password(server: &TestServer) -> common::Answer {
    server
        .token(&serde_json::json!({
            "grantType": "password",
            "username": common::ADMIN,
            "password": "not the password",
        }))
        .await
}

async fn right_password(server: &TestServer) -> common::Answer {
    server
        .token(&serde_json::json!({
            "grantType": "password",
            "username": common::ADMIN,
            "password": common::ADMIN_PASSWORD,
        }))
        .await
}

/// Was: the shared count went up only once a password had been checked, so 20 guesses sent at
/// once to two replicas got 10 checked (5 per replica, each one's local limit), and every one
/// of them that failed past the limit added a lock-out (the first lock lasted 120 s, not 60).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_on_two_replicas_get_no_more_checks_than_the_limit() {
    let (url, prefix) = (shared_valkey(), unique_prefix("parallel"));
    let a = std::sync::Arc::new(server_with(&url, &prefix).await);
    let b = std::sync::Arc::new(server_with(&url, &prefix).await);
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let server = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { wrong_password(&server).await.status })
        })
        .collect();
    let mut checked = 0;
    for guess in guesses {
        match guess.await.expect("task") {
            reqwest::StatusCode::UNAUTHORIZED => checked += 1,
            reqwest::StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(checked <= 5, "{checked} guesses checked, the limit is 5");
    for server in [&a, &b] {
        let answer = right_password(server).await;
        assert_eq!(
            answer.status,
            reqwest::StatusCode::TOO_MANY_REQUESTS,
            "{answer:?}"
        );
        let retry_after: u64 = answer
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!(
            retry_after <= 60,
            "first lock-out of {retry_after} s, the window is 60 s"
        );
    }
}

/// Was: a lock read from Valkey was believed however long: one set for ten years refused the
/// admin's right password with `Retry-After: 315360000`.
#[tokio::test]
async fn a_lock_read_from_valkey_never_exceeds_an_hour() {
    let (url, prefix) = (shared_valkey(), unique_prefix("long-lock"));
    let server = server_with(&url, &prefix).await;
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(format!("user:{}", common::ADMIN))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let client = redis::Client::open(url.as_str()).expect("url");
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("valkey");
    let () = redis::cmd("SET")
        .arg(format!("{prefix}:throttle:v1:lock:{digest}"))
        .arg(1)
        .arg("PX")
        .arg(10_u64 * 365 * 86_400 * 1000)
        .query_async(&mut raw)
        .await
        .expect("SET");
    let answer = right_password(&server).await;
    assert_eq!(
        answer.status,
        reqwest::StatusCode::TOO_MANY_REQUESTS,
        "{answer:?}"
    );
    let retry_after: u64 = answer
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry_after <= 3600, "Retry-After: {retry_after}");
}
