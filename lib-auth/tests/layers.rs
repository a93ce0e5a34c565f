//! The tower layers over real HTTP: an axum service guarded by lib-auth in local mode, with
//! its keys served by a real JWKS endpoint.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use lib_auth::{Action, Auth, AuthConfig, Principal};
use lib_auth_testkit::{ISSUER, JwksServer, TestKey, serve, user_claims};

struct App {
    base: String,
    client: reqwest::Client,
}

async fn whoami(axum::Extension(p): axum::Extension<Principal>) -> String {
    p.subject().to_owned()
}

async fn start(jwks: &JwksServer) -> App {
    let auth = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .issuer(ISSUER)
            .jwks_url(jwks.jwks_url.clone())
            .jwks_min_refresh_interval(Duration::from_millis(200)),
    )
    .expect("config is valid");
    let app = Router::new()
        .route(
            "/v1/organizations/{id}/ledgers",
            get(whoami).post(whoami).delete(whoami).head(whoami),
        )
        .route_layer(auth.require_method("midaz", "ledgers"))
        .route("/v1/me", get(whoami).route_layer(auth.authenticate()))
        .route(
            "/v1/fixed",
            get(whoami)
                .post(whoami)
                .route_layer(auth.require("midaz", "accounts", Action::Get)),
        );
    let addr = serve(app).await;
    App {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
    }
}

impl App {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.send().await.expect("request sent")
    }
}

#[tokio::test]
async fn viewer_reads_but_cannot_write_and_editor_can() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let app = start(&jwks).await;
    let viewer = key.sign(&user_claims("viewer-1", &["midaz-viewer-role"]));
    let editor = key.sign(&user_claims("editor-1", &["midaz-editor-role"]));
    let path = "/v1/organizations/o1/ledgers";

    let r = app.call(reqwest::Method::GET, path, Some(&viewer)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "viewer-1");
    assert_eq!(
        app.call(reqwest::Method::HEAD, path, Some(&viewer))
            .await
            .status(),
        200
    );

    let r = app.call(reqwest::Method::POST, path, Some(&viewer)).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "AUT-0008");
    assert!(body["title"].is_string() && body["message"].is_string());

    assert_eq!(
        app.call(reqwest::Method::POST, path, Some(&editor))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.call(reqwest::Method::DELETE, path, Some(&editor))
            .await
            .status(),
        200
    );
    // The signature was checked once per token; the second request of each came from cache.
    assert_eq!(jwks.hits(), 1);
}

#[tokio::test]
async fn missing_and_invalid_tokens_are_401_never_403() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let app = start(&jwks).await;

    let r = app
        .call(reqwest::Method::POST, "/v1/organizations/o1/ledgers", None)
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "AUT-0006");

    let r = app
        .call(
            reqwest::Method::POST,
            "/v1/organizations/o1/ledgers",
            Some("not-a-jwt"),
        )
        .await;
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "AUT-0007");
}

#[tokio::test]
async fn fixed_action_ignores_the_method_and_authenticate_alone_needs_no_role() {
    let key = TestKey::ec();
    let jwks = JwksServer::start(&[&key]).await;
    let app = start(&jwks).await;
    let nobody = key.sign(&user_claims("nobody", &[]));
    let viewer = key.sign(&user_claims("viewer", &["midaz-viewer-role"]));

    assert_eq!(
        app.call(reqwest::Method::GET, "/v1/me", Some(&nobody))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.call(reqwest::Method::GET, "/v1/me", None)
            .await
            .status(),
        401
    );
    // /v1/fixed requires midaz/accounts/get whatever the method.
    assert_eq!(
        app.call(reqwest::Method::POST, "/v1/fixed", Some(&viewer))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.call(reqwest::Method::GET, "/v1/fixed", Some(&nobody))
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn key_source_down_with_nothing_cached_is_503() {
    let key = TestKey::ed();
    let jwks = JwksServer::start(&[&key]).await;
    jwks.set_failing(true);
    let app = start(&jwks).await;
    let token = key.sign(&user_claims("u", &["midaz-viewer-role"]));
    let r = app
        .call(
            reqwest::Method::GET,
            "/v1/organizations/o1/ledgers",
            Some(&token),
        )
        .await;
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "AUT-0009");
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no internals in the body: {body}"
    );

    // Once the source is back (and the refresh interval has passed) the same token works.
    jwks.set_failing(false);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let r = app
        .call(
            reqwest::Method::GET,
            "/v1/organizations/o1/ledgers",
            Some(&token),
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn disabled_library_lets_everything_through() {
    let auth = Auth::new(AuthConfig::default()).unwrap();
    assert!(!auth.is_enabled());
    let app = Router::new()
        .route("/open", get(|| async { "ok" }))
        .route_layer(auth.require_method("midaz", "ledgers"));
    let addr = serve(app).await;
    let r = reqwest::get(format!("http://{addr}/open")).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn unmapped_methods_are_401_without_a_token_and_403_with_one() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let auth = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .issuer(ISSUER)
            .jwks_url(jwks.jwks_url.clone()),
    )
    .expect("config is valid");
    let app = Router::new()
        .route("/v1/ledgers", axum::routing::any(|| async { "reached" }))
        .route_layer(auth.require_method("midaz", "ledgers"));
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let editor = key.sign(&user_claims("editor", &["midaz-editor-role"]));
    for method in ["OPTIONS", "TRACE"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let url = format!("http://{addr}/v1/ledgers");
        let r = client.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(r.status(), 401, "{method} without a token");
        let r = client
            .request(method.clone(), &url)
            .bearer_auth("garbage")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} with a bad token");
        // First sight of the token (pending check), then from the cache.
        for _ in 0..2 {
            let r = client
                .request(method.clone(), &url)
                .bearer_auth(&editor)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{method} with a valid token");
        }
    }
}
