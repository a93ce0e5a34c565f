//! The example ledger (`lib-auth-examples`, binary `ledger`) as a real process guarded by
//! lib-auth against an [`AuthServer`].

use std::time::Duration;

use crate::{AuthServer, Process, binary};

/// How the ledger's lib-auth decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerMode {
    /// Verifies tokens against the server's JWKS and decides in process; revocations come
    /// from the server's feed.
    Local,
    /// Asks the server's `POST /v1/authorize` for every decision it has not cached.
    Remote,
}

/// A running ledger.
#[derive(Debug)]
pub struct Ledger {
    /// Its base URL.
    pub url: String,
    process: Process,
}

impl Ledger {
    /// Builds and starts the ledger in `mode` against `server`, with the application
    /// `(client id, secret)` as its own credentials (the revocation feed) and the feed polled
    /// every `poll`.
    pub async fn start(
        server: &AuthServer,
        mode: LedgerMode,
        credentials: (&str, &str),
        poll: Duration,
    ) -> Ledger {
        Ledger::start_with(server, mode, credentials, poll, &[]).await
    }

    /// [`start`](Self::start) with more settings (`VALKEY_URL`, `PLUGIN_AUTH_*`), which win
    /// over the harness's own.
    pub async fn start_with(
        server: &AuthServer,
        mode: LedgerMode,
        credentials: (&str, &str),
        poll: Duration,
        settings: &[(&'static str, &str)],
    ) -> Ledger {
        let binary = binary("lib-auth-examples", "ledger");
        let mode_name = match mode {
            LedgerMode::Local => "local",
            LedgerMode::Remote => "remote",
        };
        let env = vec![
            ("LEDGER_PORT", "0".to_owned()),
            ("PLUGIN_AUTH_ENABLED", "true".to_owned()),
            ("PLUGIN_AUTH_MODE", mode_name.to_owned()),
            ("PLUGIN_AUTH_HOST", server.auth_url.clone()),
            ("PLUGIN_AUTH_CLIENT_ID", credentials.0.to_owned()),
            ("PLUGIN_AUTH_CLIENT_SECRET", credentials.1.to_owned()),
            (
                "PLUGIN_AUTH_REVOCATION_POLL_INTERVAL",
                format!("{}ms", poll.as_millis()),
            ),
            ("RUST_LOG", "warn".to_owned()),
        ];
        let env = crate::with_settings(env, settings);
        let mut process = Process::start(
            &format!("ledger-{mode_name}-{}", credentials.0),
            &binary,
            &[],
            &env,
            server.dir(),
        );
        let line = process
            .wait_for_line("ledger listening on ", Duration::from_secs(30))
            .await;
        let url = line
            .trim_start_matches("ledger listening on ")
            .trim()
            .to_owned();
        Ledger { url, process }
    }

    /// The URL of `path` on the ledger.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// What the ledger wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.process.stderr_text()
    }
}
