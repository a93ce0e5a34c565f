//! lib-auth in remote mode against the real server: decisions are cached, and the revocation
//! feed drops the cached answers about a token whose session ended, within its poll interval.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, bearer_headers};

const POLL: Duration = Duration::from_millis(200);

fn remote_validator(server: &TestServer, credentials: Option<(String, String)>) -> lib_auth::Auth {
    let mut config = lib_auth::AuthConfig::default()
        .enabled(true)
        .mode(lib_auth::Mode::Remote)
        .host(server.base.clone())
        .revocation_poll_interval(POLL);
    if let Some((id, secret)) = credentials {
        config = config.client_id(id).client_secret(secret);
    }
    lib_auth::Auth::new(config).expect("remote-mode validator")
}

#[tokio::test]
async fn a_logout_drops_the_cached_answers_of_a_remote_validator_within_its_poll_interval() {
    let server = TestServer::start().await;
    let credentials = server.create_app("midaz", &["midaz-viewer-role"]).await;
    let validator = remote_validator(&server, Some(credentials));
    let without_feed = remote_validator(&server, None);
    let login = server.login_admin().await;
    let token = login["accessToken"].as_str().expect("access token");
    for auth in [&validator, &without_feed] {
        auth.authenticate_headers(&bearer_headers(token))
            .await
            .expect("a fresh token is taken (and its answer cached)");
    }
    tokio::time::sleep(POLL * 2).await;

    server.logout(token).await;

    let start = Instant::now();
    while validator
        .authenticate_headers(&bearer_headers(token))
        .await
        .is_ok()
    {
        assert!(
            start.elapsed() < POLL * 3,
            "the remote validator still answers from its cache {:?} after the logout",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Without the feed, the cached answer stands until PLUGIN_AUTH_CACHE_TTL (documented); the
    // Auth service itself refuses the token at once.
    assert!(
        without_feed
            .authenticate_headers(&bearer_headers(token))
            .await
            .is_ok()
    );
    without_feed.forget_token(token);
    assert!(
        without_feed
            .authenticate_headers(&bearer_headers(token))
            .await
            .is_err(),
        "asked afresh, the Auth service refuses the ended session"
    );
}

#[tokio::test]
async fn a_remote_validator_takes_valid_tokens_of_any_scope_and_pins_its_audience() {
    let server = TestServer::start().await;
    server.create_user("rhea", &["midaz-viewer-group"]).await;
    let answer = server
        .token(&serde_json::json!({
            "grantType": "password",
            "username": "rhea",
            "password": common::USER_PASSWORD,
            "scope": "offline_access",
        }))
        .await;
    let token = answer.str("accessToken");
    // Without `openid`, userinfo still says who the token is: remote mode's authentication
    // check takes the token.
    remote_validator(&server, None)
        .authenticate_headers(&bearer_headers(token))
        .await
        .expect("a valid token without openid");

    let pinned = |audience: &str| {
        lib_auth::Auth::new(
            lib_auth::AuthConfig::default()
                .enabled(true)
                .mode(lib_auth::Mode::Remote)
                .host(server.base.clone())
                .audience(audience),
        )
        .expect("remote validator")
    };
    pinned("midaz")
        .authenticate_headers(&bearer_headers(token))
        .await
        .expect("the server's audience");
    let refused = pinned("payments")
        .authenticate_headers(&bearer_headers(token))
        .await
        .expect_err("another audience is refused, as in local mode");
    assert!(refused.to_string().contains("audience"), "{refused}");
}
