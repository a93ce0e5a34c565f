//! A restart over the same database keeps users, keys, sessions and revocations.

mod common;

use common::{ADMIN, ADMIN_PASSWORD, TestServer, decode_jwt};
use reqwest::StatusCode;

#[tokio::test]
async fn a_restart_keeps_users_keys_and_sessions() {
    let server = TestServer::start().await;
    server.create_user("dana", &["midaz-viewer-group"]).await;
    let (client_id, client_secret) = server.create_app("midaz", &["midaz-editor-role"]).await;
    let login = server.login_admin().await;
    let access = login["accessToken"].as_str().expect("access").to_owned();
    let refresh = login["refreshToken"].as_str().expect("refresh").to_owned();
    let (header, _) = decode_jwt(&access);
    let kid = header["kid"].as_str().expect("kid").to_owned();

    let server = server.restart().await;

    // The admin was not bootstrapped again: same password, same user.
    let again = server.login(ADMIN, ADMIN_PASSWORD).await;
    let (again_header, again_claims) = decode_jwt(again["accessToken"].as_str().expect("access"));
    let (_, claims) = decode_jwt(&access);
    assert_eq!(again_claims["sub"], claims["sub"]);
    // Same key.
    assert_eq!(again_header["kid"], kid.as_str());
    let jwks = server.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.body["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(jwks.body["keys"][0]["kid"], kid.as_str());
    // Old tokens and sessions still work.
    server.assert_token_accepted(&access).await;
    let refreshed = server.refresh(&refresh).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{refreshed:?}");
    // Users and applications made before the restart.
    server.login("dana", common::USER_PASSWORD).await;
    server.app_token(&client_id, &client_secret).await;
}

#[tokio::test]
async fn a_restart_keeps_logouts_and_used_refresh_tokens() {
    let server = TestServer::start().await;
    let ended = server.login_admin().await;
    let ended_access = ended["accessToken"].as_str().expect("access").to_owned();
    let logout = server
        .http
        .post(server.url("/v1/logout"))
        .bearer_auth(&ended_access)
        .send()
        .await
        .expect("logout sent");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let rotated = server.login_admin().await;
    let used = rotated["refreshToken"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let next = server.refresh(&used).await;
    assert_eq!(next.status, StatusCode::OK);
    let next_refresh = next.str("refreshToken").to_owned();

    let server = server.restart().await;

    server.assert_token_refused(&ended_access).await;
    // Reuse detection survives the restart: the used token ends the session.
    server
        .refresh(&used)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
    server
        .refresh(&next_refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
}

#[tokio::test]
async fn the_bootstrap_password_setting_is_ignored_once_users_exist() {
    let server = TestServer::start().await;
    let server = server
        .restart_with(|c| {
            c.admin_password = Some(lib_auth::Secret::new("another-password-entirely"));
        })
        .await;
    server.login(ADMIN, ADMIN_PASSWORD).await;
    let answer = server
        .token(&serde_json::json!({
            "grantType": "password",
            "username": ADMIN,
            "password": "another-password-entirely",
        }))
        .await;
    answer.assert_error(StatusCode::UNAUTHORIZED, "AUT-1002");
}
