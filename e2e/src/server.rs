//! `lib-auth-server` as a real process over a temp database, and its operator CLI on the same
//! database.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{Answer, Http, Process, binary};

/// The bootstrap admin's password in these tests (`AUTH_ADMIN_PASSWORD`).
pub const ADMIN_PASSWORD: &str = "e2e-admin-password";

/// A running `lib-auth-server` with the Auth and Identity listeners on free loopback ports.
#[derive(Debug)]
pub struct AuthServer {
    /// The Auth service's base URL, which is also the issuer.
    pub auth_url: String,
    /// The Identity service's base URL.
    pub identity_url: String,
    process: Process,
    env: Vec<(&'static str, String)>,
    binary: PathBuf,
    dir: TempDir,
}

/// A port free now on 127.0.0.1. The issuer must name the port before the server binds it,
/// so the port cannot be left to the server; another process could take it in between, which
/// [`AuthServer::start`] survives by trying again.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

impl AuthServer {
    /// Builds and starts the server over a new database; returns once both listeners answer.
    pub async fn start() -> AuthServer {
        AuthServer::start_with(&[]).await
    }

    /// [`start`](Self::start) with more settings (`AUTH_*` variables), which win over the
    /// harness's own.
    pub async fn start_with(settings: &[(&'static str, &str)]) -> AuthServer {
        let binary = binary("lib-auth-server", "lib-auth-server");
        let dir = tempfile::tempdir().expect("temp dir");
        for attempt in 1..=3 {
            let (auth_port, identity_port) = (free_port(), free_port());
            let auth_url = format!("http://127.0.0.1:{auth_port}");
            let env = vec![
                (
                    "AUTH_DB_PATH",
                    dir.path().join("db/auth.db").display().to_string(),
                ),
                ("AUTH_PORT", auth_port.to_string()),
                ("IDENTITY_PORT", identity_port.to_string()),
                ("AUTH_ISSUER", auth_url.clone()),
                ("AUTH_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
                ("RUST_LOG", "warn".to_owned()),
            ];
            let env = crate::with_settings(env, settings);
            let mut process =
                Process::start("lib-auth-server", &binary, &["serve"], &env, dir.path());
            // A lost port race ends the process with a bind error, and `wait_for_line`
            // panics: try again with other ports, and on the last attempt pass the panic on.
            let ready = tokio::spawn(async move {
                process
                    .wait_for_line(
                        "lib-auth-server: identity listening",
                        Duration::from_secs(30),
                    )
                    .await;
                process
            })
            .await;
            match ready {
                Ok(process) => {
                    return AuthServer {
                        auth_url,
                        identity_url: format!("http://127.0.0.1:{identity_port}"),
                        process,
                        env,
                        binary,
                        dir,
                    };
                }
                Err(_) if attempt < 3 => continue,
                Err(failure) => std::panic::resume_unwind(failure.into_panic()),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The URL of `path` on the Auth service.
    pub fn auth(&self, path: &str) -> String {
        format!("{}{path}", self.auth_url)
    }

    /// The URL of `path` on the Identity service.
    pub fn identity(&self, path: &str) -> String {
        format!("{}{path}", self.identity_url)
    }

    /// Runs the operator CLI (`lib-auth-server <args>`) on this server's database; its stdout
    /// as JSON.
    pub fn cli(&self, args: &[&str]) -> Value {
        let output = Command::new(&self.binary)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("the CLI runs");
        assert!(
            output.status.success(),
            "lib-auth-server {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("the CLI prints JSON")
    }

    /// A password login on Lerian's JSON endpoint; the whole answer.
    pub async fn login(&self, http: &Http, username: &str, password: &str) -> Answer {
        http.post(
            &self.auth("/v1/login/oauth/access_token"),
            None,
            &json!({"grantType": "password", "username": username, "password": password}),
        )
        .await
    }

    /// A `client_credentials` token on Lerian's JSON endpoint; the whole answer.
    pub async fn client_credentials(&self, http: &Http, id: &str, secret: &str) -> Answer {
        http.post(
            &self.auth("/v1/login/oauth/access_token"),
            None,
            &json!({"grantType": "client_credentials", "clientId": id, "clientSecret": secret}),
        )
        .await
    }

    /// The temp directory of this server (its database and the processes' stderr files).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops the server (SIGKILL); its directory stays until it is dropped.
    pub async fn stop(&mut self) {
        self.process.kill().await;
    }

    /// What the server wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.process.stderr_text()
    }
}
