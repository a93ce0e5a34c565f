//! The authenticated caller: who it is, what kind, and which roles and groups it holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
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
    issued_at: Option<u64>,
    /// The revocation generation this principal was last found not revoked at (0: never
    /// checked). Lets the warm path skip the revocation lookup while nothing new was revoked.
    revocation_checked: AtomicU64,
    /// Every claim: parsed up front (`from_claims`) or on first use from `raw`.
    claims: OnceLock<Map<String, Value>>,
    raw: Box<[u8]>,
}

/// The claims a principal and the verifier read, parsed in one pass without building a map of
/// every claim (the full map is built only if [`Principal::claims`] is called). Each field is
/// a `Value` so that a claim of an unexpected type is reported by the check that reads it,
/// not as an unreadable token.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TokenClaims {
    pub(crate) sub: Option<Value>,
    pub(crate) exp: Option<Value>,
    pub(crate) nbf: Option<Value>,
    pub(crate) iat: Option<Value>,
    pub(crate) iss: Option<Value>,
    pub(crate) aud: Option<Value>,
    client_id: Option<Value>,
    azp: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<Value>,
    owner: Option<Value>,
    name: Option<Value>,
    preferred_username: Option<Value>,
    roles: Option<Value>,
    groups: Option<Value>,
    sid: Option<Value>,
    jti: Option<Value>,
    scope: Option<Value>,
    scp: Option<Value>,
}

/// A NumericDate (RFC 7519 §2): a non-negative number of seconds, fractions allowed.
pub(crate) fn numeric_date(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    // `as` saturates at u64::MAX for huge values; negatives and NaN are refused here.
    (f.is_finite() && f >= 0.0).then_some(f as u64)
}

fn text(value: Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
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

impl ClaimMapping {
    fn is_default(&self) -> bool {
        self.roles_path.len() == 1
            && self.roles_path[0] == "roles"
            && self.groups_path.len() == 1
            && self.groups_path[0] == "groups"
    }
}

impl Principal {
    /// Builds a principal from already-verified claims. `sub` (a string) and `exp` (a
    /// NumericDate) must be present; returns `None` otherwise.
    pub fn from_claims(claims: Map<String, Value>, mapping: &ClaimMapping) -> Option<Principal> {
        let raw = serde_json::to_vec(&claims).ok()?;
        let parsed = TokenClaims::deserialize(Value::Object(claims.clone())).ok()?;
        Principal::from_parsed(
            parsed,
            raw.into_boxed_slice(),
            OnceLock::from(claims),
            mapping,
        )
    }

    /// Builds a principal from verified claims parsed by [`TokenClaims`] and their JSON text.
    pub(crate) fn from_token(
        parsed: TokenClaims,
        raw: &[u8],
        mapping: &ClaimMapping,
    ) -> Option<Principal> {
        Principal::from_parsed(parsed, raw.into(), OnceLock::new(), mapping)
    }

    fn from_parsed(
        mut parsed: TokenClaims,
        raw: Box<[u8]>,
        claims: OnceLock<Map<String, Value>>,
        mapping: &ClaimMapping,
    ) -> Option<Principal> {
        let subject = text(parsed.sub.take())?;
        let expires_at = numeric_date(parsed.exp.as_ref()?)?;
        let issued_at = parsed.iat.as_ref().and_then(numeric_date);
        let client_id = text(parsed.client_id).or_else(|| text(parsed.azp));
        let kind = match parsed.kind.as_ref().and_then(Value::as_str) {
            Some("application") => PrincipalKind::Application,
            Some(_) => PrincipalKind::User,
            None if client_id.as_deref() == Some(subject.as_str()) => PrincipalKind::Application,
            None => PrincipalKind::User,
        };
        let (roles, groups) = if mapping.is_default() {
            (
                string_list(parsed.roles.as_ref()),
                string_list(parsed.groups.as_ref()),
            )
        } else {
            let all = claims
                .get()
                .cloned()
                .or_else(|| serde_json::from_slice(&raw).ok())
                .unwrap_or_default();
            (
                string_list(lookup(&all, &mapping.roles_path)),
                string_list(lookup(&all, &mapping.groups_path)),
            )
        };
        Some(Principal {
            inner: Arc::new(PrincipalData {
                kind,
                owner: text(parsed.owner),
                name: text(parsed.name).or_else(|| text(parsed.preferred_username)),
                roles,
                groups,
                client_id,
                session_id: text(parsed.sid),
                token_id: text(parsed.jti),
                issuer: text(parsed.iss),
                scopes: string_list(parsed.scope.as_ref().or(parsed.scp.as_ref())),
                expires_at,
                issued_at,
                revocation_checked: AtomicU64::new(0),
                subject,
                claims,
                raw,
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

    /// `iat`, in seconds since the Unix epoch, when the token carries one. Revocations of a
    /// subject (`sub` + `notBefore`) refuse tokens issued before a given instant; a token
    /// without `iat` counts as issued at 0.
    pub fn issued_at(&self) -> Option<u64> {
        self.inner.issued_at
    }

    /// The revocation generation at which this principal was last found not revoked.
    #[inline]
    pub(crate) fn revocation_checked(&self) -> u64 {
        self.inner.revocation_checked.load(Ordering::Relaxed)
    }

    /// Records that this principal was found not revoked at `generation`.
    pub(crate) fn set_revocation_checked(&self, generation: u64) {
        self.inner
            .revocation_checked
            .store(generation, Ordering::Relaxed);
    }

    /// Every claim of the token, as received (parsed on first call).
    pub fn claims(&self) -> &Map<String, Value> {
        self.inner
            .claims
            .get_or_init(|| serde_json::from_slice(&self.inner.raw).unwrap_or_default())
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
        assert_eq!(p.issued_at(), None);
        let with_iat = Principal::from_claims(
            claims(json!({"sub":"u","exp":10,"iat":7})),
            &Default::default(),
        );
        assert_eq!(with_iat.unwrap().issued_at(), Some(7));
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
    fn token_claims_are_parsed_once_and_the_full_map_on_demand() {
        let raw = br#"{"sub":"u","exp":1.5e9,"roles":["r"],"tenant":{"id":7}}"#;
        let parsed: TokenClaims = serde_json::from_slice(raw).unwrap();
        let p = Principal::from_token(parsed, raw, &ClaimMapping::default()).unwrap();
        assert_eq!(p.expires_at(), 1_500_000_000);
        assert_eq!(p.roles(), ["r"]);
        assert_eq!(p.claims()["tenant"]["id"], 7);
        let m = ClaimMapping::default().with_roles_path("tenant.roles");
        let raw = br#"{"sub":"u","exp":1,"tenant":{"roles":["x"]}}"#;
        let parsed: TokenClaims = serde_json::from_slice(raw).unwrap();
        assert_eq!(
            Principal::from_token(parsed, raw, &m).unwrap().roles(),
            ["x"]
        );
    }

    #[test]
    fn missing_sub_or_exp_gives_no_principal() {
        let m = ClaimMapping::default();
        assert!(Principal::from_claims(claims(json!({"exp":1})), &m).is_none());
        assert!(Principal::from_claims(claims(json!({"sub":"a"})), &m).is_none());
        assert!(Principal::from_claims(claims(json!({"sub":1,"exp":1})), &m).is_none());
    }
}
