//! What the server writes (logs, stdout, stderr) never holds a password, a client secret, an
//! access, ID or refresh token, whatever the requests do.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ADMIN, ADMIN_PASSWORD, Answer};
use lib_auth_testkit::capture_logs;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

const WRONG_PASSWORD: &str = "wrong-password-never-to-be-logged";
const WRONG_SECRET: &str = "wrong-secret-never-to-be-logged";

/// Drives every flow that handles a secret against `base`; returns every secret it saw.
async fn exercise(base: &str, client_id: &str, client_secret: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let post_json = |path: &str, body: Value| {
        let request = http.post(format!("{base}{path}")).json(&body);
        async move { Answer::read(request.send().await.expect("sent")).await }
    };
    let mut secrets = vec![
        ADMIN_PASSWORD.to_owned(),
        WRONG_PASSWORD.to_owned(),
        client_secret.to_owned(),
        WRONG_SECRET.to_owned(),
    ];
    let mut keep = |answer: &Answer, fields: &[&str]| {
        for field in fields {
            if let Some(token) = answer.body[*field].as_str() {
                secrets.push(token.to_owned());
                // The signature alone identifies a JWT as well as the whole token.
                if let Some(signature) = token.rsplit('.').next().filter(|s| s.len() > 20) {
                    secrets.push(signature.to_owned());
                }
            }
        }
    };
    let token_fields = [
        "accessToken",
        "refreshToken",
        "idToken",
        "access_token",
        "refresh_token",
        "id_token",
    ];

    let login = post_json(
        "/v1/login/oauth/access_token",
        json!({"grantType": "password", "username": ADMIN, "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{login:?}");
    keep(&login, &token_fields);
    let failed = post_json(
        "/v1/login/oauth/access_token",
        json!({"grantType": "password", "username": ADMIN, "password": WRONG_PASSWORD}),
    )
    .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    // A password in a body the server cannot read.
    let unreadable = post_json(
        "/v1/login/oauth/access_token",
        json!({"grantType": "password", "username": 7, "password": WRONG_PASSWORD}),
    )
    .await;
    assert_eq!(unreadable.status, StatusCode::BAD_REQUEST);
    let refreshed = post_json(
        "/v1/login/oauth/refresh_token",
        json!({"refreshToken": login.body["refreshToken"]}),
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{refreshed:?}");
    keep(&refreshed, &token_fields);
    // Reuse: the session ends, with a WARN that must not name the token.
    let reused = post_json(
        "/v1/login/oauth/refresh_token",
        json!({"refreshToken": login.body["refreshToken"]}),
    )
    .await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST);

    let app = post_json(
        "/v1/login/oauth/access_token",
        json!({"grantType": "client_credentials", "clientId": client_id, "clientSecret": client_secret}),
    )
    .await;
    assert_eq!(app.status, StatusCode::OK, "{app:?}");
    keep(&app, &token_fields);
    let bad_client = post_json(
        "/v1/login/oauth/access_token",
        json!({"grantType": "client_credentials", "clientId": client_id, "clientSecret": WRONG_SECRET}),
    )
    .await;
    assert_eq!(bad_client.status, StatusCode::UNAUTHORIZED);
    let form = |path: &str, fields: Vec<(&str, String)>, secret: &str| {
        let request = http
            .post(format!("{base}{path}"))
            .basic_auth(client_id, Some(secret))
            .form(&fields);
        async move { Answer::read(request.send().await.expect("sent")).await }
    };
    let rfc_login = form(
        "/oauth/token",
        vec![
            ("grant_type", "password".into()),
            ("username", ADMIN.into()),
            ("password", ADMIN_PASSWORD.into()),
        ],
        client_secret,
    )
    .await;
    assert_eq!(rfc_login.status, StatusCode::OK, "{rfc_login:?}");
    keep(&rfc_login, &token_fields);
    let bad_basic = form(
        "/oauth/token",
        vec![("grant_type", "client_credentials".into())],
        WRONG_SECRET,
    )
    .await;
    assert_eq!(bad_basic.status, StatusCode::UNAUTHORIZED);
    let access = rfc_login.str("access_token").to_owned();
    let introspected = form(
        "/oauth/introspect",
        vec![("token", access.clone())],
        client_secret,
    )
    .await;
    assert_eq!(introspected.body["active"], true, "{introspected:?}");
    let authorized = http
        .post(format!("{base}/v1/authorize"))
        .header("Authorization", &access)
        .json(&json!({"sub": "lerian/admin", "resource": "ledgers", "action": "get", "product": "midaz"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(authorized.status(), StatusCode::OK);
    let logout = http
        .post(format!("{base}/v1/logout"))
        .form(&[("id_token_hint", rfc_login.str("id_token"))])
        .send()
        .await
        .expect("sent");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let second = form(
        "/oauth/token",
        vec![
            ("grant_type", "password".into()),
            ("username", ADMIN.into()),
            ("password", ADMIN_PASSWORD.into()),
        ],
        client_secret,
    )
    .await;
    keep(&second, &token_fields);
    let revoked = form(
        "/oauth/revoke",
        vec![("token", second.str("refresh_token").to_owned())],
        client_secret,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK);
    // Refused tokens are not logged either.
    let refused = http
        .post(format!("{base}/v1/authorize"))
        .bearer_auth(refreshed.str("accessToken"))
        .json(&json!({"resource": "ledgers", "action": "get"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    // Throttled attempts.
    for _ in 0..6 {
        let _ = post_json(
            "/v1/login/oauth/access_token",
            json!({"grantType": "password", "username": ADMIN, "password": WRONG_PASSWORD}),
        )
        .await;
    }
    secrets
}

fn assert_no_secret(output: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !output.contains(secret.as_str()),
            "a secret ({}…) is in the output:\n{output}",
            secret.chars().take(8).collect::<String>()
        );
    }
}

#[tokio::test]
async fn the_logs_of_every_flow_hold_no_secret() {
    // A current-thread runtime: the server's tasks log on this thread, into the capture.
    let (logs, _guard) = capture_logs("trace");
    let server = common::TestServer::start().await;
    let (client_id, client_secret) = server.create_app("midaz", &["midaz-editor-role"]).await;
    let secrets = exercise(&server.base, &client_id, &client_secret).await;
    let text = logs.text();
    // The capture did see the server at work.
    assert!(text.contains("login failed"), "{text}");
    assert!(text.contains("client authentication failed"), "{text}");
    assert!(text.contains("used refresh token"), "{text}");
    assert_no_secret(&text, &secrets);
}

/// Collects what a child writes to one of its pipes.
fn collect(pipe: impl AsyncRead + Unpin + Send + 'static, sink: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut text) = sink.lock() {
                text.push_str(&line);
                text.push('\n');
            }
        }
    });
}

fn binary(db: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_lib-auth-server"));
    command
        .env_clear()
        .env("AUTH_DB_PATH", db)
        .env("AUTH_PORT", "0")
        .env("IDENTITY_PORT", "0")
        .env("RUST_LOG", "trace")
        .kill_on_drop(true);
    command
}

/// Runs the binary's `serve` until it prints its address; answers the child, its base URL and
/// what it wrote so far (and keeps collecting).
async fn serve(
    mut command: tokio::process::Command,
) -> (tokio::process::Child, String, Arc<Mutex<String>>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let output = Arc::new(Mutex::new(String::new()));
    collect(child.stderr.take().expect("stderr"), Arc::clone(&output));
    collect(child.stdout.take().expect("stdout"), Arc::clone(&output));
    let base = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let text = output.lock().map(|t| t.clone()).unwrap_or_default();
            if let Some(rest) = text.split("auth listening on ").nth(1) {
                return rest.lines().next().unwrap_or_default().trim().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the binary prints its address");
    (child, base, output)
}

async fn create_app_with_cli(db: &std::path::Path) -> (String, String) {
    let output = binary(db)
        .args(["app", "create", "--name", "midaz"])
        .output()
        .await
        .expect("the CLI runs");
    assert!(output.status.success(), "{output:?}");
    // Logs go to stderr; stdout is the JSON answer alone.
    let created: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    (
        created["clientId"].as_str().expect("clientId").to_owned(),
        created["clientSecret"]
            .as_str()
            .expect("clientSecret")
            .to_owned(),
    )
}

#[tokio::test]
async fn the_binarys_stdout_and_stderr_hold_no_secret() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let db = dir.path().join("auth.db");
    let mut command = binary(&db);
    command.env("AUTH_ADMIN_PASSWORD", ADMIN_PASSWORD);
    let (mut child, base, output) = serve(command).await;
    let (client_id, client_secret) = create_app_with_cli(&db).await;
    let secrets = exercise(&base, &client_id, &client_secret).await;
    child.start_kill().expect("stop the server");
    let _ = child.wait().await;
    let text = output.lock().map(|t| t.clone()).unwrap_or_default();
    assert!(text.contains("login failed"), "{text}");
    assert_no_secret(&text, &secrets);
}

#[tokio::test]
async fn a_generated_admin_password_is_printed_once_and_never_logged() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let db = dir.path().join("auth.db");
    let (mut child, base, output) = serve(binary(&db)).await;
    let text = output.lock().map(|t| t.clone()).unwrap_or_default();
    let password = text
        .split("with the password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the generated password is printed")
        .to_owned();
    assert_eq!(text.matches(password.as_str()).count(), 1, "{text}");
    let login = reqwest::Client::new()
        .post(format!("{base}/v1/login/oauth/access_token"))
        .json(&json!({"grantType": "password", "username": ADMIN, "password": password}))
        .send()
        .await
        .expect("sent");
    assert_eq!(login.status(), StatusCode::OK);
    child.start_kill().expect("stop the server");
    let _ = child.wait().await;

    // Started again over the same database, it prints no password.
    let (mut child, _, output) = serve(binary(&db)).await;
    child.start_kill().expect("stop the server");
    let _ = child.wait().await;
    let text = output.lock().map(|t| t.clone()).unwrap_or_default();
    assert!(!text.contains("with the password"), "{text}");
}

#[tokio::test]
async fn caller_given_names_cannot_forge_log_lines_or_fields() {
    // Found by an attack run: a username with a line break wrote a line of its own.
    let (logs, _guard) = capture_logs("info");
    let server = common::TestServer::start().await;
    let forged = "x\nFORGED INFO address=10.6.6.6\u{1b}[31m";
    let quoted = "quote\" address=10.0.0.1";
    for username in [forged, quoted] {
        server
            .token(&json!({"grantType": "password", "username": username, "password": "p"}))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "AUT-1002");
        server
            .token(&json!({"grantType": "client_credentials", "clientId": username, "clientSecret": "s"}))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "AUT-1004");
    }
    let text = logs.text();
    assert!(text.contains("login failed"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("FORGED")), "{text}");
    assert!(!text.contains('\u{1b}'), "a raw escape sequence: {text}");
    // The quote is escaped, so the would-be field stays inside the username's value.
    assert!(
        text.contains(r#"username="quote\" address=10.0.0.1""#),
        "a forged field: {text}"
    );
}
