//! An in-memory Midaz-like ledger guarded by lib-auth (routes: `lib_auth_examples::ledger`).
//!
//! `cargo run -p lib-auth-examples --bin ledger`
//!
//! Environment:
//!
//! - `LEDGER_PORT`: port on 127.0.0.1 (default 3000; `0` picks a free one).
//! - `PLUGIN_AUTH_*`: lib-auth's settings (see the README), so the same binary runs with auth
//!   disabled (the default: every route open), in local mode (`PLUGIN_AUTH_ENABLED=true
//!   PLUGIN_AUTH_HOST=http://localhost:4000`, or `PLUGIN_AUTH_JWKS_URL` with
//!   `PLUGIN_AUTH_ISSUER`) or in remote mode (add `PLUGIN_AUTH_MODE=remote`).
//! - `RUST_LOG`: log filter (default `info`); logs go to stderr.
//!
//! Prints `ledger listening on http://127.0.0.1:<port>` on stdout once it accepts requests. An
//! invalid setting ends it at once with the error on stderr and exit status 1.

use std::process::ExitCode;

use lib_auth::{Auth, AuthConfig, Mode};
use lib_auth_examples::ledger;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ledger: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let port: u16 = match std::env::var("LEDGER_PORT") {
        Ok(p) => p
            .trim()
            .parse()
            .map_err(|_| format!("LEDGER_PORT={p:?} is not a port number"))?,
        Err(_) => 3000,
    };
    // What `Auth::from_env()` does, keeping the configuration to say what runs.
    let config = AuthConfig::from_env().map_err(|e| e.to_string())?;
    let (enabled, mode) = (config.enabled, config.mode);
    let auth = Auth::new(config).map_err(|e| e.to_string())?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;
    match (enabled, mode) {
        (false, _) => tracing::warn!("auth disabled: every route is open"),
        (true, Mode::Local) => tracing::info!("auth enabled, local mode"),
        (true, Mode::Remote) => tracing::info!("auth enabled, remote mode"),
    }
    println!("ledger listening on http://{address}");

    axum::serve(listener, ledger::router(auth))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| format!("serving failed: {e}"))
}
