//! The whole built-in policy, checked cell by cell: every (principal × product × resource ×
//! action) is decided by the compiled engine and compared with an expectation table written
//! here from the prose of SPEC §6, independently of `policy/midaz.json`.
//!
//! Expectation (SPEC §6): a `<product>-<level>-role` covers its own product only; `editor`
//! may do every action, `contributor` every action but `delete`, `viewer` `get` and `head`; a
//! `<product>-<level>-group` grants the matching role; `admin-group` grants every editor role
//! (`plugin-identity-editor-role` included); every *user* may `patch`
//! `plugin-identity`/`update-password` (the `self-service-role`, a default user role), an
//! application may not unless it holds a role that grants it; unknown roles, groups,
//! products and resources grant nothing.

use lib_auth::{
    Action, ClaimMapping, CompiledPolicy, Decision, DenyReason, Principal, PrincipalKind,
};
use serde_json::{Map, Value, json};

/// Products and their resources, literally from SPEC §6.
const PRODUCTS: &[(&str, &[&str])] = &[
    (
        "midaz",
        &[
            "organizations",
            "ledgers",
            "assets",
            "portfolios",
            "segments",
            "accounts",
            "balances",
            "transactions",
            "operations",
            "asset-rates",
        ],
    ),
    (
        "routing",
        &["account-types", "transaction-routes", "operation-routes"],
    ),
    ("plugin-fees", &["packages", "fees", "estimates"]),
    ("plugin-crm", &["holders", "aliases"]),
    (
        "plugin-smart-templates",
        &["templates", "reports", "data-source"],
    ),
    (
        "plugin-identity",
        &[
            "users",
            "groups",
            "applications",
            "roles",
            "audit-events",
            "update-password",
            "reset-password",
        ],
    ),
];

const LEVELS: [&str; 3] = ["editor", "contributor", "viewer"];

/// Products no role covers (case matters: `MIDAZ` is not `midaz`).
const UNKNOWN_PRODUCTS: [&str; 4] = ["ledger", "MIDAZ", "", "plugin-unknown"];

/// Resources no product has (plus, in the grid, every resource of every *other* product).
const UNKNOWN_RESOURCES: [&str; 4] = ["nope", "Ledgers", "", "*"];

const ACTIONS: [Action; 6] = [
    Action::Get,
    Action::Post,
    Action::Put,
    Action::Patch,
    Action::Delete,
    Action::Head,
];

/// What a level may do, from SPEC §6 prose.
fn level_allows(level: &str, action: Action) -> bool {
    match level {
        "editor" => true,
        "contributor" => action != Action::Delete,
        "viewer" => matches!(action, Action::Get | Action::Head),
        other => panic!("no such level {other}"),
    }
}

fn product_has(product: &str, resource: &str) -> bool {
    PRODUCTS
        .iter()
        .any(|(p, rs)| *p == product && rs.contains(&resource))
}

fn is_self_service(product: &str, resource: &str, action: Action) -> bool {
    product == "plugin-identity" && resource == "update-password" && action == Action::Patch
}

/// A grant the expectation knows: a product role, or the self-service role.
#[derive(Clone, Copy, Debug)]
enum Grant {
    Product(&'static str, &'static str),
    SelfService,
}

impl Grant {
    fn role_id(self) -> String {
        match self {
            Grant::Product(product, level) => format!("{product}-{level}-role"),
            Grant::SelfService => "self-service-role".to_owned(),
        }
    }

    fn allows(self, product: &str, resource: &str, action: Action) -> bool {
        match self {
            Grant::Product(p, level) => {
                p == product && product_has(product, resource) && level_allows(level, action)
            }
            Grant::SelfService => is_self_service(product, resource, action),
        }
    }
}

/// The expected outcome: `Ok(roles that may be named by the allow)` or `Err(reason)`.
fn expect(
    held: &[Grant],
    is_user: bool,
    product: &str,
    resource: &str,
    action: Action,
) -> Result<Vec<String>, DenyReason> {
    if !PRODUCTS.iter().any(|(p, _)| *p == product) {
        return Err(DenyReason::UnknownProduct);
    }
    if !product_has(product, resource) {
        return Err(DenyReason::UnknownResource);
    }
    let mut granting: Vec<String> = held
        .iter()
        .filter(|g| g.allows(product, resource, action))
        .map(|g| g.role_id())
        .collect();
    if is_user && Grant::SelfService.allows(product, resource, action) {
        granting.push(Grant::SelfService.role_id());
    }
    if granting.is_empty() {
        Err(DenyReason::NoMatchingRole)
    } else {
        Ok(granting)
    }
}

/// Every product role of the expectation, in a fixed order.
fn product_grants() -> Vec<Grant> {
    PRODUCTS
        .iter()
        .flat_map(|(p, _)| LEVELS.iter().map(move |l| Grant::Product(p, l)))
        .collect()
}

/// Every (product, resource) pair of the grid: each known product crossed with every known
/// resource (its own and the other products') and the unknown resources, plus unknown products.
fn targets() -> Vec<(&'static str, &'static str)> {
    let all_resources: Vec<&'static str> = PRODUCTS
        .iter()
        .flat_map(|(_, rs)| rs.iter().copied())
        .chain(UNKNOWN_RESOURCES)
        .collect();
    let mut out = Vec::new();
    for product in PRODUCTS.iter().map(|(p, _)| *p).chain(UNKNOWN_PRODUCTS) {
        for resource in &all_resources {
            out.push((product, *resource));
        }
    }
    out
}

fn claims(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

fn principal(kind: PrincipalKind, roles: &[String], groups: &[String]) -> Principal {
    let kind = match kind {
        PrincipalKind::User => "normal-user",
        PrincipalKind::Application => "application",
    };
    Principal::from_claims(
        claims(json!({
            "sub": "subject-1",
            "exp": 4_000_000_000u64,
            "type": kind,
            "roles": roles,
            "groups": groups,
        })),
        &ClaimMapping::default(),
    )
    .expect("sub and exp are present")
}

/// Checks one principal over the whole grid, through both `decide` (a principal built from
/// claims) and `decide_for` (bare names). Returns the number of cells checked.
fn check_principal(
    policy: &CompiledPolicy,
    label: &str,
    roles: &[String],
    groups: &[String],
    held: &[Grant],
) -> usize {
    let mut cases = 0;
    for kind in [PrincipalKind::User, PrincipalKind::Application] {
        let is_user = kind == PrincipalKind::User;
        let p = principal(kind, roles, groups);
        assert_eq!(p.kind(), kind);
        for (product, resource) in targets() {
            for action in ACTIONS {
                let expected = expect(held, is_user, product, resource, action);
                let via_principal = policy.decide(&p, product, resource, action);
                let via_names =
                    policy.decide_for(roles, groups, is_user, product, resource, action);
                let request = format!(
                    "{label} ({kind:?}) {action} {product:?}/{resource:?}: expected {expected:?}"
                );
                assert_eq!(via_principal, via_names, "{request}");
                match (&expected, via_principal) {
                    (Ok(granting), Decision::Allow { role }) => assert!(
                        granting.iter().any(|g| g == role),
                        "{request}, allowed through {role}"
                    ),
                    (Err(reason), Decision::Deny { reason: got }) => {
                        assert_eq!(*reason, got, "{request}")
                    }
                    (_, got) => panic!("{request}, got {got:?}"),
                }
                cases += 1;
            }
        }
    }
    cases
}

#[test]
fn the_builtin_policy_matches_spec_6_on_every_cell() {
    let policy = CompiledPolicy::midaz();
    let none: Vec<String> = Vec::new();
    let mut cases = 0;
    let mut allowed_cells = 0;

    // Each role held directly, alone.
    for grant in product_grants()
        .into_iter()
        .chain(std::iter::once(Grant::SelfService))
    {
        let role = grant.role_id();
        assert!(policy.has_role(&role), "{role} is defined");
        cases += check_principal(&policy, &role, std::slice::from_ref(&role), &none, &[grant]);
    }

    // Each group, passed as the groups list.
    for grant in product_grants() {
        let Grant::Product(product, level) = grant else {
            unreachable!()
        };
        let group = format!("{product}-{level}-group");
        cases += check_principal(
            &policy,
            &group,
            &none,
            std::slice::from_ref(&group),
            &[grant],
        );
    }
    let editors: Vec<Grant> = PRODUCTS
        .iter()
        .map(|(p, _)| Grant::Product(p, "editor"))
        .collect();
    cases += check_principal(
        &policy,
        "admin-group",
        &none,
        &["admin-group".to_owned()],
        &editors,
    );

    // Nothing, and names the policy does not know (case matters).
    cases += check_principal(&policy, "no role", &none, &none, &[]);
    for unknown in [
        "root",
        "admin",
        "MIDAZ-EDITOR-ROLE",
        "midaz-admin-role",
        "midaz-editor-group",
        "",
    ] {
        let label = format!("unknown role {unknown:?}");
        cases += check_principal(&policy, &label, &[unknown.to_owned()], &none, &[]);
    }
    for unknown in [
        "admins",
        "Admin-Group",
        "midaz-editor-role",
        "nobody-group",
        "",
    ] {
        let label = format!("unknown group {unknown:?}");
        cases += check_principal(&policy, &label, &none, &[unknown.to_owned()], &[]);
    }

    // Mixes: unknown names before known ones do not hide them; roles and groups add up.
    cases += check_principal(
        &policy,
        "mixed",
        &["ghost".to_owned(), "routing-viewer-role".to_owned()],
        &[
            "ghosts".to_owned(),
            "plugin-crm-contributor-group".to_owned(),
        ],
        &[
            Grant::Product("routing", "viewer"),
            Grant::Product("plugin-crm", "contributor"),
        ],
    );
    cases += check_principal(
        &policy,
        "viewer and editor of one product",
        &["midaz-viewer-role".to_owned()],
        &["midaz-editor-group".to_owned()],
        &[
            Grant::Product("midaz", "viewer"),
            Grant::Product("midaz", "editor"),
        ],
    );

    // Sanity of the table itself: how many cells allow for one editor alone.
    for (product, resources) in PRODUCTS {
        for resource in *resources {
            for action in ACTIONS {
                if expect(
                    &[Grant::Product(product, "editor")],
                    false,
                    product,
                    resource,
                    action,
                )
                .is_ok()
                {
                    allowed_cells += 1;
                }
            }
        }
    }
    assert_eq!(allowed_cells, 28 * 6, "28 resources × 6 actions");

    println!("rbac grid: {cases} cases checked against the SPEC §6 table");
    assert!(cases > 50_000, "the grid is complete ({cases})");
}

#[test]
fn users_may_change_their_password_and_applications_may_not() {
    let policy = CompiledPolicy::midaz();
    let none: Vec<String> = Vec::new();
    let user = principal(PrincipalKind::User, &none, &none);
    let app = principal(PrincipalKind::Application, &none, &none);
    assert_eq!(
        policy.decide(&user, "plugin-identity", "update-password", Action::Patch),
        Decision::Allow {
            role: "self-service-role"
        }
    );
    assert_eq!(
        policy.decide(&app, "plugin-identity", "update-password", Action::Patch),
        Decision::Deny {
            reason: DenyReason::NoMatchingRole
        }
    );
    for action in ACTIONS.into_iter().filter(|a| *a != Action::Patch) {
        assert!(
            !policy
                .decide(&user, "plugin-identity", "update-password", action)
                .is_allowed(),
            "{action}"
        );
    }
    for resource in ["reset-password", "users"] {
        assert!(
            !policy
                .decide(&user, "plugin-identity", resource, Action::Patch)
                .is_allowed(),
            "{resource}"
        );
    }
}

#[test]
fn the_policy_defines_exactly_the_spec_roles() {
    let policy = CompiledPolicy::midaz();
    let mut expected: Vec<String> = product_grants().into_iter().map(Grant::role_id).collect();
    expected.push(Grant::SelfService.role_id());
    expected.sort();
    let mut got: Vec<String> = policy.role_ids().map(str::to_owned).collect();
    got.sort();
    assert_eq!(got, expected);
}
