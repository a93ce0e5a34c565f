//! lib-auth in axum 0.8 over real HTTP: extractors, custom error bodies, router state, nested
//! routers, and `HEAD` mapped to the `head` action.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use lib_auth::{Policy, PolicySource, VerificationKey};
use lib_auth_axum::{Action, Auth, AuthConfig, Principal};
use lib_auth_testkit::{ISSUER, TestKey, serve, user_claims};
use serde_json::{Value, json};

fn auth_for(key: &TestKey, policy: PolicySource) -> Auth {
    let vk = VerificationKey::from_pem(Some(&key.kid), key.alg, key.public_pem).expect("key");
    Auth::new(
        AuthConfig::default()
            .enabled(true)
            .issuer(ISSUER)
            .static_key(vk)
            .policy(policy),
    )
    .expect("config")
}

async fn whoami(caller: Principal) -> String {
    caller.subject().to_owned()
}

async fn maybe(caller: Option<Principal>) -> String {
    caller.map_or_else(|| "anonymous".to_owned(), |c| c.subject().to_owned())
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    async fn new(app: Router) -> Client {
        Client {
            base: format!("http://{}", serve(app).await),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        }
    }

    async fn send(&self, method: &str, path: &str, token: Option<&str>) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("sent")
    }
}

#[tokio::test]
async fn principal_extractor_reads_the_caller_and_refuses_unguarded_routes() {
    let key = TestKey::rsa_a();
    let auth = auth_for(&key, PolicySource::BuiltIn);
    let app = Router::new()
        .route("/guarded", get(whoami).route_layer(auth.authenticate()))
        .route("/unguarded", get(whoami))
        .route("/optional", get(maybe))
        .route(
            "/optional-guarded",
            get(maybe).route_layer(auth.authenticate()),
        );
    let c = Client::new(app).await;
    let token = key.sign(&user_claims("alice", &[]));

    let r = c.send("GET", "/guarded", Some(&token)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "alice");

    // No layer authenticated the request: the extractor refuses with the SPEC envelope.
    let r = c.send("GET", "/unguarded", Some(&token)).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "AUT-0006");

    assert_eq!(
        c.send("GET", "/optional", None).await.text().await.unwrap(),
        "anonymous"
    );
    let r = c.send("GET", "/optional-guarded", Some(&token)).await;
    assert_eq!(r.text().await.unwrap(), "alice");
}

#[tokio::test]
async fn custom_error_bodies_replace_the_envelope_for_401_403_and_unmapped_methods() {
    let key = TestKey::rsa_a();
    let auth = auth_for(&key, PolicySource::BuiltIn).with_error_responder(|error| {
        let body = json!({ "error": error.code(), "status": error.status().as_u16() });
        let mut response = http::Response::new(Bytes::from(body.to_string()));
        *response.status_mut() = error.status();
        response
            .headers_mut()
            .insert("content-type", "application/problem+json".parse().unwrap());
        response
    });
    let app = Router::new()
        .route(
            "/v1/organizations/{id}/ledgers",
            get(whoami).post(whoami).options(whoami),
        )
        .route_layer(auth.require_method("midaz", "ledgers"));
    let c = Client::new(app).await;
    let viewer = key.sign(&user_claims("v", &["midaz-viewer-role"]));

    for (method, token, status, code) in [
        ("GET", None, 401, "AUT-0006"),
        ("GET", Some("garbage"), 401, "AUT-0007"),
        ("POST", Some(viewer.as_str()), 403, "AUT-0008"),
        ("OPTIONS", Some(viewer.as_str()), 403, "AUT-0008"),
    ] {
        let r = c.send(method, "/v1/organizations/o/ledgers", token).await;
        assert_eq!(r.status(), status, "{method} {token:?}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body, json!({ "error": code, "status": status }));
    }
    assert_eq!(
        c.send("GET", "/v1/organizations/o/ledgers", Some(&viewer))
            .await
            .status(),
        200
    );
}

#[derive(Clone)]
struct Ledgers {
    names: Vec<&'static str>,
}

async fn list(State(state): State<Ledgers>, caller: Principal) -> Json<Value> {
    Json(json!({ "items": state.names, "caller": caller.subject() }))
}

#[tokio::test]
async fn guards_work_with_router_state_and_nested_routers() {
    let key = TestKey::ec();
    let auth = auth_for(&key, PolicySource::BuiltIn);
    let ledgers = Router::new()
        .route("/ledgers", get(list).post(list))
        .route_layer(auth.require_method("midaz", "ledgers"));
    let accounts = Router::new()
        .route("/accounts", get(list))
        .route_layer(auth.require("midaz", "accounts", Action::Get));
    let app = Router::new()
        .nest(
            "/v1/organizations/{organization_id}",
            ledgers.merge(accounts),
        )
        .with_state(Ledgers {
            names: vec!["main", "fx"],
        });
    let c = Client::new(app).await;
    let viewer = key.sign(&user_claims("viewer", &["midaz-viewer-role"]));
    let outsider = key.sign(&user_claims("outsider", &["plugin-crm-editor-role"]));

    let r = c
        .send("GET", "/v1/organizations/o1/ledgers", Some(&viewer))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({ "items": ["main", "fx"], "caller": "viewer" }));
    assert_eq!(
        c.send("POST", "/v1/organizations/o1/ledgers", Some(&viewer))
            .await
            .status(),
        403
    );
    assert_eq!(
        c.send("GET", "/v1/organizations/o1/accounts", Some(&viewer))
            .await
            .status(),
        200
    );
    assert_eq!(
        c.send("GET", "/v1/organizations/o1/accounts", Some(&outsider))
            .await
            .status(),
        403
    );
    assert_eq!(
        c.send("GET", "/v1/organizations/o1/accounts", None)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn head_requests_are_decided_as_the_head_action() {
    let key = TestKey::ed();
    // A policy where reading is allowed but HEAD is not, so the two are told apart.
    let policy = Policy::from_json(
        r#"{"version":1,"roles":[
            {"id":"reader","permissions":[{"product":"midaz","resource":"organizations","actions":["get"]}]},
            {"id":"prober","permissions":[{"product":"midaz","resource":"organizations","actions":["head"]}]}
        ]}"#,
    )
    .expect("policy");
    let auth = auth_for(&key, PolicySource::Document(Box::new(policy)));
    // axum answers HEAD with the GET handler; the guard still sees the HEAD method.
    let app = Router::new()
        .route("/v1/organizations/metrics/count", get(whoami))
        .route_layer(auth.require_method("midaz", "organizations"));
    let c = Client::new(app).await;
    let reader = key.sign(&user_claims("reader", &["reader"]));
    let prober = key.sign(&user_claims("prober", &["prober"]));
    let path = "/v1/organizations/metrics/count";

    assert_eq!(c.send("GET", path, Some(&reader)).await.status(), 200);
    assert_eq!(c.send("HEAD", path, Some(&reader)).await.status(), 403);
    assert_eq!(c.send("HEAD", path, Some(&prober)).await.status(), 200);
    assert_eq!(c.send("GET", path, Some(&prober)).await.status(), 403);
}
