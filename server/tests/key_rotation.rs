//! Signing-key rotation: new tokens carry the new `kid`, the JWKS publishes both keys, tokens
//! signed with the previous key stay valid until they expire.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, bearer_headers, decode_jwt};
use lib_auth_server::keys::SigningAlgorithm;
use lib_auth_server::{keyring, open};
use reqwest::StatusCode;
use serde_json::Value;

async fn jwks_kids(server: &TestServer) -> Vec<String> {
    let jwks = server.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    jwks.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

fn kid_of(login: &Value) -> String {
    let (header, _) = decode_jwt(login["accessToken"].as_str().expect("access"));
    header["kid"].as_str().expect("kid").to_owned()
}

/// Rotates the keys of `server`'s database as another process would: its own connection.
async fn rotate(server: &TestServer, algorithm: SigningAlgorithm) -> String {
    let config = server.config.clone();
    tokio::task::spawn_blocking(move || {
        let (store, kek) = open(&config).expect("store opens");
        keyring::rotate(&store, &kek, algorithm).expect("rotation")
    })
    .await
    .expect("rotation task")
}

#[tokio::test]
async fn after_a_rotation_new_tokens_carry_the_new_kid_and_old_ones_stay_valid() {
    let server = TestServer::start().await;
    let before = server.login_admin().await;
    let old_kid = kid_of(&before);
    let old_access = before["accessToken"].as_str().expect("access");
    // A validator that knew only the old key.
    let verifier = server.verifier();
    verifier
        .authenticate_headers(&bearer_headers(old_access))
        .await
        .expect("verified before the rotation");

    let new_kid = rotate(&server, SigningAlgorithm::Rs256).await;
    assert_ne!(new_kid, old_kid, "a kid is never reused");
    assert!(
        server
            .state
            .reload_keys_if_changed()
            .await
            .expect("keys reload")
    );
    let kids = jwks_kids(&server).await;
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert_eq!(kids[0], new_kid, "the active key comes first");
    assert!(kids.contains(&old_kid));

    let after = server.login_admin().await;
    assert_eq!(kid_of(&after), new_kid);
    let new_access = after["accessToken"].as_str().expect("access");
    server.assert_token_accepted(old_access).await;
    server.assert_token_accepted(new_access).await;
    // The old validator meets an unknown kid, refreshes the JWKS once and accepts it.
    verifier
        .authenticate_headers(&bearer_headers(new_access))
        .await
        .expect("verified after the rotation");
    verifier
        .authenticate_headers(&bearer_headers(old_access))
        .await
        .expect("old token still verified");

    // A refresh token of the old key's time refreshes into a new-key token.
    let refreshed = server
        .refresh(before["refreshToken"].as_str().expect("refresh"))
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{refreshed:?}");
    let (header, _) = decode_jwt(refreshed.str("accessToken"));
    assert_eq!(header["kid"], new_kid.as_str());
    // Nothing changed, nothing reloads.
    assert!(
        !server
            .state
            .reload_keys_if_changed()
            .await
            .expect("keys reload")
    );
}

#[tokio::test]
async fn a_rotation_may_change_the_algorithm() {
    let server = TestServer::start().await;
    let before = server.login_admin().await;
    let old_access = before["accessToken"].as_str().expect("access");
    rotate(&server, SigningAlgorithm::Es256).await;
    server.state.reload_keys_if_changed().await.expect("reload");
    let after = server.login_admin().await;
    let new_access = after["accessToken"].as_str().expect("access");
    let (header, _) = decode_jwt(new_access);
    assert_eq!(header["alg"], "ES256");
    let verifier = server.verifier();
    for token in [old_access, new_access] {
        server.assert_token_accepted(token).await;
        verifier
            .authenticate_headers(&bearer_headers(token))
            .await
            .expect("lib-auth verifies both algorithms, each with its own key");
    }
    let oidc = server.get("/.well-known/openid-configuration", None).await;
    assert_eq!(
        oidc.body["id_token_signing_alg_values_supported"][0],
        "ES256"
    );
}

#[tokio::test]
async fn the_cli_rotation_is_picked_up_by_the_running_server_within_seconds() {
    let server = TestServer::start().await;
    let before = server.login_admin().await;
    let old_kid = kid_of(&before);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_lib-auth-server"))
        .args(["keys", "rotate"])
        .env_clear()
        .env("AUTH_DB_PATH", &server.config.db_path)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("new active signing key"), "{stdout}");

    // No nudge: the server's own upkeep notices the new key (it looks every 5 s).
    let started = Instant::now();
    loop {
        let kids = jwks_kids(&server).await;
        if kids.len() == 2 {
            assert!(kids.contains(&old_kid));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "the rotation was not picked up: {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = server.login_admin().await;
    let new_kid = kid_of(&after);
    assert_ne!(new_kid, old_kid);
    assert!(stdout.contains(&new_kid), "{stdout}");
    server
        .assert_token_accepted(before["accessToken"].as_str().expect("access"))
        .await;
}
