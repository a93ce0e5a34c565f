//! `lib-auth-server`: `serve` (the default) runs the Auth and Identity services; `keys rotate`
//! makes a new active signing key; `user …` and `app …` manage users and applications on the
//! database directly. Settings come from the environment (see the README).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lib_auth_server::identity::Paging;
use lib_auth_server::operator::{NewUserCommand, Operator};
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
    about = "lib-auth's Auth and Identity services on SQLite"
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
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Create an application; prints it with its client id and secret once, as JSON.
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
    /// List applications (never their secrets), as JSON.
    List(PageArgs),
    /// Give an application a new secret (printed once); its tokens are revoked.
    Rotate {
        /// Its id or client id.
        id: String,
    },
    /// Delete an application; its tokens are revoked.
    Delete {
        /// Its id or client id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; prints it as JSON, with the password when it was generated (shown once).
    Create {
        /// Login name (3 to 64 of letters, digits, '.', '_', '-', '@').
        #[arg(long)]
        username: String,
        /// E-mail address.
        #[arg(long)]
        email: String,
        /// Given name.
        #[arg(long, default_value = "")]
        first_name: String,
        /// Family name.
        #[arg(long, default_value = "")]
        last_name: String,
        /// A group it belongs to (repeatable), e.g. midaz-viewer-group.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Read the password from the first line of standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (never their password hashes), as JSON.
    List(PageArgs),
    /// Set a new password (generated and printed once, or read from standard input) and end
    /// every session of the user.
    ResetPassword {
        /// The user's id or username.
        user: String,
        /// Read the password from the first line of standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Which page of a list.
#[derive(Debug, clap::Args)]
struct PageArgs {
    /// Page number, from 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..))]
    page: i64,
    /// Items per page, 1 to 100.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=100))]
    limit: i64,
}

impl PageArgs {
    fn paging(&self) -> Paging {
        Paging {
            page: self.page,
            limit: self.limit,
        }
    }
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new active signing key; the previous one stays in the JWKS until its tokens expire.
    Rotate,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        Command::App { command } => operator().and_then(|op| app(&op, command)),
        Command::User { command } => operator().and_then(|op| user(&op, command)),
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

fn operator() -> Result<Operator, String> {
    let config = ServerConfig::from_env().map_err(|e| e.to_string())?;
    let (store, _) = open(&config).map_err(|e| e.to_string())?;
    Ok(Operator::new(store, config))
}

fn app(op: &Operator, command: AppCommand) -> Result<(), String> {
    let answer = match command {
        AppCommand::Create {
            name,
            description,
            roles,
        } => {
            let roles = (!roles.is_empty()).then_some(roles);
            op.create_application(&name, &description, roles)
        }
        AppCommand::List(page) => op
            .list_applications(page.paging())
            .map(|apps| serde_json::json!(apps)),
        AppCommand::Rotate { id } => op.rotate_application(&id),
        AppCommand::Delete { id } => op.delete_application(&id).map(|app| serde_json::json!(app)),
    };
    print_json(answer.map_err(|e| e.to_string())?)
}

fn user(op: &Operator, command: UserCommand) -> Result<(), String> {
    let answer = match command {
        UserCommand::Create {
            username,
            email,
            first_name,
            last_name,
            groups,
            password_stdin,
        } => {
            let password = password_stdin.then(read_password).transpose()?;
            let command = NewUserCommand {
                username,
                email,
                first_name,
                last_name,
                groups,
                password,
            };
            op.create_user(command).map(|(user, generated)| {
                let mut answer = serde_json::json!(user);
                if let Some(password) = generated {
                    answer["password"] = serde_json::Value::String(password);
                }
                answer
            })
        }
        UserCommand::List(page) => op
            .list_users(page.paging())
            .map(|users| serde_json::json!(users)),
        UserCommand::ResetPassword {
            user,
            password_stdin,
        } => {
            let password = password_stdin.then(read_password).transpose()?;
            op.reset_password(&user, password)
                .map(|generated| match generated {
                    Some(password) => serde_json::json!({"user": user, "password": password}),
                    None => serde_json::json!({"user": user}),
                })
        }
    };
    print_json(answer.map_err(|e| e.to_string())?)
}

/// The first line of standard input, without its line ending.
fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn print_json(value: serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
    println!("{text}");
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
