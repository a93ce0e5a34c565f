//! The fake Auth service and the guarded service shared by `feeds.rs` and `feeds_logs.rs`: a
//! real axum server on 127.0.0.1:0 speaking SPEC §4 — `POST /v1/login/oauth/access_token`
//! (`client_credentials`), `GET /.well-known/jwks.json`, `GET /v1/revocations?since=<cursor>`
//! and `GET /v1/policy` (with `ETag`/`If-None-Match`), the last two only for the application
//! tokens it issued — and an axum service guarded by lib-auth in local mode.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lib_auth::{Auth, AuthConfig, MIDAZ_POLICY_JSON, PolicySource, Principal};
use lib_auth_testkit::{ISSUER, TestKey, now, serve, user_claims};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const CLIENT_ID: &str = "ledger-svc";
pub const SECRET: &str = "s3cr3t-feeds-0a1b2c3d4e5f";
pub const POLL: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// The fake Auth service.

/// How a feed endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Normal,
    /// 503 with a JSON error.
    Down,
}

#[derive(Default)]
pub struct Feed {
    /// (position, item), oldest first.
    entries: Vec<(u64, Value)>,
    next: u64,
}

pub struct PolicyDoc {
    pub body: String,
    etag: String,
}

pub struct FakeState {
    key: TestKey,
    /// Application tokens the feeds accept.
    accepted: Mutex<Vec<String>>,
    issued: AtomicUsize,
    token_hits: AtomicUsize,
    feed: Mutex<Feed>,
    feed_answer: Mutex<Answer>,
    /// `since` of each feed request (None: absent) and its `Authorization`.
    feed_requests: Mutex<Vec<(Option<String>, Option<String>)>>,
    policy: Mutex<Option<PolicyDoc>>,
    policy_versions: AtomicUsize,
    policy_answer: Mutex<Answer>,
    /// 200 answers of `/v1/policy`, 304 answers, and the `If-None-Match` of each request.
    policy_full: AtomicUsize,
    policy_not_modified: AtomicUsize,
    pub if_none_match: Mutex<Vec<Option<String>>>,
}

pub struct FakeAuth {
    pub url: String,
    addr: SocketAddr,
    pub state: Arc<FakeState>,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

fn error(status: StatusCode, code: &str) -> Response {
    (
        status,
        axum::Json(json!({"code": code, "title": "Error", "message": "error"})),
    )
        .into_response()
}

/// The cursor of position `n`: opaque, and with characters that need URL encoding.
pub fn cursor_of(n: u64) -> String {
    format!("pos {n}/&=+")
}

fn position_of(cursor: &str) -> Option<u64> {
    cursor
        .strip_prefix("pos ")?
        .strip_suffix("/&=+")?
        .parse()
        .ok()
}

impl FakeState {
    fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        self.accepted.lock().unwrap().iter().any(|t| t == token)
    }
}

async fn access_token(State(state): State<Arc<FakeState>>, body: axum::body::Bytes) -> Response {
    state.token_hits.fetch_add(1, Ordering::SeqCst);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if body["grantType"] != "client_credentials" {
        return error(StatusCode::BAD_REQUEST, "AUT-0001");
    }
    if body["clientId"] != CLIENT_ID || body["clientSecret"] != SECRET {
        return error(StatusCode::UNAUTHORIZED, "AUT-1004");
    }
    let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("app-token-{n}");
    state.accepted.lock().unwrap().push(token.clone());
    axum::Json(json!({"accessToken": token, "tokenType": "Bearer", "expiresIn": 3600}))
        .into_response()
}

async fn jwks(State(state): State<Arc<FakeState>>) -> Response {
    axum::Json(json!({"keys": [state.key.jwk]})).into_response()
}

#[derive(serde::Deserialize)]
pub struct Since {
    since: Option<String>,
}

async fn revocations(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Query(query): Query<Since>,
) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state
        .feed_requests
        .lock()
        .unwrap()
        .push((query.since.clone(), authorization));
    if *state.feed_answer.lock().unwrap() == Answer::Down {
        return error(StatusCode::SERVICE_UNAVAILABLE, "AUT-0500");
    }
    if !state.bearer_ok(&headers) {
        return error(StatusCode::UNAUTHORIZED, "AUT-0007");
    }
    let after = match query.since.as_deref() {
        None => 0,
        Some(c) => match position_of(c) {
            Some(n) => n,
            None => return error(StatusCode::BAD_REQUEST, "AUT-0001"),
        },
    };
    let feed = state.feed.lock().unwrap();
    let items: Vec<Value> = feed
        .entries
        .iter()
        .filter(|(n, item)| *n > after && item["expiresAt"].as_u64().unwrap_or(0) > now())
        .map(|(_, item)| item.clone())
        .collect();
    axum::Json(json!({"cursor": cursor_of(feed.next), "items": items, "more": "ignored"}))
        .into_response()
}

async fn policy(State(state): State<Arc<FakeState>>, headers: HeaderMap) -> Response {
    let if_none_match = headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state
        .if_none_match
        .lock()
        .unwrap()
        .push(if_none_match.clone());
    if *state.policy_answer.lock().unwrap() == Answer::Down {
        return error(StatusCode::SERVICE_UNAVAILABLE, "AUT-0500");
    }
    if !state.bearer_ok(&headers) {
        return error(StatusCode::UNAUTHORIZED, "AUT-0007");
    }
    let doc = state.policy.lock().unwrap();
    let Some(doc) = doc.as_ref() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "AUT-0500");
    };
    if if_none_match.as_deref() == Some(doc.etag.as_str()) {
        state.policy_not_modified.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_MODIFIED, [("etag", doc.etag.clone())]).into_response();
    }
    state.policy_full.fetch_add(1, Ordering::SeqCst);
    (
        [
            ("etag", doc.etag.clone()),
            ("content-type", "application/json".to_owned()),
        ],
        doc.body.clone(),
    )
        .into_response()
}

impl FakeAuth {
    pub async fn start(key: &TestKey) -> FakeAuth {
        let state = Arc::new(FakeState {
            key: key.clone(),
            accepted: Mutex::new(Vec::new()),
            issued: AtomicUsize::new(0),
            token_hits: AtomicUsize::new(0),
            feed: Mutex::new(Feed::default()),
            feed_answer: Mutex::new(Answer::Normal),
            feed_requests: Mutex::new(Vec::new()),
            policy: Mutex::new(None),
            policy_versions: AtomicUsize::new(0),
            policy_answer: Mutex::new(Answer::Normal),
            policy_full: AtomicUsize::new(0),
            policy_not_modified: AtomicUsize::new(0),
            if_none_match: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fake = FakeAuth {
            url: format!("http://{addr}"),
            addr,
            state,
            running: None,
        };
        fake.serve(listener);
        fake
    }

    pub fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/v1/login/oauth/access_token", post(access_token))
            .route("/.well-known/jwks.json", get(jwks))
            .route("/v1/revocations", get(revocations))
            .route("/v1/policy", get(policy))
            .with_state(self.state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        self.running = Some((stop, task));
    }

    /// Stops listening: connections are refused until [`restart`](Self::restart).
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
    }

    /// Listens again on the same address.
    pub async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    pub fn publish(&self, item: Value) {
        let mut feed = self.state.feed.lock().unwrap();
        feed.next += 1;
        let n = feed.next;
        feed.entries.push((n, item));
    }

    pub fn set_feed(&self, answer: Answer) {
        *self.state.feed_answer.lock().unwrap() = answer;
    }

    pub fn set_policy(&self, body: String) {
        let v = self.state.policy_versions.fetch_add(1, Ordering::SeqCst) + 1;
        *self.state.policy.lock().unwrap() = Some(PolicyDoc {
            body,
            etag: format!("\"v{v}\""),
        });
    }

    /// Makes the feeds refuse every application token issued so far.
    pub fn refuse_issued_tokens(&self) {
        self.state.accepted.lock().unwrap().clear();
    }

    pub fn token_hits(&self) -> usize {
        self.state.token_hits.load(Ordering::SeqCst)
    }

    pub fn feed_requests(&self) -> Vec<(Option<String>, Option<String>)> {
        self.state.feed_requests.lock().unwrap().clone()
    }

    pub fn policy_counts(&self) -> (usize, usize) {
        (
            self.state.policy_full.load(Ordering::SeqCst),
            self.state.policy_not_modified.load(Ordering::SeqCst),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The guarded service.

pub fn config(fake: &FakeAuth) -> AuthConfig {
    AuthConfig::default()
        .enabled(true)
        .host(fake.url.clone())
        .issuer(ISSUER)
        .client_id(CLIENT_ID)
        .client_secret(SECRET)
        .revocation_poll_interval(POLL)
        .http_timeout(Duration::from_secs(2))
}

pub async fn whoami(axum::Extension(p): axum::Extension<Principal>) -> String {
    p.subject().to_owned()
}

pub struct App {
    base: String,
    client: reqwest::Client,
}

pub struct Answered {
    pub status: u16,
    pub challenge: String,
    pub body: String,
}

/// `GET /v1/ledgers` needs midaz/ledgers get, `POST /v1/ledgers` midaz/ledgers post, `GET /v1/me`
/// only a valid token.
pub async fn start_app(auth: &Auth) -> App {
    let app = Router::new()
        .route("/v1/ledgers", get(whoami).post(whoami))
        .route_layer(auth.require_method("midaz", "ledgers"))
        .route("/v1/me", get(whoami).route_layer(auth.authenticate()));
    let addr = serve(app).await;
    App {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
    }
}

impl App {
    pub async fn send(&self, method: reqwest::Method, path: &str, token: &str) -> Answered {
        let r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Answered {
            status,
            challenge,
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> u16 {
        self.send(reqwest::Method::GET, path, token).await.status
    }

    pub async fn post(&self, path: &str, token: &str) -> u16 {
        self.send(reqwest::Method::POST, path, token).await.status
    }
}

/// The Redis-protocol server of the Valkey tests: the CI machine's on 127.0.0.1:6379, or
/// `LIB_AUTH_TEST_VALKEY_URL`.
pub fn valkey_url() -> String {
    std::env::var("LIB_AUTH_TEST_VALKEY_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A Valkey key prefix nobody else uses: `lib-auth-test-<area>-<test>-<pid>-<nanos>`.
pub fn unique_prefix(area: &str, test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("lib-auth-test-{area}-{test}-{}-{nanos}", std::process::id())
}

/// Waits (polling every 10 ms) until `check` holds, for at most `within`; returns the time it
/// took, or panics with `what`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn token(key: &TestKey, sub: &str, roles: &[&str], iat: u64) -> String {
    let mut claims = user_claims(sub, roles);
    claims["iat"] = json!(iat);
    claims["nbf"] = json!(iat);
    key.sign(&claims)
}

pub const VIEWER: &[&str] = &["midaz-viewer-role"];

// ---------------------------------------------------------------------------------------------
// Policies.

/// The built-in policy with `midaz-viewer-role` also allowed `extra` on midaz/ledgers.
pub fn viewer_policy(extra: &str) -> String {
    let mut doc: Value = serde_json::from_str(MIDAZ_POLICY_JSON).unwrap();
    let roles = doc["roles"].as_array_mut().unwrap();
    let viewer = roles
        .iter_mut()
        .find(|r| r["id"] == "midaz-viewer-role")
        .unwrap();
    viewer["permissions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"product": "midaz", "resource": "ledgers", "actions": [extra]}));
    doc.to_string()
}

pub fn synced(fake: &FakeAuth) -> AuthConfig {
    config(fake).policy(PolicySource::Server)
}
