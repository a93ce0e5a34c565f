//! Failed logins are throttled per username, per client id and per client address (SPEC §8):
//! 429 with `Retry-After`, before any password is checked.

mod common;

use std::time::Duration;

use common::{ADMIN, ADMIN_PASSWORD, Answer, TestServer, USER_PASSWORD};
use reqwest::StatusCode;
use serde_json::json;

async fn password_login(server: &TestServer, username: &str, password: &str) -> Answer {
    server
        .token(&json!({"grantType": "password", "username": username, "password": password}))
        .await
}

async fn fail_logins(server: &TestServer, username: &str, times: usize) {
    for attempt in 0..times {
        password_login(server, username, "wrong password")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "AUT-1002");
        let _ = attempt;
    }
}

fn assert_throttled(answer: &Answer) -> u64 {
    answer.assert_error(StatusCode::TOO_MANY_REQUESTS, "AUT-1006");
    answer
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds")
}

#[tokio::test]
async fn five_failed_passwords_lock_the_username_even_for_the_right_password() {
    let server = TestServer::start().await;
    fail_logins(&server, ADMIN, 5).await;
    let retry_after = assert_throttled(&password_login(&server, ADMIN, ADMIN_PASSWORD).await);
    assert!(
        (50..=60).contains(&retry_after),
        "the lock is the window: {retry_after}"
    );
    // Case does not escape the lock.
    assert_throttled(&password_login(&server, "ADMIN", ADMIN_PASSWORD).await);
    // The RFC endpoint shares the counters and answers 429 too.
    let answer = server
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", ADMIN),
                ("password", ADMIN_PASSWORD),
            ],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{answer:?}");
    assert!(answer.header("retry-after").is_some(), "{answer:?}");
}

#[tokio::test]
async fn another_username_from_the_same_address_still_logs_in() {
    let server = TestServer::start().await;
    server.create_user("bob", &["midaz-viewer-group"]).await;
    fail_logins(&server, ADMIN, 5).await;
    assert_throttled(&password_login(&server, ADMIN, ADMIN_PASSWORD).await);
    let answer = password_login(&server, "bob", USER_PASSWORD).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

#[tokio::test]
async fn an_address_failing_for_many_usernames_is_locked_at_its_own_limit() {
    let server = TestServer::start_with(|c| c.throttle_max_failures = 2).await;
    server.create_user("carol", &["midaz-viewer-group"]).await;
    // Spread over usernames so that no username reaches its own limit.
    let mut locked_after = None;
    for n in 0..200 {
        let answer = password_login(&server, &format!("guess{n}"), "wrong password").await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            locked_after = Some(n);
            break;
        }
        answer.assert_error(StatusCode::UNAUTHORIZED, "AUT-1002");
    }
    let locked_after = locked_after.expect("the address is locked eventually");
    assert!(
        locked_after > 2,
        "the address limit is above the username limit"
    );
    // Now even a right password from this address waits.
    assert_throttled(&password_login(&server, "carol", USER_PASSWORD).await);
}

#[tokio::test]
async fn failed_client_secrets_lock_the_client_id_against_guesses_only() {
    let server = TestServer::start().await;
    let (id, secret) = server.create_app("midaz", &["midaz-editor-role"]).await;
    let (other_id, other_secret) = server.create_app("routing", &["routing-editor-role"]).await;
    for _ in 0..5 {
        server
            .token(&json!({"grantType": "client_credentials", "clientId": id, "clientSecret": "wrong"}))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "AUT-1004");
    }
    // Further guesses are refused with 429 and Retry-After…
    let guess = server
        .token(&json!({"grantType": "client_credentials", "clientId": id, "clientSecret": "wrong"}))
        .await;
    assert_throttled(&guess);
    let basic = server
        .post_form(
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            Some((&id, "wrong")),
        )
        .await;
    assert_eq!(basic.status, StatusCode::TOO_MANY_REQUESTS, "{basic:?}");
    assert!(basic.header("retry-after").is_some());
    // …but the right secret still works: a 256-bit secret is never guessed, so whoever knows
    // a client id cannot lock the client (a validator's revocation feed, say) out.
    server.app_token(&id, &secret).await;
    let basic = server
        .post_form(
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(basic.status, StatusCode::OK, "{basic:?}");
    // Another client from the same address is not locked.
    server.app_token(&other_id, &other_secret).await;
}

#[tokio::test]
async fn a_lock_ends_with_the_window() {
    let server = TestServer::start_with(|c| c.throttle_window = Duration::from_secs(1)).await;
    fail_logins(&server, ADMIN, 5).await;
    assert_throttled(&password_login(&server, ADMIN, ADMIN_PASSWORD).await);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let answer = password_login(&server, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

#[tokio::test]
async fn a_success_resets_the_count_of_the_username() {
    let server = TestServer::start().await;
    fail_logins(&server, ADMIN, 4).await;
    server.login_admin().await;
    fail_logins(&server, ADMIN, 4).await;
    server.login_admin().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guesses_sent_in_parallel_are_checked_no_more_than_the_limit() {
    // Found by an attack run: 40 parallel guesses were all checked (and the right password,
    // sent among them, got in) because failures were counted only after each check.
    let server = TestServer::start().await;
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let password = if n == 30 {
                ADMIN_PASSWORD.to_owned()
            } else {
                format!("guess {n}")
            };
            let request = server
                .http
                .post(server.url("/v1/login/oauth/access_token"))
                .json(&json!({"grantType": "password", "username": ADMIN, "password": password}));
            tokio::spawn(async move { request.send().await.expect("sent").status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED || **s == StatusCode::OK)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        checked <= 5,
        "{checked} of 40 guesses were checked: {statuses:?}"
    );
    assert_eq!(checked + throttled, 40, "{statuses:?}");
}
