//! Remote mode over real HTTP: an axum service guarded by lib-auth in `Mode::Remote`, asking a
//! fake Auth service (a real axum server on 127.0.0.1:0 speaking SPEC §4: `POST /v1/authorize`,
//! `GET /v1/userinfo`) that verifies tokens, decides from a small table and records every
//! request it receives.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lib_auth::{Action, Auth, AuthConfig, Mode, Principal};
use lib_auth_testkit::{TestKey, app_claims, now, serve, user_claims};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// The fake Auth service.

/// One request received by the fake.
#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

/// How the fake answers `POST /v1/authorize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// As SPEC §4 says.
    Normal,
    /// 500 with a JSON error.
    Error500,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with JSON of the wrong shape (`authorized` not a boolean).
    WrongShape,
}

struct FakeState {
    key: DecodingKey,
    /// Allowed `(token sub, product, resource, action)`; everything else is denied.
    allowed: Mutex<HashSet<(String, String, String, String)>>,
    behaviour: Mutex<Behaviour>,
    delay: Mutex<Duration>,
    recorded: Mutex<Vec<Recorded>>,
}

struct FakeAuth {
    url: String,
    state: Arc<FakeState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

fn error_body(status: StatusCode, code: &str, title: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"code": code, "title": title, "message": message})),
    )
        .into_response()
}

/// RFC 3339 (UTC, seconds) of the current time.
fn rfc3339_now() -> String {
    let secs = now();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl FakeState {
    fn record(&self, uri: &Uri, headers: &HeaderMap, body: Value) {
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("<non-ascii>").to_owned())
        };
        self.recorded.lock().unwrap().push(Recorded {
            path: uri.path().to_owned(),
            authorization: header("authorization"),
            content_type: header("content-type"),
            body,
        });
    }

    /// Verifies the token of `Authorization: <jwt>` or `Authorization: Bearer <jwt>` (no leeway).
    #[allow(clippy::result_large_err)]
    fn verify(&self, headers: &HeaderMap) -> Result<Map<String, Value>, Response> {
        let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
            return Err(error_body(
                StatusCode::UNAUTHORIZED,
                "AUT-0006",
                "Missing Token",
                "missing token",
            ));
        };
        let token = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => value.trim(),
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let invalid = || {
            error_body(
                StatusCode::UNAUTHORIZED,
                "AUT-0007",
                "Invalid Token",
                "invalid or expired token",
            )
        };
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &validation)
            .map_err(|_| invalid())?
            .claims;
        // `exp` is the first instant at which the token is no longer valid (RFC 7519 §4.1.4).
        match claims.get("exp").and_then(Value::as_u64) {
            Some(exp) if exp > now() => Ok(claims),
            _ => Err(invalid()),
        }
    }
}

/// The `sub` Lerian's library sends for these claims and product.
fn lerian_sub(claims: &Map<String, Value>, product: &str) -> String {
    let owner = claims
        .get("owner")
        .and_then(Value::as_str)
        .unwrap_or("lerian");
    if claims.get("type").and_then(Value::as_str) == Some("application") {
        format!("{owner}/{product}-editor-role")
    } else {
        // The username (`name`), falling back to the id when the token names no user.
        let name = claims
            .get("name")
            .or_else(|| claims.get("sub"))
            .and_then(Value::as_str)
            .unwrap_or("");
        format!("{owner}/{name}")
    }
}

async fn authorize(
    State(state): State<Arc<FakeState>>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.record(&uri, &headers, parsed.clone());
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let behaviour = *state.behaviour.lock().unwrap();
    match behaviour {
        Behaviour::Normal => {}
        Behaviour::Error500 => {
            return error_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                "AUT-0500",
                "Internal Server Error",
                "boom",
            );
        }
        Behaviour::Garbage => return (StatusCode::OK, "<html>not json</html>").into_response(),
        Behaviour::WrongShape => {
            return axum::Json(json!({"authorized": "yes", "timestamp": rfc3339_now()}))
                .into_response();
        }
    }
    let claims = match state.verify(&headers) {
        Ok(claims) => claims,
        Err(response) => return response,
    };
    let field = |name: &str| parsed.get(name).and_then(Value::as_str).map(str::to_owned);
    let (Some(sub), Some(resource), Some(action)) =
        (field("sub"), field("resource"), field("action"))
    else {
        return error_body(
            StatusCode::BAD_REQUEST,
            "AUT-0001",
            "Bad Request",
            "sub, resource and action are required",
        );
    };
    let product = field("product").unwrap_or_default();
    let token_sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    // SPEC §8: the decision comes from the verified token; a body `sub` contradicting it is denied.
    let authorized = sub == lerian_sub(&claims, &product)
        && state.allowed.lock().unwrap().contains(&(
            token_sub.to_owned(),
            product,
            resource,
            action,
        ));
    axum::Json(json!({"authorized": authorized, "timestamp": rfc3339_now()})).into_response()
}

async fn userinfo(State(state): State<Arc<FakeState>>, uri: Uri, headers: HeaderMap) -> Response {
    state.record(&uri, &headers, Value::Null);
    match state.verify(&headers) {
        Ok(claims) => axum::Json(json!({
            "sub": claims.get("sub"),
            "name": claims.get("name"),
            "preferredUsername": claims.get("name"),
            "email": "someone@example.test",
            "emailVerified": true,
        }))
        .into_response(),
        Err(response) => response,
    }
}

impl FakeAuth {
    /// Starts the fake, trusting `key` and allowing the `(sub, product, resource, action)` rules.
    async fn start(key: &TestKey, allowed: &[(&str, &str, &str, &str)]) -> FakeAuth {
        let state = Arc::new(FakeState {
            key: DecodingKey::from_rsa_pem(key.public_pem).expect("public key"),
            allowed: Mutex::new(
                allowed
                    .iter()
                    .map(|(s, p, r, a)| {
                        (s.to_string(), p.to_string(), r.to_string(), a.to_string())
                    })
                    .collect(),
            ),
            behaviour: Mutex::new(Behaviour::Normal),
            delay: Mutex::new(Duration::ZERO),
            recorded: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/authorize", post(authorize))
            .route("/v1/userinfo", get(userinfo))
            .route("/health", get(|| async { "healthy" }))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        FakeAuth {
            url: format!("http://{addr}"),
            state,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server: the port is closed once this returns.
    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("fake Auth service stops")
                .expect("fake Auth service task");
        }
    }

    fn set_behaviour(&self, behaviour: Behaviour) {
        *self.state.behaviour.lock().unwrap() = behaviour;
    }

    fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    fn recorded(&self) -> Vec<Recorded> {
        self.state.recorded.lock().unwrap().clone()
    }

    /// How many requests reached `path`.
    fn calls(&self, path: &str) -> usize {
        self.recorded().iter().filter(|r| r.path == path).count()
    }
}

// ---------------------------------------------------------------------------------------------
// The guarded service.

struct App {
    base: String,
    client: reqwest::Client,
}

async fn whoami(axum::Extension(p): axum::Extension<Principal>) -> String {
    p.subject().to_owned()
}

fn remote_config(host: &str) -> AuthConfig {
    AuthConfig::default()
        .enabled(true)
        .mode(Mode::Remote)
        .host(host)
        .http_timeout(Duration::from_secs(2))
}

async fn start_app(config: AuthConfig) -> App {
    let auth = Auth::new(config).expect("config is valid");
    let app = Router::new()
        .route(
            "/v1/organizations/{id}/ledgers",
            get(whoami).post(whoami).delete(whoami),
        )
        .route_layer(auth.require_method("midaz", "ledgers"))
        .route(
            "/v1/fees",
            get(whoami).route_layer(auth.require("plugin-fees", "fees", Action::Get)),
        )
        .route("/v1/me", get(whoami).route_layer(auth.authenticate()));
    let addr = serve(app).await;
    App {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
    }
}

impl App {
    /// Sends `method path` with `Authorization: <header>` if given.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        header: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        req.send().await.expect("request sent")
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, Some(&format!("Bearer {token}")))
            .await
    }
}

const LEDGERS: &str = "/v1/organizations/o1/ledgers";
const AUTHORIZE: &str = "/v1/authorize";
const USERINFO: &str = "/v1/userinfo";

async fn code_of(r: reqwest::Response) -> String {
    let body: Value = r.json().await.expect("JSON error body");
    body["code"].as_str().unwrap_or_default().to_owned()
}

/// Sleeps until the wall clock is `extra` past `exp` (Unix seconds).
async fn sleep_past(exp: u64, extra: Duration) {
    let target = UNIX_EPOCH + Duration::from_secs(exp) + extra;
    if let Ok(left) = target.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn allowed_user_gets_200_and_the_wire_is_lerians() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key, &[("user-1", "midaz", "ledgers", "get")]).await;
    let app = start_app(remote_config(&fake.url)).await;
    let token = key.sign(&user_claims("user-1", &[]));

    let r = app.get(LEDGERS, &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "user-1");

    let recorded = fake.recorded();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let call = &recorded[0];
    assert_eq!(call.path, AUTHORIZE);
    // The raw token, as Lerian's library sends it (no scheme).
    assert_eq!(call.authorization.as_deref(), Some(token.as_str()));
    assert!(
        call.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        call.content_type
    );
    let body = call.body.as_object().expect("JSON object body");
    let mut fields: Vec<&str> = body.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["action", "product", "resource", "sub"]);
    assert_eq!(body["sub"], "lerian/user-1");
    assert_eq!(body["resource"], "ledgers");
    assert_eq!(body["action"], "get");
    assert_eq!(body["product"], "midaz");
}

#[tokio::test]
async fn sub_follows_the_owner_claim_and_applications_use_the_product_editor_role() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(
        &key,
        &[
            ("user-2", "midaz", "ledgers", "post"),
            ("fees-app", "plugin-fees", "fees", "get"),
            ("no-owner", "midaz", "ledgers", "get"),
        ],
    )
    .await;
    let app = start_app(remote_config(&fake.url)).await;

    // Lerian's `<owner>/<name>`: the username, not the user's id.
    let mut claims = user_claims("user-2", &[]);
    claims["owner"] = json!("acme");
    claims["name"] = json!("maria");
    let user = key.sign(&claims);
    let r = app
        .send(
            reqwest::Method::POST,
            LEDGERS,
            Some(&format!("Bearer {user}")),
        )
        .await;
    assert_eq!(r.status(), 200);

    let application = key.sign(&app_claims("fees-app", &[]));
    let r = app.get("/v1/fees", &application).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "fees-app");

    let mut claims = user_claims("no-owner", &[]);
    claims.as_object_mut().unwrap().remove("owner");
    let r = app.get(LEDGERS, &key.sign(&claims)).await;
    assert_eq!(r.status(), 200);

    let subs: Vec<Value> = fake
        .recorded()
        .iter()
        .map(|r| r.body["sub"].clone())
        .collect();
    assert_eq!(
        subs,
        [
            json!("acme/maria"),
            json!("lerian/plugin-fees-editor-role"),
            json!("lerian/no-owner")
        ]
    );
    let actions: Vec<Value> = fake
        .recorded()
        .iter()
        .map(|r| r.body["action"].clone())
        .collect();
    assert_eq!(actions, [json!("post"), json!("get"), json!("get")]);
}

#[tokio::test]
async fn denied_is_403_and_a_token_refused_by_the_service_is_401() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key, &[("viewer", "midaz", "ledgers", "get")]).await;
    let app = start_app(remote_config(&fake.url)).await;
    let viewer = key.sign(&user_claims("viewer", &[]));

    let r = app
        .send(
            reqwest::Method::DELETE,
            LEDGERS,
            Some(&format!("Bearer {viewer}")),
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(code_of(r).await, "AUT-0008");

    // Signed by a key the Auth service does not trust: it answers 401 AUT-0007.
    let foreign = TestKey::rsa_b().sign(&user_claims("viewer", &[]));
    let r = app.get(LEDGERS, &foreign).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\"")
    );
    assert_eq!(code_of(r).await, "AUT-0007");
    // A refusal is not cached: asking again asks the service again.
    assert_eq!(app.get(LEDGERS, &foreign).await.status(), 401);
    assert_eq!(fake.calls(AUTHORIZE), 3);

    // The denial, however, is a decision and is cached.
    let r = app
        .send(
            reqwest::Method::DELETE,
            LEDGERS,
            Some(&format!("Bearer {viewer}")),
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(fake.calls(AUTHORIZE), 3);
}

#[tokio::test]
async fn decisions_are_cached_per_token_and_permission() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(
        &key,
        &[
            ("u", "midaz", "ledgers", "get"),
            ("u", "midaz", "ledgers", "post"),
        ],
    )
    .await;
    let app = start_app(remote_config(&fake.url)).await;
    let token = key.sign(&user_claims("u", &[]));

    for _ in 0..5 {
        assert_eq!(app.get(LEDGERS, &token).await.status(), 200);
    }
    assert_eq!(fake.calls(AUTHORIZE), 1);
    // Bare token form on the way in is the same token, hence the same cache entry.
    let r = app.send(reqwest::Method::GET, LEDGERS, Some(&token)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(fake.calls(AUTHORIZE), 1);

    // Another action is another question.
    let bearer = format!("Bearer {token}");
    for _ in 0..3 {
        let r = app
            .send(reqwest::Method::POST, LEDGERS, Some(&bearer))
            .await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(fake.calls(AUTHORIZE), 2);

    // Another token of the same user is another cache entry.
    let mut claims = user_claims("u", &[]);
    claims["jti"] = json!("another-jti");
    let other = key.sign(&claims);
    assert_eq!(app.get(LEDGERS, &other).await.status(), 200);
    assert_eq!(fake.calls(AUTHORIZE), 3);
}

#[tokio::test]
async fn the_cache_respects_cache_ttl() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key, &[("u", "midaz", "ledgers", "get")]).await;
    let app = start_app(remote_config(&fake.url).cache_ttl(Duration::from_millis(300))).await;
    let token = key.sign(&user_claims("u", &[]));

    assert_eq!(app.get(LEDGERS, &token).await.status(), 200);
    assert_eq!(app.get(LEDGERS, &token).await.status(), 200);
    assert_eq!(app.get("/v1/me", &token).await.status(), 200);
    assert_eq!(fake.calls(AUTHORIZE), 1);
    // The authorize answer also told that the token is valid: no userinfo call yet.
    assert_eq!(fake.calls(USERINFO), 0);

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(app.get(LEDGERS, &token).await.status(), 200);
    assert_eq!(fake.calls(AUTHORIZE), 2);

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(app.get("/v1/me", &token).await.status(), 200);
    assert_eq!(fake.calls(USERINFO), 1);
    assert_eq!(app.get("/v1/me", &token).await.status(), 200);
    assert_eq!(fake.calls(USERINFO), 1);
}

#[tokio::test]
async fn a_cached_decision_never_outlives_the_token() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key, &[("u", "midaz", "ledgers", "get")]).await;
    // A long TTL and the default 30 s leeway: only `exp` can end the cached decision.
    let app = start_app(remote_config(&fake.url).cache_ttl(Duration::from_secs(60))).await;
    let mut claims = user_claims("u", &[]);
    let exp = now() + 2;
    claims["exp"] = json!(exp);
    let token = key.sign(&claims);

    assert_eq!(app.get(LEDGERS, &token).await.status(), 200);
    assert_eq!(app.get(LEDGERS, &token).await.status(), 200);
    assert_eq!(app.get("/v1/me", &token).await.status(), 200);
    assert_eq!(fake.calls(AUTHORIZE), 1);

    sleep_past(exp, Duration::from_millis(100)).await;
    // Past `exp` the cache does not answer: the service is asked, and refuses the token.
    let r = app.get(LEDGERS, &token).await;
    assert_eq!(r.status(), 401);
    assert_eq!(fake.calls(AUTHORIZE), 2);
    let r = app.get("/v1/me", &token).await;
    assert_eq!(r.status(), 401);
    assert_eq!(fake.calls(USERINFO), 1);
}

#[tokio::test]
async fn authenticate_only_routes_ask_userinfo_with_a_bearer_token() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key, &[]).await;
    let app = start_app(remote_config(&fake.url)).await;
    let token = key.sign(&user_claims("someone", &[]));

    let r = app.get("/v1/me", &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "someone");
    assert_eq!(app.get("/v1/me", &token).await.status(), 200);
    let recorded = fake.recorded();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].path, USERINFO);
    assert_eq!(
        recorded[0].authorization.as_deref(),
        Some(format!("Bearer {token}").as_str())
    );

    let foreign = TestKey::rsa_b().sign(&user_claims("someone", &[]));
    let r = app.get("/v1/me", &foreign).await;
    assert_eq!(r.status(), 401);
    assert_eq!(code_of(r).await, "AUT-0007");

    // Denied everything by the table, yet a valid token: 403 on a guarded route.
    let r = app.get(LEDGERS, &token).await;
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn auth_service_on_a_closed_port_fails_closed_with_503() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = start_app(remote_config(&format!("http://127.0.0.1:{port}"))).await;
    let key = TestKey::rsa_a();
    let token = key.sign(&user_claims("u", &[]));

    for path in [LEDGERS, "/v1/me", "/v1/fees"] {
        let r = app.get(path, &token).await;
        assert_eq!(r.status(), 503, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "AUT-0009");
        assert!(!body.to_string().contains("127.0.0.1"), "{body}");
    }
}

#[tokio::test]
async fn auth_service_stopped_fails_closed_but_fresh_cached_decisions_stand() {
    let key = TestKey::rsa_a();
    let mut fake = FakeAuth::start(&key, &[("u", "midaz", "ledgers", "get")]).await;
    let app = start_app(remote_config(&fake.url)).await;
    let token = key.sign(&user_claims("u", &[]));
    assert_eq!(app.get(LEDGERS, &token).await.status(), 200);

    fake.stop().await;

    // A question the cache cannot answer: 503, never 200.
    let r = app
        .send(
            reqwest::Method::POST,
            LEDGERS,
            Some(&format!("Bearer {token}")),
        )
        .await;
    assert_eq!(r.status(), 503);
    let other = key.sign(&user_claims("v", &[]));
    assert_eq!(app.get(LEDGERS, &other).await.status(), 503);
    assert_eq!(app.get("/v1/me", &other).await.status(), 503);
    // The decision made before the outage is still within its TTL.
    assert_eq!(app.get(LEDGERS, &token).await.status(), 200);
}

#[tokio::test]
async fn server_errors_and_unreadable_answers_are_503_and_not_cached() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key, &[("u", "midaz", "ledgers", "get")]).await;
    let app = start_app(remote_config(&fake.url)).await;
    let token = key.sign(&user_claims("u", &[]));

    for (i, behaviour) in [
        Behaviour::Error500,
        Behaviour::Garbage,
        Behaviour::WrongShape,
    ]
    .into_iter()
    .enumerate()
    {
        fake.set_behaviour(behaviour);
        let r = app.get(LEDGERS, &token).await;
        assert_eq!(r.status(), 503, "{behaviour:?}");
        assert_eq!(code_of(r).await, "AUT-0009");
        assert_eq!(fake.calls(AUTHORIZE), i + 1);
    }

    fake.set_behaviour(Behaviour::Normal);
    assert_eq!(app.get(LEDGERS, &token).await.status(), 200);
    assert_eq!(fake.calls(AUTHORIZE), 4);
}

#[tokio::test]
async fn expired_and_malformed_tokens_are_401_without_any_call() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key, &[("u", "midaz", "ledgers", "get")]).await;
    let app = start_app(remote_config(&fake.url)).await;

    let mut claims = user_claims("u", &[]);
    claims["exp"] = json!(now() - 3600);
    claims["iat"] = json!(now() - 7200);
    claims["nbf"] = json!(now() - 7200);
    let expired = key.sign(&claims);
    for path in [LEDGERS, "/v1/me"] {
        let r = app.get(path, &expired).await;
        assert_eq!(r.status(), 401, "{path}");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains("expired"), "{challenge}");
    }

    let mut no_exp = user_claims("u", &[]);
    no_exp.as_object_mut().unwrap().remove("exp");
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let malformed = [
        "not-a-jwt".to_owned(),
        "a.b.c".to_owned(),
        "a.b.c.d".to_owned(),
        format!("{}.{}.sig", b64("{}"), b64("null")),
        format!("{}.{}.sig", b64("{}"), b64(r#"{"sub":"u","exp":"soon"}"#)),
        key.sign(&no_exp),
    ];
    for token in &malformed {
        let r = app.get(LEDGERS, token).await;
        assert_eq!(r.status(), 401, "{token}");
        assert_eq!(code_of(r).await, "AUT-0007", "{token}");
    }
    for header in ["Bearer", "Basic dXNlcjpwYXNz"] {
        let r = app.send(reqwest::Method::GET, LEDGERS, Some(header)).await;
        assert_eq!(r.status(), 401, "{header}");
    }
    let r = app.send(reqwest::Method::GET, LEDGERS, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(code_of(r).await, "AUT-0006");

    assert!(fake.recorded().is_empty(), "{:?}", fake.recorded());
}

#[tokio::test]
async fn concurrent_identical_requests_all_get_the_right_answer_from_one_call() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key, &[("u", "midaz", "ledgers", "get")]).await;
    fake.set_delay(Duration::from_millis(200));
    let app = Arc::new(start_app(remote_config(&fake.url)).await);
    let token = key.sign(&user_claims("u", &[]));

    let run = |method: reqwest::Method| {
        let app = app.clone();
        let header = format!("Bearer {token}");
        async move {
            let tasks: Vec<_> = (0..40)
                .map(|_| {
                    let app = app.clone();
                    let header = header.clone();
                    let method = method.clone();
                    tokio::spawn(async move {
                        app.send(method, LEDGERS, Some(&header))
                            .await
                            .status()
                            .as_u16()
                    })
                })
                .collect();
            let mut statuses = Vec::new();
            for t in tasks {
                statuses.push(t.await.unwrap());
            }
            statuses
        }
    };

    let statuses = run(reqwest::Method::GET).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(fake.calls(AUTHORIZE), 1);

    let statuses = run(reqwest::Method::POST).await;
    assert!(statuses.iter().all(|s| *s == 403), "{statuses:?}");
    assert_eq!(fake.calls(AUTHORIZE), 2);

    // While the service fails, every concurrent waiter gets 503, never 200.
    fake.set_behaviour(Behaviour::Error500);
    let statuses = run(reqwest::Method::DELETE).await;
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
}
