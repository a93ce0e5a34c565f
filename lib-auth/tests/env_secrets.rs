//! `AuthConfig::from_env` with secrets that are not UTF-8. Alone in its test binary: it sets
//! process environment variables, which no other test may read meanwhile.

#![cfg(unix)]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use lib_auth::AuthConfig;

/// Was: the value was converted lossily, each invalid byte becoming U+FFFD, so that a secret
/// of random bytes lost most of its entropy (all such secrets of one length became one).
#[test]
fn a_secret_that_is_not_utf8_is_refused_not_converted() {
    for variable in [
        "VALKEY_DECISION_SECRET",
        "PLUGIN_AUTH_CLIENT_SECRET",
        "VALKEY_URL",
    ] {
        let raw = OsString::from_vec((0x80u8..0xc0).collect());
        // SAFETY: the only test of this binary, and single-threaded at this point.
        unsafe { std::env::set_var(variable, &raw) };
        let error = AuthConfig::from_env()
            .expect_err("a secret that is not UTF-8")
            .to_string();
        // SAFETY: as above.
        unsafe { std::env::remove_var(variable) };
        assert!(
            error.contains(variable) && error.contains("not UTF-8"),
            "{variable}: {error}"
        );
    }
}
