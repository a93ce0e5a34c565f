//! Remote mode's two-level decision cache, one request through `Require<S>` each:
//!
//! - `hit in moka`: the decision is in the in-process cache (level 1).
//! - `miss, served from Valkey`: first sight of the token in this validator; another validator
//!   stored the Auth service's answer in Valkey (level 2): one GET, an HMAC check, a parse.
//! - `miss, asked of the Auth service`: first sight, no shared level: `POST /v1/authorize` to
//!   lib-auth-server (this workspace's, optimized), running in this process on a runtime and
//!   threads of its own, over loopback HTTP.
//!
//! The tokens are `client_credentials` tokens of one application holding `midaz-viewer-role`,
//! from that server. Needs a Redis-protocol server (`LIB_AUTH_TEST_VALKEY_URL`, default
//! 127.0.0.1:6379). Each miss row runs its requests over 2 000 distinct tokens, each seen once
//! by a fresh validator (building validators is not timed).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use lib_auth::{Auth, AuthConfig, Mode};
use lib_auth_server::admin::new_application;
use lib_auth_server::{Listeners, Server, ServerConfig};
use tower::{Layer, Service, ServiceExt, service_fn};

type Body = Full<Bytes>;

const TOKENS: usize = 2_000;
const SECRET: &str = "bench-decision-secret-of-32-bytes-or-more";

fn request(token: &str) -> Request<Body> {
    Request::builder()
        .method("GET")
        .uri("/v1/organizations/o/ledgers/l")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::default())
        .expect("request")
}

async fn ok(_req: Request<Body>) -> Result<Response<Body>, std::convert::Infallible> {
    Ok(Response::new(Body::from(Bytes::from_static(b"{}"))))
}

/// lib-auth-server on 127.0.0.1 in a runtime of its own.
struct AuthService {
    base: String,
    /// Access tokens of an application allowed to read ledgers.
    tokens: Vec<String>,
    /// The validators' own credentials (sharing decisions needs the revocation feed).
    credentials: (String, String),
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// Starts lib-auth-server and gets `count` tokens from it.
fn auth_server(count: usize) -> AuthService {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let config = ServerConfig {
        db_path: dir.path().join("auth.db"),
        auth_port: 0,
        admin_password: Some(lib_auth::Secret::new("bench-admin-password")),
        ..ServerConfig::default()
    };
    let (base, tokens, credentials) = runtime.block_on(async {
        let auth = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", auth.local_addr().expect("address"));
        let config = ServerConfig {
            issuer: base.clone(),
            ..config
        };
        let listeners = Listeners {
            auth,
            identity: None,
        };
        let server = Server::start_on(config, listeners, std::future::pending())
            .await
            .expect("server starts");
        let app = new_application(
            server.state.store(),
            "bench",
            "the benchmark's application",
            vec!["midaz-viewer-role".to_owned()],
        )
        .await
        .expect("application");
        let ledger = new_application(
            server.state.store(),
            "midaz",
            "the validators' own credentials",
            vec!["midaz-viewer-role".to_owned()],
        )
        .await
        .expect("application");
        let credentials = (ledger.application.client_id, ledger.client_secret);
        let http = reqwest::Client::new();
        let mut tokens = Vec::with_capacity(count);
        for _ in 0..count {
            let answer: serde_json::Value = http
                .post(format!("{base}/v1/login/oauth/access_token"))
                .json(&serde_json::json!({
                    "grantType": "client_credentials",
                    "clientId": app.application.client_id,
                    "clientSecret": app.client_secret,
                }))
                .send()
                .await
                .expect("token call")
                .json()
                .await
                .expect("token answer");
            tokens.push(answer["accessToken"].as_str().expect("token").to_owned());
        }
        // The server's tasks run on `runtime` until it is dropped.
        drop(server);
        (base, tokens, credentials)
    });
    AuthService {
        base,
        tokens,
        credentials,
        _runtime: runtime,
        _dir: dir,
    }
}

fn validator(service: &AuthService, valkey: &str, prefix: &str, shared: bool) -> Auth {
    let mut config = AuthConfig::default()
        .enabled(true)
        .mode(Mode::Remote)
        .host(service.base.clone());
    if shared {
        config = config
            .valkey_url(valkey)
            .valkey_prefix(prefix.to_owned())
            .valkey_decision_secret(SECRET)
            .client_id(service.credentials.0.clone())
            .client_secret(service.credentials.1.clone())
            .revocation_poll_interval(Duration::from_secs(60));
    }
    Auth::new(config).expect("config")
}

/// One request; panics unless it is allowed.
async fn call(auth: &Auth, token: &str) {
    let service = auth
        .require_method("midaz", "ledgers")
        .layer(service_fn(ok));
    let response = service.oneshot(request(token)).await.expect("infallible");
    assert_eq!(response.status(), 200);
    black_box(response);
}

fn bench_decisions(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut service = auth_server(TOKENS + 1);
    let warm = service.tokens.pop().expect("a token to warm up with");
    let valkey = std::env::var("LIB_AUTH_TEST_VALKEY_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("lib-auth-bench-{}", std::process::id());

    // One validator asks the service about every token and stores the answers in Valkey.
    let writer = validator(&service, &valkey, &prefix, true);
    runtime.block_on(async {
        for token in &service.tokens {
            call(&writer, token).await;
        }
    });

    let mut group = c.benchmark_group("remote decision");
    let hot = validator(&service, &valkey, &prefix, true);
    runtime.block_on(call(&hot, &warm));
    let mut guarded = hot.require_method("midaz", "ledgers").layer(service_fn(ok));
    group.bench_function("hit in moka (level 1)", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let response = guarded.call(request(&warm)).await.expect("infallible");
                    black_box(response);
                }
                start.elapsed()
            })
        })
    });

    // Every request is the first sight of its token in a fresh validator.
    let misses = |shared: bool| {
        let (service, valkey, prefix, warm) = (&service, &valkey, &prefix, &warm);
        let tokens = &service.tokens;
        let runtime = &runtime;
        move |iters: u64| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let auth = validator(service, valkey, prefix, shared);
                // Connects (to Valkey, to the service) outside the timing.
                runtime.block_on(call(&auth, warm));
                let mut guarded = auth
                    .require_method("midaz", "ledgers")
                    .layer(service_fn(ok));
                let n = left.min(TOKENS as u64);
                total += runtime.block_on(async {
                    let start = Instant::now();
                    for token in &tokens[..n as usize] {
                        let response = guarded.call(request(token)).await.expect("infallible");
                        assert_eq!(response.status(), 200);
                        black_box(response);
                    }
                    start.elapsed()
                });
                left -= n;
            }
            total
        }
    };
    group.bench_function("miss, served from Valkey (level 2)", |b| {
        b.iter_custom(misses(true))
    });
    group.bench_function("miss, asked of lib-auth-server (loopback HTTP)", |b| {
        b.iter_custom(misses(false))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = bench_decisions
}
criterion_main!(benches);
