//! Writes a JWKS file of the throw-away demo key and prints an access token signed with it, so
//! that a guarded service (e.g. `ledger`) can run in local mode without any Auth server:
//!
//! ```sh
//! T=$(cargo run -q -p lib-auth-examples --bin demo-credentials -- /tmp/jwks.json midaz-viewer-role)
//! PLUGIN_AUTH_ENABLED=true PLUGIN_AUTH_JWKS_FILE=/tmp/jwks.json PLUGIN_AUTH_ISSUER=http://issuer.test \
//!   cargo run -p lib-auth-examples --bin ledger
//! curl -H "Authorization: Bearer $T" http://127.0.0.1:3000/v1/organizations
//! ```
//!
//! Arguments: the JWKS file to write, then the roles of the token (a user token valid for one
//! hour, issuer `http://issuer.test`). The key is from `testkit/fixtures`: never trust it for
//! anything real.

use std::process::ExitCode;

use lib_auth_testkit::{TestKey, user_claims};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(jwks_path) = args.next() else {
        eprintln!("usage: demo-credentials <jwks-file> [role …]");
        return ExitCode::FAILURE;
    };
    let roles: Vec<String> = args.collect();
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    let key = TestKey::rsa_a();
    let jwks = serde_json::json!({ "keys": [key.jwk] });
    if let Err(e) = std::fs::write(&jwks_path, jwks.to_string()) {
        eprintln!("demo-credentials: cannot write {jwks_path}: {e}");
        return ExitCode::FAILURE;
    }
    println!("{}", key.sign(&user_claims("demo-user", &roles)));
    ExitCode::SUCCESS
}
