//! `GET /v1/userinfo` and `GET /v1/permissions`, for users and applications.

mod common;

use common::{TestServer, USER_PASSWORD, decode_jwt};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn userinfo_describes_the_user_of_the_token() {
    let server = TestServer::start().await;
    let id = server.create_user("erin", &["midaz-viewer-group"]).await;
    let login = server.login("erin", USER_PASSWORD).await;
    let answer = server
        .get("/v1/userinfo", login["accessToken"].as_str())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let body = &answer.body;
    assert_eq!(body["sub"], id.as_str());
    assert_eq!(body["name"], "Test erin");
    assert_eq!(body["preferredUsername"], "erin");
    assert_eq!(body["email"], "erin@example.test");
    assert_eq!(body["emailVerified"], false);
    assert_eq!(body["type"], "normal-user");
    assert_eq!(body["roles"], json!(["midaz-viewer-role"]));
    let text = answer.text.to_lowercase();
    assert!(
        !text.contains("password") && !text.contains("argon2"),
        "{text}"
    );
}

#[tokio::test]
async fn userinfo_answers_only_what_the_scopes_grant() {
    let server = TestServer::start().await;
    let id = server.create_user("gwen", &["midaz-viewer-group"]).await;
    let login = |scope: &'static str| {
        let server = &server;
        async move {
            let answer = server
                .token(&json!({
                    "grantType": "password",
                    "username": "gwen",
                    "password": USER_PASSWORD,
                    "scope": scope,
                }))
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{scope}: {answer:?}");
            answer.str("accessToken").to_owned()
        }
    };

    let bare = server
        .get("/v1/userinfo", Some(&login("openid").await))
        .await;
    assert_eq!(bare.status, StatusCode::OK, "{bare:?}");
    assert_eq!(bare.body["sub"], id.as_str());
    assert_eq!(bare.body["roles"], json!(["midaz-viewer-role"]));
    for claim in ["name", "preferredUsername", "email", "emailVerified"] {
        assert!(
            bare.body.get(claim).is_none(),
            "{claim} without its scope: {bare:?}"
        );
    }

    let email = server
        .get("/v1/userinfo", Some(&login("openid email").await))
        .await;
    assert_eq!(email.body["email"], "gwen@example.test");
    assert!(email.body.get("preferredUsername").is_none(), "{email:?}");

    let profile = server
        .get("/v1/userinfo", Some(&login("openid profile").await))
        .await;
    assert_eq!(profile.body["preferredUsername"], "gwen");
    assert!(profile.body.get("email").is_none(), "{profile:?}");

    // Without `openid`, no OpenID claims at all (OIDC Core §5.3), but the token is valid and
    // learns who it is: Lerian's clients and lib-auth's remote mode ask userinfo exactly that.
    let bare = server
        .get("/v1/userinfo", Some(&login("profile email").await))
        .await;
    assert_eq!(bare.status, StatusCode::OK, "{bare:?}");
    assert_eq!(bare.body["sub"], id.as_str());
    for claim in ["name", "preferredUsername", "email", "emailVerified"] {
        assert!(
            bare.body.get(claim).is_none(),
            "{claim} without openid: {bare:?}"
        );
    }
}

#[tokio::test]
async fn userinfo_describes_an_application() {
    let server = TestServer::start().await;
    let (id, secret) = server.create_app("midaz", &["midaz-editor-role"]).await;
    let token = server.app_token(&id, &secret).await;
    let answer = server.get("/v1/userinfo", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["sub"], id.as_str());
    assert_eq!(answer.body["name"], "midaz");
    assert_eq!(answer.body["type"], "application");
    assert_eq!(answer.body["roles"], json!(["midaz-editor-role"]));
    assert!(!answer.text.contains(&secret));
}

#[tokio::test]
async fn userinfo_and_permissions_need_an_access_token() {
    let server = TestServer::start().await;
    let login = server.login_admin().await;
    for path in ["/v1/userinfo", "/v1/permissions", "/v1/permissions/"] {
        server
            .get(path, None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "AUT-0006");
        // An ID token is not an access token.
        server
            .get(path, login["idToken"].as_str())
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "AUT-0007");
    }
}

#[tokio::test]
async fn permissions_of_a_viewer_are_get_and_head_plus_self_service() {
    let server = TestServer::start().await;
    server.create_user("frank", &["midaz-viewer-group"]).await;
    let login = server.login("frank", USER_PASSWORD).await;
    let token = login["accessToken"].as_str();
    for path in ["/v1/permissions", "/v1/permissions/"] {
        let answer = server.get(path, token).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.body["ledgers"], json!(["get", "head"]), "{path}");
        assert_eq!(answer.body["transactions"], json!(["get", "head"]));
        assert_eq!(answer.body["update-password"], json!(["patch"]));
        assert!(answer.body.get("fees").is_none(), "no plugin-fees role");
    }
    let midaz = server.get("/v1/permissions?product=midaz", token).await;
    assert_eq!(midaz.body["ledgers"], json!(["get", "head"]));
    assert!(midaz.body.get("update-password").is_none(), "{midaz:?}");
}

#[tokio::test]
async fn permissions_of_an_application_are_its_roles() {
    let server = TestServer::start().await;
    let (id, secret) = server.create_app("midaz", &["midaz-editor-role"]).await;
    let token = server.app_token(&id, &secret).await;
    let answer = server.get("/v1/permissions", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(
        answer.body["ledgers"],
        json!(["get", "post", "put", "patch", "delete", "head"])
    );
    // Applications do not get the users' self-service.
    assert!(answer.body.get("update-password").is_none(), "{answer:?}");
    assert!(
        answer.body.get("account-types").is_none(),
        "no routing role"
    );
}

#[tokio::test]
async fn the_admin_may_do_everything_the_policy_grants_editors() {
    let server = TestServer::start().await;
    let login = server.login_admin().await;
    let (_, claims) = decode_jwt(login["accessToken"].as_str().expect("access"));
    assert!(claims["groups"].to_string().contains("admin-group"));
    let answer = server
        .get("/v1/permissions", login["accessToken"].as_str())
        .await;
    for resource in [
        "ledgers",
        "fees",
        "holders",
        "templates",
        "users",
        "account-types",
    ] {
        assert_eq!(
            answer.body[resource].as_array().map(Vec::len),
            Some(6),
            "{resource}: {answer:?}"
        );
    }
}

#[tokio::test]
async fn answers_about_a_token_holder_are_not_stored() {
    let server = TestServer::start().await;
    let token = server.admin_token().await;
    for path in ["/v1/userinfo", "/v1/permissions"] {
        let answer = server.get(path, Some(&token)).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{path}");
    }
    let (client_id, secret) = server.create_app("midaz", &["midaz-viewer-role"]).await;
    let introspected = server
        .post_form(
            "/oauth/introspect",
            &[("token", token.as_str())],
            Some((&client_id, &secret)),
        )
        .await;
    assert_eq!(introspected.body["active"], true, "{introspected:?}");
    assert_eq!(introspected.header("cache-control"), Some("no-store"));
}
