//! The exact requests Lerian's Go lib-auth v2 sends, byte for byte, and the answers it parses:
//! a service written against Lerian's Access Manager works unchanged (SPEC goal 1, §8).

mod common;

use common::{Answer, TestServer};
use reqwest::StatusCode;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the Go library unmarshals the answer into.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizeResponse {
    authorized: bool,
    timestamp: String,
}

/// The Go client's request: raw token in `Authorization` (no scheme), JSON body as written.
async fn go_check(server: &TestServer, raw_token: &str, body: &str) -> AuthorizeResponse {
    let response = server
        .http
        .post(server.url("/v1/authorize"))
        .header("Content-Type", "application/json")
        .header("Authorization", raw_token)
        .body(body.to_owned())
        .send()
        .await
        .expect("check sent");
    let answer = Answer::read(response).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(
        answer
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json"))
    );
    let parsed: AuthorizeResponse = serde_json::from_str(&answer.text).expect("Go's shape");
    OffsetDateTime::parse(&parsed.timestamp, &Rfc3339).expect("RFC 3339 timestamp");
    parsed
}

/// The console's login: the raw JSON body Lerian's clients post.
async fn go_login(server: &TestServer, username: &str, password: &str) -> String {
    let body =
        format!(r#"{{"grantType":"password","username":"{username}","password":"{password}"}}"#);
    let response = server
        .http
        .post(server.url("/v1/login/oauth/access_token"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("login sent");
    let answer = Answer::read(response).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    for field in [
        "accessToken",
        "tokenType",
        "expiresIn",
        "refreshToken",
        "idToken",
        "scope",
    ] {
        assert!(answer.body.get(field).is_some(), "{field}: {answer:?}");
    }
    answer.str("accessToken").to_owned()
}

async fn go_app_token(server: &TestServer, client_id: &str, secret: &str) -> String {
    let body = format!(
        r#"{{"grantType":"client_credentials","clientId":"{client_id}","clientSecret":"{secret}"}}"#
    );
    let response = server
        .http
        .post(server.url("/v1/login/oauth/access_token"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("token sent");
    let answer = Answer::read(response).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.str("accessToken").to_owned()
}

#[tokio::test]
async fn the_go_user_check_is_answered_from_the_users_groups() {
    let server = TestServer::start().await;
    server.create_user("maria", &["midaz-viewer-group"]).await;
    let token = go_login(&server, "maria", common::USER_PASSWORD).await;
    let get = go_check(
        &server,
        &token,
        r#"{"sub":"lerian/maria","resource":"ledgers","action":"get","product":"midaz"}"#,
    )
    .await;
    assert!(get.authorized);
    let post = go_check(
        &server,
        &token,
        r#"{"sub":"lerian/maria","resource":"ledgers","action":"post","product":"midaz"}"#,
    )
    .await;
    assert!(!post.authorized);
}

#[tokio::test]
async fn the_go_user_check_of_the_admin_is_authorized() {
    let server = TestServer::start().await;
    let token = go_login(&server, common::ADMIN, common::ADMIN_PASSWORD).await;
    for action in ["get", "post", "patch", "delete"] {
        let body = format!(
            r#"{{"sub":"lerian/admin","resource":"transactions","action":"{action}","product":"midaz"}}"#
        );
        assert!(
            go_check(&server, &token, &body).await.authorized,
            "{action}"
        );
    }
}

#[tokio::test]
async fn the_go_m2m_check_uses_the_applications_own_roles() {
    let server = TestServer::start().await;
    let (editor_id, editor_secret) = server.create_app("midaz", &["midaz-editor-role"]).await;
    let (viewer_id, viewer_secret) = server.create_app("midaz", &["midaz-viewer-role"]).await;
    let editor = go_app_token(&server, &editor_id, &editor_secret).await;
    let viewer = go_app_token(&server, &viewer_id, &viewer_secret).await;
    let post = r#"{"sub":"admin/midaz-editor-role","resource":"ledgers","action":"post"}"#;
    let get = r#"{"sub":"admin/midaz-editor-role","resource":"ledgers","action":"get"}"#;
    assert!(go_check(&server, &editor, post).await.authorized);
    // The body names the editor role; the viewer application still holds only its own.
    assert!(!go_check(&server, &viewer, post).await.authorized);
    assert!(go_check(&server, &viewer, get).await.authorized);
    // The role names the product: routing has no ledgers, and the app no routing role.
    let routing =
        r#"{"sub":"admin/routing-editor-role","resource":"account-types","action":"get"}"#;
    assert!(!go_check(&server, &editor, routing).await.authorized);
}

#[tokio::test]
async fn the_go_check_with_a_bad_token_answers_the_lerian_envelope() {
    let server = TestServer::start().await;
    let response = server
        .http
        .post(server.url("/v1/authorize"))
        .header("Content-Type", "application/json")
        .header("Authorization", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
        .body(r#"{"sub":"lerian/x","resource":"ledgers","action":"get","product":"midaz"}"#)
        .send()
        .await
        .expect("sent");
    Answer::read(response)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "AUT-0007");
}
