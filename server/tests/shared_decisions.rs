//! Remote mode's shared decision cache against the real server and a real Redis-protocol
//! server (the CI machine's on 127.0.0.1:6379 under a prefix per test, or one of the test's own
//! to kill): what one validator learnt from the Auth service, another answers from Valkey.
//!
//! "Answered from Valkey" is proved by stopping the Auth service first: a validator that had
//! to ask it would answer 503.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::valkey::{free_port, shared_valkey, start_redis, unique_prefix};
use common::{TestServer, USER_PASSWORD, bearer_headers};
use lib_auth::{Action, Auth, AuthConfig, Mode};
use tower::{Layer, ServiceExt, service_fn};

const SECRET: &str = "a-decision-secret-of-32-bytes-at-least!";

/// A remote-mode validator of `server` sharing decisions in `url` under `prefix`, signed with
/// `secret`. With a secret it has client credentials, which sharing requires, and so the
/// revocation feed (polled once a minute; pushes when the server publishes to `url`).
async fn validator(server: &TestServer, url: &str, prefix: &str, secret: Option<&str>) -> Auth {
    let mut config = AuthConfig::default()
        .enabled(true)
        .mode(Mode::Remote)
        .host(server.base.clone())
        .valkey_url(url)
        .valkey_prefix(prefix.to_owned())
        .revocation_poll_interval(Duration::from_secs(60));
    if let Some(secret) = secret {
        let (id, app_secret) = server.create_app("midaz", &["midaz-viewer-role"]).await;
        config = config
            .valkey_decision_secret(secret)
            .client_id(id)
            .client_secret(app_secret);
    }
    Auth::new(config).expect("remote-mode validator")
}

/// Waits until `auth` has read its revocation feed to the end: from then on it reads shared
/// answers (before, it may not know of a logout older than the answer).
async fn feed_read(auth: &Auth) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while auth.revocation_feed_current() != Some(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "the revocation feed was not read within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The status of a request needing `action` on `midaz/ledgers` through `auth`'s layer.
async fn status(auth: &Auth, token: &str, action: Action) -> StatusCode {
    let inner = service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(axum::http::Response::new(Body::empty()))
    });
    let service = auth.require("midaz", "ledgers", action).layer(inner);
    let request = Request::builder()
        .uri("/v1/ledgers")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    service.oneshot(request).await.expect("infallible").status()
}

/// A token of a user in `midaz-viewer-group`: ledgers may be read (get), not created (post).
async fn viewer_token(server: &TestServer, name: &str) -> String {
    server.create_user(name, &["midaz-viewer-group"]).await;
    server.login(name, USER_PASSWORD).await["accessToken"]
        .as_str()
        .expect("access token")
        .to_owned()
}

#[tokio::test]
async fn one_validators_answers_are_served_to_another_from_valkey() {
    let (url, prefix) = (shared_valkey(), unique_prefix("decisions"));
    let server = TestServer::start().await;
    let a = validator(&server, &url, &prefix, Some(SECRET)).await;
    let b = validator(&server, &url, &prefix, Some(SECRET)).await;
    let other_secret = validator(
        &server,
        &url,
        &prefix,
        Some("another-secret-of-32-bytes-at-least!!"),
    )
    .await;
    let no_secret = validator(&server, &url, &prefix, None).await;
    let token = viewer_token(&server, "vera").await;
    assert_eq!(status(&a, &token, Action::Get).await, StatusCode::OK);
    assert_eq!(
        status(&a, &token, Action::Post).await,
        StatusCode::FORBIDDEN
    );
    for auth in [&b, &other_secret] {
        feed_read(auth).await;
    }

    let _ = server.stop().await;

    // B never asked the (now stopped) Auth service: both answers, and the token's validity
    // (vouched for by the 200), come from what A stored.
    assert_eq!(status(&b, &token, Action::Get).await, StatusCode::OK);
    assert_eq!(
        status(&b, &token, Action::Post).await,
        StatusCode::FORBIDDEN
    );
    assert!(
        b.authenticate_headers(&bearer_headers(&token))
            .await
            .is_ok()
    );
    // Nothing is made up: a question A never asked needs the service.
    assert_eq!(
        status(&b, &token, Action::Delete).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Validators without the secret (or with another) do not believe A's entries.
    for stranger in [&other_secret, &no_secret] {
        assert_eq!(
            status(stranger, &token, Action::Get).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}

/// The values under `prefix`'s decision keys, straight from Valkey.
async fn decision_entries(url: &str, prefix: &str) -> Vec<(String, String)> {
    let client = redis::Client::open(url).expect("valkey url");
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("valkey");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:decisions:v1:*"))
        .query_async(&mut raw)
        .await
        .expect("KEYS");
    let mut entries = Vec::new();
    for key in keys {
        let value: String = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut raw)
            .await
            .expect("GET");
        entries.push((key, value));
    }
    entries
}

async fn overwrite(url: &str, key: &str, value: &str) {
    let client = redis::Client::open(url).expect("valkey url");
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("valkey");
    let () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut raw)
        .await
        .expect("SET");
}

#[tokio::test]
async fn an_entry_forged_in_valkey_never_admits() {
    let (url, prefix) = (shared_valkey(), unique_prefix("forged"));
    let server = TestServer::start().await;
    let a = validator(&server, &url, &prefix, Some(SECRET)).await;
    let token = viewer_token(&server, "faye").await;
    assert_eq!(
        status(&a, &token, Action::Post).await,
        StatusCode::FORBIDDEN
    );
    let entries = decision_entries(&url, &prefix).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let (key, value) = &entries[0];
    assert!(value.starts_with("v1."), "a versioned value: {value}");
    assert!(
        !value.contains(&token) && !key.contains(&token),
        "the token is not stored"
    );

    // Whoever can write to Valkey turns the refusal into an allowance, keeping the old
    // signature, or with a signature made up: B asks the service, which refuses.
    let flipped = value.replace("\"allowed\":false", "\"allowed\":true");
    assert_ne!(&flipped, value);
    let (_, json) = flipped.split_at(flipped.find('{').expect("json"));
    for forged in [flipped.clone(), format!("v1.AAAA.{json}"), json.to_owned()] {
        overwrite(&url, key, &forged).await;
        // A validator of its own each time: nothing in its memory, so it reads the entry.
        let b = validator(&server, &url, &prefix, Some(SECRET)).await;
        feed_read(&b).await;
        assert_eq!(
            status(&b, &token, Action::Post).await,
            StatusCode::FORBIDDEN,
            "believed {forged}"
        );
    }
}

#[tokio::test]
async fn a_revoked_token_is_refused_though_valkey_still_holds_its_answer() {
    let (url, prefix) = (shared_valkey(), unique_prefix("revoked"));
    // The server publishes revocations there too.
    let server = {
        let (url, prefix) = (url.clone(), prefix.clone());
        TestServer::start_with(move |c| {
            c.valkey_url = Some(lib_auth::Secret::new(url));
            c.valkey_prefix = prefix;
        })
        .await
    };
    let a = validator(&server, &url, &prefix, Some(SECRET)).await;
    let b = validator(&server, &url, &prefix, Some(SECRET)).await;
    // B's feed and push subscription start with its first check.
    let warm = viewer_token(&server, "walt").await;
    assert_eq!(status(&b, &warm, Action::Get).await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;

    feed_read(&b).await;

    let token = viewer_token(&server, "rose").await;
    assert_eq!(status(&a, &token, Action::Get).await, StatusCode::OK);
    server.logout(&token).await;
    // B learns of the logout by push…
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while b.revocation_count() == 0 {
        assert!(std::time::Instant::now() < deadline, "no push within 1 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // …while the entry A wrote still says "allowed": B refuses the token all the same.
    assert_eq!(
        decision_entries(&url, &prefix).await.len(),
        2,
        "A's entry stands"
    );
    assert_eq!(
        status(&b, &token, Action::Get).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn valkey_lost_and_back_service_continues_and_sharing_resumes() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = unique_prefix("lost");
    let mut redis = start_redis(port);
    let server = TestServer::start().await;
    let a = validator(&server, &url, &prefix, Some(SECRET)).await;
    let b = validator(&server, &url, &prefix, Some(SECRET)).await;

    redis.kill();
    // Without Valkey both ask the service: right answers, no failure.
    let during = viewer_token(&server, "dana").await;
    for auth in [&a, &b] {
        assert_eq!(status(auth, &during, Action::Get).await, StatusCode::OK);
        assert_eq!(
            status(auth, &during, Action::Post).await,
            StatusCode::FORBIDDEN
        );
    }

    let _redis = start_redis(port);
    // Past the store's pause after its failures, A's next answer is shared again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = viewer_token(&server, "ada").await;
    assert_eq!(status(&a, &after, Action::Get).await, StatusCode::OK);
    feed_read(&b).await;
    let _ = server.stop().await;
    assert_eq!(
        status(&b, &after, Action::Get).await,
        StatusCode::OK,
        "B did not get A's answer from Valkey after it came back"
    );
}

/// Was: `forget_token` dropped only the in-process answer; the shared entry, deleted in the
/// background (or not at all without a runtime), answered the very next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_token_is_checked_from_scratch_whatever_valkey_still_holds() {
    let (url, prefix) = (shared_valkey(), unique_prefix("forget"));
    let server = TestServer::start().await;
    // The server publishes nothing and the feed is polled once a minute: only `forget_token`
    // tells this validator of the logout.
    let auth = validator(&server, &url, &prefix, Some(SECRET)).await;
    for from_another_thread in [false, true] {
        let token = viewer_token(&server, if from_another_thread { "tom" } else { "tia" }).await;
        assert_eq!(status(&auth, &token, Action::Get).await, StatusCode::OK);
        assert_eq!(decision_entries(&url, &prefix).await.len(), 1);
        server.logout(&token).await;
        if from_another_thread {
            // A thread with no Tokio runtime: nothing can be deleted in Valkey from there.
            let (auth, token) = (auth.clone(), token.clone());
            std::thread::spawn(move || auth.forget_token(&token))
                .join()
                .expect("thread");
        } else {
            auth.forget_token(&token);
        }
        assert_eq!(
            status(&auth, &token, Action::Get).await,
            StatusCode::UNAUTHORIZED
        );
        // The service's 401 deleted the entry.
        assert_eq!(decision_entries(&url, &prefix).await.len(), 0);
    }
}

/// A store whose reads take 250 ms (within Valkey's deadline) and whose deletes never land.
#[derive(Debug)]
struct SlowReads(lib_auth::LocalStore);

impl lib_auth::Store for SlowReads {
    fn get<'a>(&'a self, key: &'a str) -> lib_auth::StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            self.0.get(key).await
        })
    }
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> lib_auth::StoreFuture<'a, ()> {
        self.0.set(key, value, ttl)
    }
    fn delete<'a>(&'a self, _key: &'a str) -> lib_auth::StoreFuture<'a, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn add<'a>(
        &'a self,
        key: &'a str,
        amount: i64,
        ttl: Duration,
    ) -> lib_auth::StoreFuture<'a, i64> {
        self.0.add(key, amount, ttl)
    }
    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> lib_auth::StoreFuture<'a, ()> {
        self.0.expire(key, ttl)
    }
    fn remaining<'a>(&'a self, key: &'a str) -> lib_auth::StoreFuture<'a, Option<Duration>> {
        self.0.remaining(key)
    }
}

/// Was: a read of the shared entry in flight when `forget_token` was called brought the entry
/// back into the in-process cache, which then answered for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_in_flight_does_not_undo_forget_token() {
    let server = TestServer::start().await;
    let store = lib_auth::LocalStore::new("forget-in-flight", 1000);
    let with_store = |store: Arc<dyn lib_auth::Store>| {
        let server = &server;
        async move {
            let (id, secret) = server.create_app("midaz", &["midaz-viewer-role"]).await;
            Auth::new(
                AuthConfig::default()
                    .enabled(true)
                    .mode(Mode::Remote)
                    .host(server.base.clone())
                    .client_id(id)
                    .client_secret(secret)
                    .revocation_poll_interval(Duration::from_secs(60))
                    .valkey_decision_secret(SECRET)
                    .decision_store(store),
            )
            .expect("validator")
        }
    };
    let slow = with_store(Arc::new(SlowReads(store.clone()))).await;
    let writer = with_store(Arc::new(store)).await;
    let token = viewer_token(&server, "flo").await;
    assert_eq!(status(&writer, &token, Action::Get).await, StatusCode::OK);
    feed_read(&slow).await;
    let in_flight = {
        let (slow, token) = (slow.clone(), token.clone());
        tokio::spawn(async move { status(&slow, &token, Action::Get).await })
    };
    tokio::time::sleep(Duration::from_millis(80)).await;
    slow.forget_token(&token);
    let _ = server.stop().await;
    // The read in flight finds the entry (its delete never landed), but it was read for a
    // question asked before the forget: not taken, and the stopped service cannot answer.
    assert_eq!(
        in_flight.await.expect("task"),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        status(&slow, &token, Action::Get).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// Was: a validator whose revocation feed had not been read yet (it had just started, say
/// while the Auth service was down: the very case sharing is for) took a logged-out token's
/// answer, stored before the logout, and admitted the token for as long as the entry lived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_that_has_not_read_the_feed_takes_no_shared_answer() {
    let (url, prefix) = (shared_valkey(), unique_prefix("unread"));
    let server = {
        let (url, prefix) = (url.clone(), prefix.clone());
        TestServer::start_with(move |c| {
            c.valkey_url = Some(lib_auth::Secret::new(url));
            c.valkey_prefix = prefix;
        })
        .await
    };
    let a = validator(&server, &url, &prefix, Some(SECRET)).await;
    let token = viewer_token(&server, "lou").await;
    assert_eq!(status(&a, &token, Action::Get).await, StatusCode::OK);
    server.logout(&token).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while a.revocation_count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "A never learnt of the logout"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        decision_entries(&url, &prefix).await.len(),
        1,
        "A's entry stands"
    );

    // Started with the service up, it asks the service, which refuses the token.
    let fresh = validator(&server, &url, &prefix, Some(SECRET)).await;
    assert_eq!(
        status(&fresh, &token, Action::Get).await,
        StatusCode::UNAUTHORIZED
    );
    // Started while the service is down: it cannot know of the logout, so it cannot answer.
    let (id, secret) = server.create_app("midaz", &["midaz-viewer-role"]).await;
    let base = server.base.clone();
    let _ = server.stop().await;
    let restarted = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .mode(Mode::Remote)
            .host(base)
            .valkey_url(url.as_str())
            .valkey_prefix(prefix.clone())
            .revocation_poll_interval(Duration::from_millis(100))
            .valkey_decision_secret(SECRET)
            .client_id(id)
            .client_secret(secret),
    )
    .expect("validator");
    for _ in 0..5 {
        assert_eq!(
            status(&restarted, &token, Action::Get).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(restarted.revocation_feed_current(), Some(false));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A validator whose credentials the Auth service refuses (its application rotated or
/// deleted) no longer hears of revocations: from then on it reads no shared answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_whose_credentials_are_refused_stops_reading_shared_answers() {
    let (url, prefix) = (shared_valkey(), unique_prefix("refused"));
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let created = server
        .identity_call(
            "POST",
            "/v1/applications",
            Some(&admin),
            Some(&serde_json::json!({"name": "midaz", "description": "", "roles": ["midaz-viewer-role"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let b = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .mode(Mode::Remote)
            .host(server.base.clone())
            .valkey_url(url.as_str())
            .valkey_prefix(prefix.clone())
            .revocation_poll_interval(Duration::from_millis(100))
            .valkey_decision_secret(SECRET)
            .client_id(created.str("clientId").to_owned())
            .client_secret(created.str("clientSecret").to_owned()),
    )
    .expect("validator");
    feed_read(&b).await;
    let a = validator(&server, &url, &prefix, Some(SECRET)).await;

    let deleted = server
        .identity_call(
            "DELETE",
            &format!("/v1/applications/{}", created.str("id")),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while b.revocation_feed_current() != Some(false) {
        assert!(
            std::time::Instant::now() < deadline,
            "the refused feed went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let token = viewer_token(&server, "ivy").await;
    assert_eq!(status(&a, &token, Action::Get).await, StatusCode::OK);
    let _ = server.stop().await;
    assert_eq!(
        status(&b, &token, Action::Get).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
