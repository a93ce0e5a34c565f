//! A machine-to-machine client of the ledger example: it obtains an application token with the
//! `client_credentials` grant (`lib_auth::ApplicationToken`: Lerian's JSON endpoint
//! `POST {PLUGIN_AUTH_HOST}/v1/login/oauth/access_token`), which is cached and renewed before
//! it expires, and calls the ledger with it in rounds, printing what the ledger answers.
//!
//! `cargo run -p lib-auth-examples --bin m2m-client`
//!
//! Environment:
//!
//! - `PLUGIN_AUTH_HOST` (or `PLUGIN_AUTH_ADDRESS`): base URL of the Auth service. Required.
//! - `PLUGIN_AUTH_CLIENT_ID`, `PLUGIN_AUTH_CLIENT_SECRET`: the application's credentials.
//!   Required.
//! - `LEDGER_URL`: base URL of the ledger (default `http://127.0.0.1:3000`).
//! - `M2M_ROUNDS`: how many rounds to run (default `0`: until Ctrl-C).
//! - `M2M_INTERVAL_SECS`: seconds between rounds (default `10`).
//! - `RUST_LOG`: log filter (default `info`); logs go to stderr.
//!
//! Each round creates an organization, lists the organizations and counts them; a 401 from the
//! ledger drops the cached token so that the next round fetches a new one. A missing or invalid
//! setting ends the client at once with the error on stderr and exit status 1; so does a round
//! that cannot get a token or reach the ledger.

use std::process::ExitCode;
use std::time::Duration;

use lib_auth::{ApplicationToken, AuthConfig};
use serde_json::{Value, json};

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
            eprintln!("m2m-client: {message}");
            ExitCode::FAILURE
        }
    }
}

fn number(variable: &str, default: u64) -> Result<u64, String> {
    match std::env::var(variable) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{variable}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

async fn run() -> Result<(), String> {
    let config = AuthConfig::from_env().map_err(|e| e.to_string())?;
    let tokens = ApplicationToken::from_config(&config).map_err(|e| e.to_string())?;
    let ledger = std::env::var("LEDGER_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let ledger = ledger.trim_end_matches('/').to_owned();
    let rounds = number("M2M_ROUNDS", 0)?;
    let interval = Duration::from_secs(number("M2M_INTERVAL_SECS", 10)?);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;

    println!(
        "m2m-client: application {} calling {ledger}",
        tokens.client_id()
    );
    let mut round = 0u64;
    loop {
        round += 1;
        let token = tokens
            .token()
            .await
            .map_err(|e| format!("no application token: {e}"))?;
        let calls = [
            (
                reqwest::Method::POST,
                "/v1/organizations",
                Some(json!({"name": format!("m2m round {round}")})),
            ),
            (reqwest::Method::GET, "/v1/organizations", None),
            (
                reqwest::Method::HEAD,
                "/v1/organizations/metrics/count",
                None,
            ),
        ];
        for (method, path, body) in calls {
            let mut request = http
                .request(method.clone(), format!("{ledger}{path}"))
                .bearer_auth(&token);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| format!("{method} {ledger}{path}: {e}"))?;
            let status = response.status();
            let count = response
                .headers()
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            let summary = match (&count, &answer) {
                (Some(count), _) => format!("X-Total-Count {count}"),
                (None, Value::Object(o)) if o.contains_key("items") => {
                    let items = answer["items"].as_array().map_or(0, Vec::len);
                    format!("{items} items")
                }
                (None, Value::Null) => String::new(),
                (None, other) => other.to_string(),
            };
            println!("round {round}: {method} {path} -> {status} {summary}");
            if status == reqwest::StatusCode::UNAUTHORIZED {
                // Revoked or rotated: the next round fetches a new token.
                tokens.invalidate();
            }
        }
        if rounds != 0 && round >= rounds {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
