//! Refresh tokens: single use, rotated on every refresh, and a used one presented again ends
//! the whole session (SPEC §3), on both Lerian endpoints.

mod common;

use std::time::Duration;

use common::{Answer, TestServer, decode_jwt};
use reqwest::StatusCode;
use serde_json::json;

async fn refresh_by_grant_type(server: &TestServer, refresh_token: &str) -> Answer {
    server
        .token(&json!({"grantType": "refresh_token", "refreshToken": refresh_token}))
        .await
}

#[tokio::test]
async fn each_refresh_answers_a_new_refresh_token_in_the_same_session() {
    let server = TestServer::start().await;
    let login = server.login_admin().await;
    let first = login["refreshToken"].as_str().expect("refresh token");
    let (_, first_claims) = decode_jwt(login["accessToken"].as_str().expect("access"));

    // Through the refresh endpoint...
    let second = server.refresh(first).await;
    assert_eq!(second.status, StatusCode::OK, "{second:?}");
    assert_eq!(second.header("cache-control"), Some("no-store"));
    let second_refresh = second.str("refreshToken");
    assert_ne!(second_refresh, first);
    assert_eq!(second.body["tokenType"], "Bearer");
    assert!(second.body["idToken"].is_string());
    let (_, second_claims) = decode_jwt(second.str("accessToken"));
    assert_eq!(second_claims["sid"], first_claims["sid"]);
    assert_eq!(second_claims["sub"], first_claims["sub"]);
    assert_ne!(second_claims["jti"], first_claims["jti"]);
    server
        .assert_token_accepted(second.str("accessToken"))
        .await;

    // ...and through grantType on the token endpoint.
    let third = refresh_by_grant_type(&server, second_refresh).await;
    assert_eq!(third.status, StatusCode::OK, "{third:?}");
    assert_ne!(third.str("refreshToken"), second_refresh);
    let (_, third_claims) = decode_jwt(third.str("accessToken"));
    assert_eq!(third_claims["sid"], first_claims["sid"]);
    server.assert_token_accepted(third.str("accessToken")).await;
}

#[tokio::test]
async fn a_used_refresh_token_is_refused() {
    let server = TestServer::start().await;
    let login = server.login_admin().await;
    let first = login["refreshToken"].as_str().expect("refresh token");
    assert_eq!(server.refresh(first).await.status, StatusCode::OK);
    server
        .refresh(first)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
    refresh_by_grant_type(&server, first)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
}

#[tokio::test]
async fn used_refresh_token_revokes_the_whole_session() {
    let server = TestServer::start().await;
    let login = server.login_admin().await;
    let first_access = login["accessToken"].as_str().expect("access");
    let first_refresh = login["refreshToken"].as_str().expect("refresh");
    let rotated = server.refresh(first_refresh).await;
    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    let newest_access = rotated.str("accessToken");
    let newest_refresh = rotated.str("refreshToken");

    // A thief replays the first token: refused, and the session is over for everyone.
    server
        .refresh(first_refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
    server
        .refresh(newest_refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
    server.assert_token_refused(first_access).await;
    server.assert_token_refused(newest_access).await;

    // Another session of the same user is untouched.
    let other = server.login_admin().await;
    server
        .assert_token_accepted(other["accessToken"].as_str().expect("access"))
        .await;
}

#[tokio::test]
async fn concurrent_refreshes_have_one_winner_and_end_the_session() {
    let server = TestServer::start().await;
    let login = server.login_admin().await;
    let refresh = login["refreshToken"].as_str().expect("refresh");
    let (a, b) = tokio::join!(
        server.refresh(refresh),
        refresh_by_grant_type(&server, refresh)
    );
    let statuses = [a.status, b.status];
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "exactly one refresh wins: {a:?} {b:?}"
    );
    let (winner, loser) = if a.status == StatusCode::OK {
        (a, b)
    } else {
        (b, a)
    };
    loser.assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
    // The loser was a reuse: the family is revoked, the winner's tokens included.
    server
        .refresh(winner.str("refreshToken"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
    server.assert_token_refused(winner.str("accessToken")).await;
    server
        .assert_token_refused(login["accessToken"].as_str().expect("access"))
        .await;
}

#[tokio::test]
async fn unknown_or_missing_refresh_tokens_are_refused() {
    let server = TestServer::start().await;
    server
        .refresh("not-a-refresh-token")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
    server
        .post_json("/v1/login/oauth/refresh_token", &json!({}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-0001");
    server
        .post_json(
            "/v1/login/oauth/refresh_token",
            &json!({"refreshToken": 42}),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-0003");
    server
        .token(&json!({"grantType": "refresh_token"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-0001");
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let server = TestServer::start_with(|c| c.refresh_token_ttl = Duration::from_secs(1)).await;
    let login = server.login_admin().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    server
        .refresh(login["refreshToken"].as_str().expect("refresh"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope() {
    let server = TestServer::start().await;
    let login = server.login_admin().await;
    let answer = server
        .post_json(
            "/v1/login/oauth/refresh_token",
            &json!({"refreshToken": login["refreshToken"], "scope": "profile"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["scope"], "profile");
    assert!(answer.body.get("idToken").is_none(), "{answer:?}");
    let (_, claims) = decode_jwt(answer.str("accessToken"));
    assert_eq!(claims["scope"], "profile");
}

#[tokio::test]
async fn a_refresh_asking_for_a_wider_scope_is_refused_and_keeps_the_token_usable() {
    let server = TestServer::start().await;
    let login = server
        .token(&json!({
            "grantType": "password",
            "username": common::ADMIN,
            "password": common::ADMIN_PASSWORD,
            "scope": "openid profile",
        }))
        .await;
    assert_eq!(login.status, StatusCode::OK, "{login:?}");
    let refresh = login.str("refreshToken");
    server
        .post_json(
            "/v1/login/oauth/refresh_token",
            &json!({"refreshToken": refresh, "scope": "openid email"}),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-0014");
    // The refused request did not use the token up (nor end the session as a reuse would).
    let answer = server.refresh(refresh).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["scope"], "openid profile");
    server.assert_token_accepted(login.str("accessToken")).await;
}

#[tokio::test]
async fn client_fields_given_with_a_lerian_refresh_must_match_the_tokens_client() {
    let server = TestServer::start().await;
    let (other, _) = server.create_app("midaz", &["midaz-viewer-role"]).await;
    let login = server.login_admin().await;
    let refresh = login["refreshToken"].as_str().expect("refresh token");
    // Another client named without its secret, or a secret without a client: refused, and
    // the token is not used up.
    server
        .token(&json!({"grantType": "refresh_token", "refreshToken": refresh, "clientId": other}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
    server
        .token(&json!({"grantType": "refresh_token", "refreshToken": refresh, "clientSecret": "x"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-0001");
    // The token's own client named (the server's public client for a direct login) is fine.
    let answer = server
        .token(
            &json!({"grantType": "refresh_token", "refreshToken": refresh, "clientId": "lib-auth"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}
