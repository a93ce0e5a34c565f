//! Every error of Lerian's token endpoints (SPEC §4): its code, its status, the envelope.

mod common;

use common::{ADMIN, ADMIN_PASSWORD, Answer, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn token_endpoint_errors_have_their_codes_and_statuses() {
    let server = TestServer::start().await;
    let (client_id, _) = server.create_app("midaz", &["midaz-editor-role"]).await;
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        ("empty body", json!({}), StatusCode::BAD_REQUEST, "AUT-0001"),
        (
            "no username",
            json!({"grantType": "password", "password": "x"}),
            StatusCode::BAD_REQUEST,
            "AUT-0001",
        ),
        (
            "empty password",
            json!({"grantType": "password", "username": ADMIN, "password": ""}),
            StatusCode::BAD_REQUEST,
            "AUT-0001",
        ),
        (
            "number for a string",
            json!({"grantType": "password", "username": 12, "password": "x"}),
            StatusCode::BAD_REQUEST,
            "AUT-0003",
        ),
        (
            "array body",
            json!(["password"]),
            StatusCode::BAD_REQUEST,
            "AUT-0003",
        ),
        (
            "unknown grant",
            json!({"grantType": "authorization_code"}),
            StatusCode::BAD_REQUEST,
            "AUT-0013",
        ),
        (
            "unknown scope",
            json!({"grantType": "password", "username": ADMIN, "password": ADMIN_PASSWORD, "scope": "openid admin"}),
            StatusCode::BAD_REQUEST,
            "AUT-0014",
        ),
        (
            "bad client",
            json!({"grantType": "client_credentials", "clientId": client_id, "clientSecret": "wrong"}),
            StatusCode::UNAUTHORIZED,
            "AUT-1004",
        ),
        (
            "bad refresh token",
            json!({"grantType": "refresh_token", "refreshToken": "nope"}),
            StatusCode::BAD_REQUEST,
            "AUT-1005",
        ),
    ];
    for (name, body, status, code) in cases {
        let answer = server.token(&body).await;
        assert_eq!(answer.status, status, "{name}: {answer:?}");
        answer.assert_error(status, code);
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{name}");
    }
}

async fn raw_post(server: &TestServer, content_type: Option<&str>, body: &str) -> Answer {
    let mut request = server
        .http
        .post(server.url("/v1/login/oauth/access_token"))
        .body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    Answer::read(request.send().await.expect("sent")).await
}

#[tokio::test]
async fn unreadable_bodies_are_aut_0003() {
    let server = TestServer::start().await;
    for (content_type, body) in [
        (Some("application/json"), "{\"grantType\": \"password\""),
        (Some("application/json"), "not json"),
        (Some("text/plain"), "{\"grantType\":\"password\"}"),
        (None, "{\"grantType\":\"password\"}"),
    ] {
        raw_post(&server, content_type, body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "AUT-0003");
    }
    // Too large: refused without being read whole, still in the envelope.
    let huge = format!("{{\"grantType\":\"{}\"}}", "x".repeat(100_000));
    let answer = raw_post(&server, Some("application/json"), &huge).await;
    assert!(answer.status.is_client_error(), "{answer:?}");
    assert!(answer.body["code"].is_string(), "{answer:?}");
}

#[tokio::test]
async fn the_password_grant_can_be_disabled() {
    let server = TestServer::start_with(|c| c.password_grant_enabled = false).await;
    server
        .token(&json!({"grantType": "password", "username": ADMIN, "password": ADMIN_PASSWORD}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1001");
    server
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", ADMIN),
                ("password", ADMIN_PASSWORD),
            ],
            None,
        )
        .await
        .assert_oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client");
    // Applications still get tokens.
    let (id, secret) = server.create_app("midaz", &["midaz-editor-role"]).await;
    server.app_token(&id, &secret).await;
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_get_the_same_answer() {
    let server = TestServer::start().await;
    let wrong_password = server
        .token(&json!({"grantType": "password", "username": ADMIN, "password": "wrong password"}))
        .await;
    let unknown_user = server
        .token(
            &json!({"grantType": "password", "username": "nobody", "password": "wrong password"}),
        )
        .await;
    wrong_password.assert_error(StatusCode::UNAUTHORIZED, "AUT-1002");
    assert_eq!(unknown_user.status, wrong_password.status);
    assert_eq!(unknown_user.text, wrong_password.text);
    let headers = |a: &Answer| {
        let mut names: Vec<String> = a
            .headers
            .iter()
            .filter(|(name, _)| *name != "date")
            .map(|(name, value)| format!("{name}: {value:?}"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(headers(&unknown_user), headers(&wrong_password));
}
