//! The RBAC actions: `get post put patch delete head`.

use std::fmt;
use std::str::FromStr;

use http::Method;

/// An action of a permission, as in SPEC §6. Each HTTP method of a REST API maps to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read (`GET`).
    Get,
    /// Create (`POST`).
    Post,
    /// Replace (`PUT`).
    Put,
    /// Update (`PATCH`).
    Patch,
    /// Delete (`DELETE`).
    Delete,
    /// Read metadata (`HEAD`).
    Head,
}

impl Action {
    /// Every action, in a fixed order (the order of [`Action::index`]).
    pub const ALL: [Action; 6] = [
        Action::Get,
        Action::Post,
        Action::Put,
        Action::Patch,
        Action::Delete,
        Action::Head,
    ];

    /// The lowercase name used in policies and on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Post => "post",
            Action::Put => "put",
            Action::Patch => "patch",
            Action::Delete => "delete",
            Action::Head => "head",
        }
    }

    /// A dense index `0..6`, for tables indexed by action.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The action of an HTTP method: `GET`→get … `DELETE`→delete; `None` for others
    /// (`OPTIONS`, `TRACE`, `CONNECT`, extensions), which no permission can grant.
    pub fn from_method(method: &Method) -> Option<Action> {
        match *method {
            Method::GET => Some(Action::Get),
            Method::POST => Some(Action::Post),
            Method::PUT => Some(Action::Put),
            Method::PATCH => Some(Action::Patch),
            Method::DELETE => Some(Action::Delete),
            Method::HEAD => Some(Action::Head),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an action that is not one of the six.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action {0:?} (expected get, post, put, patch, delete or head)")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;

    /// Parses the lowercase name; uppercase HTTP method names are accepted too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_their_actions_and_others_to_none() {
        assert_eq!(Action::from_method(&Method::HEAD), Some(Action::Head));
        assert_eq!(Action::from_method(&Method::DELETE), Some(Action::Delete));
        assert_eq!(Action::from_method(&Method::OPTIONS), None);
        assert_eq!(Action::from_method(&Method::TRACE), None);
    }

    #[test]
    fn parsing_accepts_the_six_names_only() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
        }
        assert_eq!("PATCH".parse::<Action>(), Ok(Action::Patch));
        assert!("*".parse::<Action>().is_err());
        assert!("options".parse::<Action>().is_err());
    }
}
