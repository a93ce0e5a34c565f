//! The audit log (who did what to whom and when, with filters), and the Identity data that a
//! restart keeps.

mod common;

use common::{TestServer, USER_PASSWORD};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn actions(answer: &common::Answer) -> Vec<String> {
    answer.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn the_audit_log_records_each_change_newest_first_and_filters() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let admin_id = common::decode_jwt(&admin).1["sub"]
        .as_str()
        .expect("sub")
        .to_owned();
    let user = server
        .create_user_api(&admin, "audited", &["midaz-viewer-group"])
        .await;
    let patched = server
        .identity_call(
            "PATCH",
            &format!("/v1/users/{user}"),
            Some(&admin),
            Some(&json!({"groups": ["midaz-editor-group"]})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    server
        .identity_call(
            "PATCH",
            &format!("/v1/users/{user}/reset-password"),
            Some(&admin),
            Some(&json!({"newPassword": "a reset password"})),
        )
        .await;
    server
        .identity_call(
            "POST",
            &format!("/v1/users/{user}/logout"),
            Some(&admin),
            None,
        )
        .await;
    let app = server
        .identity_call(
            "POST",
            "/v1/applications",
            Some(&admin),
            Some(&json!({"name": "midaz", "description": "m2m"})),
        )
        .await;
    let app_id = app.str("id").to_owned();
    server
        .identity_call(
            "POST",
            &format!("/v1/applications/{app_id}/rotate-secret"),
            Some(&admin),
            None,
        )
        .await;
    server
        .identity_call(
            "DELETE",
            &format!("/v1/applications/{app_id}"),
            Some(&admin),
            None,
        )
        .await;

    let all = server
        .identity_call("GET", "/v1/audit-events?limit=100", Some(&admin), None)
        .await;
    assert_eq!(all.status, StatusCode::OK, "{all:?}");
    assert_eq!(
        actions(&all),
        [
            "application.deleted",
            "application.secret_rotated",
            "application.created",
            "user.logged_out",
            "user.password_reset",
            "user.updated",
            "user.created",
        ]
    );
    let items = all.body["items"].as_array().expect("items");
    for event in items {
        assert_eq!(event["actorId"], admin_id.as_str(), "{event}");
        assert_eq!(event["actorName"], "admin", "{event}");
        assert!(
            event["at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{event}"
        );
    }
    let update = &items[5];
    assert_eq!(update["targetId"], user.as_str());
    assert_eq!(update["targetName"], "audited");
    assert_eq!(
        update["detail"]["groups"],
        json!({"from": ["midaz-viewer-group"], "to": ["midaz-editor-group"]})
    );

    let of_user = server
        .identity_call(
            "GET",
            &format!("/v1/audit-events?target={user}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        actions(&of_user),
        [
            "user.logged_out",
            "user.password_reset",
            "user.updated",
            "user.created"
        ]
    );
    let by_admin = server
        .identity_call(
            "GET",
            &format!("/v1/audit-events?actor={admin_id}&limit=2&page=2"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(by_admin.body["total"], 7);
    assert_eq!(
        actions(&by_admin),
        ["application.created", "user.logged_out"]
    );
    let by_nobody = server
        .identity_call(
            "GET",
            "/v1/audit-events?actor=someone-else",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(by_nobody.body["total"], 0);
    let future = server
        .identity_call(
            "GET",
            "/v1/audit-events?from=2999-01-01T00:00:00Z",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(future.body["total"], 0, "{future:?}");
    let past = server
        .identity_call(
            "GET",
            "/v1/audit-events?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00%2B02:00",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(past.body["total"], 7, "{past:?}");
    for query in [
        "from=yesterday",
        "to=2026-13-01T00:00:00Z",
        "actor=",
        "target=",
        "actor=a&actor=b",
    ] {
        server
            .identity_call(
                "GET",
                &format!("/v1/audit-events?{query}"),
                Some(&admin),
                None,
            )
            .await
            .assert_error(StatusCode::BAD_REQUEST, "IDE-0016");
    }
}

#[tokio::test]
async fn a_restart_keeps_identity_data_and_the_changes_it_made() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let user = server
        .create_user_api(&admin, "durable", &["routing-viewer-group"])
        .await;
    let old_token = server.user_token("durable").await;
    server
        .identity_call(
            "PATCH",
            &format!("/v1/users/{user}"),
            Some(&admin),
            Some(&json!({"groups": ["routing-editor-group"], "email": "durable@example.test"})),
        )
        .await;
    let app = server
        .identity_call(
            "POST",
            "/v1/applications",
            Some(&admin),
            Some(&json!({"name": "routing", "description": "kept"})),
        )
        .await;
    let (client_id, secret) = (
        app.str("clientId").to_owned(),
        app.str("clientSecret").to_owned(),
    );
    let before: Vec<Value> = {
        let mut pages = Vec::new();
        for path in [
            "/v1/users/",
            "/v1/applications/",
            "/v1/audit-events?limit=100",
        ] {
            let path = match path {
                "/v1/users/" => format!("{path}{user}"),
                "/v1/applications/" => format!("{path}{}", app.str("id")),
                other => other.to_owned(),
            };
            pages.push(
                server
                    .identity_call("GET", &path, Some(&admin), None)
                    .await
                    .body,
            );
        }
        pages
    };

    let server = server.restart().await;
    let admin = server.admin_token().await;
    let after: Vec<Value> = {
        let mut pages = Vec::new();
        for path in [
            format!("/v1/users/{user}"),
            format!("/v1/applications/{}", app.str("id")),
            "/v1/audit-events?limit=100".to_owned(),
        ] {
            pages.push(
                server
                    .identity_call("GET", &path, Some(&admin), None)
                    .await
                    .body,
            );
        }
        pages
    };
    assert_eq!(before, after);
    // The demotion's revocation and the application's secret survive too.
    server.assert_token_refused(&old_token).await;
    server.login("durable", USER_PASSWORD).await;
    server.app_token(&client_id, &secret).await;
}
