//! The client_credentials grant on Lerian's JSON endpoint: application tokens carry the
//! application's own roles (SPEC §3, §4).

mod common;

use common::{TestServer, bearer_headers, decode_jwt};
use lib_auth::{Action, PrincipalKind};
use lib_auth_server::admin::new_application;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn an_application_gets_an_access_token_with_its_own_roles() {
    let server = TestServer::start().await;
    let created = new_application(
        server.state.store(),
        "midaz",
        "desc",
        vec!["midaz-editor-role".into()],
    )
    .await
    .expect("application created");
    let client_id = created.application.client_id.clone();
    let answer = server
        .token(&json!({
            "grantType": "client_credentials",
            "clientId": client_id,
            "clientSecret": created.client_secret,
        }))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.body["tokenType"], "Bearer");
    assert_eq!(answer.body["expiresIn"], 3600);
    assert!(answer.body.get("refreshToken").is_none(), "{answer:?}");
    assert!(answer.body.get("idToken").is_none(), "{answer:?}");

    let token = answer.str("accessToken");
    let (header, claims) = decode_jwt(token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["sub"], client_id.as_str());
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["type"], "application");
    assert_eq!(claims["name"], "midaz");
    assert_eq!(claims["displayName"], "midaz");
    assert_eq!(claims["owner"], "lerian");
    assert_eq!(claims["roles"], json!(["midaz-editor-role"]));
    for claim in ["iss", "aud", "exp", "iat", "nbf", "jti", "sid", "scope"] {
        assert!(claims.get(claim).is_some(), "no {claim} in {claims}");
    }

    let verifier = server.verifier();
    let principal = verifier
        .authenticate_headers(&bearer_headers(token))
        .await
        .expect("lib-auth accepts the application token");
    assert_eq!(principal.kind(), PrincipalKind::Application);
    assert_eq!(principal.subject(), client_id);
    let decide = |product: &str, action| {
        verifier
            .decide(&principal, product, "ledgers", action)
            .is_some_and(|d| d.is_allowed())
    };
    assert!(decide("midaz", Action::Post));
    assert!(!decide("routing", Action::Get), "no role outside midaz");
}

#[tokio::test]
async fn each_application_token_has_its_own_session_id() {
    let server = TestServer::start().await;
    let (id, secret) = server.create_app("midaz", &["midaz-viewer-role"]).await;
    let (_, a) = decode_jwt(&server.app_token(&id, &secret).await);
    let (_, b) = decode_jwt(&server.app_token(&id, &secret).await);
    assert_ne!(a["sid"], b["sid"]);
    assert_ne!(a["jti"], b["jti"]);
}

#[tokio::test]
async fn a_wrong_secret_or_an_unknown_client_is_aut_1004() {
    let server = TestServer::start().await;
    let (id, _) = server.create_app("midaz", &["midaz-editor-role"]).await;
    let wrong = server
        .token(&json!({"grantType": "client_credentials", "clientId": id, "clientSecret": "nope"}))
        .await;
    wrong.assert_error(StatusCode::UNAUTHORIZED, "AUT-1004");
    let unknown = server
        .token(&json!({"grantType": "client_credentials", "clientId": "ghost", "clientSecret": "nope"}))
        .await;
    unknown.assert_error(StatusCode::UNAUTHORIZED, "AUT-1004");
    assert_eq!(wrong.body, unknown.body);
}

#[tokio::test]
async fn a_missing_client_id_or_secret_is_aut_0001() {
    let server = TestServer::start().await;
    let answer = server
        .token(&json!({"grantType": "client_credentials", "clientId": "x"}))
        .await;
    answer.assert_error(StatusCode::BAD_REQUEST, "AUT-0001");
    assert!(answer.str("message").contains("clientSecret"), "{answer:?}");
    server
        .token(&json!({"grantType": "client_credentials"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-0001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_token_requests_of_one_client_all_succeed() {
    // The throttle counts checks in flight; a client secret's check has no await in it, so a
    // busy client's parallel requests are never refused as if they were guesses.
    let server = TestServer::start().await;
    let (client_id, secret) = server.create_app("midaz", &["midaz-viewer-role"]).await;
    let tasks: Vec<_> =
        (0..64)
            .map(|_| {
                let request = server.http.post(server.url("/v1/login/oauth/access_token")).json(
                &serde_json::json!({"grantType": "client_credentials", "clientId": client_id,
                    "clientSecret": secret}),
            );
                tokio::spawn(async move { request.send().await.expect("sent").status() })
            })
            .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task"), reqwest::StatusCode::OK);
    }
}

#[tokio::test]
async fn tokens_carry_the_configured_audience_and_a_validator_can_pin_it() {
    let server = TestServer::start_with(|c| c.audience = "payments".into()).await;
    let (id, secret) = server.create_app("midaz", &["midaz-viewer-role"]).await;
    let token = server.app_token(&id, &secret).await;
    let (_, claims) = decode_jwt(&token);
    assert_eq!(claims["aud"], "payments");
    let login = server.login_admin().await;
    let (_, user_claims) = decode_jwt(login["accessToken"].as_str().expect("token"));
    assert_eq!(user_claims["aud"], "payments");

    let pinned = |audience: &str| {
        lib_auth::Auth::new(
            lib_auth::AuthConfig::default()
                .enabled(true)
                .jwks_url(server.jwks_url())
                .issuer(server.config.issuer.clone())
                .audience(audience),
        )
        .expect("lib-auth verifier")
    };
    pinned("payments")
        .authenticate_headers(&bearer_headers(&token))
        .await
        .expect("the pinned audience is accepted");
    pinned("midaz")
        .authenticate_headers(&bearer_headers(&token))
        .await
        .expect_err("a token for another audience is refused");

    // The server pins its own audience: after a change, tokens of the old one are refused.
    let server = server.restart_with(|c| c.audience = "ledger".into()).await;
    server.assert_token_refused(&token).await;
    let (id, secret) = server.create_app("midaz", &["midaz-viewer-role"]).await;
    server
        .assert_token_accepted(&server.app_token(&id, &secret).await)
        .await;
}
