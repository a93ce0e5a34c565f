//! The M2M client over real HTTP: [`ApplicationToken`] and [`Auth::application_token`] against
//! a fake token endpoint (a real axum server on 127.0.0.1:0 speaking Lerian's
//! `POST /v1/login/oauth/access_token` wire) that counts and records its requests.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use lib_auth::{ApplicationToken, ApplicationTokenError, Auth, AuthConfig, Secret};
use lib_auth_testkit::{capture_logs, serve};
use serde_json::{Value, json};

const CLIENT_ID: &str = "midaz-app";
const SECRET: &str = "s3cr3t-9f2c-very-private";

/// What the fake token endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Lerian's success answer (or 401 for wrong credentials).
    Normal,
    /// 500 with a JSON error.
    Error500,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with `tokenType: "mac"`.
    WrongType,
    /// 200 with `expiresIn: 0`.
    NoLifetime,
    /// 307 to `/elsewhere`, which would receive the secret if redirects were followed.
    Redirect,
}

struct TokenState {
    expires_in: AtomicU64,
    delay: Mutex<Duration>,
    answer: Mutex<Answer>,
    hits: AtomicUsize,
    elsewhere_hits: AtomicUsize,
    issued: AtomicUsize,
    bodies: Mutex<Vec<(Option<String>, Value)>>,
}

struct FakeTokenEndpoint {
    url: String,
    state: Arc<TokenState>,
}

fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"code": code, "title": "Error", "message": message})),
    )
        .into_response()
}

async fn access_token(
    State(state): State<Arc<TokenState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state
        .bodies
        .lock()
        .unwrap()
        .push((content_type, parsed.clone()));
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let expires_in = state.expires_in.load(Ordering::SeqCst);
    let answer = *state.answer.lock().unwrap();
    match answer {
        Answer::Normal => {}
        Answer::Error500 => {
            return error_body(StatusCode::INTERNAL_SERVER_ERROR, "AUT-0500", "boom");
        }
        Answer::Garbage => return (StatusCode::OK, "<html>hello</html>").into_response(),
        Answer::WrongType => {
            return axum::Json(
                json!({"accessToken": "t", "tokenType": "mac", "expiresIn": expires_in}),
            )
            .into_response();
        }
        Answer::NoLifetime => {
            return axum::Json(json!({"accessToken": "t", "tokenType": "Bearer", "expiresIn": 0}))
                .into_response();
        }
        Answer::Redirect => {
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", "/elsewhere")],
                "",
            )
                .into_response();
        }
    }
    if parsed["grantType"] != "client_credentials" {
        return error_body(StatusCode::BAD_REQUEST, "AUT-0001", "unsupported grant");
    }
    if parsed["clientId"] != CLIENT_ID || parsed["clientSecret"] != SECRET {
        return error_body(StatusCode::UNAUTHORIZED, "AUT-1004", "invalid client");
    }
    let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
    (
        [("cache-control", "no-store")],
        axum::Json(json!({
            "accessToken": format!("token-{n}"),
            "tokenType": "Bearer",
            "expiresIn": expires_in,
            "scope": "openid",
        })),
    )
        .into_response()
}

async fn elsewhere(State(state): State<Arc<TokenState>>) -> Response {
    state.elsewhere_hits.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({"accessToken": "stolen", "tokenType": "Bearer", "expiresIn": 3600}))
        .into_response()
}

impl FakeTokenEndpoint {
    async fn start(expires_in: u64) -> FakeTokenEndpoint {
        let state = Arc::new(TokenState {
            expires_in: AtomicU64::new(expires_in),
            delay: Mutex::new(Duration::ZERO),
            answer: Mutex::new(Answer::Normal),
            hits: AtomicUsize::new(0),
            elsewhere_hits: AtomicUsize::new(0),
            issued: AtomicUsize::new(0),
            bodies: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/login/oauth/access_token", post(access_token))
            .route("/elsewhere", post(elsewhere).get(elsewhere))
            .with_state(state.clone());
        let addr = serve(app).await;
        FakeTokenEndpoint {
            url: format!("http://{addr}"),
            state,
        }
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn set_answer(&self, answer: Answer) {
        *self.state.answer.lock().unwrap() = answer;
    }

    fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    fn client(&self, secret: &str) -> ApplicationToken {
        ApplicationToken::new(&self.url, CLIENT_ID, Secret::new(secret)).expect("valid client")
    }
}

fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

#[tokio::test]
async fn auth_fetches_with_lerians_wire_and_caches() {
    let fake = FakeTokenEndpoint::start(3600).await;
    let auth = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .host(fake.url.clone())
            .client_id(CLIENT_ID)
            .client_secret(SECRET),
    )
    .expect("config is valid");

    assert_eq!(auth.application_token().await.unwrap(), "token-1");
    for _ in 0..50 {
        assert_eq!(auth.application_token().await.unwrap(), "token-1");
    }
    // Clones of Auth share the cached token.
    assert_eq!(auth.clone().application_token().await.unwrap(), "token-1");
    assert_eq!(fake.hits(), 1);

    let bodies = fake.state.bodies.lock().unwrap().clone();
    let (content_type, body) = &bodies[0];
    assert!(
        content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json")),
        "{content_type:?}"
    );
    let mut fields: Vec<&str> = body
        .as_object()
        .expect("JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["clientId", "clientSecret", "grantType"]);
    assert_eq!(body["grantType"], "client_credentials");
    assert_eq!(body["clientId"], CLIENT_ID);
    assert_eq!(body["clientSecret"], SECRET);

    // Debug output of the library never shows the secret or the token.
    let shown = format!("{auth:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains("token-1"), "{shown}");
}

#[tokio::test]
async fn the_token_is_renewed_before_it_expires() {
    // A 2 s token is reused for 1 s (half its lifetime), then renewed.
    let fake = FakeTokenEndpoint::start(2).await;
    let tokens = fake.client(SECRET);
    let start = Instant::now();

    assert_eq!(tokens.token().await.unwrap(), "token-1");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(tokens.token().await.unwrap(), "token-1");
    assert_eq!(fake.hits(), 1);

    tokio::time::sleep_until((start + Duration::from_millis(1_150)).into()).await;
    assert_eq!(tokens.token().await.unwrap(), "token-2");
    assert_eq!(tokens.token().await.unwrap(), "token-2");
    assert_eq!(fake.hits(), 2);
    // Renewed before the first one expired.
    assert!(start.elapsed() < Duration::from_secs(2));

    // invalidate() forces a new fetch.
    tokens.invalidate();
    assert_eq!(tokens.token().await.unwrap(), "token-3");
    assert_eq!(fake.hits(), 3);
}

#[tokio::test]
async fn a_failed_renewal_keeps_the_current_token_until_it_nears_expiry() {
    let fake = FakeTokenEndpoint::start(2).await;
    let tokens = fake.client(SECRET);
    let start = Instant::now();
    assert_eq!(tokens.token().await.unwrap(), "token-1");

    fake.set_answer(Answer::Error500);
    tokio::time::sleep_until((start + Duration::from_millis(1_150)).into()).await;
    // Renewal due, the service fails, the token still has ~0.85 s: it is handed out.
    assert_eq!(tokens.token().await.unwrap(), "token-1");
    assert_eq!(fake.hits(), 2);

    // Within the last 10 % of its life (0.2 s) it is not.
    tokio::time::sleep_until((start + Duration::from_millis(1_900)).into()).await;
    let err = tokens.token().await.unwrap_err();
    assert!(
        matches!(err, ApplicationTokenError::Unavailable { .. }),
        "{err:?}"
    );

    fake.set_answer(Answer::Normal);
    assert_eq!(tokens.token().await.unwrap(), "token-2");
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch() {
    let fake = FakeTokenEndpoint::start(3600).await;
    fake.set_delay(Duration::from_millis(300));
    let tokens = fake.client(SECRET);

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "token-1");
    }
    assert_eq!(fake.hits(), 1);
}

#[tokio::test]
async fn concurrent_callers_share_one_failure_too() {
    let fake = FakeTokenEndpoint::start(3600).await;
    fake.set_delay(Duration::from_millis(300));
    fake.set_answer(Answer::Error500);
    let tokens = fake.client(SECRET);

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await })
        })
        .collect();
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert!(
            matches!(err, ApplicationTokenError::Unavailable { .. }),
            "{err:?}"
        );
    }
    assert_eq!(fake.hits(), 1);

    // A later caller tries again (failures are not cached).
    fake.set_delay(Duration::ZERO);
    fake.set_answer(Answer::Normal);
    assert_eq!(tokens.token().await.unwrap(), "token-1");
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn a_wrong_secret_is_bad_credentials_and_never_shown() {
    let fake = FakeTokenEndpoint::start(3600).await;
    let wrong = "wrong-secret-4b1d";
    let tokens = fake.client(wrong);

    let err = tokens.token().await.unwrap_err();
    assert_eq!(
        err,
        ApplicationTokenError::BadCredentials {
            code: "AUT-1004".to_owned()
        }
    );
    let shown = format!("{err} {err:?} {tokens:?}");
    assert!(!shown.contains(wrong), "{shown}");
    // Not cached: a second call asks again.
    assert!(tokens.token().await.is_err());
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn server_down_is_unavailable_and_a_fresh_token_survives_it() {
    let tokens = ApplicationToken::new(&closed_port_url(), CLIENT_ID, Secret::new(SECRET)).unwrap();
    let err = tokens.token().await.unwrap_err();
    assert!(
        matches!(err, ApplicationTokenError::Unavailable { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(SECRET));

    let auth = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .host(closed_port_url())
            .client_id(CLIENT_ID)
            .client_secret(SECRET)
            .http_timeout(Duration::from_secs(1)),
    )
    .unwrap();
    assert!(matches!(
        auth.application_token().await,
        Err(ApplicationTokenError::Unavailable { .. })
    ));

    // A fresh token is served from the cache while the service fails: no call at all.
    let fake = FakeTokenEndpoint::start(3600).await;
    let tokens = fake.client(SECRET);
    assert_eq!(tokens.token().await.unwrap(), "token-1");
    fake.set_answer(Answer::Error500);
    assert_eq!(tokens.token().await.unwrap(), "token-1");
    assert_eq!(fake.hits(), 1);
}

#[tokio::test]
async fn unusable_answers_are_bad_answer_and_redirects_are_not_followed() {
    let fake = FakeTokenEndpoint::start(3600).await;
    let tokens = fake.client(SECRET);
    for answer in [Answer::Garbage, Answer::WrongType, Answer::NoLifetime] {
        fake.set_answer(answer);
        let err = tokens.token().await.unwrap_err();
        assert!(
            matches!(err, ApplicationTokenError::BadAnswer { .. }),
            "{answer:?}: {err:?}"
        );
    }

    // The secret is in the body: a redirect is an error, never replayed elsewhere.
    fake.set_answer(Answer::Redirect);
    let err = tokens.token().await.unwrap_err();
    assert!(
        matches!(err, ApplicationTokenError::Unavailable { .. }),
        "{err:?}"
    );
    assert_eq!(fake.state.elsewhere_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn auth_without_credentials_or_disabled_says_why() {
    let config = AuthConfig::default()
        .enabled(true)
        .host("http://127.0.0.1:9")
        .client_id(CLIENT_ID);
    let auth = Auth::new(config.clone()).unwrap();
    assert_eq!(
        auth.application_token().await.unwrap_err(),
        ApplicationTokenError::NotConfigured {
            variable: "PLUGIN_AUTH_CLIENT_SECRET"
        }
    );

    let auth = Auth::new(config.client_secret(SECRET).enabled(false)).unwrap();
    assert_eq!(
        auth.application_token().await.unwrap_err(),
        ApplicationTokenError::Disabled
    );
}

#[tokio::test]
async fn neither_the_secret_nor_the_token_is_logged() {
    let (logs, _guard) = capture_logs("trace");

    let fake = FakeTokenEndpoint::start(2).await;
    let tokens = fake.client(SECRET);
    let start = Instant::now();
    assert_eq!(tokens.token().await.unwrap(), "token-1");
    fake.set_answer(Answer::Error500);
    tokio::time::sleep_until((start + Duration::from_millis(1_150)).into()).await;
    assert_eq!(tokens.token().await.unwrap(), "token-1");
    let wrong = fake.client("wrong-secret-77aa");
    fake.set_answer(Answer::Normal);
    assert!(wrong.token().await.is_err());

    let text = logs.text();
    assert!(text.contains("application token"), "nothing logged: {text}");
    for needle in [SECRET, "wrong-secret-77aa", "token-1"] {
        assert!(!text.contains(needle), "{needle} logged:\n{text}");
    }
}
