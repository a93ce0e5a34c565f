//! The compiled RBAC engine: a decision is a few hash lookups and bit tests, no allocation.
//!
//! Compilation expands role inclusions, `*` actions and `*` resources once, so that for every
//! `(product, resource, action)` there is one bit set of the roles that may perform it. A
//! decision looks up the product and resource, then tests the principal's roles against that
//! bit set.

use std::collections::HashMap;
use std::fmt;

use foldhash::fast::RandomState;

use crate::action::Action;
use crate::policy::Policy;
use crate::principal::{Principal, PrincipalKind};

type FastMap<K, V> = HashMap<K, V, RandomState>;

/// The outcome of [`CompiledPolicy::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'p> {
    /// Allowed, through `role` (the first matching role found).
    Allow {
        /// The id of a role of the principal that holds the permission.
        role: &'p str,
    },
    /// Denied (the default), with the reason.
    Deny {
        /// Why no role matched.
        reason: DenyReason,
    },
}

impl Decision<'_> {
    /// Whether the decision is an allow.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// Why a decision was a deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenyReason {
    /// No role of the policy holds any permission on this product.
    UnknownProduct,
    /// No role of the policy holds any permission on this resource of the product.
    UnknownResource,
    /// The principal holds no role that grants this action.
    NoMatchingRole,
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DenyReason::UnknownProduct => "no permission exists for this product",
            DenyReason::UnknownResource => "no permission exists for this resource",
            DenyReason::NoMatchingRole => "no role of the principal grants this action",
        })
    }
}

/// A bit set of role indexes: `words` 64-bit words.
type RoleBits = [u64];

#[inline]
fn has(bits: &RoleBits, role: usize) -> bool {
    bits.get(role / 64)
        .is_some_and(|w| w & (1 << (role % 64)) != 0)
}

/// The lowest role index set in both.
#[inline]
fn first_common(a: &RoleBits, b: &RoleBits) -> Option<usize> {
    a.iter().zip(b).enumerate().find_map(|(i, (a, b))| {
        let both = a & b;
        (both != 0).then(|| i * 64 + both.trailing_zeros() as usize)
    })
}

/// For one (product, resource): per action, the roles allowed, as six bit sets of `words`
/// words each, back to back (one allocation, one pointer to follow).
#[derive(Debug, Clone)]
struct ActionGrants(Box<[u64]>);

impl ActionGrants {
    fn empty(words: usize) -> Self {
        ActionGrants(vec![0; words * Action::ALL.len()].into_boxed_slice())
    }

    #[inline]
    fn of(&self, action: Action) -> &RoleBits {
        let words = self.0.len() / Action::ALL.len();
        &self.0[action.index() * words..][..words]
    }

    fn add(&mut self, action: Action, roles: &RoleBits) {
        let words = roles.len();
        for (w, r) in self.0[action.index() * words..][..words]
            .iter_mut()
            .zip(roles)
        {
            *w |= r;
        }
    }

    fn merge(&mut self, other: &ActionGrants) {
        for (w, o) in self.0.iter_mut().zip(other.0.iter()) {
            *w |= o;
        }
    }
}

/// The grants of one product.
#[derive(Debug, Clone)]
struct ProductGrants {
    /// Every resource named by a permission → its grants, the product's `*`-resource grants
    /// merged in, so that a decision on a named resource reads one bit set.
    resources: FastMap<Box<str>, ActionGrants>,
    /// Grants of permissions whose resource is `*`, for resources not named by any permission.
    any_resource: Option<ActionGrants>,
}

/// The roles of a validated (acyclic) policy in an order where every role comes before the
/// roles it includes: the reverse post-order of an iterative depth-first search.
fn includers_first(policy: &Policy, index: &FastMap<Box<str>, usize>) -> Vec<usize> {
    let n = policy.roles.len();
    let mut post = Vec::with_capacity(n);
    let mut visited = vec![false; n];
    for start in 0..n {
        if visited[start] {
            continue;
        }
        visited[start] = true;
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        while let Some(top) = stack.last_mut() {
            let (role, next) = *top;
            let includes = &policy.roles[role].includes;
            if next == includes.len() {
                post.push(role);
                stack.pop();
                continue;
            }
            top.1 += 1;
            if let Some(&child) = index.get(includes[next].as_str())
                && !visited[child]
            {
                visited[child] = true;
                stack.push((child, 0));
            }
        }
    }
    post.reverse();
    post
}

/// A validated policy compiled for constant-time decisions. Cheap to share (`Arc`) and
/// immutable; reloading a policy means compiling a new one.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    role_names: Box<[Box<str>]>,
    role_index: FastMap<Box<str>, usize>,
    /// Groups by id and by name → the roles they grant.
    group_roles: FastMap<Box<str>, Box<RoleBits>>,
    /// Roles every user holds.
    default_user_roles: Box<RoleBits>,
    products: FastMap<Box<str>, ProductGrants>,
}

impl CompiledPolicy {
    /// Compiles a policy. The policy is validated first, so a compiled policy never holds an
    /// unknown reference or a cycle.
    pub fn compile(policy: &Policy) -> Result<CompiledPolicy, crate::error::PolicyError> {
        policy.validate()?;
        let n = policy.roles.len();
        let words = n.div_ceil(64);
        let role_names: Box<[Box<str>]> =
            policy.roles.iter().map(|r| r.id.as_str().into()).collect();
        let mut role_index = FastMap::default();
        for (i, r) in policy.roles.iter().enumerate() {
            role_index.insert(r.id.as_str().into(), i);
        }
        let set = |bits: &mut RoleBits, role: usize| bits[role / 64] |= 1 << (role % 64);
        let bits_of = |ids: &[String]| {
            let mut bits = vec![0; words].into_boxed_slice();
            for id in ids {
                if let Some(&i) = role_index.get(id.as_str()) {
                    set(&mut bits, i);
                }
            }
            bits
        };

        // holders[j] = every role whose closure contains role j (j itself included). Built in
        // an order where a role comes before the roles it includes, so that a role's holders
        // are complete when they are passed on to its includes: one bit-set union per
        // inclusion, instead of a closure per role (cubic in the length of an include chain).
        let mut holders: Vec<Box<RoleBits>> = (0..n)
            .map(|i| {
                let mut bits = vec![0; words].into_boxed_slice();
                set(&mut bits, i);
                bits
            })
            .collect();
        for i in includers_first(policy, &role_index) {
            let of_i = std::mem::take(&mut holders[i]);
            for included in &policy.roles[i].includes {
                if let Some(&j) = role_index.get(included.as_str())
                    && j != i
                {
                    for (w, h) in holders[j].iter_mut().zip(of_i.iter()) {
                        *w |= h;
                    }
                }
            }
            holders[i] = of_i;
        }

        let mut products: FastMap<Box<str>, ProductGrants> = FastMap::default();
        for (j, role) in policy.roles.iter().enumerate() {
            for perm in &role.permissions {
                let product = products
                    .entry(perm.product.as_str().into())
                    .or_insert_with(|| ProductGrants {
                        resources: FastMap::default(),
                        any_resource: None,
                    });
                let grants = if perm.resource == "*" {
                    product
                        .any_resource
                        .get_or_insert_with(|| ActionGrants::empty(words))
                } else {
                    product
                        .resources
                        .entry(perm.resource.as_str().into())
                        .or_insert_with(|| ActionGrants::empty(words))
                };
                let actions: Vec<Action> = if perm.actions.iter().any(|a| a == "*") {
                    Action::ALL.to_vec()
                } else {
                    perm.actions.iter().filter_map(|a| a.parse().ok()).collect()
                };
                for action in actions {
                    grants.add(action, &holders[j]);
                }
            }
        }
        // A named resource is also covered by its product's `*` permissions.
        for product in products.values_mut() {
            if let Some(any) = &product.any_resource {
                for grants in product.resources.values_mut() {
                    grants.merge(any);
                }
            }
        }

        let mut group_roles = FastMap::default();
        for group in &policy.groups {
            let bits = bits_of(&group.roles);
            group_roles.insert(group.name.as_str().into(), bits.clone());
            group_roles.insert(group.id.as_str().into(), bits);
        }

        Ok(CompiledPolicy {
            default_user_roles: bits_of(&policy.default_user_roles),
            role_names,
            role_index,
            group_roles,
            products,
        })
    }

    /// The built-in Midaz policy, compiled.
    pub fn midaz() -> CompiledPolicy {
        // The built-in policy is validated by unit tests; this cannot fail at run time.
        CompiledPolicy::compile(&Policy::midaz())
            .unwrap_or_else(|e| panic!("the built-in policy is invalid: {e}"))
    }

    /// Whether `role` is defined by this policy.
    pub fn has_role(&self, role: &str) -> bool {
        self.role_index.contains_key(role)
    }

    /// The ids of every role, in policy order.
    pub fn role_ids(&self) -> impl Iterator<Item = &str> {
        self.role_names.iter().map(|r| &**r)
    }

    /// Decides whether `principal` may perform `action` on `resource` of `product`.
    ///
    /// Allowed iff a role of the principal — held directly (`roles` claim), through a group
    /// (`groups` claim), or by default for users — grants the permission, including through
    /// role inclusion and `*` wildcards. Roles and groups unknown to the policy grant nothing.
    pub fn decide(
        &self,
        principal: &Principal,
        product: &str,
        resource: &str,
        action: Action,
    ) -> Decision<'_> {
        self.decide_for(
            principal.roles(),
            principal.groups(),
            principal.kind() == PrincipalKind::User,
            product,
            resource,
            action,
        )
    }

    /// [`decide`](Self::decide) on bare role and group names, for callers that hold no
    /// [`Principal`] (benchmarks, the server's policy endpoints).
    pub fn decide_for<R: AsRef<str>, G: AsRef<str>>(
        &self,
        roles: &[R],
        groups: &[G],
        is_user: bool,
        product: &str,
        resource: &str,
        action: Action,
    ) -> Decision<'_> {
        let Some(product) = self.products.get(product) else {
            return Decision::Deny {
                reason: DenyReason::UnknownProduct,
            };
        };
        let Some(grants) = product
            .resources
            .get(resource)
            .or(product.any_resource.as_ref())
        else {
            return Decision::Deny {
                reason: DenyReason::UnknownResource,
            };
        };
        let allowed = grants.of(action);

        for role in roles {
            if let Some(&i) = self.role_index.get(role.as_ref())
                && has(allowed, i)
            {
                return self.allow(i);
            }
        }
        for group in groups {
            if let Some(held) = self.group_roles.get(group.as_ref())
                && let Some(i) = first_common(held, allowed)
            {
                return self.allow(i);
            }
        }
        if is_user && let Some(i) = first_common(&self.default_user_roles, allowed) {
            return self.allow(i);
        }
        Decision::Deny {
            reason: DenyReason::NoMatchingRole,
        }
    }

    fn allow(&self, role: usize) -> Decision<'_> {
        Decision::Allow {
            role: &self.role_names[role],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> CompiledPolicy {
        CompiledPolicy::compile(&Policy::from_json(text).unwrap()).unwrap()
    }

    const NO_GROUPS: &[&str] = &[];

    #[test]
    fn included_roles_grant_their_permissions_to_the_includer() {
        let p = compile(
            r#"{"version":1,"roles":[
                {"id":"base","permissions":[{"product":"p","resource":"r","actions":["get"]}]},
                {"id":"mid","includes":["base"]},
                {"id":"top","includes":["mid"],"permissions":[{"product":"p","resource":"r","actions":["delete"]}]}
            ]}"#,
        );
        let d = p.decide_for(&["top"], NO_GROUPS, false, "p", "r", Action::Get);
        assert_eq!(d, Decision::Allow { role: "top" });
        assert!(
            !p.decide_for(&["base"], NO_GROUPS, false, "p", "r", Action::Delete)
                .is_allowed()
        );
        assert!(
            !p.decide_for(&["mid"], NO_GROUPS, false, "p", "r", Action::Delete)
                .is_allowed()
        );
    }

    #[test]
    fn wildcards_match_any_resource_and_any_action() {
        let p = compile(
            r#"{"version":1,"roles":[
                {"id":"all","permissions":[{"product":"p","resource":"*","actions":["*"]}]},
                {"id":"one","permissions":[{"product":"p","resource":"r","actions":["get"]}]}
            ]}"#,
        );
        for a in Action::ALL {
            assert!(
                p.decide_for(&["all"], NO_GROUPS, false, "p", "anything", a)
                    .is_allowed()
            );
        }
        assert!(
            !p.decide_for(&["all"], NO_GROUPS, false, "q", "r", Action::Get)
                .is_allowed()
        );
        assert_eq!(
            p.decide_for(&["one"], NO_GROUPS, false, "p", "other", Action::Get),
            Decision::Deny {
                reason: DenyReason::NoMatchingRole
            }
        );
    }

    #[test]
    fn a_wildcard_resource_also_covers_resources_named_by_other_roles() {
        let p = compile(
            r#"{"version":1,"roles":[
                {"id":"one","permissions":[{"product":"p","resource":"r","actions":["get"]}]},
                {"id":"all","permissions":[{"product":"p","resource":"*","actions":["delete"]}]}
            ],"groups":[{"id":"g","name":"g","roles":["one","all"]}]}"#,
        );
        assert_eq!(
            p.decide_for(&["all"], NO_GROUPS, false, "p", "r", Action::Delete),
            Decision::Allow { role: "all" }
        );
        assert_eq!(
            p.decide_for(&["one"], NO_GROUPS, false, "p", "r", Action::Get),
            Decision::Allow { role: "one" }
        );
        assert!(
            !p.decide_for(&["one"], NO_GROUPS, false, "p", "r", Action::Delete)
                .is_allowed()
        );
        assert!(
            !p.decide_for(&["all"], NO_GROUPS, false, "p", "r", Action::Get)
                .is_allowed()
        );
        let none: &[&str] = &[];
        assert_eq!(
            p.decide_for(none, &["g"], false, "p", "r", Action::Delete),
            Decision::Allow { role: "all" }
        );
        assert_eq!(
            p.decide_for(none, &["g"], false, "p", "other", Action::Delete),
            Decision::Allow { role: "all" }
        );
        assert!(
            !p.decide_for(none, &["g"], false, "p", "other", Action::Get)
                .is_allowed()
        );
    }

    #[test]
    fn groups_grant_by_id_or_name_and_defaults_apply_to_users_only() {
        let p = compile(
            r#"{"version":1,"defaultUserRoles":["self"],"roles":[
                {"id":"self","permissions":[{"product":"id","resource":"pw","actions":["patch"]}]},
                {"id":"viewer","permissions":[{"product":"p","resource":"r","actions":["get"]}]}
            ],"groups":[{"id":"g1","name":"Viewers","roles":["viewer"]}]}"#,
        );
        let none: &[&str] = &[];
        assert!(
            p.decide_for(none, &["g1"], false, "p", "r", Action::Get)
                .is_allowed()
        );
        assert!(
            p.decide_for(none, &["Viewers"], false, "p", "r", Action::Get)
                .is_allowed()
        );
        assert!(
            p.decide_for(none, none, true, "id", "pw", Action::Patch)
                .is_allowed()
        );
        assert!(
            !p.decide_for(none, none, false, "id", "pw", Action::Patch)
                .is_allowed()
        );
    }

    #[test]
    fn unknown_roles_products_and_resources_deny() {
        let p = CompiledPolicy::midaz();
        assert_eq!(
            p.decide_for(&["root"], NO_GROUPS, false, "midaz", "ledgers", Action::Get),
            Decision::Deny {
                reason: DenyReason::NoMatchingRole
            }
        );
        assert_eq!(
            p.decide_for(
                &["midaz-editor-role"],
                NO_GROUPS,
                false,
                "nope",
                "ledgers",
                Action::Get
            ),
            Decision::Deny {
                reason: DenyReason::UnknownProduct
            }
        );
        assert_eq!(
            p.decide_for(
                &["midaz-editor-role"],
                NO_GROUPS,
                false,
                "midaz",
                "nope",
                Action::Get
            ),
            Decision::Deny {
                reason: DenyReason::UnknownResource
            }
        );
    }

    #[test]
    fn many_roles_beyond_one_word_of_bits() {
        let mut roles = Vec::new();
        for i in 0..150 {
            roles.push(format!(
                r#"{{"id":"r{i}","permissions":[{{"product":"p","resource":"res{i}","actions":["get"]}}]}}"#
            ));
        }
        let p = compile(&format!(r#"{{"version":1,"roles":[{}]}}"#, roles.join(",")));
        assert!(
            p.decide_for(&["r149"], NO_GROUPS, false, "p", "res149", Action::Get)
                .is_allowed()
        );
        assert!(
            !p.decide_for(&["r149"], NO_GROUPS, false, "p", "res148", Action::Get)
                .is_allowed()
        );
    }
}
