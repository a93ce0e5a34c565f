//! The ledger example over real HTTP: the full allow/deny matrix of its routes for every kind
//! of caller, in local mode (keys from a JWKS server) and in remote mode (a fake Auth service
//! speaking SPEC §4 that verifies tokens itself and decides with the built-in Midaz policy);
//! its 400/404/201/204 answers; auth disabled; and the binary's handling of its environment.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lib_auth::{
    Action, Auth, AuthConfig, CompiledPolicy, Mode, Principal, PrincipalKind, TokenVerifier,
    VerificationKey,
};
use lib_auth_examples::ledger;
use lib_auth_testkit::{ISSUER, JwksServer, TestKey, app_claims, serve, user_claims};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

// ---------------------------------------------------------------------------------------------
// Callers.

const VIEWER: &str = "viewer-user";
const CONTRIBUTOR: &str = "contributor-user";
const EDITOR: &str = "editor-user";
const APPLICATION: &str = "ledger-sync-app";
const OUTSIDER: &str = "crm-user";

/// Everyone who calls the ledger in the matrix, in the column order of [`ROUTES`] for the first
/// five.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// A user with `midaz-viewer-role`.
    Viewer,
    /// A user with `midaz-contributor-role`.
    Contributor,
    /// A user with `midaz-editor-role`.
    Editor,
    /// An application (`client_credentials`) with `midaz-contributor-role`.
    Application,
    /// A user with a role of another product only (`plugin-crm-editor-role`).
    Outsider,
    /// No `Authorization` header.
    NoToken,
    /// `Authorization: Bearer not-a-jwt`.
    Garbage,
    /// An editor's claims signed by a key the issuer never published.
    ForeignKey,
}

const CALLERS: [Caller; 8] = [
    Caller::Viewer,
    Caller::Contributor,
    Caller::Editor,
    Caller::Application,
    Caller::Outsider,
    Caller::NoToken,
    Caller::Garbage,
    Caller::ForeignKey,
];

struct Tokens {
    viewer: String,
    contributor: String,
    editor: String,
    application: String,
    outsider: String,
    foreign: String,
}

impl Tokens {
    fn new(key: &TestKey) -> Tokens {
        Tokens {
            viewer: key.sign(&user_claims(VIEWER, &["midaz-viewer-role"])),
            contributor: key.sign(&user_claims(CONTRIBUTOR, &["midaz-contributor-role"])),
            editor: key.sign(&user_claims(EDITOR, &["midaz-editor-role"])),
            application: key.sign(&app_claims(APPLICATION, &["midaz-contributor-role"])),
            outsider: key.sign(&user_claims(OUTSIDER, &["plugin-crm-editor-role"])),
            foreign: TestKey::rsa_b().sign(&user_claims(EDITOR, &["midaz-editor-role"])),
        }
    }

    /// The `Authorization` header value of `caller`, and the subject it authenticates as.
    fn of(&self, caller: Caller) -> (Option<String>, Option<&'static str>) {
        let bearer = |t: &str| Some(format!("Bearer {t}"));
        match caller {
            Caller::Viewer => (bearer(&self.viewer), Some(VIEWER)),
            Caller::Contributor => (bearer(&self.contributor), Some(CONTRIBUTOR)),
            Caller::Editor => (bearer(&self.editor), Some(EDITOR)),
            // Lerian's clients send the bare token; lib-auth takes both forms.
            Caller::Application => (Some(self.application.clone()), Some(APPLICATION)),
            Caller::Outsider => (bearer(&self.outsider), Some(OUTSIDER)),
            Caller::NoToken => (None, None),
            Caller::Garbage => (bearer("not-a-jwt"), None),
            Caller::ForeignKey => (bearer(&self.foreign), None),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The matrix.

/// One route of the ledger, its success status, and who may call it.
struct Route {
    method: &'static str,
    /// `{o}`, `{l}`, `{a}`, `{t}`: ids of an organization, ledger, account, transaction.
    path: &'static str,
    ok: u16,
    /// viewer, contributor, editor, application, outsider.
    allowed: [bool; 5],
}

const fn route(method: &'static str, path: &'static str, ok: u16, allowed: [bool; 5]) -> Route {
    Route {
        method,
        path,
        ok,
        allowed,
    }
}

const Y: bool = true;
const N: bool = false;

/// The expectation, written from SPEC §6 and not computed: a viewer gets and heads, a
/// contributor does everything but delete, an editor everything; the application holds the
/// contributor role (not the editor role Lerian's `sub` names, SPEC §8); the outsider holds no
/// `midaz` role at all.
#[rustfmt::skip]
const ROUTES: [Route; 16] = [
    //     method    path                                                   ok   viewer contributor editor app outsider
    route("POST",   "/v1/organizations",                                    201, [N, Y, Y, Y, N]),
    route("GET",    "/v1/organizations",                                    200, [Y, Y, Y, Y, N]),
    route("GET",    "/v1/organizations/{o}",                                200, [Y, Y, Y, Y, N]),
    route("PATCH",  "/v1/organizations/{o}",                                200, [N, Y, Y, Y, N]),
    route("DELETE", "/v1/organizations/{o}",                                204, [N, N, Y, N, N]),
    route("HEAD",   "/v1/organizations/metrics/count",                      204, [Y, Y, Y, Y, N]),
    route("POST",   "/v1/organizations/{o}/ledgers",                        201, [N, Y, Y, Y, N]),
    route("GET",    "/v1/organizations/{o}/ledgers",                        200, [Y, Y, Y, Y, N]),
    route("GET",    "/v1/organizations/{o}/ledgers/{l}",                    200, [Y, Y, Y, Y, N]),
    route("PATCH",  "/v1/organizations/{o}/ledgers/{l}",                    200, [N, Y, Y, Y, N]),
    route("DELETE", "/v1/organizations/{o}/ledgers/{l}",                    204, [N, N, Y, N, N]),
    route("POST",   "/v1/organizations/{o}/ledgers/{l}/accounts",           201, [N, Y, Y, Y, N]),
    route("GET",    "/v1/organizations/{o}/ledgers/{l}/accounts",           200, [Y, Y, Y, Y, N]),
    route("GET",    "/v1/organizations/{o}/ledgers/{l}/accounts/{a}",       200, [Y, Y, Y, Y, N]),
    route("POST",   "/v1/organizations/{o}/ledgers/{l}/transactions/json",  201, [N, Y, Y, Y, N]),
    route("GET",    "/v1/organizations/{o}/ledgers/{l}/transactions/{t}",   200, [Y, Y, Y, Y, N]),
];

/// Ids of one organization with a ledger, an account and a transaction.
struct Fixture {
    organization: String,
    ledger: String,
    account: String,
    transaction: String,
}

impl Fixture {
    fn path(&self, template: &str) -> String {
        template
            .replace("{o}", &self.organization)
            .replace("{l}", &self.ledger)
            .replace("{a}", &self.account)
            .replace("{t}", &self.transaction)
    }
}

fn body_for(route: &Route) -> Option<Value> {
    match route.method {
        "POST" if route.path.ends_with("/transactions/json") => Some(json!({
            "description": "matrix",
            "send": { "asset": "BRL", "value": 100 },
        })),
        "POST" | "PATCH" => Some(json!({ "name": "matrix" })),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP.

struct Ledger {
    base: String,
    http: reqwest::Client,
}

impl Ledger {
    async fn start(auth: Auth) -> Ledger {
        Ledger::at(format!("http://{}", serve(ledger::router(auth)).await))
    }

    fn at(base: String) -> Ledger {
        Ledger {
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap()
    }

    /// Sends and returns the status and the JSON body (`Null` when there is none).
    async fn call(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let response = self.send(method, path, authorization, body).await;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Creates an organization, a ledger, an account and a transaction.
    async fn fixture(&self, authorization: Option<&str>) -> Fixture {
        let create = async |path: String, body: Value| {
            let (status, created) = self.call("POST", &path, authorization, Some(&body)).await;
            assert_eq!(status, 201, "POST {path}: {created}");
            created["id"].as_str().unwrap().to_owned()
        };
        let organization = create("/v1/organizations".into(), json!({"name": "Acme"})).await;
        let ledger = create(
            format!("/v1/organizations/{organization}/ledgers"),
            json!({"name": "Main"}),
        )
        .await;
        let prefix = format!("/v1/organizations/{organization}/ledgers/{ledger}");
        let account = create(format!("{prefix}/accounts"), json!({"name": "Cash"})).await;
        let transaction = create(
            format!("{prefix}/transactions/json"),
            json!({"description": "seed"}),
        )
        .await;
        Fixture {
            organization,
            ledger,
            account,
            transaction,
        }
    }
}

/// Runs every route for every caller; returns the number of cells and every mismatch.
async fn run_matrix(ledger: &Ledger, tokens: &Tokens) -> (usize, Vec<String>) {
    let (editor, _) = tokens.of(Caller::Editor);
    let shared = ledger.fixture(editor.as_deref()).await;
    let mut cells = 0;
    let mut failures = Vec::new();
    for route in &ROUTES {
        for (column, caller) in CALLERS.into_iter().enumerate() {
            cells += 1;
            // A delete that succeeds must not take the shared objects with it.
            let fresh = if route.method == "DELETE" {
                Some(ledger.fixture(editor.as_deref()).await)
            } else {
                None
            };
            let path = fresh.as_ref().unwrap_or(&shared).path(route.path);
            let (authorization, subject) = tokens.of(caller);
            let (expected, code) = match caller {
                Caller::NoToken => (401, Some("AUT-0006")),
                Caller::Garbage | Caller::ForeignKey => (401, Some("AUT-0007")),
                _ if route.allowed[column] => (route.ok, None),
                _ => (403, Some("AUT-0008")),
            };
            let body = body_for(route);
            let (status, answer) = ledger
                .call(route.method, &path, authorization.as_deref(), body.as_ref())
                .await;
            let cell = format!("{caller:?} {} {}", route.method, route.path);
            if status != expected {
                failures.push(format!("{cell}: {status}, expected {expected}: {answer}"));
                continue;
            }
            // HEAD answers carry no body to check.
            if let Some(code) = code.filter(|_| route.method != "HEAD")
                && answer["code"] != code
            {
                failures.push(format!("{cell}: body {answer}, expected code {code}"));
            }
            if status == 201 && answer["createdBy"] != json!(subject) {
                failures.push(format!("{cell}: createdBy {}", answer["createdBy"]));
            }
        }
    }
    (cells, failures)
}

fn assert_matrix((cells, failures): (usize, Vec<String>)) {
    assert_eq!(cells, ROUTES.len() * CALLERS.len());
    assert!(
        failures.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn verification_key(key: &TestKey) -> VerificationKey {
    VerificationKey::from_pem(Some(&key.kid), key.alg, key.public_pem).unwrap()
}

// ---------------------------------------------------------------------------------------------
// A fake Auth service: `POST /v1/authorize` and `GET /v1/userinfo` as SPEC §4 says, deciding
// from the verified token (SPEC §8) with the built-in Midaz policy.

struct FakeAuth {
    verifier: TokenVerifier,
    policy: CompiledPolicy,
    authorize_calls: AtomicUsize,
}

fn auth_error(code: &str, title: &str, message: &str) -> Response {
    let body = json!({ "code": code, "title": title, "message": message });
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

impl FakeAuth {
    /// Starts the fake on 127.0.0.1:0, trusting `key`; returns its base URL and its state.
    async fn start(key: &TestKey) -> (String, Arc<FakeAuth>) {
        let config = AuthConfig::default()
            .enabled(true)
            .issuer(ISSUER)
            .static_key(verification_key(key));
        let fake = Arc::new(FakeAuth {
            verifier: TokenVerifier::new(&config, reqwest::Client::new()).unwrap(),
            policy: CompiledPolicy::midaz(),
            authorize_calls: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v1/authorize", post(authorize))
            .route("/v1/userinfo", get(userinfo))
            .with_state(fake.clone());
        (format!("http://{}", serve(app).await), fake)
    }

    /// The caller of `Authorization: <jwt>` or `Authorization: Bearer <jwt>`, verified.
    async fn caller(&self, headers: &HeaderMap) -> Result<Principal, Response> {
        let Some(value) = headers.get("authorization") else {
            return Err(auth_error("AUT-0006", "Missing Token", "missing token"));
        };
        let invalid = || auth_error("AUT-0007", "Invalid Token", "invalid or expired token");
        let value = value.to_str().map_err(|_| invalid())?.trim();
        let token = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => value,
        };
        self.verifier.verify(token).await.map_err(|_| invalid())
    }
}

/// The `sub` Lerian's library sends for `principal` asking about `product`.
fn lerian_sub(principal: &Principal, product: &str) -> String {
    let owner = principal.owner().unwrap_or("lerian");
    match principal.kind() {
        PrincipalKind::User => format!(
            "{owner}/{}",
            principal.name().unwrap_or(principal.subject())
        ),
        PrincipalKind::Application => format!("{owner}/{product}-editor-role"),
    }
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn authorize(
    State(fake): State<Arc<FakeAuth>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    fake.authorize_calls.fetch_add(1, Ordering::SeqCst);
    let principal = match fake.caller(&headers).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |name: &str| request[name].as_str().unwrap_or_default();
    let (sub, resource, product) = (field("sub"), field("resource"), field("product"));
    // The decision is the verified token's; the body's `sub` only has to agree with it.
    let authorized = sub == lerian_sub(&principal, product)
        && field("action").parse::<Action>().is_ok_and(|action| {
            fake.policy
                .decide(&principal, product, resource, action)
                .is_allowed()
        });
    axum::Json(json!({ "authorized": authorized, "timestamp": rfc3339_now() })).into_response()
}

async fn userinfo(State(fake): State<Arc<FakeAuth>>, headers: HeaderMap) -> Response {
    match fake.caller(&headers).await {
        Ok(p) => axum::Json(json!({
            "sub": p.subject(),
            "name": p.name(),
            "preferredUsername": p.name(),
            "email": format!("{}@example.test", p.subject()),
            "emailVerified": true,
        }))
        .into_response(),
        Err(response) => response,
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn local_mode_full_matrix() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let auth = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .issuer(ISSUER)
            .jwks_url(jwks.jwks_url.clone()),
    )
    .unwrap();
    let ledger = Ledger::start(auth).await;
    assert_matrix(run_matrix(&ledger, &Tokens::new(&key)).await);
    assert!(jwks.hits() >= 1);
}

#[tokio::test]
async fn remote_mode_full_matrix() {
    let key = TestKey::rsa_a();
    let (auth_url, fake) = FakeAuth::start(&key).await;
    let auth = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .mode(Mode::Remote)
            .host(auth_url),
    )
    .unwrap();
    let ledger = Ledger::start(auth).await;
    assert_matrix(run_matrix(&ledger, &Tokens::new(&key)).await);
    // Every decision came from the fake (one per token and permission, then cached).
    assert!(fake.authorize_calls.load(Ordering::SeqCst) >= 5 * 5);
}

/// The fake itself keeps to SPEC §4 and §8, so that the remote matrix means something.
#[tokio::test]
async fn fake_auth_service_decides_from_the_verified_token() {
    let key = TestKey::rsa_a();
    let (auth_url, _fake) = FakeAuth::start(&key).await;
    let fake = Ledger::at(auth_url);
    let tokens = Tokens::new(&key);
    let ask = async |authorization: Option<&str>, sub: &str, action: &str| {
        let body = json!({"sub": sub, "resource": "ledgers", "action": action, "product": "midaz"});
        fake.call("POST", "/v1/authorize", authorization, Some(&body))
            .await
    };

    let bearer = format!("Bearer {}", tokens.contributor);
    let sub = format!("lerian/{CONTRIBUTOR}");
    for authorization in [bearer.as_str(), tokens.contributor.as_str()] {
        let (status, answer) = ask(Some(authorization), &sub, "post").await;
        assert_eq!(status, 200);
        assert_eq!(answer["authorized"], true);
        let timestamp = answer["timestamp"].as_str().unwrap();
        assert!(
            timestamp.ends_with('Z') && timestamp.contains('T'),
            "{timestamp}"
        );
        let (_, answer) = ask(Some(authorization), &sub, "delete").await;
        assert_eq!(answer["authorized"], false);
    }
    // A body `sub` naming someone else is denied, whatever that someone may do.
    let (_, answer) = ask(Some(&bearer), &format!("lerian/{EDITOR}"), "get").await;
    assert_eq!(answer["authorized"], false);
    // An application's rights are its roles, not the editor role its `sub` names.
    let (_, answer) = ask(
        Some(&tokens.application),
        "lerian/midaz-editor-role",
        "delete",
    )
    .await;
    assert_eq!(answer["authorized"], false);
    let (_, answer) = ask(
        Some(&tokens.application),
        "lerian/midaz-editor-role",
        "post",
    )
    .await;
    assert_eq!(answer["authorized"], true);

    let (status, answer) = ask(None, &sub, "get").await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("AUT-0006")));
    for bad in ["Bearer not-a-jwt", tokens.foreign.as_str()] {
        let (status, answer) = ask(Some(bad), &sub, "get").await;
        assert_eq!((status, answer["code"].as_str()), (401, Some("AUT-0007")));
    }
    let (status, answer) = fake.call("GET", "/v1/userinfo", Some(&bearer), None).await;
    assert_eq!((status, answer["sub"].as_str()), (200, Some(CONTRIBUTOR)));
}

#[tokio::test]
async fn auth_disabled_opens_every_route() {
    let ledger = Ledger::start(Auth::new(AuthConfig::default()).unwrap()).await;
    let shared = ledger.fixture(None).await;
    for route in &ROUTES {
        for authorization in [None, Some("Bearer not-a-jwt")] {
            let fresh = if route.method == "DELETE" {
                Some(ledger.fixture(None).await)
            } else {
                None
            };
            let path = fresh.as_ref().unwrap_or(&shared).path(route.path);
            let (status, answer) = ledger
                .call(route.method, &path, authorization, body_for(route).as_ref())
                .await;
            assert_eq!(status, route.ok, "{} {path}: {answer}", route.method);
            if status == 201 {
                assert_eq!(answer["createdBy"], Value::Null);
            }
        }
    }
}

fn editor_ledger_auth(jwks: &JwksServer) -> Auth {
    Auth::new(
        AuthConfig::default()
            .enabled(true)
            .issuer(ISSUER)
            .jwks_url(jwks.jwks_url.clone()),
    )
    .unwrap()
}

fn assert_error(status: u16, answer: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{answer}");
    assert_eq!(answer["code"], code, "{answer}");
    assert!(answer["title"].is_string(), "{answer}");
    assert!(answer["message"].is_string(), "{answer}");
}

#[tokio::test]
async fn created_deleted_unknown_and_bad_requests() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let ledger = Ledger::start(editor_ledger_auth(&jwks)).await;
    let editor = format!("Bearer {}", Tokens::new(&key).editor);
    let auth = Some(editor.as_str());
    let f = ledger.fixture(auth).await;
    let other = ledger.fixture(auth).await;
    let unknown = uuid::Uuid::new_v4().to_string();

    // 201 with the object, then readable; PATCH renames.
    let (status, created) = ledger
        .call(
            "POST",
            "/v1/organizations",
            auth,
            Some(&json!({"name": " Globex "})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["name"], "Globex");
    assert_eq!(created["createdBy"], EDITOR);
    let path = format!("/v1/organizations/{}", created["id"].as_str().unwrap());
    assert_eq!(ledger.call("GET", &path, auth, None).await, (200, created));
    let (status, renamed) = ledger
        .call("PATCH", &path, auth, Some(&json!({"name": "Initech"})))
        .await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("Initech")));
    let count = ledger
        .send("HEAD", "/v1/organizations/metrics/count", auth, None)
        .await;
    assert_eq!(count.status(), 204);
    assert_eq!(count.headers()["x-total-count"], "3");
    let (_, list) = ledger
        .call("GET", &f.path("/v1/organizations/{o}/ledgers"), auth, None)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");

    // 404: unknown ids, and ids that exist under another parent.
    for (template, replace, entity) in [
        ("/v1/organizations/{o}", "{o}", "organization"),
        ("/v1/organizations/{o}/ledgers", "{o}", "organization"),
        ("/v1/organizations/{o}/ledgers/{l}", "{l}", "ledger"),
        (
            "/v1/organizations/{o}/ledgers/{l}/accounts",
            "{l}",
            "ledger",
        ),
        (
            "/v1/organizations/{o}/ledgers/{l}/accounts/{a}",
            "{a}",
            "account",
        ),
        (
            "/v1/organizations/{o}/ledgers/{l}/transactions/{t}",
            "{t}",
            "transaction",
        ),
    ] {
        let path = f.path(&template.replace(replace, &unknown));
        let (status, answer) = ledger.call("GET", &path, auth, None).await;
        assert_error(status, &answer, 404, "LDG-0003");
        assert!(
            answer["message"].as_str().unwrap().contains(entity),
            "{answer}"
        );
    }
    let crossed = [
        format!(
            "/v1/organizations/{}/ledgers/{}",
            other.organization, f.ledger
        ),
        format!(
            "/v1/organizations/{}/ledgers/{}/accounts/{}",
            f.organization, other.ledger, f.account
        ),
        format!(
            "/v1/organizations/{}/ledgers/{}/transactions/{}",
            other.organization, other.ledger, f.transaction
        ),
    ];
    for path in &crossed {
        let (status, answer) = ledger.call("GET", path, auth, None).await;
        assert_error(status, &answer, 404, "LDG-0003");
    }
    let unknown_org = format!("/v1/organizations/{unknown}");
    for (method, body) in [("PATCH", Some(json!({"name": "x"}))), ("DELETE", None)] {
        let (status, answer) = ledger.call(method, &unknown_org, auth, body.as_ref()).await;
        assert_error(status, &answer, 404, "LDG-0003");
    }
    let (status, answer) = ledger
        .call(
            "POST",
            &format!("/v1/organizations/{unknown}/ledgers"),
            auth,
            Some(&json!({"name": "x"})),
        )
        .await;
    assert_error(status, &answer, 404, "LDG-0003");
    let (status, answer) = ledger.call("GET", "/v1/nowhere", auth, None).await;
    assert_error(status, &answer, 404, "LDG-0004");

    // 400: ids that are not UUIDs.
    for path in [
        "/v1/organizations/not-a-uuid".to_owned(),
        "/v1/organizations/123/ledgers".to_owned(),
        f.path("/v1/organizations/{o}/ledgers/{l}/accounts/zzz"),
        f.path("/v1/organizations/{o}/ledgers/{l}/transactions/00000000-0000-0000-0000"),
    ] {
        let (status, answer) = ledger.call("GET", &path, auth, None).await;
        assert_error(status, &answer, 400, "LDG-0002");
    }

    // 400: bodies that are not JSON, or not of the right shape.
    let raw = |path: String, body: &'static str| {
        ledger
            .http
            .post(format!("{}{path}", ledger.base))
            .header("authorization", &editor)
            .header("content-type", "application/json")
            .body(body)
    };
    let transactions = f.path("/v1/organizations/{o}/ledgers/{l}/transactions/json");
    for (path, body) in [
        ("/v1/organizations".to_owned(), "{\"name\": "),
        ("/v1/organizations".to_owned(), "not json"),
        ("/v1/organizations".to_owned(), "{\"title\": \"no name\"}"),
        ("/v1/organizations".to_owned(), "{\"name\": 42}"),
        ("/v1/organizations".to_owned(), "{\"name\": \"  \"}"),
        (transactions.clone(), "[1, 2]"),
        (transactions.clone(), "\"a string\""),
    ] {
        let response = raw(path.clone(), body).send().await.unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        assert_error(status, &answer, 400, "LDG-0001");
    }
    let response = ledger
        .http
        .post(format!("{}/v1/organizations", ledger.base))
        .header("authorization", &editor)
        .body("{\"name\": \"no content type\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["code"], "LDG-0006");

    // 204, then gone, with what it owned.
    let (status, answer) = ledger
        .call("DELETE", &f.path("/v1/organizations/{o}"), auth, None)
        .await;
    assert_eq!((status, answer), (204, Value::Null));
    for template in [
        "/v1/organizations/{o}",
        "/v1/organizations/{o}/ledgers/{l}",
        "/v1/organizations/{o}/ledgers/{l}/accounts/{a}",
    ] {
        let (status, _) = ledger.call("GET", &f.path(template), auth, None).await;
        assert_eq!(status, 404, "{template}");
    }
    let (status, _) = ledger
        .call(
            "DELETE",
            &other.path("/v1/organizations/{o}/ledgers/{l}"),
            auth,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = ledger
        .call(
            "GET",
            &other.path("/v1/organizations/{o}/ledgers/{l}/transactions/{t}"),
            auth,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = ledger
        .call("GET", &other.path("/v1/organizations/{o}"), auth, None)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_guard_answers_before_ids_and_bodies_are_read() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let ledger = Ledger::start(editor_ledger_auth(&jwks)).await;
    let viewer = format!("Bearer {}", Tokens::new(&key).viewer);
    // A bad id or body is not revealed to a caller who may not call the route at all.
    let (status, _) = ledger
        .call("GET", "/v1/organizations/not-a-uuid", None, None)
        .await;
    assert_eq!(status, 401);
    let (status, answer) = ledger
        .call(
            "POST",
            "/v1/organizations/not-a-uuid/ledgers",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!((status, answer["code"].as_str()), (403, Some("AUT-0008")));
}

// ---------------------------------------------------------------------------------------------
// The binary.

fn ledger_binary() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ledger"));
    command
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn the_binary_exits_with_the_message_on_a_bad_setting() {
    for (variable, value) in [
        ("PLUGIN_AUTH_ENABLED", "perhaps"),
        ("PLUGIN_AUTH_MODE", "hybrid"),
        ("LEDGER_PORT", "http"),
    ] {
        let output = tokio::time::timeout(
            Duration::from_secs(10),
            ledger_binary().env(variable, value).output(),
        )
        .await
        .unwrap()
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{variable}: {stderr}");
        assert!(
            stderr.contains(variable) && stderr.contains(value),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A value that is not UTF-8 is not taken for unset (which would disable auth).
    use std::os::unix::ffi::OsStrExt;
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        ledger_binary()
            .env(
                "PLUGIN_AUTH_ENABLED",
                std::ffi::OsStr::from_bytes(b"tru\xe9"),
            )
            .output(),
    )
    .await
    .expect("the ledger exits at once")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("PLUGIN_AUTH_ENABLED"), "{stderr}");
}

#[tokio::test]
async fn the_binary_reads_its_auth_settings_from_the_environment() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let mut child = ledger_binary()
        .env("LEDGER_PORT", "0")
        .env("PLUGIN_AUTH_ENABLED", "true")
        .env("PLUGIN_AUTH_ISSUER", ISSUER)
        .env("PLUGIN_AUTH_JWKS_URL", &jwks.jwks_url)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::BufReader::new(stdout).lines().next_line(),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    let base = line
        .strip_prefix("ledger listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let ledger = Ledger::at(base.to_owned());
    let tokens = Tokens::new(&key);
    let viewer = format!("Bearer {}", tokens.viewer);
    let name = json!({"name": "x"});

    assert_eq!(
        ledger.call("GET", "/v1/organizations", None, None).await.0,
        401
    );
    let (status, _) = ledger
        .call("GET", "/v1/organizations", Some(&viewer), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = ledger
        .call("POST", "/v1/organizations", Some(&viewer), Some(&name))
        .await;
    assert_eq!(status, 403);
    let (status, created) = ledger
        .call(
            "POST",
            "/v1/organizations",
            Some(&tokens.application),
            Some(&name),
        )
        .await;
    assert_eq!(
        (status, created["createdBy"].as_str()),
        (201, Some(APPLICATION))
    );

    child.kill().await.unwrap();
}
