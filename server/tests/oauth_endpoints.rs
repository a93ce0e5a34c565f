//! The RFC endpoints: `/oauth/token` (RFC 6749), `/oauth/revoke` (RFC 7009) and
//! `/oauth/introspect` (RFC 7662), with their `{error, error_description}` answers.

mod common;

use common::{ADMIN, ADMIN_PASSWORD, Answer, TestServer, decode_jwt};
use reqwest::StatusCode;
use serde_json::json;

struct Fixture {
    server: TestServer,
    client_id: String,
    secret: String,
}

async fn fixture() -> Fixture {
    let server = TestServer::start().await;
    let (client_id, secret) = server.create_app("midaz", &["midaz-editor-role"]).await;
    Fixture {
        server,
        client_id,
        secret,
    }
}

impl Fixture {
    fn basic(&self) -> Option<(&str, &str)> {
        Some((self.client_id.as_str(), self.secret.as_str()))
    }

    /// A password login through this client (so that its session belongs to the client).
    async fn user_login(&self) -> Answer {
        let answer = self
            .server
            .post_form(
                "/oauth/token",
                &[
                    ("grant_type", "password"),
                    ("username", ADMIN),
                    ("password", ADMIN_PASSWORD),
                ],
                self.basic(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        answer
    }
}

fn assert_rfc_token_answer(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 3600);
    assert!(answer.body["access_token"].is_string());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("pragma"), Some("no-cache"));
}

#[tokio::test]
async fn client_credentials_with_client_secret_basic() {
    let f = fixture().await;
    let answer = f
        .server
        .post_form(
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            f.basic(),
        )
        .await;
    assert_rfc_token_answer(&answer);
    assert!(answer.body.get("refresh_token").is_none(), "{answer:?}");
    assert!(answer.body.get("accessToken").is_none(), "RFC names only");
    let (header, claims) = decode_jwt(answer.str("access_token"));
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["sub"], f.client_id.as_str());
    assert_eq!(claims["client_id"], f.client_id.as_str());
    assert_eq!(claims["type"], "application");
    assert_eq!(claims["roles"], json!(["midaz-editor-role"]));
}

#[tokio::test]
async fn client_credentials_with_client_secret_post() {
    let f = fixture().await;
    let answer = f
        .server
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &f.client_id),
                ("client_secret", &f.secret),
                ("scope", "profile"),
            ],
            None,
        )
        .await;
    assert_rfc_token_answer(&answer);
    assert_eq!(answer.body["scope"], "profile");
    f.server
        .assert_token_accepted(answer.str("access_token"))
        .await;
}

#[tokio::test]
async fn a_wrong_basic_secret_is_invalid_client_with_a_basic_challenge() {
    let f = fixture().await;
    let answer = f
        .server
        .post_form(
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            Some((&f.client_id, "wrong-secret")),
        )
        .await;
    answer.assert_oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(
        answer
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic")),
        "{answer:?}"
    );
    // An unknown client is answered the same way.
    let unknown = f
        .server
        .post_form(
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            Some(("no-such-client", "wrong-secret")),
        )
        .await;
    assert_eq!(unknown.status, answer.status);
    assert_eq!(unknown.body, answer.body);
}

#[tokio::test]
async fn a_wrong_posted_secret_is_invalid_client_without_a_challenge() {
    let f = fixture().await;
    let answer = f
        .server
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &f.client_id),
                ("client_secret", "wrong-secret"),
            ],
            None,
        )
        .await;
    answer.assert_oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(answer.header("www-authenticate").is_none(), "{answer:?}");
}

#[tokio::test]
async fn client_credentials_without_client_authentication_is_invalid_client() {
    let f = fixture().await;
    f.server
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &f.client_id),
            ],
            None,
        )
        .await
        .assert_oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn malformed_token_requests_are_answered_with_rfc_errors() {
    let f = fixture().await;
    let server = &f.server;
    server
        .post_form(
            "/oauth/token",
            &[("grant_type", "authorization_code")],
            f.basic(),
        )
        .await
        .assert_oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    server
        .post_form("/oauth/token", &[("scope", "openid")], f.basic())
        .await
        .assert_oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    server
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            f.basic(),
        )
        .await
        .assert_oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    server
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("scope", "everything"),
            ],
            f.basic(),
        )
        .await
        .assert_oauth_error(StatusCode::BAD_REQUEST, "invalid_scope");
    // Two client authentication methods at once.
    server
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &f.client_id),
                ("client_secret", &f.secret),
            ],
            f.basic(),
        )
        .await
        .assert_oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    // JSON is not the RFC's encoding.
    let json_body = server
        .http
        .post(server.url("/oauth/token"))
        .json(&json!({"grant_type": "client_credentials"}))
        .basic_auth(&f.client_id, Some(&f.secret))
        .send()
        .await
        .expect("request sent");
    Answer::read(json_body)
        .await
        .assert_oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn password_and_refresh_grants_work_on_the_form_endpoint() {
    let f = fixture().await;
    let login = f.user_login().await;
    assert_rfc_token_answer(&login);
    assert!(login.body["id_token"].is_string(), "{login:?}");
    let refresh = login.str("refresh_token");
    let (_, claims) = decode_jwt(login.str("access_token"));
    assert_eq!(claims["client_id"], f.client_id.as_str());

    let refreshed = f
        .server
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            f.basic(),
        )
        .await;
    assert_rfc_token_answer(&refreshed);
    assert_ne!(refreshed.str("refresh_token"), refresh);

    f.server
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            f.basic(),
        )
        .await
        .assert_oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    f.server
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", ADMIN),
                ("password", "wrong password"),
            ],
            f.basic(),
        )
        .await
        .assert_oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn a_refresh_with_wrong_client_credentials_is_invalid_client() {
    let f = fixture().await;
    let login = f.user_login().await;
    let refresh = login.str("refresh_token");
    let answer = f
        .server
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            Some((&f.client_id, "wrong-secret")),
        )
        .await;
    answer.assert_oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(answer.header("www-authenticate").is_some(), "{answer:?}");
    // The refused request did not use the token up.
    let refreshed = f
        .server
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            f.basic(),
        )
        .await;
    assert_rfc_token_answer(&refreshed);
}

#[tokio::test]
async fn a_confidential_clients_refresh_token_needs_that_client_authenticated() {
    let f = fixture().await;
    let login = f.user_login().await;
    let refresh = login.str("refresh_token");
    // RFC 6749 §6: without client authentication, or naming the client without its secret.
    for (form, basic) in [
        (
            vec![("grant_type", "refresh_token"), ("refresh_token", refresh)],
            None,
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", f.client_id.as_str()),
            ],
            None,
        ),
    ] {
        f.server
            .post_form("/oauth/token", &form, basic)
            .await
            .assert_oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    // Neither refusal used the token up.
    let refreshed = f
        .server
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            f.basic(),
        )
        .await;
    assert_rfc_token_answer(&refreshed);

    // A direct login (the server's own public client) refreshes without client credentials.
    let direct = f
        .server
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", ADMIN),
                ("password", ADMIN_PASSWORD),
            ],
            None,
        )
        .await;
    assert_rfc_token_answer(&direct);
    let refreshed = f
        .server
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", direct.str("refresh_token")),
            ],
            None,
        )
        .await;
    assert_rfc_token_answer(&refreshed);
}

#[tokio::test]
async fn a_refresh_token_of_another_client_is_invalid_grant() {
    let f = fixture().await;
    let (other_id, other_secret) = f
        .server
        .create_app("routing", &["routing-editor-role"])
        .await;
    let login = f.user_login().await;
    let refresh = login.str("refresh_token");
    f.server
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            Some((&other_id, &other_secret)),
        )
        .await
        .assert_oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    // Still the owner's to use.
    let refreshed = f
        .server
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            f.basic(),
        )
        .await;
    assert_rfc_token_answer(&refreshed);
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_session() {
    let f = fixture().await;
    let login = f.user_login().await;
    let refresh = login.str("refresh_token");
    let answer = f
        .server
        .post_form(
            "/oauth/revoke",
            &[("token", refresh), ("token_type_hint", "refresh_token")],
            f.basic(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    f.server
        .refresh(refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
    f.server
        .assert_token_refused(login.str("access_token"))
        .await;
}

#[tokio::test]
async fn revoking_an_access_token_ends_its_session() {
    let f = fixture().await;
    let login = f.user_login().await;
    let answer = f
        .server
        .post_form(
            "/oauth/revoke",
            &[
                ("token", login.str("access_token")),
                ("token_type_hint", "access_token"),
            ],
            f.basic(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    f.server
        .assert_token_refused(login.str("access_token"))
        .await;
    f.server
        .refresh(login.str("refresh_token"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
}

#[tokio::test]
async fn revoking_an_unknown_token_answers_200() {
    let f = fixture().await;
    let answer = f
        .server
        .post_form("/oauth/revoke", &[("token", "no-such-token")], f.basic())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(
        answer.body,
        json!({}),
        "an empty JSON object, as every answer is JSON"
    );
}

#[tokio::test]
async fn revoking_another_clients_token_answers_200_and_changes_nothing() {
    let f = fixture().await;
    let (other_id, other_secret) = f
        .server
        .create_app("routing", &["routing-editor-role"])
        .await;
    let login = f.user_login().await;
    for token in [login.str("refresh_token"), login.str("access_token")] {
        let answer = f
            .server
            .post_form(
                "/oauth/revoke",
                &[("token", token)],
                Some((&other_id, &other_secret)),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    f.server
        .assert_token_accepted(login.str("access_token"))
        .await;
    assert_eq!(
        f.server.refresh(login.str("refresh_token")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn revoke_and_introspect_need_client_authentication() {
    let f = fixture().await;
    let login = f.user_login().await;
    for path in ["/oauth/revoke", "/oauth/introspect"] {
        f.server
            .post_form(path, &[("token", login.str("access_token"))], None)
            .await
            .assert_oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
        let answer = f
            .server
            .post_form(
                path,
                &[("token", login.str("access_token"))],
                Some((&f.client_id, "wrong-secret")),
            )
            .await;
        answer.assert_oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(
            answer
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Basic")),
            "{answer:?}"
        );
    }
    // Nothing was revoked.
    f.server
        .assert_token_accepted(login.str("access_token"))
        .await;
}

#[tokio::test]
async fn introspection_of_a_live_access_token_is_active_with_its_claims() {
    let f = fixture().await;
    let login = f.server.login_admin().await;
    let access = login["accessToken"].as_str().expect("access");
    let (_, claims) = decode_jwt(access);
    let answer = f
        .server
        .post_form("/oauth/introspect", &[("token", access)], f.basic())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["active"], true);
    assert_eq!(answer.body["sub"], claims["sub"]);
    assert_eq!(answer.body["client_id"], claims["client_id"]);
    assert_eq!(answer.body["exp"], claims["exp"]);
    assert_eq!(answer.body["username"], ADMIN);

    // With client_secret_post too.
    let posted = f
        .server
        .post_form(
            "/oauth/introspect",
            &[
                ("token", access),
                ("client_id", &f.client_id),
                ("client_secret", &f.secret),
            ],
            None,
        )
        .await;
    assert_eq!(posted.body["active"], true, "{posted:?}");
}

#[tokio::test]
async fn introspection_after_logout_or_of_garbage_is_inactive() {
    let f = fixture().await;
    let login = f.server.login_admin().await;
    let access = login["accessToken"].as_str().expect("access");
    let logout = f
        .server
        .http
        .post(f.server.url("/v1/logout"))
        .bearer_auth(access)
        .send()
        .await
        .expect("logout sent");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    for token in [
        access,
        login["refreshToken"].as_str().expect("refresh"),
        login["idToken"].as_str().expect("id token"),
        "garbage",
    ] {
        let answer = f
            .server
            .post_form("/oauth/introspect", &[("token", token)], f.basic())
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.body, json!({"active": false}), "{token}");
    }
    f.server
        .post_form("/oauth/introspect", &[], f.basic())
        .await
        .assert_oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn an_oversized_form_is_answered_in_json() {
    let f = fixture().await;
    let huge = "x".repeat(100_000);
    let answer = f
        .server
        .post_form(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("scope", &huge)],
            f.basic(),
        )
        .await;
    answer.assert_oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn a_named_client_must_authenticate_and_match() {
    // Found by an attack run: an unknown client_id, or a secret without a client, was ignored
    // and the login went through the built-in public client.
    let f = fixture().await;
    let login = |client_id: &'static str| {
        vec![
            ("grant_type", "password"),
            ("username", common::ADMIN),
            ("password", common::ADMIN_PASSWORD),
            ("client_id", client_id),
        ]
    };
    f.server
        .post_form("/oauth/token", &login("no-such-client"), None)
        .await
        .assert_oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    f.server
        .post_form("/oauth/token", &login("other-client"), f.basic())
        .await
        .assert_oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    let public = f
        .server
        .post_form("/oauth/token", &login("lib-auth"), None)
        .await;
    assert_eq!(public.status, StatusCode::OK, "{public:?}");
    // The Lerian endpoint: a secret needs its client id; the public client needs no secret.
    f.server
        .token(&json!({"grantType": "password", "username": common::ADMIN,
            "password": common::ADMIN_PASSWORD, "clientSecret": "garbage"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-0001");
    let named = f
        .server
        .token(&json!({"grantType": "password", "username": common::ADMIN,
            "password": common::ADMIN_PASSWORD, "clientId": "lib-auth"}))
        .await;
    assert_eq!(named.status, StatusCode::OK, "{named:?}");
}

#[tokio::test]
async fn a_refresh_token_is_introspected_only_by_its_own_client() {
    // Found by an attack run: any client could learn another's refresh token's session.
    let f = fixture().await;
    let login = f.user_login().await;
    let refresh = login.str("refresh_token").to_owned();
    let own = f
        .server
        .post_form(
            "/oauth/introspect",
            &[("token", refresh.as_str())],
            f.basic(),
        )
        .await;
    assert_eq!(own.body["active"], true, "{own:?}");
    assert_eq!(own.body["token_type"], "refresh_token");
    let (other_id, other_secret) = f
        .server
        .create_app("routing", &["routing-viewer-role"])
        .await;
    let other = f
        .server
        .post_form(
            "/oauth/introspect",
            &[("token", refresh.as_str())],
            Some((&other_id, &other_secret)),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.body, json!({"active": false}), "{other:?}");
    // The access token stays visible to any resource server.
    let access = f
        .server
        .post_form(
            "/oauth/introspect",
            &[("token", login.str("access_token"))],
            Some((&other_id, &other_secret)),
        )
        .await;
    assert_eq!(access.body["active"], true, "{access:?}");
}
