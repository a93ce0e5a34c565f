//! The `m2m-client` binary against the ledger (local mode) and a fake token endpoint
//! (`POST /v1/login/oauth/access_token`, Lerian's JSON `client_credentials` grant), all on
//! 127.0.0.1:0.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use lib_auth::{Auth, AuthConfig, VerificationKey};
use lib_auth_examples::ledger;
use lib_auth_testkit::{ISSUER, TestKey, app_claims, serve};
use serde_json::{Value, json};

const CLIENT_ID: &str = "reporting-app";
const CLIENT_SECRET: &str = "s3cret-of-the-reporting-app";

struct TokenEndpoint {
    key: TestKey,
    calls: AtomicUsize,
}

async fn issue(State(endpoint): State<Arc<TokenEndpoint>>, Json(body): Json<Value>) -> Response {
    endpoint.calls.fetch_add(1, Ordering::SeqCst);
    let good = body["grantType"] == "client_credentials"
        && body["clientId"] == CLIENT_ID
        && body["clientSecret"] == CLIENT_SECRET;
    if !good {
        let error = json!({"code": "AUT-1004", "title": "Invalid Client", "message": "bad client"});
        return (StatusCode::UNAUTHORIZED, Json(error)).into_response();
    }
    let token = endpoint
        .key
        .sign(&app_claims(CLIENT_ID, &["midaz-contributor-role"]));
    Json(json!({"accessToken": token, "tokenType": "Bearer", "expiresIn": 3600})).into_response()
}

async fn run_client(auth_url: &str, ledger_url: &str, secret: &str) -> std::process::Output {
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_m2m-client"))
        .env_clear()
        .env("RUST_LOG", "error")
        .env("PLUGIN_AUTH_HOST", auth_url)
        .env("PLUGIN_AUTH_CLIENT_ID", CLIENT_ID)
        .env("PLUGIN_AUTH_CLIENT_SECRET", secret)
        .env("LEDGER_URL", ledger_url)
        .env("M2M_ROUNDS", "2")
        .env("M2M_INTERVAL_SECS", "0")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(15), command)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn the_client_gets_one_token_and_calls_the_ledger_with_it() {
    let key = TestKey::rsa_a();
    let endpoint = Arc::new(TokenEndpoint {
        key: key.clone(),
        calls: AtomicUsize::new(0),
    });
    let auth_app = Router::new()
        .route("/v1/login/oauth/access_token", post(issue))
        .with_state(endpoint.clone());
    let auth_url = format!("http://{}", serve(auth_app).await);
    let auth = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .issuer(ISSUER)
            .static_key(
                VerificationKey::from_pem(Some(&key.kid), key.alg, key.public_pem).unwrap(),
            ),
    )
    .unwrap();
    let ledger_url = format!("http://{}", serve(ledger::router(auth)).await);

    let output = run_client(&auth_url, &ledger_url, CLIENT_SECRET).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for line in [
        "round 1: POST /v1/organizations -> 201 Created",
        "round 1: GET /v1/organizations -> 200 OK 1 items",
        "round 2: POST /v1/organizations -> 201 Created",
        "round 2: HEAD /v1/organizations/metrics/count -> 204 No Content X-Total-Count 2",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
    assert!(stdout.contains(CLIENT_ID), "{stdout}");
    // The token was fetched once and reused.
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), 1);
    assert!(!stdout.contains(CLIENT_SECRET) && !stderr.contains(CLIENT_SECRET));

    let output = run_client(&auth_url, &ledger_url, "wrong").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no application token"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
