//! The operator's CLI (`lib-auth-server user …`, `app …`) on the database of a running server:
//! what it creates works over HTTP at once, what it revokes is refused within the server's
//! one-second revocation sync, and it prints secrets only where it creates them.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Runs the CLI on the server's database; answers its stdout as JSON (panics on failure).
fn cli(server: &TestServer, args: &[&str], stdin: Option<&str>) -> Value {
    let (status, stdout, stderr) = cli_raw(server, args, stdin);
    assert!(status, "{args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

fn cli_raw(server: &TestServer, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lib-auth-server"))
        .args(args)
        .env_clear()
        .env("AUTH_DB_PATH", &server.config.db_path)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the CLI starts");
    if let (Some(mut pipe), Some(text)) = (child.stdin.take(), stdin) {
        pipe.write_all(text.as_bytes()).expect("stdin");
    }
    let output = child.wait_with_output().expect("the CLI ends");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Waits until `/v1/authorize` refuses `token` (the server syncs revocations every second).
async fn refused_soon(server: &TestServer, token: &str) {
    let start = Instant::now();
    while server.authorize(token).await.status != StatusCode::UNAUTHORIZED {
        assert!(start.elapsed() < Duration::from_secs(5), "still accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_created_and_reset_by_the_cli_work_over_http() {
    let server = TestServer::start().await;
    let generated = cli(
        &server,
        &[
            "user",
            "create",
            "--username",
            "operator-made",
            "--email",
            "om@example.test",
            "--group",
            "midaz-editor-group",
        ],
        None,
    );
    let password = generated["password"]
        .as_str()
        .expect("a generated password");
    assert_eq!(generated["groups"], json!(["midaz-editor-group"]));
    let token = server.login("operator-made", password).await["accessToken"]
        .as_str()
        .expect("access")
        .to_owned();
    server.assert_token_accepted(&token).await;

    let chosen = cli(
        &server,
        &[
            "user",
            "create",
            "--username",
            "chooser",
            "--email",
            "c@example.test",
            "--password-stdin",
        ],
        Some("a password from stdin\n"),
    );
    assert!(chosen.get("password").is_none(), "{chosen}");
    server.login("chooser", "a password from stdin").await;

    let reset = cli(&server, &["user", "reset-password", "operator-made"], None);
    let new_password = reset["password"].as_str().expect("new password");
    refused_soon(&server, &token).await;
    server.login("operator-made", new_password).await;

    let list = cli(&server, &["user", "list"], None);
    let names: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["admin", "operator-made", "chooser"]);
    let text = list.to_string();
    assert!(
        !text.contains("argon2") && !text.contains(new_password),
        "{text}"
    );

    for (args, expected) in [
        (
            vec!["user", "create", "--username", "x", "--email", "x@y.io"],
            "invalid username",
        ),
        (
            vec![
                "user",
                "create",
                "--username",
                "chooser",
                "--email",
                "x@y.io",
            ],
            "username taken",
        ),
        (
            vec![
                "user",
                "create",
                "--username",
                "newbie",
                "--email",
                "x@y.io",
                "--group",
                "gods",
            ],
            "unknown groups",
        ),
        (vec!["user", "reset-password", "nobody-at-all"], "no user"),
    ] {
        let (ok, _, stderr) = cli_raw(&server, &args, None);
        assert!(!ok && stderr.contains(expected), "{args:?}: {stderr}");
    }
    // The CLI's changes are in the audit log, with the CLI as the actor.
    let admin = server.admin_token().await;
    let events = server
        .identity_call("GET", "/v1/audit-events?limit=100", Some(&admin), None)
        .await;
    let by_cli = events.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["actorName"] == "cli")
        .count();
    assert_eq!(by_cli, 3, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_managed_by_the_cli_work_over_http() {
    let server = TestServer::start().await;
    let created = cli(
        &server,
        &[
            "app",
            "create",
            "--name",
            "plugin-fees",
            "--description",
            "fees",
        ],
        None,
    );
    let (id, client_id) = (
        created["id"].as_str().expect("id").to_owned(),
        created["clientId"].as_str().expect("client id").to_owned(),
    );
    let secret = created["clientSecret"].as_str().expect("secret").to_owned();
    assert_eq!(created["roles"], json!(["plugin-fees-editor-role"]));
    let token = server.app_token(&client_id, &secret).await;

    let list = cli(&server, &["app", "list"], None);
    assert!(!list.to_string().contains(&secret), "{list}");
    assert_eq!(list[0]["clientId"], client_id.as_str());
    assert!(list[0].get("clientSecret").is_none());

    let rotated = cli(&server, &["app", "rotate", &client_id], None);
    let new_secret = rotated["clientSecret"]
        .as_str()
        .expect("new secret")
        .to_owned();
    assert_ne!(new_secret, secret);
    refused_soon(&server, &token).await;
    server
        .token(&json!({"grantType": "client_credentials", "clientId": client_id, "clientSecret": secret}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "AUT-1004");
    let second = server.app_token(&client_id, &new_secret).await;

    cli(&server, &["app", "delete", &id], None);
    refused_soon(&server, &second).await;
    let (ok, _, stderr) = cli_raw(&server, &["app", "delete", &id], None);
    assert!(!ok && stderr.contains("no application"), "{stderr}");
    let (ok, _, stderr) = cli_raw(&server, &["app", "create", "--name", "not-a-product"], None);
    assert!(!ok && stderr.contains("not a product"), "{stderr}");
}

#[test]
fn a_setting_that_is_not_utf8_stops_the_start_naming_its_variable() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().expect("temp dir");
    for variable in ["AUTH_PASSWORD_GRANT_ENABLED", "AUTH_AUDIENCE"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lib-auth-server"))
            .arg("serve")
            .env("AUTH_DB_PATH", dir.path().join("db"))
            .env("AUTH_PORT", "0")
            .env("IDENTITY_PORT", "0")
            .env(variable, std::ffi::OsStr::from_bytes(b"fals\xe9"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().expect("wait").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{variable}: the server started with a value that is not UTF-8");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let output = child.wait_with_output().expect("output");
        assert!(!output.status.success(), "{variable}: started anyway");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

/// Sleeps until 10 ms into the next second, so that what follows falls in one second.
async fn just_after_a_second_begins() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    tokio::time::sleep(std::time::Duration::from_nanos(
        u64::from(1_000_000_000 - now.subsec_nanos()) + 10_000_000,
    ))
    .await;
}

/// The latest `notBefore` of the revocations of subject `sub` in the server's database.
async fn latest_not_before(server: &TestServer, sub: &str) -> Option<i64> {
    let revocations = server
        .state
        .store()
        .run(|c| lib_auth_server::store::revocations::revocations_after(c, 0, 1000))
        .await
        .expect("revocations");
    revocations
        .iter()
        .filter(|r| r.sub.as_deref() == Some(sub))
        .filter_map(|r| r.not_before)
        .max()
}

#[tokio::test]
async fn a_login_right_after_a_cli_reset_gets_a_token_that_lives() {
    // Found by an attack run: the server learns of the CLI's revocation up to a second later,
    // so a login in between got a token issued before the revocation, refused a second later.
    let server = TestServer::start().await;
    server.create_user("quick", &["midaz-viewer-group"]).await;
    // The operator's reset, as the CLI does it from another process: on the database, without
    // the running server's knowledge. Right after a second begins, so that the reset and the
    // login fall in the same second (the revocation's notBefore is the next one).
    let (store, _) = lib_auth_server::open(&server.config).expect("the database");
    let operator = lib_auth_server::operator::Operator::new(store, server.config.clone());
    just_after_a_second_begins().await;
    operator
        .reset_password("quick", Some("the-new-password-1".to_owned()))
        .expect("reset");
    let token = server.login("quick", "the-new-password-1").await["accessToken"]
        .as_str()
        .expect("access")
        .to_owned();
    // The token is issued at or after the reset's revocation of the user's earlier tokens…
    let (_, claims) = common::decode_jwt(&token);
    let sub = claims["sub"].as_str().expect("sub").to_owned();
    let not_before = latest_not_before(&server, &sub)
        .await
        .expect("the reset revoked the user's earlier tokens");
    let iat = claims["iat"].as_i64().expect("iat");
    assert!(
        iat >= not_before,
        "iat {iat} is before the reset's notBefore {not_before}"
    );
    // …so it lives on once the server has synced the revocation.
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    server.assert_token_accepted(&token).await;
}

#[tokio::test]
async fn a_token_right_after_a_cli_rotation_is_issued_after_its_revocation() {
    let server = TestServer::start().await;
    let (store, _) = lib_auth_server::open(&server.config).expect("the database");
    let operator = std::sync::Arc::new(lib_auth_server::operator::Operator::new(
        store,
        server.config.clone(),
    ));
    // The operator runs its own runtime, as the CLI does: off this one.
    let op = operator.clone();
    let created = tokio::task::spawn_blocking(move || {
        op.create_application("midaz", "", Some(vec!["midaz-viewer-role".to_owned()]))
    })
    .await
    .expect("joined")
    .expect("created");
    let id = created["id"].as_str().expect("id").to_owned();
    let client_id = created["clientId"].as_str().expect("client id").to_owned();
    // Right after a second begins, so that the rotation and the token fall in the same second.
    just_after_a_second_begins().await;
    let rotated = tokio::task::spawn_blocking(move || operator.rotate_application(&id))
        .await
        .expect("joined")
        .expect("rotated");
    let token = server
        .app_token(
            &client_id,
            rotated["clientSecret"].as_str().expect("secret"),
        )
        .await;
    let (_, claims) = common::decode_jwt(&token);
    let not_before = latest_not_before(&server, &client_id)
        .await
        .expect("the rotation revoked the earlier tokens");
    let iat = claims["iat"].as_i64().expect("iat");
    assert!(
        iat >= not_before,
        "iat {iat} is before the rotation's notBefore {not_before}"
    );
}
