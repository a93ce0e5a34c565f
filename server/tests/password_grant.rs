//! The password grant on Lerian's JSON endpoint, and the tokens it answers (SPEC §3, §4).

mod common;

use common::{ADMIN, ADMIN_PASSWORD, TestServer, bearer_headers, decode_jwt};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn password_login_answers_the_lerian_token_set() {
    let server = TestServer::start().await;
    let answer = server
        .token(&json!({"grantType": "password", "username": ADMIN, "password": ADMIN_PASSWORD}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let body = &answer.body;
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 3600);
    assert_eq!(body["scope"], "openid profile email");
    for field in ["accessToken", "refreshToken", "idToken"] {
        assert!(
            body[field].as_str().is_some_and(|t| !t.is_empty()),
            "{field} in {body}"
        );
    }
    // The refresh token is opaque: 256 random bits, not a JWT.
    let refresh = answer.str("refreshToken");
    assert_eq!(refresh.len(), 43, "{refresh}");
    assert!(!refresh.contains('.'));
}

#[tokio::test]
async fn access_token_is_an_rfc9068_jwt_with_the_lerian_claims() {
    let server = TestServer::start().await;
    let body = server.login_admin().await;
    let token = body["accessToken"].as_str().expect("access token");
    let (header, claims) = decode_jwt(token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    let jwks = server.get("/.well-known/jwks.json", None).await;
    let kids: Vec<&str> = jwks.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(
        kids.contains(&header["kid"].as_str().expect("kid")),
        "{kids:?}"
    );

    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "client_id",
        "scope",
        "sid",
        "owner",
        "type",
        "name",
        "displayName",
        "roles",
    ] {
        assert!(claims.get(claim).is_some(), "no {claim} in {claims}");
    }
    assert_eq!(claims["iss"], server.config.issuer.as_str());
    assert_eq!(claims["owner"], "lerian");
    assert_eq!(claims["type"], "normal-user");
    assert_eq!(claims["name"], ADMIN);
    assert_eq!(claims["displayName"], "Admin");
    assert_eq!(claims["scope"], "openid profile email");
    let sub = claims["sub"].as_str().expect("sub");
    assert!(uuid_like(sub), "sub is the user's UUID: {sub}");
    let exp = claims["exp"].as_i64().expect("exp");
    let iat = claims["iat"].as_i64().expect("iat");
    assert_eq!(exp - iat, 3600);
    assert!((iat - common::now()).abs() <= 5);
    let roles: Vec<&str> = claims["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(roles.contains(&"midaz-editor-role"), "{roles:?}");
    assert!(roles.contains(&"plugin-identity-editor-role"), "{roles:?}");
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn access_token_verifies_independently_with_lib_auth() {
    let server = TestServer::start().await;
    let body = server.login_admin().await;
    let token = body["accessToken"].as_str().expect("access token");
    let verifier = server.verifier();
    let principal = verifier
        .authenticate_headers(&bearer_headers(token))
        .await
        .expect("lib-auth accepts the access token");
    let (_, claims) = decode_jwt(token);
    assert_eq!(principal.subject(), claims["sub"].as_str().expect("sub"));
    assert_eq!(principal.kind(), lib_auth::PrincipalKind::User);
    assert_eq!(principal.name(), Some(ADMIN));
    assert_eq!(principal.owner(), Some("lerian"));
    assert!(principal.session_id().is_some());
    let allowed = verifier
        .decide(&principal, "midaz", "ledgers", lib_auth::Action::Post)
        .expect("local mode decides");
    assert!(allowed.is_allowed(), "the admin edits midaz");

    // A token signed by the server but tampered with is refused.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = claims.clone();
    claims["roles"] = json!(["everything"]);
    parts[1] = base64_url(&claims.to_string());
    let forged = parts.join(".");
    assert!(
        verifier
            .authenticate_headers(&bearer_headers(&forged))
            .await
            .is_err()
    );
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text.as_bytes())
}

#[tokio::test]
async fn id_token_is_a_plain_jwt_for_the_client_with_the_session_and_no_roles() {
    let server = TestServer::start().await;
    let body = server.login_admin().await;
    let (access_header, access) = decode_jwt(body["accessToken"].as_str().expect("access"));
    let id_token = body["idToken"].as_str().expect("id token");
    let (header, claims) = decode_jwt(id_token);
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], access_header["kid"]);
    assert_eq!(claims["aud"], access["client_id"]);
    assert_eq!(claims["sid"], access["sid"]);
    assert_eq!(claims["sub"], access["sub"]);
    assert_eq!(claims["iss"], server.config.issuer.as_str());
    assert!(claims.get("roles").is_none(), "{claims}");
    assert_eq!(claims["preferred_username"], ADMIN);

    // Never taken for an access token: not by lib-auth, not by the server.
    let verifier = server.verifier();
    assert!(
        verifier
            .authenticate_headers(&bearer_headers(id_token))
            .await
            .is_err(),
        "an ID token is not an access token"
    );
    server.assert_token_refused(id_token).await;
}

#[tokio::test]
async fn login_through_a_registered_client_names_it_in_the_tokens() {
    let server = TestServer::start().await;
    let (client_id, client_secret) = server.create_app("midaz", &["midaz-editor-role"]).await;
    let answer = server
        .token(&json!({
            "grantType": "password",
            "username": ADMIN,
            "password": ADMIN_PASSWORD,
            "clientId": client_id,
            "clientSecret": client_secret,
        }))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let (_, access) = decode_jwt(answer.str("accessToken"));
    let (_, id) = decode_jwt(answer.str("idToken"));
    assert_eq!(access["client_id"], client_id.as_str());
    assert_eq!(id["aud"], client_id.as_str());
}

#[tokio::test]
async fn usernames_are_case_insensitive_at_login() {
    let server = TestServer::start().await;
    server
        .create_user("Alice.Smith", &["midaz-viewer-group"])
        .await;
    let body = server.login("alice.smith", common::USER_PASSWORD).await;
    let (_, claims) = decode_jwt(body["accessToken"].as_str().expect("access"));
    assert_eq!(claims["name"], "Alice.Smith");
}

#[tokio::test]
async fn a_narrower_scope_without_openid_gets_no_id_token() {
    let server = TestServer::start().await;
    let answer = server
        .token(&json!({
            "grantType": "password",
            "username": ADMIN,
            "password": ADMIN_PASSWORD,
            "scope": "profile",
        }))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["scope"], "profile");
    assert!(answer.body.get("idToken").is_none(), "{answer:?}");
    assert!(answer.body["refreshToken"].is_string());
}

#[tokio::test]
async fn access_tokens_expire_after_the_configured_ttl() {
    let server =
        TestServer::start_with(|c| c.access_token_ttl = std::time::Duration::from_secs(1)).await;
    let body = server.login_admin().await;
    assert_eq!(body["expiresIn"], 1);
    let token = body["accessToken"].as_str().expect("access token");
    let (_, claims) = decode_jwt(token);
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        1
    );
    // A validator with no clock leeway sees it expire (a new one each time: no cache).
    let strict = || {
        lib_auth::Auth::new(
            lib_auth::AuthConfig::default()
                .enabled(true)
                .jwks_url(server.jwks_url())
                .issuer(server.config.issuer.clone())
                .leeway(std::time::Duration::ZERO),
        )
        .expect("verifier")
    };
    strict()
        .authenticate_headers(&bearer_headers(token))
        .await
        .expect("valid at first");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(
        strict()
            .authenticate_headers(&bearer_headers(token))
            .await
            .is_err(),
        "expired after its TTL"
    );
}
