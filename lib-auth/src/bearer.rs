//! Extracting the token from the `Authorization` header.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::error::{AuthError, InvalidTokenReason};

/// Returns the token of the request's single `Authorization` header.
///
/// Accepts `Bearer <token>` with the scheme in any case (RFC 6750), and a bare `<token>`, as
/// Lerian's clients send. Refuses: no header (missing), two headers, `Bearer` with no token,
/// another scheme, bytes that are not UTF-8, and a value longer than `max_token_bytes` plus
/// the scheme. (Non-ASCII characters and inner whitespace are refused by the verifier, the
/// first time a token is seen.)
pub fn bearer_token(headers: &HeaderMap, max_token_bytes: usize) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingToken);
    };
    if values.next().is_some() {
        return Err(InvalidTokenReason::MultipleAuthorizationHeaders.into());
    }
    // "Bearer " is 7 bytes; a little slack for extra spaces, then the token's own limit.
    if value.len() > max_token_bytes + 16 {
        return Err(InvalidTokenReason::TooLarge.into());
    }
    // `HeaderValue::to_str` checks byte by byte; UTF-8 validation is word-at-a-time. The
    // finer checks (ASCII only, no inner whitespace) are `check_token_chars`, run only for a
    // token that is not already known: a cached token passed them when it was first seen.
    let value = std::str::from_utf8(value.as_bytes())
        .map_err(|_| AuthError::from(InvalidTokenReason::NotAscii))?
        .trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) => {
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(InvalidTokenReason::UnsupportedScheme.into());
            }
            rest.trim_start()
        }
        None if value.eq_ignore_ascii_case("bearer") => "",
        None => value,
    };
    if token.is_empty() {
        return Err(InvalidTokenReason::EmptyToken.into());
    }
    if token.len() > max_token_bytes {
        return Err(InvalidTokenReason::TooLarge.into());
    }
    Ok(token)
}

/// The checks of a token's characters that [`bearer_token`] leaves to the first sight of a
/// token: visible ASCII only, no whitespace inside.
pub(crate) fn check_token_chars(token: &str) -> Result<(), AuthError> {
    let bytes = token.as_bytes();
    if !bytes.is_ascii() {
        return Err(InvalidTokenReason::NotAscii.into());
    }
    if bytes.contains(&b' ') || bytes.contains(&b'\t') {
        return Err(InvalidTokenReason::Malformed.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn reason(r: Result<&str, AuthError>) -> Option<InvalidTokenReason> {
        match r {
            Err(AuthError::InvalidToken { reason }) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn scheme_is_case_insensitive_and_bare_tokens_are_accepted() {
        for v in [
            "Bearer a.b.c",
            "bearer a.b.c",
            "BEARER   a.b.c",
            "a.b.c",
            " Bearer a.b.c ",
        ] {
            assert_eq!(bearer_token(&headers(&[v]), 8192).unwrap(), "a.b.c", "{v}");
        }
    }

    #[test]
    fn each_bad_header_gets_its_reason() {
        assert!(matches!(
            bearer_token(&HeaderMap::new(), 8192),
            Err(AuthError::MissingToken)
        ));
        assert_eq!(
            reason(bearer_token(&headers(&["Bearer a", "Bearer b"]), 8192)),
            Some(InvalidTokenReason::MultipleAuthorizationHeaders)
        );
        for v in ["Bearer", "bearer ", "Bearer    "] {
            assert_eq!(
                reason(bearer_token(&headers(&[v]), 8192)),
                Some(InvalidTokenReason::EmptyToken),
                "{v:?}"
            );
        }
        assert_eq!(
            reason(bearer_token(&headers(&["Basic dXNlcjpwYXNz"]), 8192)),
            Some(InvalidTokenReason::UnsupportedScheme)
        );
        // Inner whitespace and non-ASCII are refused on first sight of a token.
        assert_eq!(
            bearer_token(&headers(&["Bearer a b"]), 8192).unwrap(),
            "a b"
        );
        assert_eq!(
            reason(check_token_chars("a b").map(|_| "")),
            Some(InvalidTokenReason::Malformed)
        );
        assert_eq!(
            reason(check_token_chars("a\u{e9}b").map(|_| "")),
            Some(InvalidTokenReason::NotAscii)
        );
        assert!(check_token_chars("a.b.c").is_ok());
        let big = format!("Bearer {}", "a".repeat(9 * 1024));
        assert_eq!(
            reason(bearer_token(&headers(&[&big]), 8192)),
            Some(InvalidTokenReason::TooLarge)
        );
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        );
        assert_eq!(
            reason(bearer_token(&h, 8192)),
            Some(InvalidTokenReason::NotAscii)
        );
    }
}
