//! A small gRPC ledger service guarded per method by lib-auth (service:
//! `lib_auth_examples::grpc_ledger`; no protoc needed).
//!
//! `cargo run -p lib-auth-examples --bin grpc-ledger`
//!
//! Environment:
//!
//! - `GRPC_LEDGER_PORT`: port on 127.0.0.1 (default 50051; `0` picks a free one).
//! - `PLUGIN_AUTH_*`: lib-auth's settings (see the README); auth is disabled by default (every
//!   method open, including the unmapped `DeleteLedger`).
//! - `RUST_LOG`: log filter (default `info`); logs go to stderr.
//!
//! Prints `grpc-ledger listening on http://127.0.0.1:<port>` on stdout once it accepts calls.
//! Methods: `/ledger.v1.LedgerService/GetLedger` (needs `midaz/ledgers get`), `CreateLedger`
//! (`midaz/ledgers post`), `DeleteLedger` (not in the policy: refused with `PERMISSION_DENIED`
//! when auth is enabled). Refusals are gRPC statuses: 16 `UNAUTHENTICATED`, 7
//! `PERMISSION_DENIED`, 14 `UNAVAILABLE`.

use std::process::ExitCode;

use lib_auth::Auth;
use lib_auth_examples::grpc_ledger;

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
            eprintln!("grpc-ledger: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let port: u16 = match std::env::var("GRPC_LEDGER_PORT") {
        Ok(p) => p
            .trim()
            .parse()
            .map_err(|_| format!("GRPC_LEDGER_PORT={p:?} is not a port number"))?,
        Err(_) => 50051,
    };
    let auth = Auth::from_env().map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;
    println!("grpc-ledger listening on http://{address}");
    grpc_ledger::serve(&auth, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| format!("serving failed: {e}"))
}
