//! The first real run: `lib-auth-server` and the example ledger as real processes on loopback,
//! the ledger guarded by lib-auth in local mode and then in remote mode, driven over HTTP the
//! way a team adopting the project would drive it. Every step is printed (`--nocapture`).

use std::time::{Duration, Instant};

use lib_auth_e2e::{ADMIN_PASSWORD, AuthServer, Http, Ledger, LedgerMode, step};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The ledger's revocation poll interval in these runs.
const POLL: Duration = Duration::from_millis(500);

const VIEWER_PASSWORD: &str = "vera-first-password";

/// Polls `GET url` with `token` until the ledger refuses it (401); how long that took. Panics
/// if it is still accepted after `deadline`.
async fn refused_within(http: &Http, url: &str, token: &str, deadline: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let answer = http.get(url, Some(token)).await;
        match answer.status {
            StatusCode::UNAUTHORIZED => return start.elapsed(),
            StatusCode::OK if start.elapsed() < deadline => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            _ => panic!("the token was not refused within {deadline:?}; last answer: {answer:?}"),
        }
    }
}

async fn first_run(mode: LedgerMode) {
    let flow = match mode {
        LedgerMode::Local => "local",
        LedgerMode::Remote => "remote",
    };
    // Both modes learn of revocations from the server's feed (local mode for the tokens it
    // verified, remote mode for the answers it cached): within a poll interval, plus the time
    // of one poll.
    let revocation_deadline = POLL * 3 + Duration::from_secs(1);
    let http = Http::default();

    let server = AuthServer::start().await;
    step(
        flow,
        &format!(
            "lib-auth-server is up: auth {}, identity {}",
            server.auth_url, server.identity_url
        ),
    );
    let feed = server.cli(&[
        "app",
        "create",
        "--name",
        "midaz",
        "--description",
        "ledger's own credentials",
    ]);
    let ledger = Ledger::start(
        &server,
        mode,
        (
            feed["clientId"].as_str().expect("client id"),
            feed["clientSecret"].as_str().expect("secret"),
        ),
        POLL,
    )
    .await;
    step(
        flow,
        &format!(
            "the ledger is up in {flow} mode at {}, its credentials made with `lib-auth-server app create`",
            ledger.url
        ),
    );

    let admin = server
        .login(&http, "admin", ADMIN_PASSWORD)
        .await
        .expect(StatusCode::OK, "admin login");
    let admin_token = admin.str("accessToken").to_owned();
    step(flow, "the bootstrap admin logged in (password grant)");

    let organization = http
        .post(
            &ledger.at("/v1/organizations"),
            Some(&admin_token),
            &json!({"name": "Acme"}),
        )
        .await
        .expect(StatusCode::CREATED, "the admin creates an organization");
    let ledgers = format!("/v1/organizations/{}/ledgers", organization.str("id"));
    let created = http
        .post(
            &ledger.at(&ledgers),
            Some(&admin_token),
            &json!({"name": "main"}),
        )
        .await
        .expect(StatusCode::CREATED, "the admin creates a ledger");
    let one_ledger = format!("{ledgers}/{}", created.str("id"));
    step(
        flow,
        "the admin created an organization and a ledger on the ledger service",
    );

    let user = http
        .post(
            &server.identity("/v1/users"),
            Some(&admin_token),
            &json!({
                "firstName": "Vera",
                "lastName": "Viewer",
                "username": "vera",
                "email": "vera@example.test",
                "password": VIEWER_PASSWORD,
                "groups": ["midaz-viewer-group"],
            }),
        )
        .await
        .expect(StatusCode::CREATED, "the admin creates a viewer");
    let user_id = user.str("id").to_owned();
    step(
        flow,
        "the admin created user vera in midaz-viewer-group (Identity API)",
    );

    let viewer = server
        .login(&http, "vera", VIEWER_PASSWORD)
        .await
        .expect(StatusCode::OK, "viewer login");
    let viewer_token = viewer.str("accessToken").to_owned();
    http.get(&ledger.at(&one_ledger), Some(&viewer_token))
        .await
        .expect(StatusCode::OK, "the viewer reads the ledger");
    http.post(
        &ledger.at(&ledgers),
        Some(&viewer_token),
        &json!({"name": "not hers"}),
    )
    .await
    .expect(StatusCode::FORBIDDEN, "the viewer may not create a ledger");
    step(flow, "vera logged in: GET ledger 200, POST ledger 403");

    http.patch(
        &server.identity(&format!("/v1/users/{user_id}")),
        Some(&admin_token),
        &json!({"groups": ["midaz-editor-group"]}),
    )
    .await
    .expect(StatusCode::OK, "the admin moves vera to midaz-editor-group");
    let took = refused_within(
        &http,
        &ledger.at(&one_ledger),
        &viewer_token,
        revocation_deadline,
    )
    .await;
    step(
        flow,
        &format!(
            "the admin moved vera to midaz-editor-group: her old token was refused by the ledger after {} ms",
            took.as_millis()
        ),
    );

    let editor = server
        .login(&http, "vera", VIEWER_PASSWORD)
        .await
        .expect(StatusCode::OK, "vera logs in again");
    let editor_token = editor.str("accessToken").to_owned();
    http.post(
        &ledger.at(&ledgers),
        Some(&editor_token),
        &json!({"name": "hers now"}),
    )
    .await
    .expect(StatusCode::CREATED, "vera, now an editor, creates a ledger");
    step(flow, "vera logged in again: POST ledger 201");

    http.call(
        Method::POST,
        &server.auth("/v1/logout"),
        Some(&editor_token),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT, "vera logs out");
    let took = refused_within(
        &http,
        &ledger.at(&one_ledger),
        &editor_token,
        revocation_deadline,
    )
    .await;
    step(
        flow,
        &format!(
            "vera logged out: her token was refused by the ledger after {} ms",
            took.as_millis()
        ),
    );

    let application = http
        .post(
            &server.identity("/v1/applications"),
            Some(&admin_token),
            &json!({"name": "midaz", "description": "nightly sync", "roles": ["midaz-contributor-role"]}),
        )
        .await
        .expect(StatusCode::CREATED, "the admin creates an application");
    let (app_id, client_id) = (
        application.str("id").to_owned(),
        application.str("clientId").to_owned(),
    );
    let old_secret = application.str("clientSecret").to_owned();
    let app_token = server
        .client_credentials(&http, &client_id, &old_secret)
        .await
        .expect(
            StatusCode::OK,
            "client_credentials with the new application",
        )
        .str("accessToken")
        .to_owned();
    http.get(&ledger.at(&one_ledger), Some(&app_token))
        .await
        .expect(StatusCode::OK, "a contributor application reads");
    http.post(
        &ledger.at(&ledgers),
        Some(&app_token),
        &json!({"name": "synced"}),
    )
    .await
    .expect(StatusCode::CREATED, "a contributor application creates");
    http.call(
        Method::DELETE,
        &ledger.at(&one_ledger),
        Some(&app_token),
        None,
    )
    .await
    .expect(
        StatusCode::FORBIDDEN,
        "a contributor application may not delete",
    );
    step(
        flow,
        "an application with midaz-contributor-role got a client_credentials token: GET 200, POST 201, DELETE 403",
    );

    let rotated = http
        .post(
            &server.identity(&format!("/v1/applications/{app_id}/rotate-secret")),
            Some(&admin_token),
            &json!({}),
        )
        .await
        .expect(StatusCode::OK, "the admin rotates the secret");
    let new_secret = rotated.str("clientSecret").to_owned();
    let refused = server
        .client_credentials(&http, &client_id, &old_secret)
        .await
        .expect(StatusCode::UNAUTHORIZED, "the old secret after rotation");
    assert_eq!(refused.body["code"], "AUT-1004", "{refused:?}");
    let new_token = server
        .client_credentials(&http, &client_id, &new_secret)
        .await
        .expect(StatusCode::OK, "the new secret")
        .str("accessToken")
        .to_owned();
    http.get(&ledger.at(&one_ledger), Some(&new_token))
        .await
        .expect(StatusCode::OK, "the application with its new token");
    step(
        flow,
        "the admin rotated the secret: the old one is AUT-1004, the new one works",
    );

    assert!(
        !server.stderr_text().contains(&new_secret)
            && !ledger.stderr_text().contains(VIEWER_PASSWORD),
        "no secret in the logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_run_with_the_ledger_in_local_mode() {
    first_run(LedgerMode::Local).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_run_with_the_ledger_in_remote_mode() {
    first_run(LedgerMode::Remote).await;
}
