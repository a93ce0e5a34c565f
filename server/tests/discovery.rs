//! Discovery (RFC 8414 / OIDC), the JWKS, `/health`, and answers to unknown requests.

mod common;

use common::{Answer, TestServer, decode_jwt};
use reqwest::StatusCode;

#[tokio::test]
async fn both_well_known_paths_answer_the_same_issuer_metadata() {
    let server = TestServer::start().await;
    let oidc = server.get("/.well-known/openid-configuration", None).await;
    let oauth = server
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(oidc.status, StatusCode::OK, "{oidc:?}");
    assert_eq!(oauth.status, StatusCode::OK, "{oauth:?}");
    assert_eq!(oidc.body, oauth.body);
    let issuer = server.config.issuer.as_str();
    assert_eq!(oidc.body["issuer"], issuer);
    assert_eq!(oidc.body["token_endpoint"], format!("{issuer}/oauth/token"));
    assert_eq!(
        oidc.body["jwks_uri"],
        format!("{issuer}/.well-known/jwks.json")
    );
    assert_eq!(
        oidc.body["revocation_endpoint"],
        format!("{issuer}/oauth/revoke")
    );
    assert_eq!(
        oidc.body["introspection_endpoint"],
        format!("{issuer}/oauth/introspect")
    );
    // The advertised endpoints are the ones served.
    let jwks = server
        .http
        .get(oidc.str("jwks_uri"))
        .send()
        .await
        .expect("jwks fetched");
    assert_eq!(jwks.status(), StatusCode::OK);
    let methods = oidc.body["token_endpoint_auth_methods_supported"].to_string();
    assert!(methods.contains("client_secret_basic") && methods.contains("client_secret_post"));
}

#[tokio::test]
async fn the_jwks_publishes_the_signing_key_and_nothing_private() {
    let server = TestServer::start().await;
    let jwks = server.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK, "{jwks:?}");
    let keys = jwks.body["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{jwks:?}");
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(key.get(private).is_none(), "{private} published");
    }
    let login = server.login_admin().await;
    let (header, _) = decode_jwt(login["accessToken"].as_str().expect("access"));
    assert_eq!(header["kid"], key["kid"]);
}

#[tokio::test]
async fn other_algorithms_are_published_with_their_own_key_type() {
    for (algorithm, kty) in [
        (lib_auth_server::keys::SigningAlgorithm::Es256, "EC"),
        (lib_auth_server::keys::SigningAlgorithm::EdDsa, "OKP"),
    ] {
        let server = TestServer::start_with(|c| c.signing_algorithm = algorithm).await;
        let jwks = server.get("/.well-known/jwks.json", None).await;
        assert_eq!(jwks.body["keys"][0]["kty"], kty);
        let login = server.login_admin().await;
        let access = login["accessToken"].as_str().expect("access");
        let (header, _) = decode_jwt(access);
        assert_eq!(header["alg"], algorithm.name());
        server.assert_token_accepted(access).await;
        server
            .verifier()
            .authenticate_headers(&common::bearer_headers(access))
            .await
            .expect("lib-auth verifies it");
    }
}

#[tokio::test]
async fn health_answers_exactly_healthy() {
    let server = TestServer::start().await;
    let answer = server.get("/health", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text, "healthy");
}

#[tokio::test]
async fn unknown_paths_and_methods_are_answered_in_json() {
    let server = TestServer::start().await;
    let missing = server.get("/v1/nothing-here", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body["code"].is_string(), "{missing:?}");
    let wrong_method = server.get("/v1/login/oauth/access_token", None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.body["code"].is_string(), "{wrong_method:?}");
    assert_eq!(
        wrong_method.header("allow"),
        Some("POST"),
        "RFC 9110 §15.5.6"
    );
    let response = server
        .http
        .delete(server.url("/v1/authorize"))
        .send()
        .await
        .expect("sent");
    let answer = Answer::read(response).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(answer.body["code"].is_string(), "{answer:?}");
    // The RFC endpoints answer in RFC 6749's shape, whatever went wrong.
    for path in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        let answer = server.get(path, None).await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(
            answer.body["error"], "invalid_request",
            "{path}: {answer:?}"
        );
        assert!(answer.body["error_description"].is_string(), "{answer:?}");
        assert!(answer.body.get("code").is_none(), "{answer:?}");
        assert_eq!(answer.header("allow"), Some("POST"));
    }
}

#[tokio::test]
async fn a_disabled_password_grant_is_not_advertised() {
    let server = TestServer::start_with(|c| c.password_grant_enabled = false).await;
    let metadata = server.get("/.well-known/openid-configuration", None).await;
    assert_eq!(
        metadata.body["grant_types_supported"],
        serde_json::json!(["client_credentials", "refresh_token"])
    );
}
