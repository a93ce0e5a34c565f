//! `lib-auth-server`: `serve` (the default) runs the Auth service; `keys rotate` makes a new
//! active signing key. Settings come from the environment (see the README).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lib_auth_server::{ServerConfig, keyring, open};

/// mimalloc rather than the system allocator: each password hash takes a 19 MiB block, which
/// glibc's malloc keeps in its per-thread arenas after the hash is done (hundreds of MiB after
/// a burst of logins), while mimalloc gives such blocks back to the system.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Serve the Auth API on AUTH_PORT and the Identity API on IDENTITY_PORT (the default).
    Serve,
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage applications (machine-to-machine clients).
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Create an application; prints its client id and secret once, as JSON.
    Create {
        /// Its product name (midaz, routing, plugin-fees, ...).
        #[arg(long)]
        name: String,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// A role it holds (repeatable); default `<name>-editor-role`.
        #[arg(long = "role")]
        roles: Vec<String>,
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
        Command::App {
            command:
                AppCommand::Create {
                    name,
                    description,
                    roles,
                },
        } => create_app(&name, &description, roles),
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

fn create_app(name: &str, description: &str, roles: Vec<String>) -> Result<(), String> {
    let config = ServerConfig::from_env().map_err(|e| e.to_string())?;
    let (store, _) = open(&config).map_err(|e| e.to_string())?;
    let (policy, _) = store
        .run_now(lib_auth_server::store::load_policy)
        .map_err(|e| e.to_string())?;
    let roles = if roles.is_empty() {
        vec![format!("{name}-editor-role")]
    } else {
        roles
    };
    if let Some(unknown) = roles
        .iter()
        .find(|r| !policy.roles.iter().any(|p| &p.id == *r))
    {
        return Err(format!("unknown role {unknown:?}"));
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let created = runtime
        .block_on(lib_auth_server::admin::new_application(
            &store,
            name,
            description,
            roles,
        ))
        .map_err(|e| e.to_string())?;
    let app = &created.application;
    let answer = serde_json::json!({
        "id": app.id,
        "name": app.name,
        "clientId": app.client_id,
        "clientSecret": created.client_secret,
        "roles": app.roles,
    });
    println!("{answer}");
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
        if let Some(identity) = server.identity_address {
            println!("lib-auth-server: identity listening on http://{identity}");
        }
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
