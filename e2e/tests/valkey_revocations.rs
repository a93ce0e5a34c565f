//! Revocations pushed over Valkey to validators in other processes: `lib-auth-server` and two
//! example ledgers (local mode) as real processes sharing the CI machine's Redis-protocol
//! server (`LIB_AUTH_TEST_VALKEY_URL`, default `redis://127.0.0.1:6379`) under a prefix of
//! their own. The ledgers poll the feed once a minute, so each refusal measured here came by
//! a pushed notice and the feed read it set off. Prints the p50, p99 and maximum over 100 logouts of the time until both ledgers
//! refused the token.

use std::time::{Duration, Instant};

use lib_auth_e2e::{ADMIN_PASSWORD, AuthServer, Http, Ledger, LedgerMode, step};
use reqwest::{Method, StatusCode};

const FLOW: &str = "valkey";
const LOGOUTS: usize = 100;

/// Polls `GET url` with `token` every 2 ms until it is refused; when that happened.
async fn refused_at(http: &Http, url: &str, token: &str, limit: Duration) -> Instant {
    let start = Instant::now();
    loop {
        let answer = http.get(url, Some(token)).await;
        match answer.status {
            StatusCode::UNAUTHORIZED => return Instant::now(),
            StatusCode::OK if start.elapsed() < limit => {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            _ => panic!("not refused within {limit:?}: {answer:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_reaches_two_validator_processes_within_a_second() {
    let url = std::env::var("LIB_AUTH_TEST_VALKEY_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("lib-auth-e2e-{}", std::process::id());
    let settings = [
        ("VALKEY_URL", url.as_str()),
        ("VALKEY_PREFIX", prefix.as_str()),
    ];
    let http = Http::default();
    let server = AuthServer::start_with(&settings).await;
    let mut ledgers = Vec::new();
    for _ in 0..2 {
        let app = server.cli(&["app", "create", "--name", "midaz"]);
        let credentials = (
            app["clientId"].as_str().expect("client id"),
            app["clientSecret"].as_str().expect("secret"),
        );
        let poll = Duration::from_secs(60);
        ledgers.push(
            Ledger::start_with(&server, LedgerMode::Local, credentials, poll, &settings).await,
        );
    }
    step(
        FLOW,
        &format!(
            "lib-auth-server and two ledgers in local mode share Valkey at {url} (prefix {prefix}); the ledgers poll the feed once a minute"
        ),
    );
    let urls: Vec<String> = ledgers.iter().map(|l| l.at("/v1/organizations")).collect();

    let mut took = Vec::with_capacity(LOGOUTS);
    for n in 0..LOGOUTS {
        let token = server
            .login(&http, "admin", ADMIN_PASSWORD)
            .await
            .expect(StatusCode::OK, "admin login")
            .str("accessToken")
            .to_owned();
        for url in &urls {
            http.get(url, Some(&token))
                .await
                .expect(StatusCode::OK, "a fresh token is taken");
        }
        // Give the first ledgers' subscriptions time to be in place.
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let logged_out = Instant::now();
        http.call(Method::POST, &server.auth("/v1/logout"), Some(&token), None)
            .await
            .expect(StatusCode::NO_CONTENT, "logout");
        let limit = Duration::from_secs(5);
        let (a, b) = tokio::join!(
            refused_at(&http, &urls[0], &token, limit),
            refused_at(&http, &urls[1], &token, limit)
        );
        took.push(a.max(b).duration_since(logged_out));
    }
    took.sort();
    let p50 = took[LOGOUTS / 2];
    let p99 = took[LOGOUTS * 99 / 100 - 1];
    let max = took[LOGOUTS - 1];
    step(
        FLOW,
        &format!(
            "{LOGOUTS} logouts, time from the logout request until both ledgers refused the token: p50 {} ms, p99 {} ms, max {} ms",
            p50.as_millis(),
            p99.as_millis(),
            max.as_millis()
        ),
    );
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?} is over 1 s");
}
