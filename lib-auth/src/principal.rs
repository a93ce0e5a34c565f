//! The authenticated caller: who it is, what kind, and which roles and groups it holds.

use std::sync::Arc;

use serde_json::{Map, Value};

/// Whether a principal is a person or a machine-to-machine application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// A human user (`type: normal-user`, password grant).
    User,
    /// An application (`type: application`, `client_credentials` grant).
    Application,
}

/// The caller of a request, built from a verified token and put into the request's
/// extensions by the authentication layer.
///
/// Cloning is cheap (one reference count); the data is immutable.
#[derive(Debug, Clone)]
pub struct Principal {
    inner: Arc<PrincipalData>,
}

#[derive(Debug)]
struct PrincipalData {
    subject: String,
    kind: PrincipalKind,
    owner: Option<String>,
    name: Option<String>,
    roles: Vec<String>,
    groups: Vec<String>,
    client_id: Option<String>,
    session_id: Option<String>,
    token_id: Option<String>,
    scopes: Vec<String>,
    issuer: Option<String>,
    expires_at: u64,
    claims: Map<String, Value>,
}

/// Where in a token's claims the roles and groups are found, for tokens of third-party OIDC
/// issuers. Paths are dot-separated (`realm_access.roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    /// Path of the array of role names. Default `roles`.
    pub roles_path: Vec<String>,
    /// Path of the array of group names. Default `groups`.
    pub groups_path: Vec<String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            roles_path: vec!["roles".to_owned()],
            groups_path: vec!["groups".to_owned()],
        }
    }
}

impl ClaimMapping {
    /// A mapping reading roles from a dot-separated path, e.g. `realm_access.roles`.
    pub fn with_roles_path(mut self, path: &str) -> Self {
        self.roles_path = split_path(path);
        self
    }

    /// A mapping reading groups from a dot-separated path.
    pub fn with_groups_path(mut self, path: &str) -> Self {
        self.groups_path = split_path(path);
        self
    }
}

pub(crate) fn split_path(path: &str) -> Vec<String> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn lookup<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = claims.get(first)?;
    for key in rest {
        value = value.as_object()?.get(key)?;
    }
    Some(value)
}

/// A claim holding a list of names: a JSON array of strings, or one space-separated string.
fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_owned)
}

impl Principal {
    /// Builds a principal from already-verified claims. `sub` and `exp` must be present (the
    /// verifier checks that); returns `None` otherwise.
    pub fn from_claims(claims: Map<String, Value>, mapping: &ClaimMapping) -> Option<Principal> {
        let subject = string_claim(&claims, "sub")?;
        let expires_at = claims.get("exp").and_then(Value::as_u64)?;
        let client_id = string_claim(&claims, "client_id").or_else(|| string_claim(&claims, "azp"));
        let kind = match claims.get("type").and_then(Value::as_str) {
            Some("application") => PrincipalKind::Application,
            Some(_) => PrincipalKind::User,
            None if client_id.as_deref() == Some(subject.as_str()) => PrincipalKind::Application,
            None => PrincipalKind::User,
        };
        let scopes = string_list(claims.get("scope").or_else(|| claims.get("scp")));
        Some(Principal {
            inner: Arc::new(PrincipalData {
                kind,
                owner: string_claim(&claims, "owner"),
                name: string_claim(&claims, "name")
                    .or_else(|| string_claim(&claims, "preferred_username")),
                roles: string_list(lookup(&claims, &mapping.roles_path)),
                groups: string_list(lookup(&claims, &mapping.groups_path)),
                client_id,
                session_id: string_claim(&claims, "sid"),
                token_id: string_claim(&claims, "jti"),
                issuer: string_claim(&claims, "iss"),
                scopes,
                expires_at,
                subject,
                claims,
            }),
        })
    }

    /// `sub`: the user's UUID, or the application's client id.
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// User or application.
    pub fn kind(&self) -> PrincipalKind {
        self.inner.kind
    }

    /// `owner`: the organization (Lerian's default is `lerian`).
    pub fn owner(&self) -> Option<&str> {
        self.inner.owner.as_deref()
    }

    /// `name`: the username or application name.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// Role ids held directly.
    pub fn roles(&self) -> &[String] {
        &self.inner.roles
    }

    /// Group ids or names.
    pub fn groups(&self) -> &[String] {
        &self.inner.groups
    }

    /// `client_id` (or `azp`).
    pub fn client_id(&self) -> Option<&str> {
        self.inner.client_id.as_deref()
    }

    /// `sid`: the session the token belongs to.
    pub fn session_id(&self) -> Option<&str> {
        self.inner.session_id.as_deref()
    }

    /// `jti`: the token's id.
    pub fn token_id(&self) -> Option<&str> {
        self.inner.token_id.as_deref()
    }

    /// `scope`, split on spaces.
    pub fn scopes(&self) -> &[String] {
        &self.inner.scopes
    }

    /// `iss`.
    pub fn issuer(&self) -> Option<&str> {
        self.inner.issuer.as_deref()
    }

    /// `exp`, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.inner.expires_at
    }

    /// Every claim of the token, as received.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.inner.claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn our_user_token_gives_a_user_principal() {
        let p = Principal::from_claims(
            claims(
                json!({"sub":"u-1","exp":10,"type":"normal-user","owner":"lerian",
                "roles":["midaz-viewer-role"],"groups":["midaz-viewer-group"],
                "sid":"s-1","scope":"openid profile","client_id":"console"}),
            ),
            &ClaimMapping::default(),
        )
        .unwrap();
        assert_eq!(p.kind(), PrincipalKind::User);
        assert_eq!(p.roles(), ["midaz-viewer-role"]);
        assert_eq!(p.groups(), ["midaz-viewer-group"]);
        assert_eq!(p.scopes(), ["openid", "profile"]);
        assert_eq!(p.session_id(), Some("s-1"));
        assert_eq!(p.owner(), Some("lerian"));
    }

    #[test]
    fn application_is_recognised_by_type_or_by_client_id_equal_to_sub() {
        let m = ClaimMapping::default();
        let by_type =
            Principal::from_claims(claims(json!({"sub":"c","exp":1,"type":"application"})), &m);
        assert_eq!(by_type.unwrap().kind(), PrincipalKind::Application);
        let by_cid = Principal::from_claims(claims(json!({"sub":"c","exp":1,"client_id":"c"})), &m);
        assert_eq!(by_cid.unwrap().kind(), PrincipalKind::Application);
    }

    #[test]
    fn third_party_roles_path_is_followed() {
        let m = ClaimMapping::default().with_roles_path("realm_access.roles");
        let p = Principal::from_claims(
            claims(json!({"sub":"x","exp":1,"realm_access":{"roles":["midaz-editor-role"]}})),
            &m,
        )
        .unwrap();
        assert_eq!(p.roles(), ["midaz-editor-role"]);
    }

    #[test]
    fn missing_sub_or_exp_gives_no_principal() {
        let m = ClaimMapping::default();
        assert!(Principal::from_claims(claims(json!({"exp":1})), &m).is_none());
        assert!(Principal::from_claims(claims(json!({"sub":"a"})), &m).is_none());
        assert!(Principal::from_claims(claims(json!({"sub":1,"exp":1})), &m).is_none());
    }
}
