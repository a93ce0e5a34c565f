//! Remote mode's shared decision cache across processes: `lib-auth-server` and two example
//! ledgers in remote mode sharing the CI machine's Redis-protocol server
//! (`LIB_AUTH_TEST_VALKEY_URL`, default `redis://127.0.0.1:6379`) under a prefix of their own,
//! with one `VALKEY_DECISION_SECRET`. What one ledger learnt from the Auth service, the other
//! answers from Valkey: shown by stopping the Auth service before asking the second ledger.

use lib_auth_e2e::{ADMIN_PASSWORD, AuthServer, Http, Ledger, LedgerMode, step};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

const FLOW: &str = "valkey-decisions";

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_answers_from_what_another_ledger_learnt_while_the_auth_service_is_down() {
    let url = std::env::var("LIB_AUTH_TEST_VALKEY_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("lib-auth-e2e-decisions-{}", std::process::id());
    let valkey = [
        ("VALKEY_URL", url.as_str()),
        ("VALKEY_PREFIX", prefix.as_str()),
    ];
    let http = Http::default();
    let mut server = AuthServer::start_with(&valkey).await;
    let mut settings = valkey.to_vec();
    settings.push((
        "VALKEY_DECISION_SECRET",
        "an-e2e-decision-secret-of-32-bytes-or-more",
    ));
    let mut ledgers = Vec::new();
    for _ in 0..2 {
        let app = server.cli(&["app", "create", "--name", "midaz"]);
        let credentials = (
            app["clientId"].as_str().expect("client id"),
            app["clientSecret"].as_str().expect("secret"),
        );
        let poll = Duration::from_secs(60);
        ledgers.push(
            Ledger::start_with(&server, LedgerMode::Remote, credentials, poll, &settings).await,
        );
    }
    step(
        FLOW,
        &format!(
            "lib-auth-server and two ledgers in remote mode share decisions in Valkey at {url} (prefix {prefix})"
        ),
    );
    let token = server
        .login(&http, "admin", ADMIN_PASSWORD)
        .await
        .expect(StatusCode::OK, "admin login")
        .str("accessToken")
        .to_owned();
    let organizations = |ledger: &Ledger| ledger.at("/v1/organizations");
    http.get(&organizations(&ledgers[0]), Some(&token))
        .await
        .expect(StatusCode::OK, "ledger A asks the Auth service");
    step(
        FLOW,
        "ledger A: GET /v1/organizations → 200, asked of the Auth service",
    );

    // Ledger B reads shared answers once it knows every revocation: its feed read.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ready = http.get(&ledgers[1].at("/ready"), None).await;
        if ready.status == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ledger B not ready: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    step(FLOW, "ledger B: GET /ready → 200, its revocation feed read");
    let late_app = server.cli(&["app", "create", "--name", "midaz"]);
    server.stop().await;
    step(FLOW, "the Auth service is stopped");
    // A ledger started now cannot read the feed, so it cannot know of a logout older than
    // what Valkey holds: it takes nothing from there.
    let late = Ledger::start_with(
        &server,
        LedgerMode::Remote,
        (
            late_app["clientId"].as_str().expect("client id"),
            late_app["clientSecret"].as_str().expect("secret"),
        ),
        Duration::from_secs(60),
        &settings,
    )
    .await;
    http.get(&late.at("/ready"), None)
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE, "ledger C has read no feed");
    http.get(&organizations(&late), Some(&token)).await.expect(
        StatusCode::SERVICE_UNAVAILABLE,
        "ledger C takes no shared answer before its feed is read",
    );
    step(
        FLOW,
        "ledger C, started while the Auth service is down: GET /ready → 503, GET /v1/organizations → 503 (no feed read, so no shared answer)",
    );
    http.get(&organizations(&ledgers[1]), Some(&token))
        .await
        .expect(StatusCode::OK, "ledger B answers from Valkey");
    step(
        FLOW,
        "ledger B: GET /v1/organizations → 200, from what ledger A stored in Valkey",
    );
    http.post(
        &organizations(&ledgers[1]),
        Some(&token),
        &json!({"legalName": "Never Asked Ltd"}),
    )
    .await
    .expect(
        StatusCode::SERVICE_UNAVAILABLE,
        "a permission nobody asked about needs the service",
    );
    step(
        FLOW,
        "ledger B: POST /v1/organizations → 503: nobody asked the service about it, and it is down",
    );
}
