//! The Identity API's applications (the secret is shown once and never again), groups and
//! roles.

mod common;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn an_application_secret_is_shown_once_and_works() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let created = server
        .identity_call(
            "POST",
            "/v1/applications",
            Some(&admin),
            Some(&json!({"name": "midaz", "description": "the ledger's M2M client"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let id = created.str("id").to_owned();
    let client_id = created.str("clientId").to_owned();
    let secret = created.str("clientSecret").to_owned();
    assert!(secret.len() >= 43, "256 bits: {secret}");
    assert_eq!(
        created.body["roles"],
        json!(["midaz-editor-role"]),
        "default role"
    );
    assert_eq!(created.body["name"], "midaz");

    let token = server.app_token(&client_id, &secret).await;
    server.assert_token_accepted(&token).await;

    for path in [
        "/v1/applications".to_owned(),
        format!("/v1/applications/{id}"),
    ] {
        let answer = server.identity_call("GET", &path, Some(&admin), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert!(!answer.text.contains(&secret), "{path} shows the secret");
        assert!(!answer.text.contains("clientSecret"), "{path}: {answer:?}");
        assert!(!answer.text.contains("secretHash"), "{path}: {answer:?}");
        assert!(answer.text.contains(&client_id), "{path}: {answer:?}");
    }
    let audit = server
        .identity_call("GET", "/v1/audit-events?limit=100", Some(&admin), None)
        .await;
    assert!(
        !audit.text.contains(&secret),
        "the audit log shows the secret"
    );
    assert!(audit.text.contains("application.created"), "{audit:?}");
}

#[tokio::test]
async fn rotating_a_secret_retires_the_old_secret_and_its_tokens() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let created = server
        .identity_call(
            "POST",
            "/v1/applications",
            Some(&admin),
            Some(&json!({"name": "plugin-fees", "description": "", "roles": ["plugin-fees-viewer-role"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let (id, client_id) = (
        created.str("id").to_owned(),
        created.str("clientId").to_owned(),
    );
    let old_secret = created.str("clientSecret").to_owned();
    let old_token = server.app_token(&client_id, &old_secret).await;

    let rotated = server
        .identity_call(
            "POST",
            &format!("/v1/applications/{id}/rotate-secret"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    let new_secret = rotated.str("clientSecret").to_owned();
    assert_ne!(new_secret, old_secret);
    assert_eq!(rotated.str("clientId"), client_id);
    server.assert_token_refused(&old_token).await;
    server
        .token(&json!({"grantType": "client_credentials", "clientId": client_id, "clientSecret": old_secret}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "AUT-1004");
    let second_token = server.app_token(&client_id, &new_secret).await;
    server.assert_token_accepted(&second_token).await;

    // A second rotation within the same second still retires the tokens of the first.
    let again = server
        .identity_call(
            "POST",
            &format!("/v1/applications/{id}/rotate-secret"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    server.assert_token_refused(&second_token).await;
    let third_token = server
        .app_token(&client_id, again.str("clientSecret"))
        .await;
    server.assert_token_accepted(&third_token).await;
}

#[tokio::test]
async fn deleting_an_application_refuses_its_tokens_and_secret() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let created = server
        .identity_call(
            "POST",
            "/v1/applications",
            Some(&admin),
            Some(&json!({"name": "routing", "description": "routing engine"})),
        )
        .await;
    let (id, client_id) = (
        created.str("id").to_owned(),
        created.str("clientId").to_owned(),
    );
    let secret = created.str("clientSecret").to_owned();
    let token = server.app_token(&client_id, &secret).await;
    let deleted = server
        .identity_call(
            "DELETE",
            &format!("/v1/applications/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    server.assert_token_refused(&token).await;
    server
        .token(&json!({"grantType": "client_credentials", "clientId": client_id, "clientSecret": secret}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "AUT-1004");
    for (method, path) in [
        ("GET", format!("/v1/applications/{id}")),
        ("DELETE", format!("/v1/applications/{id}")),
        ("POST", format!("/v1/applications/{id}/rotate-secret")),
    ] {
        server
            .identity_call(method, &path, Some(&admin), None)
            .await
            .assert_error(StatusCode::NOT_FOUND, "IDE-1001");
    }
}

#[tokio::test]
async fn bad_application_requests_get_their_codes() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let cases = [
        (
            json!({"description": "x"}),
            StatusCode::BAD_REQUEST,
            "IDE-0001",
        ),
        (
            json!({"name": "midaz", "description": "x", "clientSecret": "mine"}),
            StatusCode::BAD_REQUEST,
            "IDE-0002",
        ),
        (
            json!({"name": 7, "description": "x"}),
            StatusCode::BAD_REQUEST,
            "IDE-0003",
        ),
        (
            json!({"name": "midaz", "description": "x", "roles": "midaz-editor-role"}),
            StatusCode::BAD_REQUEST,
            "IDE-0003",
        ),
        (
            json!({"name": "midaz", "description": "x", "roles": ["root-role"]}),
            StatusCode::BAD_REQUEST,
            "IDE-0009",
        ),
        (
            json!({"name": "my-cool-app", "description": "x"}),
            StatusCode::BAD_REQUEST,
            "IDE-0012",
        ),
        (
            json!({"name": "midaz", "description": "x".repeat(501)}),
            StatusCode::BAD_REQUEST,
            "IDE-0015",
        ),
    ];
    for (body, status, code) in cases {
        server
            .identity_call("POST", "/v1/applications", Some(&admin), Some(&body))
            .await
            .assert_error(status, code);
    }
    server
        .identity_call("GET", "/v1/applications/not-a-uuid", Some(&admin), None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "IDE-0004");
    // Lerian's products outside the policy are names too.
    let reporter = server
        .identity_call(
            "POST",
            "/v1/applications",
            Some(&admin),
            Some(&json!({"name": "reporter", "description": "reports"})),
        )
        .await;
    assert_eq!(reporter.status, StatusCode::CREATED, "{reporter:?}");
    assert_eq!(
        reporter.body["roles"],
        json!([]),
        "no reporter role in the policy"
    );
    let list = server
        .identity_call("GET", "/v1/applications", Some(&admin), None)
        .await;
    assert_eq!(list.body["total"], 1, "{list:?}");
}

#[tokio::test]
async fn groups_show_their_roles_and_members_and_roles_their_permissions() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    server
        .create_user_api(&admin, "member", &["midaz-viewer-group"])
        .await;
    let group = server
        .identity_call("GET", "/v1/groups/midaz-viewer-group", Some(&admin), None)
        .await;
    assert_eq!(group.status, StatusCode::OK, "{group:?}");
    assert_eq!(group.body["id"], "midaz-viewer-group");
    assert_eq!(group.body["roles"], json!(["midaz-viewer-role"]));
    assert_eq!(group.body["users"], json!(["member"]));
    assert!(group.str("createdAt").ends_with('Z'));
    let admins = server
        .identity_call("GET", "/v1/groups/admin-group", Some(&admin), None)
        .await;
    assert_eq!(admins.body["users"], json!(["admin"]));

    let groups = server
        .identity_call("GET", "/v1/groups?limit=100", Some(&admin), None)
        .await;
    assert_eq!(
        groups.body["total"], 19,
        "admin-group and 3 per product: {groups:?}"
    );
    assert_eq!(groups.body["items"].as_array().map(Vec::len), Some(19));

    let role = server
        .identity_call("GET", "/v1/roles/midaz-viewer-role", Some(&admin), None)
        .await;
    assert_eq!(role.status, StatusCode::OK, "{role:?}");
    let permissions = role.body["permissions"].as_array().expect("permissions");
    assert!(
        permissions
            .iter()
            .all(|p| p["product"] == "midaz" && p["actions"] == json!(["get", "head"])),
        "{role:?}"
    );
    let roles = server
        .identity_call("GET", "/v1/roles?page=2&limit=5", Some(&admin), None)
        .await;
    assert_eq!(roles.body["page"], 2);
    assert_eq!(roles.body["items"].as_array().map(Vec::len), Some(5));

    for (path, code) in [
        ("/v1/groups/no-such-group", "IDE-1006"),
        ("/v1/roles/no-such-role", "IDE-1007"),
    ] {
        server
            .identity_call("GET", path, Some(&admin), None)
            .await
            .assert_error(StatusCode::NOT_FOUND, code);
    }
    for path in ["/v1/groups/bad%20id", "/v1/roles/%3Cscript%3E"] {
        server
            .identity_call("GET", path, Some(&admin), None)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "IDE-0004");
    }
}
