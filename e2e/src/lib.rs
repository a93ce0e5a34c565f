//! The harness of the end-to-end tests: the workspace's own binaries, built by cargo and run
//! as real processes on loopback ports, each server over a database in its own temp directory,
//! and a small JSON-over-HTTP client to drive them.
//!
//! - [`binary`] builds a binary of the workspace (once per test process) and gives its path.
//! - [`AuthServer`] runs `lib-auth-server`; [`Ledger`] runs the example ledger against it.
//! - [`Http`] sends requests and reads answers as [`Answer`]s.

#![deny(missing_docs)]

mod binary;
mod http;
mod ledger;
mod process;
mod server;

pub use binary::binary;
pub use http::{Answer, Http};
pub use ledger::{Ledger, LedgerMode};
pub use process::Process;
pub use server::{ADMIN_PASSWORD, AuthServer};

/// `defaults` with `settings` laid over them: a setting named in both takes its value from
/// `settings`.
pub(crate) fn with_settings(
    defaults: Vec<(&'static str, String)>,
    settings: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    defaults
        .into_iter()
        .filter(|(name, _)| settings.iter().all(|(given, _)| given != name))
        .chain(
            settings
                .iter()
                .map(|(name, value)| (*name, (*value).to_owned())),
        )
        .collect()
}

/// Prints one step of a flow on stderr as it happens. Written to the stream itself, not with
/// `eprintln!`, which the test harness captures: a plain `cargo test` shows every step.
pub fn step(flow: &str, text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "    e2e [{flow}] {text}");
}
