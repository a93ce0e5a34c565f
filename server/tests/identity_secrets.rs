//! Secrets of the Identity API (passwords, client secrets, tokens) reach no list, no get, no
//! audit event and no log line; only the answer that creates a secret shows it, once. Alone in
//! its test binary: it captures the logs of the whole process.

mod common;

use common::{TestServer, USER_PASSWORD};
use lib_auth_testkit::capture_logs;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn secrets_reach_no_list_no_get_no_audit_event_and_no_log_line() {
    let (logs, _guard) = capture_logs("trace");
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let mut secrets: Vec<String> =
        vec![USER_PASSWORD.to_owned(), common::ADMIN_PASSWORD.to_owned()];
    let user = server.create_user_api(&admin, "secretive", &[]).await;
    let token = server.user_token("secretive").await;
    let changes = [
        (
            "update-password",
            json!({"oldPassword": "not the password!", "newPassword": "never seen password 1"}),
            &token,
        ),
        (
            "update-password",
            json!({"oldPassword": USER_PASSWORD, "newPassword": "never seen password 2"}),
            &token,
        ),
        (
            "reset-password",
            json!({"newPassword": "never seen password 3"}),
            &admin,
        ),
    ];
    for (endpoint, body, caller) in changes {
        for field in ["oldPassword", "newPassword"] {
            if let Some(value) = body[field].as_str() {
                secrets.push(value.to_owned());
            }
        }
        server
            .identity_call(
                "PATCH",
                &format!("/v1/users/{user}/{endpoint}"),
                Some(caller),
                Some(&body),
            )
            .await;
    }
    // A password in a body that fails validation.
    let refused = json!({
        "firstName": "X", "lastName": "Y", "username": "bad name", "email": "x@y.io",
        "password": "never seen password 4", "groups": [],
    });
    secrets.push("never seen password 4".into());
    server
        .identity_call("POST", "/v1/users", Some(&admin), Some(&refused))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "IDE-0006");
    let app = server
        .identity_call(
            "POST",
            "/v1/applications",
            Some(&admin),
            Some(&json!({"name": "plugin-crm", "description": "crm"})),
        )
        .await;
    secrets.push(app.str("clientSecret").to_owned());
    let rotated = server
        .identity_call(
            "POST",
            &format!("/v1/applications/{}/rotate-secret", app.str("id")),
            Some(&admin),
            None,
        )
        .await;
    secrets.push(rotated.str("clientSecret").to_owned());
    let app_token = server
        .app_token(app.str("clientId"), rotated.str("clientSecret"))
        .await;
    secrets.push(app_token);
    secrets.push(token.clone());
    secrets.push(admin.clone());

    let mut shown = String::new();
    for path in [
        "/v1/users?limit=100".to_owned(),
        format!("/v1/users/{user}"),
        "/v1/applications?limit=100".to_owned(),
        format!("/v1/applications/{}", app.str("id")),
        "/v1/audit-events?limit=100".to_owned(),
        "/v1/groups?limit=100".to_owned(),
    ] {
        let answer = server.identity_call("GET", &path, Some(&admin), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        shown.push_str(&answer.text);
    }
    assert!(shown.contains("user.password_changed"), "{shown}");
    assert!(shown.contains("user.password_change_failed"), "{shown}");
    assert!(!shown.contains("argon2"), "a hash is shown");
    let text = logs.text();
    assert!(
        text.contains("application secret rotated"),
        "the capture saw the server: {text}"
    );
    for secret in &secrets {
        let start: String = secret.chars().take(8).collect();
        assert!(!shown.contains(secret.as_str()), "{start}… is in an answer");
        assert!(!text.contains(secret.as_str()), "{start}… is in the logs");
    }
}
