//! lib-auth in local mode against the real server: it verifies the server's tokens from the
//! JWKS, and a logout at the server reaches it through the revocation feed within its poll
//! interval, although the token had been verified and cached before.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, bearer_headers};
use serde_json::json;

const POLL: Duration = Duration::from_millis(200);

/// A local-mode validator of `server` that polls its feed with an application's credentials.
async fn validator(server: &TestServer) -> lib_auth::Auth {
    let (client_id, client_secret) = server.create_app("midaz", &["midaz-viewer-role"]).await;
    lib_auth::Auth::new(
        lib_auth::AuthConfig::default()
            .enabled(true)
            .host(server.base.clone())
            .issuer(server.config.issuer.clone())
            .client_id(client_id)
            .client_secret(client_secret)
            .revocation_poll_interval(POLL),
    )
    .expect("local-mode validator")
}

/// Polls until `validator` refuses `token`; answers how long that took, or panics after 5 s.
async fn time_until_refused(validator: &lib_auth::Auth, token: &str) -> Duration {
    let start = Instant::now();
    while validator
        .authenticate_headers(&bearer_headers(token))
        .await
        .is_ok()
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the validator still takes the token 5 s after the logout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn a_logout_is_refused_by_a_local_validator_within_its_poll_interval() {
    let server = TestServer::start().await;
    let validator = validator(&server).await;
    let login = server.login_admin().await;
    let token = login["accessToken"].as_str().expect("access token");
    // Verified once, so later checks are answered from the cache of verified tokens.
    validator
        .authenticate_headers(&bearer_headers(token))
        .await
        .expect("the validator takes a fresh token");
    // Let the poller start and settle on a cursor before the logout.
    tokio::time::sleep(POLL * 2).await;

    server.logout(token).await;

    let took = time_until_refused(&validator, token).await;
    assert!(
        took <= POLL * 3,
        "refused {took:?} after the logout; the poll interval is {POLL:?}"
    );
    // Another session of the same user is not touched.
    let other = server.login_admin().await;
    validator
        .authenticate_headers(&bearer_headers(
            other["accessToken"].as_str().expect("access"),
        ))
        .await
        .expect("a new session is still valid");
}

#[tokio::test]
async fn a_used_refresh_token_ends_the_session_at_the_local_validator_too() {
    let server = TestServer::start().await;
    let validator = validator(&server).await;
    let login = server.login_admin().await;
    let first = login["refreshToken"].as_str().expect("refresh token");
    let refreshed = server.refresh(first).await;
    let access = refreshed.str("accessToken").to_owned();
    validator
        .authenticate_headers(&bearer_headers(&access))
        .await
        .expect("the refreshed token verifies");
    // Presenting the used token again revokes the whole family, the new access token included.
    let reuse = server
        .post_json(
            "/v1/login/oauth/refresh_token",
            &json!({"refreshToken": first}),
        )
        .await;
    assert_eq!(reuse.status, reqwest::StatusCode::BAD_REQUEST, "{reuse:?}");
    time_until_refused(&validator, &access).await;
}
