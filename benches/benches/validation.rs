//! The validation path through the tower stack.
//!
//! - `warm`: the token was verified before (cache hit) and the decision is made by the compiled
//!   policy; measures one request through `Require<S>` around a trivial inner service, against
//!   the same inner service called bare.
//! - `cold`: an RS256 token seen for the first time (dropped from the cache before each request,
//!   keys already loaded); against a bare `jsonwebtoken::decode` of the same token, same run.
//!
//! Futures are polled once with a no-op waker: with static keys and a cache hit nothing waits,
//! so no executor overhead is measured.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use foldhash::fast::RandomState;
use http::{Request, Response};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lib_auth::{Auth, AuthConfig, VerificationKey};
use lib_auth_testkit::{ISSUER, TestKey, user_claims};
use serde::Deserialize;
use tower::{Layer, Service, service_fn};

type Body = Full<Bytes>;

/// The key a decision cache would need: token, product, resource, action.
type DecisionKey = (Arc<str>, Arc<str>, Arc<str>, u8);

/// What a typical service would decode its tokens into.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Claims {
    iss: String,
    sub: String,
    exp: u64,
    iat: u64,
    nbf: u64,
    jti: String,
    sid: String,
    client_id: String,
    scope: String,
    owner: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    roles: Vec<String>,
}

fn poll_once<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the benchmarked path must not wait"),
    }
}

fn auth_with(key: &TestKey) -> Auth {
    let vk = VerificationKey::from_pem(Some(&key.kid), key.alg, key.public_pem).expect("key");
    Auth::new(
        AuthConfig::default()
            .enabled(true)
            .issuer(ISSUER)
            .static_key(vk),
    )
    .expect("config")
}

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

fn bench_validation(c: &mut Criterion) {
    let key = TestKey::rsa_a();
    let token = key.sign(&user_claims("bench-user", &["midaz-viewer-role"]));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();

    let mut group = c.benchmark_group("validation");

    // Warm path: verified token cached, decision from the compiled policy.
    let auth = auth_with(&key);
    let mut guarded = auth
        .require_method("midaz", "ledgers")
        .layer(service_fn(ok));
    let first = poll_once(guarded.call(request(&token))).expect("infallible");
    assert_eq!(first.status(), 200, "the bench token must be allowed");
    group.bench_function("warm/require_method (cache hit + decision)", |b| {
        b.iter_batched(
            || request(&token),
            |req| {
                let res = poll_once(guarded.call(req)).expect("infallible");
                debug_assert_eq!(res.status(), 200);
                black_box(res)
            },
            BatchSize::SmallInput,
        )
    });
    let mut bare = service_fn(ok);
    group.bench_function("warm/bare inner service (baseline)", |b| {
        b.iter_batched(
            || request(&token),
            |req| black_box(poll_once(bare.call(req)).expect("infallible")),
            BatchSize::SmallInput,
        )
    });

    // Cold path: first sight of an RS256 token. The token is dropped from the cache before
    // each (timed) request, so every request verifies the signature.
    let cold_auth = auth_with(&key);
    let mut cold = cold_auth
        .require_method("midaz", "ledgers")
        .layer(service_fn(ok));
    group.bench_function("cold/require_method RS256 first seen", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                cold_auth.forget_token(&token);
                let req = request(&token);
                let start = Instant::now();
                let res = poll_once(cold.call(req)).expect("infallible");
                total += start.elapsed();
                assert_eq!(res.status(), 200);
            }
            total
        })
    });
    let decoding = DecodingKey::from_rsa_pem(key.public_pem).expect("key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ISSUER]);
    validation.validate_aud = false;
    group.bench_function("cold/jsonwebtoken::decode RS256 (baseline)", |b| {
        b.iter(|| {
            black_box(
                jsonwebtoken::decode::<Claims>(black_box(&token), &decoding, &validation)
                    .expect("valid"),
            )
        })
    });
    group.finish();

    // Why local mode keeps no decision cache: a compiled decision against a cache hit keyed by
    // (token, product, resource, action), the key a decision cache needs.
    let mut group = c.benchmark_group("decision");
    let principal = poll_once(auth.authenticate_headers(request(&token).headers())).expect("valid");
    group.bench_function("compiled policy decide (uncached)", |b| {
        b.iter(|| {
            black_box(auth.decide(
                black_box(&principal),
                "midaz",
                "ledgers",
                lib_auth::Action::Get,
            ))
        })
    });
    let cache: moka::sync::Cache<DecisionKey, bool, RandomState> = moka::sync::Cache::builder()
        .max_capacity(100_000)
        .build_with_hasher(RandomState::default());
    let (product, resource): (Arc<str>, Arc<str>) = (Arc::from("midaz"), Arc::from("ledgers"));
    let token_key: Arc<str> = Arc::from(token.as_str());
    cache.insert(
        (token_key.clone(), product.clone(), resource.clone(), 0),
        true,
    );
    group.bench_function("moka decision cache hit (token+permission key)", |b| {
        b.iter(|| {
            black_box(cache.get(&(
                token_key.clone(),
                product.clone(),
                resource.clone(),
                black_box(0u8),
            )))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = bench_validation
}
criterion_main!(benches);
