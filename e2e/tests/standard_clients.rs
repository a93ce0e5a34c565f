//! Standard clients against `lib-auth-server` as a real process: the `oauth2` crate gets
//! `client_credentials` tokens from `/oauth/token` with both client authentication methods;
//! PyJWT verifies our access tokens from our JWKS (RS256, ES256 and EdDSA keys); Authlib
//! validates our discovery metadata. The Python clients are those of
//! `e2e/python/requirements.txt` (`.ci/run` installs them).

use std::future::Future;
use std::pin::Pin;
use std::process::Command;
use std::time::Duration;

use lib_auth_e2e::{ADMIN_PASSWORD, AuthServer, Http, step};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, ClientId, ClientSecret, HttpRequest, HttpResponse, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};
use reqwest::StatusCode;

const FLOW: &str = "standard clients";

/// `oauth2`'s HTTP client, over the workspace's reqwest.
fn send(
    http: &Http,
    request: HttpRequest,
) -> Pin<Box<dyn Future<Output = Result<HttpResponse, reqwest::Error>> + Send + '_>> {
    Box::pin(async move {
        let (parts, body) = request.into_parts();
        let response = http
            .client()
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let mut answer = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        let body = response.bytes().await?.to_vec();
        Ok(answer.body(body).expect("a response from a valid one"))
    })
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Runs `e2e/python/standard_client.py` with `args`: `Ok(stdout)` on exit status 0,
/// `Err(stderr)` otherwise.
fn standard_client(args: &[&str]) -> Result<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/standard_client.py");
    let output = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the Python clients are not installed: python3 -m pip install -r e2e/python/requirements.txt\n{stderr}"
    );
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(stderr)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_oauth2_crate_gets_client_credentials_tokens_with_basic_and_post_auth() {
    let server = AuthServer::start().await;
    let http = Http::default();
    let app = server.cli(&[
        "app",
        "create",
        "--name",
        "midaz",
        "--role",
        "midaz-viewer-role",
    ]);
    let (id, secret) = (
        app["clientId"].as_str().expect("client id").to_owned(),
        app["clientSecret"]
            .as_str()
            .expect("client secret")
            .to_owned(),
    );
    let token_url = TokenUrl::new(server.auth("/oauth/token")).expect("token URL");
    let client = |auth_type: AuthType, secret: &str| {
        BasicClient::new(ClientId::new(id.clone()))
            .set_client_secret(ClientSecret::new(secret.to_owned()))
            .set_token_uri(token_url.clone())
            .set_auth_type(auth_type)
    };
    let verifier = lib_auth::Auth::new(
        lib_auth::AuthConfig::default()
            .enabled(true)
            .jwks_url(server.auth("/.well-known/jwks.json"))
            .issuer(server.auth_url.clone()),
    )
    .expect("a verifier");
    for (auth_type, name) in [
        (AuthType::BasicAuth, "client_secret_basic"),
        (AuthType::RequestBody, "client_secret_post"),
    ] {
        let token = client(auth_type.clone(), &secret)
            .exchange_client_credentials()
            .add_scope(Scope::new("openid".into()))
            .request_async(&|request| send(&http, request))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(token.token_type().as_ref(), "bearer", "{name}");
        assert!(
            token
                .expires_in()
                .is_some_and(|d| d > Duration::from_secs(60))
        );
        assert!(
            token.refresh_token().is_none(),
            "no refresh token for an application"
        );
        let mut headers = http::HeaderMap::new();
        let bearer = format!("Bearer {}", token.access_token().secret());
        headers.insert(
            http::header::AUTHORIZATION,
            bearer.parse().expect("a header"),
        );
        let principal = verifier
            .authenticate_headers(&headers)
            .await
            .expect("lib-auth takes the token the oauth2 crate got");
        assert_eq!(principal.subject(), id);

        // A wrong secret is RFC 6749's invalid_client, which the crate parses.
        let refused = client(auth_type, "not-the-secret")
            .exchange_client_credentials()
            .request_async(&|request| send(&http, request))
            .await
            .expect_err("a wrong secret is refused");
        match refused {
            RequestTokenError::ServerResponse(error) => {
                assert_eq!(
                    *error.error(),
                    BasicErrorResponseType::InvalidClient,
                    "{name}"
                );
            }
            other => panic!("{name}: not an RFC 6749 error answer: {other:?}"),
        }
        step(
            FLOW,
            &format!(
                "oauth2 crate: client_credentials with {name}: token taken by lib-auth; a wrong secret is invalid_client"
            ),
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pyjwt_verifies_our_access_tokens_from_our_jwks() {
    let http = Http::default();
    for algorithm in ["RS256", "ES256", "EdDSA"] {
        let server = AuthServer::start_with(&[
            ("AUTH_SIGNING_ALG", algorithm),
            ("AUTH_ACCESS_TOKEN_TTL", "2s"),
        ])
        .await;
        let jwks = server.auth("/.well-known/jwks.json");
        let login = server
            .login(&http, "admin", ADMIN_PASSWORD)
            .await
            .expect(StatusCode::OK, "admin login");
        let token = login.str("accessToken").to_owned();

        let claims = standard_client(&["verify-token", &jwks, &server.auth_url, "midaz", &token])
            .unwrap_or_else(|e| panic!("PyJWT refused our {algorithm} token: {e}"));
        let claims: serde_json::Value = serde_json::from_str(&claims).expect("claims as JSON");
        assert_eq!(claims["iss"], server.auth_url.as_str());
        assert_eq!(claims["name"], "admin");

        // What PyJWT must refuse: another issuer, another audience, an ID token (typ JWT),
        // a forged signature, and the token once expired.
        let refusals = [
            (
                "another issuer",
                vec![
                    "verify-token",
                    &jwks,
                    "http://elsewhere.test",
                    "midaz",
                    &token,
                ],
                "InvalidIssuer",
            ),
            (
                "another audience",
                vec!["verify-token", &jwks, &server.auth_url, "payments", &token],
                "InvalidAudience",
            ),
            (
                "an ID token",
                vec![
                    "verify-token",
                    &jwks,
                    &server.auth_url,
                    "midaz",
                    login.str("idToken"),
                ],
                "not 'at+jwt'",
            ),
        ];
        for (what, args, reason) in refusals {
            let error = standard_client(&args).expect_err(what);
            assert!(error.contains(reason), "{algorithm}, {what}: {error}");
        }
        let (head, _) = token.rsplit_once('.').expect("a JWT");
        let forged = format!("{head}.{}", "A".repeat(86));
        let error = standard_client(&["verify-token", &jwks, &server.auth_url, "midaz", &forged])
            .expect_err("a forged signature");
        assert!(
            error.contains("Signature") || error.contains("signature"),
            "{algorithm}: {error}"
        );
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let error = standard_client(&["verify-token", &jwks, &server.auth_url, "midaz", &token])
            .expect_err("an expired token");
        assert!(error.contains("ExpiredSignature"), "{algorithm}: {error}");
        step(
            FLOW,
            &format!(
                "PyJWT with PyJWKClient: our {algorithm} access token verified (typ at+jwt, iss, aud, exp); other issuer, audience, an ID token, a forged signature and expiry refused"
            ),
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn authlib_validates_our_discovery_metadata() {
    let server = AuthServer::start().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let checked = standard_client(&["check-discovery", &server.auth(path), &server.auth_url])
            .unwrap_or_else(|e| panic!("Authlib refused {path}: {e}"));
        assert!(checked.contains("/oauth/token"), "{checked}");
        step(
            FLOW,
            &format!("Authlib: {path} is valid RFC 8414 and OpenID Connect Discovery metadata"),
        );
    }
}
