//! Shared by the integration tests: a real server on 127.0.0.1:0 over a temporary SQLite file,
//! an HTTP client, and helpers for the calls every test makes (log in, create users and
//! applications, authorize, decode and verify tokens).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lib_auth_server::admin::{UserRequest, new_application, new_user};
use lib_auth_server::{Listeners, Server, ServerConfig};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub mod valkey;

/// The bootstrap admin's name and password in every test server.
pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// A password good enough for the users tests create.
pub const USER_PASSWORD: &str = "user-password-for-tests";

/// A running server and what a test needs to talk to it.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The Identity API's `http://127.0.0.1:<port>`.
    pub identity: String,
    /// The settings it runs with (the database lives in `dir`).
    pub config: ServerConfig,
    /// Its state, for calls that have no HTTP API yet (creating users and applications).
    pub state: lib_auth_server::AppState,
    /// A client without a cookie store or redirects.
    pub http: reqwest::Client,
    server: Option<Server>,
    shutdown: Option<oneshot::Sender<()>>,
    dir: Arc<TempDir>,
}

/// The settings of a test server over the database in `dir`: a known admin password, issuer
/// left to [`TestServer::start_with`].
pub fn test_config(dir: &TempDir) -> ServerConfig {
    ServerConfig {
        db_path: dir.path().join("auth.db"),
        auth_port: 0,
        admin_username: ADMIN.to_owned(),
        admin_password: Some(lib_auth::Secret::new(ADMIN_PASSWORD)),
        ..ServerConfig::default()
    }
}

impl TestServer {
    /// A server with the default settings over a new database.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server over a new database, with settings changed by `change`. The issuer is the
    /// server's own base URL unless `change` sets another.
    pub async fn start_with(change: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = Arc::new(TempDir::new().expect("temporary directory"));
        let mut config = test_config(&dir);
        config.issuer = String::new();
        change(&mut config);
        TestServer::start_in(dir, config).await
    }

    async fn start_in(dir: Arc<TempDir>, mut config: ServerConfig) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let identity_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let base = format!("http://{address}");
        let identity = format!(
            "http://{}",
            identity_listener.local_addr().expect("local address")
        );
        if config.issuer.is_empty() {
            config.issuer = base.clone();
        }
        let (tx, rx) = oneshot::channel::<()>();
        let listeners = Listeners {
            auth: listener,
            identity: Some(identity_listener),
        };
        let server = Server::start_on(config.clone(), listeners, async {
            let _ = rx.await;
        })
        .await
        .expect("server starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("http client");
        TestServer {
            base,
            identity,
            config,
            state: server.state.clone(),
            http,
            server: Some(server),
            shutdown: Some(tx),
            dir,
        }
    }

    /// Stops the server (graceful shutdown) and waits until it has.
    pub async fn stop(mut self) -> (Arc<TempDir>, ServerConfig) {
        self.shutdown_and_wait().await;
        (Arc::clone(&self.dir), self.config.clone())
    }

    async fn shutdown_and_wait(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server.wait())
                .await
                .expect("the server stops within 10 s")
                .expect("the server stops cleanly");
        }
    }

    /// Stops this server and starts a new one, on another port, over the same database file
    /// with the same settings (the issuer included).
    pub async fn restart(self) -> TestServer {
        self.restart_with(|_| {}).await
    }

    /// [`restart`](Self::restart) with settings changed by `change`.
    pub async fn restart_with(self, change: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let (dir, mut config) = self.stop().await;
        change(&mut config);
        TestServer::start_in(dir, config).await
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs `body` as JSON to `path`; answers status, headers and the body as JSON
    /// (`Value::Null` for an empty body).
    pub async fn post_json(&self, path: &str, body: &Value) -> Answer {
        let response = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent");
        Answer::read(response).await
    }

    /// The Lerian token endpoint.
    pub async fn token(&self, body: &Value) -> Answer {
        self.post_json("/v1/login/oauth/access_token", body).await
    }

    /// A successful password login; the answer's body.
    pub async fn login(&self, username: &str, password: &str) -> Value {
        let answer = self
            .token(&json!({"grantType": "password", "username": username, "password": password}))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "login of {username}: {answer:?}"
        );
        answer.body
    }

    /// The admin's login.
    pub async fn login_admin(&self) -> Value {
        self.login(ADMIN, ADMIN_PASSWORD).await
    }

    /// A successful refresh through `POST /v1/login/oauth/refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        self.post_json(
            "/v1/login/oauth/refresh_token",
            &json!({"refreshToken": refresh_token}),
        )
        .await
    }

    /// Creates a user in `groups` with [`USER_PASSWORD`].
    pub async fn create_user(&self, username: &str, groups: &[&str]) -> String {
        let user = new_user(
            self.state.store(),
            self.state.passwords(),
            UserRequest {
                username: username.to_owned(),
                password: USER_PASSWORD.to_owned(),
                email: format!("{username}@example.test"),
                first_name: "Test".to_owned(),
                last_name: username.to_owned(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            },
        )
        .await
        .expect("user created");
        user.id
    }

    /// Creates an application holding `roles`; answers `(client_id, client_secret)`.
    pub async fn create_app(&self, name: &str, roles: &[&str]) -> (String, String) {
        let created = new_application(
            self.state.store(),
            name,
            "an application of the tests",
            roles.iter().map(|r| (*r).to_owned()).collect(),
        )
        .await
        .expect("application created");
        (created.application.client_id, created.client_secret)
    }

    /// An access token of the application, from the Lerian endpoint.
    pub async fn app_token(&self, client_id: &str, client_secret: &str) -> String {
        let answer = self
            .token(&json!({
                "grantType": "client_credentials",
                "clientId": client_id,
                "clientSecret": client_secret,
            }))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "client_credentials: {answer:?}"
        );
        answer.str("accessToken").to_owned()
    }

    /// `POST /v1/authorize` with `Authorization: <authorization>` (omitted when `None`).
    pub async fn authorize_with(&self, authorization: Option<&str>, body: &Value) -> Answer {
        let mut request = self.http.post(self.url("/v1/authorize")).json(body);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        Answer::read(request.send().await.expect("request sent")).await
    }

    /// `POST /v1/authorize` with a bearer token, for `get` on midaz ledgers.
    pub async fn authorize(&self, token: &str) -> Answer {
        self.authorize_with(
            Some(&format!("Bearer {token}")),
            &json!({"resource": "ledgers", "action": "get", "product": "midaz"}),
        )
        .await
    }

    /// `POST /v1/logout` with `token`; asserts the 204.
    pub async fn logout(&self, token: &str) {
        let answer = self
            .http
            .post(self.url("/v1/logout"))
            .bearer_auth(token)
            .send()
            .await
            .expect("sent");
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    }

    /// Asserts that `/v1/authorize` still takes `token` (200).
    pub async fn assert_token_accepted(&self, token: &str) {
        let answer = self.authorize(token).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }

    /// Asserts that `/v1/authorize` refuses `token`: 401 AUT-0007.
    pub async fn assert_token_refused(&self, token: &str) {
        let answer = self.authorize(token).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
        assert_eq!(answer.code(), "AUT-0007", "{answer:?}");
    }

    /// GET `path` with a bearer token (none when `None`).
    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Answer::read(request.send().await.expect("request sent")).await
    }

    /// POSTs a form to `path`, with HTTP Basic client authentication when `basic` is given.
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Answer {
        let mut request = self.http.post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        Answer::read(request.send().await.expect("request sent")).await
    }

    /// The Identity API's `identity` + `path`.
    pub fn identity_url(&self, path: &str) -> String {
        format!("{}{path}", self.identity)
    }

    /// A request to the Identity API: `method path` with a bearer token (none when `None`)
    /// and a JSON body (none when `None`).
    pub async fn identity_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, self.identity_url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        Answer::read(request.send().await.expect("request sent")).await
    }

    /// Sends every `(method, path, token, body)` request to the Identity API at once, each from
    /// its own task; answers in the order given.
    pub async fn identity_parallel(
        &self,
        requests: impl Iterator<Item = (&'static str, String, String, Value)>,
    ) -> Vec<Answer> {
        let tasks: Vec<_> = requests
            .map(|(method, path, token, body)| {
                let request = self
                    .http
                    .request(
                        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                        self.identity_url(&path),
                    )
                    .bearer_auth(token)
                    .json(&body);
                tokio::spawn(async move { Answer::read(request.send().await.expect("sent")).await })
            })
            .collect();
        let mut answers = Vec::with_capacity(tasks.len());
        for task in tasks {
            answers.push(task.await.expect("request task"));
        }
        answers
    }

    /// The admin's access token.
    pub async fn admin_token(&self) -> String {
        let login = self.login_admin().await;
        login["accessToken"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    /// The access token of a password login of `username` with [`USER_PASSWORD`].
    pub async fn user_token(&self, username: &str) -> String {
        let login = self.login(username, USER_PASSWORD).await;
        login["accessToken"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    /// Creates a user through the Identity API as `token`; answers the user's id.
    pub async fn create_user_api(&self, token: &str, username: &str, groups: &[&str]) -> String {
        let answer = self
            .identity_call(
                "POST",
                "/v1/users",
                Some(token),
                Some(&json!({
                    "firstName": "Test",
                    "lastName": username,
                    "username": username,
                    "email": format!("{username}@example.test"),
                    "password": USER_PASSWORD,
                    "groups": groups,
                })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        answer.str("id").to_owned()
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> String {
        self.url("/.well-known/jwks.json")
    }

    /// An independent verifier: lib-auth in local mode, keys fetched from this server's JWKS,
    /// the issuer pinned to this server's.
    pub fn verifier(&self) -> lib_auth::Auth {
        lib_auth::Auth::new(
            lib_auth::AuthConfig::default()
                .enabled(true)
                .jwks_url(self.jwks_url())
                .issuer(self.config.issuer.clone())
                .jwks_min_refresh_interval(Duration::from_millis(10)),
        )
        .expect("lib-auth verifier")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// What a server answered.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The raw body.
    pub text: String,
    /// The body as JSON, or `Value::Null` when it is not JSON.
    pub body: Value,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies full of tokens are long; their start says enough.
        let text: String = self.text.chars().take(400).collect();
        write!(f, "{} {:?} {text}", self.status, self.headers)
    }
}

impl Answer {
    pub async fn read(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            body,
        }
    }

    /// A string field of the body (panics when absent).
    pub fn str(&self, field: &str) -> &str {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string {field:?} in {self:?}"))
    }

    /// The `code` of an error envelope.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// The `error` of an RFC 6749 error.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a Lerian error envelope with `status` and `code`.
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.code(), code, "{self:?}");
        assert!(
            self.body["title"].is_string() && self.body["message"].is_string(),
            "not an envelope: {self:?}"
        );
        assert!(
            self.header("content-type")
                .is_some_and(|v| v.starts_with("application/json")),
            "not JSON: {self:?}"
        );
    }

    /// Asserts an RFC 6749 error with `status` and `error`.
    pub fn assert_oauth_error(&self, status: StatusCode, error: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.error(), error, "{self:?}");
        assert!(self.body["error_description"].is_string(), "{self:?}");
    }
}

/// The header and claims of a JWT, decoded without verification.
pub fn decode_jwt(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part = || {
        let segment = parts.next().expect("a JWT has three parts");
        let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url");
        serde_json::from_slice::<Value>(&bytes).expect("JSON")
    };
    let header = part();
    let claims = part();
    (header, claims)
}

/// Headers carrying `Authorization: Bearer <token>`, for lib-auth.
pub fn bearer_headers(token: &str) -> axum::http::HeaderMap {
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        axum::http::header::AUTHORIZATION,
        axum::http::HeaderValue::from_str(&format!("Bearer {token}")).expect("header value"),
    );
    headers
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    lib_auth_server::store::unix_now()
}
