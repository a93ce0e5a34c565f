//! Who may call which Identity route: the guard's matrix for the admin, an identity editor, an
//! identity viewer, a Midaz viewer, two applications and a caller without a token, on every
//! route. Mutating routes are called with ids that do not exist or bodies that are incomplete,
//! so a request the guard lets through ends in a 400 or 404 of the handler and changes nothing.

mod common;

use common::{Answer, TestServer};
use reqwest::StatusCode;
use serde_json::json;

/// A route of the Identity API, with `{self}` standing for the caller's own user id and
/// `{none}` for an id nobody has.
struct Route {
    method: &'static str,
    path: &'static str,
    body: bool,
}

const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/v1/users",
        body: true,
    },
    Route {
        method: "GET",
        path: "/v1/users",
        body: false,
    },
    Route {
        method: "GET",
        path: "/v1/users/{none}",
        body: false,
    },
    Route {
        method: "PATCH",
        path: "/v1/users/{none}",
        body: true,
    },
    Route {
        method: "DELETE",
        path: "/v1/users/{none}",
        body: false,
    },
    Route {
        method: "POST",
        path: "/v1/users/{none}/logout",
        body: false,
    },
    Route {
        method: "PATCH",
        path: "/v1/users/{none}/reset-password",
        body: true,
    },
    Route {
        method: "PATCH",
        path: "/v1/users/{none}/update-password",
        body: true,
    },
    Route {
        method: "PATCH",
        path: "/v1/users/{self}/update-password",
        body: true,
    },
    Route {
        method: "GET",
        path: "/v1/groups",
        body: false,
    },
    Route {
        method: "GET",
        path: "/v1/groups/admin-group",
        body: false,
    },
    Route {
        method: "GET",
        path: "/v1/roles",
        body: false,
    },
    Route {
        method: "GET",
        path: "/v1/roles/midaz-viewer-role",
        body: false,
    },
    Route {
        method: "POST",
        path: "/v1/applications",
        body: true,
    },
    Route {
        method: "GET",
        path: "/v1/applications",
        body: false,
    },
    Route {
        method: "GET",
        path: "/v1/applications/{none}",
        body: false,
    },
    Route {
        method: "DELETE",
        path: "/v1/applications/{none}",
        body: false,
    },
    Route {
        method: "POST",
        path: "/v1/applications/{none}/rotate-secret",
        body: false,
    },
    Route {
        method: "GET",
        path: "/v1/audit-events",
        body: false,
    },
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// The guard let the request through (whatever the handler answered next).
    Passes,
    /// 403 AUT-0008.
    Denied,
    /// 401 AUT-0006.
    NoToken,
}

/// What the built-in policy says, written out independently of it. Every user holds the
/// self-service role (`patch` on `update-password`), so the guard lets any user through to
/// the password change, whose handler then refuses anyone but the user (IDE-0013).
fn expected(caller: &str, route: &Route) -> Outcome {
    use Outcome::*;
    let password_change = route.path.ends_with("/update-password");
    match caller {
        "nobody" => NoToken,
        "admin" | "identity-editor" | "identity-app" => Passes,
        "identity-viewer" if route.method == "GET" || password_change => Passes,
        "midaz-viewer" if password_change => Passes,
        "identity-viewer" | "midaz-viewer" | "midaz-app" => Denied,
        other => panic!("unknown caller {other}"),
    }
}

fn outcome_of(answer: &Answer) -> Outcome {
    match (answer.status, answer.code()) {
        (StatusCode::FORBIDDEN, "AUT-0008") => Outcome::Denied,
        (StatusCode::UNAUTHORIZED, "AUT-0006") => Outcome::NoToken,
        (StatusCode::UNAUTHORIZED, _) => panic!("a valid token was refused: {answer:?}"),
        (status, code) if status.is_server_error() => panic!("{code}: {answer:?}"),
        _ => Outcome::Passes,
    }
}

#[tokio::test]
async fn every_route_guards_by_the_callers_roles() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let mut callers: Vec<(&str, Option<String>, String)> = Vec::new();
    let admin_id = common::decode_jwt(&admin).1["sub"]
        .as_str()
        .expect("sub")
        .to_owned();
    callers.push(("admin", Some(admin.clone()), admin_id));
    for (name, group) in [
        ("identity-editor", "plugin-identity-editor-group"),
        ("identity-viewer", "plugin-identity-viewer-group"),
        ("midaz-viewer", "midaz-viewer-group"),
    ] {
        let id = server.create_user_api(&admin, name, &[group]).await;
        callers.push((name, Some(server.user_token(name).await), id));
    }
    for (name, role) in [
        ("identity-app", "plugin-identity-editor-role"),
        ("midaz-app", "midaz-editor-role"),
    ] {
        let product = role.trim_end_matches("-editor-role");
        let (client_id, secret) = server.create_app(product, &[role]).await;
        let token = server.app_token(&client_id, &secret).await;
        callers.push((name, Some(token), client_id));
    }
    callers.push(("nobody", None, uuid_like(1)));

    let none = uuid_like(2);
    let mut checked = 0;
    for (caller, token, own_id) in &callers {
        for route in ROUTES {
            let path = route
                .path
                .replace("{self}", own_id)
                .replace("{none}", &none);
            let body = route.body.then(|| json!({}));
            let answer = server
                .identity_call(route.method, &path, token.as_deref(), body.as_ref())
                .await;
            let want = expected(caller, route);
            assert_eq!(
                outcome_of(&answer),
                want,
                "{caller} {} {path}: {answer:?}",
                route.method
            );
            checked += 1;
        }
    }
    assert_eq!(checked, callers.len() * ROUTES.len());
}

#[tokio::test]
async fn a_midaz_viewer_may_change_its_own_password_and_nothing_else() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let id = server
        .create_user_api(&admin, "viewer", &["midaz-viewer-group"])
        .await;
    let token = server.user_token("viewer").await;
    let changed = server
        .identity_call(
            "PATCH",
            &format!("/v1/users/{id}/update-password"),
            Some(&token),
            Some(&json!({
                "oldPassword": common::USER_PASSWORD,
                "newPassword": "a brand new password",
            })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{changed:?}");
    server.login("viewer", "a brand new password").await;
    // Reading its own user is still not its right.
    server
        .identity_call("GET", &format!("/v1/users/{id}"), Some(&token), None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "AUT-0008");
}

#[tokio::test]
async fn refusals_are_audited_with_the_caller_and_the_route() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let viewer_id = server
        .create_user_api(&admin, "curious", &["midaz-viewer-group"])
        .await;
    let token = server.user_token("curious").await;
    server
        .identity_call("GET", "/v1/applications", Some(&token), None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "AUT-0008");
    let events = server
        .identity_call(
            "GET",
            &format!("/v1/audit-events?actor={viewer_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(events.status, StatusCode::OK, "{events:?}");
    let items = events.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{events:?}");
    assert_eq!(items[0]["action"], "access.denied");
    assert_eq!(items[0]["actorName"], "curious");
    assert_eq!(items[0]["targetType"], "applications");
    assert_eq!(items[0]["detail"]["method"], "GET");
    assert_eq!(items[0]["detail"]["path"], "/v1/applications");
}

#[tokio::test]
async fn bad_tokens_are_401_on_every_route() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let mut tampered = admin.clone();
    tampered.pop();
    tampered.push(if admin.ends_with('A') { 'B' } else { 'A' });
    for token in ["garbage", "a.b.c", tampered.as_str()] {
        for route in ROUTES {
            let path = route
                .path
                .replace("{self}", &uuid_like(3))
                .replace("{none}", &uuid_like(4));
            let answer = server
                .identity_call(route.method, &path, Some(token), None)
                .await;
            answer.assert_error(StatusCode::UNAUTHORIZED, "AUT-0007");
        }
    }
}

/// A well-formed UUID no row has.
fn uuid_like(n: u8) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

#[tokio::test]
async fn nobody_grants_or_manages_rights_it_does_not_hold() {
    // Found by an attack run: a plugin-identity contributor put itself in admin-group, reset an
    // admin's password and took an application's secret.
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let co_id = server
        .create_user_api(
            &admin,
            "contributor",
            &["plugin-identity-contributor-group"],
        )
        .await;
    let other_admin = server
        .create_user_api(&admin, "admin2", &["admin-group"])
        .await;
    server
        .create_user_api(&admin, "editor", &["plugin-identity-editor-group"])
        .await;
    let app = server
        .identity_call(
            "POST",
            "/v1/applications",
            Some(&admin),
            Some(&json!({"name": "midaz", "description": "ledger"})),
        )
        .await;
    let app_id = app.str("id").to_owned();
    let co = server.user_token("contributor").await;
    let new_user = |username: &str, group: &str| {
        json!({"firstName": "N", "lastName": "U", "username": username,
            "email": format!("{username}@example.test"), "password": common::USER_PASSWORD,
            "groups": [group]})
    };
    let refused: Vec<(&str, String, Option<serde_json::Value>)> = vec![
        (
            "PATCH",
            format!("/v1/users/{co_id}"),
            Some(json!({"groups": ["admin-group"]})),
        ),
        (
            "POST",
            "/v1/users".into(),
            Some(new_user("minion", "admin-group")),
        ),
        (
            "POST",
            "/v1/users".into(),
            Some(new_user("ledgerer", "midaz-viewer-group")),
        ),
        (
            "PATCH",
            format!("/v1/users/{other_admin}/reset-password"),
            Some(json!({"newPassword": "taken over by co"})),
        ),
        ("POST", format!("/v1/users/{other_admin}/logout"), None),
        (
            "PATCH",
            format!("/v1/users/{other_admin}"),
            Some(json!({"groups": []})),
        ),
        (
            "PATCH",
            format!("/v1/users/{other_admin}"),
            Some(json!({"email": "mine@example.test"})),
        ),
        (
            "POST",
            "/v1/applications".into(),
            Some(json!({"name": "midaz", "description": "x", "roles": ["midaz-editor-role"]})),
        ),
        // The default role of a plugin-identity application is the editor's, delete included.
        (
            "POST",
            "/v1/applications".into(),
            Some(json!({"name": "plugin-identity", "description": "x"})),
        ),
        (
            "POST",
            format!("/v1/applications/{app_id}/rotate-secret"),
            None,
        ),
    ];
    for (method, path, body) in &refused {
        server
            .identity_call(method, path, Some(&co), body.as_ref())
            .await
            .assert_error(StatusCode::FORBIDDEN, "IDE-0019");
    }
    // Nothing changed: the other admin still logs in and the contributor is still one.
    server.login("admin2", common::USER_PASSWORD).await;
    let again = server.user_token("contributor").await;
    let delete = json!({"resource": "users", "action": "delete", "product": "plugin-identity"});
    let decision = server
        .authorize_with(Some(&format!("Bearer {again}")), &delete)
        .await;
    assert_eq!(decision.body["authorized"], false, "{decision:?}");
    let events = server
        .identity_call(
            "GET",
            &format!("/v1/audit-events?actor={co_id}&limit=100"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        events.body["total"],
        refused.len(),
        "each refusal is audited: {events:?}"
    );

    // Within its own rights an identity editor works as before.
    let ed = server.user_token("editor").await;
    let made = server
        .identity_call(
            "POST",
            "/v1/users",
            Some(&ed),
            Some(&new_user("helper", "plugin-identity-viewer-group")),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let app = server
        .identity_call(
            "POST",
            "/v1/applications",
            Some(&ed),
            Some(&json!({"name": "plugin-identity", "description": "sync", "roles": ["plugin-identity-viewer-role"]})),
        )
        .await;
    assert_eq!(app.status, StatusCode::CREATED, "{app:?}");
}
