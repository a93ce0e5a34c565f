//! `lib-auth-server`: `serve` (the default) runs the Auth service; `keys rotate` makes a new
//! active signing key. Settings come from the environment (see the README).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lib_auth_server::{ServerConfig, keyring, open};

#[derive(Debug, Parser)]
#[command(
    name = "lib-auth-server",
    version,
    about = "lib-auth's Auth service on SQLite"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Auth API on AUTH_PORT (the default command).
    Serve,
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new active signing key; the previous one stays in the JWKS until its tokens expire.
    Rotate,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Keys {
            command: KeysCommand::Rotate,
        } => rotate(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lib-auth-server: {message}");
            ExitCode::FAILURE
        }
    }
}

fn rotate() -> Result<(), String> {
    let config = ServerConfig::from_env().map_err(|e| e.to_string())?;
    let (store, kek) = open(&config).map_err(|e| e.to_string())?;
    let kid = keyring::rotate(&store, &kek, config.signing_algorithm).map_err(|e| e.to_string())?;
    println!(
        "new active signing key {kid} ({})",
        config.signing_algorithm
    );
    Ok(())
}

fn serve() -> Result<(), String> {
    let config = ServerConfig::from_env().map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let server = lib_auth_server::Server::start(config, shutdown_signal())
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "lib-auth-server: auth listening on http://{}",
            server.auth_address
        );
        server.wait().await.map_err(|e| e.to_string())
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
