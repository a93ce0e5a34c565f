//! `POST /v1/authorize` (SPEC §4, §8): decided from the verified token, never from the body.

mod common;

use common::{Answer, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A server with a viewer of midaz, logged in; answers the server, the viewer's token and id.
async fn viewer() -> (TestServer, String, String) {
    let server = TestServer::start().await;
    let id = server.create_user("viewer", &["midaz-viewer-group"]).await;
    let login = server.login("viewer", common::USER_PASSWORD).await;
    let token = login["accessToken"].as_str().expect("access").to_owned();
    (server, token, id)
}

fn ledgers(action: &str) -> Value {
    json!({"resource": "ledgers", "action": action, "product": "midaz"})
}

/// The decision of a 200 answer, after checking its shape.
fn authorized(answer: &Answer) -> bool {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let timestamp = answer.str("timestamp");
    OffsetDateTime::parse(timestamp, &Rfc3339).expect("timestamp is RFC 3339");
    assert_eq!(
        answer.body.as_object().map(|o| o.len()),
        Some(2),
        "only authorized and timestamp: {answer:?}"
    );
    answer.body["authorized"]
        .as_bool()
        .expect("authorized is a bool")
}

#[tokio::test]
async fn a_viewer_may_get_but_not_post_ledgers() {
    let (server, token, _) = viewer().await;
    let bearer = format!("Bearer {token}");
    assert!(authorized(
        &server.authorize_with(Some(&bearer), &ledgers("get")).await
    ));
    assert!(authorized(
        &server.authorize_with(Some(&bearer), &ledgers("head")).await
    ));
    assert!(!authorized(
        &server.authorize_with(Some(&bearer), &ledgers("post")).await
    ));
    assert!(!authorized(
        &server
            .authorize_with(Some(&bearer), &ledgers("delete"))
            .await
    ));
    // Not a Midaz right at all.
    let fees = json!({"resource": "fees", "action": "get", "product": "plugin-fees"});
    assert!(!authorized(
        &server.authorize_with(Some(&bearer), &fees).await
    ));
    // Every user may change their own password.
    let own_password =
        json!({"resource": "update-password", "action": "patch", "product": "plugin-identity"});
    assert!(authorized(
        &server.authorize_with(Some(&bearer), &own_password).await
    ));
}

#[tokio::test]
async fn the_token_is_taken_with_or_without_the_bearer_scheme() {
    let (server, token, _) = viewer().await;
    for authorization in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        token.clone(),
    ] {
        let answer = server
            .authorize_with(Some(&authorization), &ledgers("get"))
            .await;
        assert!(authorized(&answer), "{authorization:.12}");
    }
}

#[tokio::test]
async fn a_body_sub_naming_someone_else_is_denied() {
    let (server, token, id) = viewer().await;
    let bearer = format!("Bearer {token}");
    let with_sub =
        |sub: &str| json!({"sub": sub, "resource": "ledgers", "action": "get", "product": "midaz"});
    // The caller, by `sub` claim or Lerian's `<owner>/<username>`.
    for sub in [id.as_str(), "lerian/viewer"] {
        let answer = server.authorize_with(Some(&bearer), &with_sub(sub)).await;
        assert!(authorized(&answer), "{sub}");
    }
    // Anyone else, even someone with more rights.
    for sub in [
        "lerian/admin",
        "other-org/viewer",
        "admin/midaz-editor-role",
        "someone",
    ] {
        let answer = server.authorize_with(Some(&bearer), &with_sub(sub)).await;
        assert!(!authorized(&answer), "{sub}");
    }
}

#[tokio::test]
async fn a_body_sub_cannot_lend_rights_the_token_lacks() {
    let (server, token, _) = viewer().await;
    // The admin's name in the body does not make a viewer an editor.
    let body =
        json!({"sub": "lerian/admin", "resource": "ledgers", "action": "post", "product": "midaz"});
    let answer = server
        .authorize_with(Some(&format!("Bearer {token}")), &body)
        .await;
    assert!(!authorized(&answer));
}

#[tokio::test]
async fn unknown_body_fields_are_ignored_and_the_product_defaults_to_midaz() {
    let (server, token, _) = viewer().await;
    let body = json!({
        "resource": "ledgers",
        "action": "GET",
        "organizationId": "0193",
        "extra": {"nested": [1, 2, 3]},
    });
    let answer = server
        .authorize_with(Some(&format!("Bearer {token}")), &body)
        .await;
    assert!(authorized(&answer));
    let unknown_action = json!({"resource": "ledgers", "action": "fly", "product": "midaz"});
    let answer = server
        .authorize_with(Some(&format!("Bearer {token}")), &unknown_action)
        .await;
    assert!(!authorized(&answer));
}

#[tokio::test]
async fn token_errors_are_json_aut_0006_and_aut_0007() {
    let (server, token, _) = viewer().await;
    let missing = server.authorize_with(None, &ledgers("get")).await;
    missing.assert_error(StatusCode::UNAUTHORIZED, "AUT-0006");
    assert!(missing.header("www-authenticate").is_some(), "{missing:?}");

    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    for bad in [
        "Bearer not-a-jwt".to_owned(),
        "Bearer ".to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
        format!("Bearer {tampered}"),
        format!("Bearer {}", "a".repeat(9000)),
    ] {
        let answer = server.authorize_with(Some(&bad), &ledgers("get")).await;
        answer.assert_error(StatusCode::UNAUTHORIZED, "AUT-0007");
    }
    // A bad token is refused before the body is even read.
    let response = server
        .http
        .post(server.url("/v1/authorize"))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    Answer::read(response)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "AUT-0006");
}

#[tokio::test]
async fn a_token_of_another_server_is_refused() {
    let (server, _, _) = viewer().await;
    let other = TestServer::start().await;
    let foreign = other.login_admin().await;
    server
        .assert_token_refused(foreign["accessToken"].as_str().expect("access"))
        .await;
}

#[tokio::test]
async fn body_errors_are_aut_0001_and_aut_0003() {
    let (server, token, _) = viewer().await;
    let bearer = format!("Bearer {token}");
    server
        .authorize_with(Some(&bearer), &json!({"action": "get"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-0001");
    server
        .authorize_with(Some(&bearer), &json!({"resource": 7, "action": "get"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-0003");
    let response = server
        .http
        .post(server.url("/v1/authorize"))
        .header("Authorization", &bearer)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    Answer::read(response)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-0003");
}
