//! A service guarded by lib-auth in local mode, runnable without any Auth server.
//!
//! It trusts one throw-away RSA key (from `testkit/fixtures`, never use it for real), signs
//! three demo access tokens with it, prints `curl` lines that use them, and serves:
//!
//! - `GET|POST|DELETE /v1/organizations/{id}/ledgers` — `require_method("midaz", "ledgers")`
//! - `GET /v1/me` — `authenticate()` only: any valid token
//!
//! `cargo run -p lib-auth-examples --bin quickstart` (port: `QUICKSTART_PORT`, default 3000).

use axum::routing::get;
use axum::{Extension, Json, Router};
use lib_auth::{Auth, AuthConfig, Principal, VerificationKey};
use lib_auth_testkit::{ISSUER, TestKey, app_claims, user_claims};
use serde_json::{Value, json};

async fn me(Extension(principal): Extension<Principal>) -> Json<Value> {
    Json(json!({
        "sub": principal.subject(),
        "kind": format!("{:?}", principal.kind()),
        "roles": principal.roles(),
    }))
}

async fn ledgers(Extension(principal): Extension<Principal>) -> Json<Value> {
    Json(json!({ "items": [], "caller": principal.subject() }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let key = TestKey::rsa_a();
    let auth = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .issuer(ISSUER)
            .static_key(VerificationKey::from_pem(
                Some(&key.kid),
                key.alg,
                key.public_pem,
            )?),
    )?;

    let app = Router::new()
        .route(
            "/v1/organizations/{organization_id}/ledgers",
            get(ledgers).post(ledgers).delete(ledgers),
        )
        .route_layer(auth.require_method("midaz", "ledgers"))
        .route("/v1/me", get(me).route_layer(auth.authenticate()));

    let port: u16 = match std::env::var("QUICKSTART_PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("QUICKSTART_PORT={p:?} is not a port"))?,
        Err(_) => 3000,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| {
            format!("cannot listen on 127.0.0.1:{port} ({e}); set QUICKSTART_PORT to another port")
        })?;
    let base = format!("http://{}", listener.local_addr()?);

    let viewer = key.sign(&user_claims("alice", &["midaz-viewer-role"]));
    let editor = key.sign(&user_claims("bob", &["midaz-editor-role"]));
    let app_token = key.sign(&app_claims("reporting-app", &["midaz-viewer-role"]));
    println!("Listening on {base}. Try (tokens valid for one hour):\n");
    println!("V='{viewer}'\nE='{editor}'\nA='{app_token}'\n");
    println!("curl -i {base}/v1/me -H \"Authorization: Bearer $V\"");
    println!(
        "curl -i {base}/v1/organizations/o1/ledgers -H \"Authorization: Bearer $V\"            # 200: viewers read"
    );
    println!(
        "curl -i -X POST {base}/v1/organizations/o1/ledgers -H \"Authorization: Bearer $V\"    # 403: viewers do not write"
    );
    println!(
        "curl -i -X DELETE {base}/v1/organizations/o1/ledgers -H \"Authorization: Bearer $E\"  # 200: editors do"
    );
    println!(
        "curl -i {base}/v1/organizations/o1/ledgers -H \"Authorization: Bearer $A\"            # 200: an application with the viewer role"
    );
    println!(
        "curl -i {base}/v1/organizations/o1/ledgers                                          # 401: no token"
    );

    axum::serve(listener, app).await?;
    Ok(())
}
