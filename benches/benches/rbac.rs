//! Uncached RBAC decisions: lib-auth's compiled policy against casbin-rs enforcing the same
//! policy with Lerian's model, in one criterion group so that the ratio is same-run.
//!
//! Before measuring, both engines decide every request of a grid (every principal of the
//! policy × product × resource × action, plus unknown names) and must agree on each one; a
//! disagreement panics with the request.
//!
//! Run: `cargo bench -p lib-auth-benches --bench rbac -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Instant;

use casbin::{Adapter, CoreApi, DefaultModel, Enforcer, MemoryAdapter};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lib_auth::{Action, ClaimMapping, CompiledPolicy, Policy, Principal};
use serde_json::json;

/// Lerian's casbin model: role inheritance through `g`, `*` wildcards on object and action.
const LERIAN_MODEL: &str = r#"
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && (r.obj == p.obj || p.obj == '*') && (r.act == p.act || p.act == '*')
"#;

/// A caller as both engines see it: lib-auth reads its roles and groups from the token, casbin
/// from `g` rows naming its subject.
struct Caller {
    subject: String,
    roles: Vec<String>,
    groups: Vec<String>,
    is_user: bool,
}

impl Caller {
    fn new(subject: impl Into<String>, roles: &[&str], groups: &[&str], is_user: bool) -> Self {
        Caller {
            subject: subject.into(),
            roles: roles.iter().map(|s| (*s).to_owned()).collect(),
            groups: groups.iter().map(|s| (*s).to_owned()).collect(),
            is_user,
        }
    }

    /// The principal lib-auth builds from the caller's verified token.
    fn principal(&self) -> Principal {
        let kind = if self.is_user {
            "normal-user"
        } else {
            "application"
        };
        Principal::from_claims(
            json!({
                "sub": self.subject,
                "exp": 4_000_000_000u64,
                "type": kind,
                "roles": self.roles,
                "groups": self.groups,
            })
            .as_object()
            .cloned()
            .expect("an object"),
            &ClaimMapping::default(),
        )
        .expect("sub and exp are present")
    }

    /// The caller's `g` rows: subject → each role, each group, and (users) each default role.
    fn grouping_rows(&self, policy: &Policy) -> Vec<Vec<String>> {
        let defaults = if self.is_user {
            policy.default_user_roles.as_slice()
        } else {
            &[]
        };
        self.roles
            .iter()
            .chain(&self.groups)
            .chain(defaults)
            .map(|to| vec![self.subject.clone(), to.clone()])
            .collect()
    }
}

/// casbin's object for a (product, resource).
fn object(product: &str, resource: &str) -> String {
    format!("{product}:{resource}")
}

/// The policy as casbin rows: `p` = (role, product:resource, action) for every permission and
/// action; `g` = role → included role, group (id and name) → role.
fn casbin_rows(policy: &Policy) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let mut p = Vec::new();
    let mut g = Vec::new();
    for role in &policy.roles {
        for permission in &role.permissions {
            // Lerian's matcher has no per-product resource wildcard; the built-in policy has none.
            assert_ne!(
                permission.resource, "*",
                "not expressible in Lerian's model"
            );
            for action in &permission.actions {
                p.push(vec![
                    role.id.clone(),
                    object(&permission.product, &permission.resource),
                    action.clone(),
                ]);
            }
        }
        for included in &role.includes {
            g.push(vec![role.id.clone(), included.clone()]);
        }
    }
    for group in &policy.groups {
        for role in &group.roles {
            g.push(vec![group.id.clone(), role.clone()]);
            if group.name != group.id {
                g.push(vec![group.name.clone(), role.clone()]);
            }
        }
    }
    (p, g)
}

/// Every caller of the grid: each role held by an application, each group held by a user, no
/// role at all (user and application), and names the policy does not know.
fn grid_callers(policy: &Policy) -> Vec<Caller> {
    let mut callers = Vec::new();
    for role in &policy.roles {
        callers.push(Caller::new(
            format!("app:{}", role.id),
            &[&role.id],
            &[],
            false,
        ));
    }
    for group in &policy.groups {
        callers.push(Caller::new(
            format!("user:{}", group.id),
            &[],
            &[&group.id],
            true,
        ));
    }
    callers.push(Caller::new("user:none", &[], &[], true));
    callers.push(Caller::new("app:none", &[], &[], false));
    callers.push(Caller::new("app:unknown-role", &["root"], &[], false));
    callers.push(Caller::new("user:unknown-group", &[], &["admins"], true));
    callers
}

/// The callers of the measured requests.
fn bench_callers() -> [Caller; 3] {
    [
        // Allowed by its first role; casbin finds the first p row.
        Caller::new("bench:editor", &["midaz-editor-role"], &[], false),
        // Allowed through a group only (admin-group → plugin-identity-editor-role).
        Caller::new("bench:admin", &[], &["admin-group"], true),
        // Denied after trying its role, its group and the default user role.
        Caller::new(
            "bench:viewer",
            &["midaz-viewer-role"],
            &["midaz-viewer-group"],
            true,
        ),
    ]
}

/// The measured requests: (name, caller index, product, resource, action, expected).
const REQUESTS: [(&str, usize, &str, &str, Action, bool); 3] = [
    (
        "allow_early",
        0,
        "midaz",
        "organizations",
        Action::Get,
        true,
    ),
    (
        "allow_via_group",
        1,
        "plugin-identity",
        "audit-events",
        Action::Delete,
        true,
    ),
    ("deny", 2, "midaz", "ledgers", Action::Delete, false),
];

fn build_enforcer(policy: &Policy, callers: &[&Caller]) -> Enforcer {
    let (p_rows, mut g_rows) = casbin_rows(policy);
    for caller in callers {
        g_rows.extend(caller.grouping_rows(policy));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let mut adapter = MemoryAdapter::default();
        adapter
            .add_policies("p", "p", p_rows)
            .await
            .expect("p rows load");
        adapter
            .add_policies("g", "g", g_rows)
            .await
            .expect("g rows load");
        let model = DefaultModel::from_str(LERIAN_MODEL)
            .await
            .expect("Lerian's model parses");
        Enforcer::new(model, adapter)
            .await
            .expect("the enforcer builds")
    })
}

/// Both engines on every request of the grid; panics on the first disagreement.
fn assert_agreement(ours: &CompiledPolicy, casbin: &Enforcer, policy: &Policy, callers: &[Caller]) {
    let mut products: Vec<&str> = Vec::new();
    let mut resources: Vec<&str> = Vec::new();
    for role in &policy.roles {
        for permission in &role.permissions {
            if !products.contains(&permission.product.as_str()) {
                products.push(&permission.product);
            }
            if !resources.contains(&permission.resource.as_str()) {
                resources.push(&permission.resource);
            }
        }
    }
    products.push("unknown-product");
    resources.push("unknown-resource");

    let started = Instant::now();
    // casbin scans its policy on every request; share the callers between the cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = callers.len().div_ceil(threads);
    let (requests, allowed) = std::thread::scope(|scope| {
        let workers: Vec<_> = callers
            .chunks(chunk)
            .map(|callers| {
                let (products, resources) = (&products, &resources);
                scope.spawn(move || {
                    let (mut requests, mut allowed) = (0usize, 0usize);
                    for caller in callers {
                        let principal = caller.principal();
                        for product in products {
                            for resource in resources {
                                let obj = object(product, resource);
                                for action in Action::ALL {
                                    let our = ours
                                        .decide(&principal, product, resource, action)
                                        .is_allowed();
                                    let theirs = casbin
                                        .enforce((
                                            caller.subject.as_str(),
                                            obj.as_str(),
                                            action.as_str(),
                                        ))
                                        .expect("casbin enforces");
                                    assert_eq!(
                                        our, theirs,
                                        "engines disagree: {} (roles {:?}, groups {:?}, user {}) \
                                         {action} {product}/{resource}: lib-auth {our}, \
                                         casbin {theirs}",
                                        caller.subject, caller.roles, caller.groups, caller.is_user,
                                    );
                                    requests += 1;
                                    allowed += usize::from(our);
                                }
                            }
                        }
                    }
                    (requests, allowed)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("no disagreement"))
            .fold((0, 0), |(r, a), (r2, a2)| (r + r2, a + a2))
    });
    println!(
        "rbac agreement: lib-auth and casbin agree on all {requests} requests \
         ({allowed} allowed, {} callers × {} products × {} resources × 6 actions) in {:.1?}",
        callers.len(),
        products.len(),
        resources.len(),
        started.elapsed(),
    );
}

fn rbac(c: &mut Criterion) {
    let policy = Policy::midaz();
    let ours = CompiledPolicy::compile(&policy).expect("the built-in policy compiles");
    let grid = grid_callers(&policy);
    let bench = bench_callers();
    let all: Vec<&Caller> = grid.iter().chain(&bench).collect();
    let casbin = build_enforcer(&policy, &all);
    let (p_rows, g_rows) = casbin_rows(&policy);
    println!(
        "casbin loaded with {} p rows and {} g rows (+ {} caller rows)",
        p_rows.len(),
        g_rows.len(),
        all.iter()
            .map(|c| c.grouping_rows(&policy).len())
            .sum::<usize>()
    );

    assert_agreement(&ours, &casbin, &policy, &grid);
    assert_agreement(&ours, &casbin, &policy, &bench);

    let principals = bench.each_ref().map(Caller::principal);
    let mut group = c.benchmark_group("rbac");
    for (name, who, product, resource, action, expected) in REQUESTS {
        let principal = &principals[who];
        assert_eq!(
            ours.decide(principal, product, resource, action)
                .is_allowed(),
            expected,
            "{name}"
        );
        group.bench_function(BenchmarkId::new("ours", name), |b| {
            b.iter(|| {
                ours.decide(
                    black_box(principal),
                    black_box(product),
                    black_box(resource),
                    black_box(action),
                )
            })
        });

        let subject = bench[who].subject.as_str();
        let obj = object(product, resource);
        assert_eq!(
            casbin
                .enforce((subject, obj.as_str(), action.as_str()))
                .ok(),
            Some(expected),
            "{name}"
        );
        group.bench_function(BenchmarkId::new("casbin", name), |b| {
            b.iter(|| casbin.enforce(black_box((subject, obj.as_str(), action.as_str()))))
        });
    }
    group.finish();
}

criterion_group!(benches, rbac);
criterion_main!(benches);
