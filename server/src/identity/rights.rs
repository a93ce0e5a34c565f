//! No escalation: a caller may grant only rights it holds, and may manage only users and
//! applications whose rights it holds. Without this rule, anyone allowed to edit users could
//! put themselves in `admin-group`, reset an admin's password or take an application's
//! secret, whatever their own level.
//!
//! "Holds" is decided by the same compiled policy that guards every request: each permission
//! the roles in question grant (included roles too) must be allowed to the caller. The roles
//! every user holds (`defaultUserRoles`) are left out: they come with any account and grant
//! nothing to manage.

use std::collections::BTreeSet;

use lib_auth::{Action, Policy, Principal};

use crate::state::AppState;

/// The roles `groups` grant, with the roles they include.
pub fn roles_of_groups(policy: &Policy, groups: &[String]) -> Vec<String> {
    let direct: Vec<String> = policy
        .groups
        .iter()
        .filter(|g| groups.contains(&g.id))
        .flat_map(|g| g.roles.iter().cloned())
        .collect();
    with_included(policy, &direct)
}

/// `roles` and every role they include, transitively (the policy has no cycles: it is
/// validated when loaded).
fn with_included(policy: &Policy, roles: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = roles.to_vec();
    while let Some(role) = stack.pop() {
        if seen.insert(role.clone())
            && let Some(found) = policy.roles.iter().find(|r| r.id == role)
        {
            stack.extend(found.includes.iter().cloned());
        }
    }
    seen.into_iter().collect()
}

/// Whether `caller` holds every permission of `roles`.
pub fn holds(state: &AppState, caller: &Principal, roles: &[String]) -> bool {
    let (policy, _) = state.policy();
    let keyring = state.keyring();
    for role in with_included(&policy, roles) {
        let Some(role) = policy.roles.iter().find(|r| r.id == role) else {
            continue;
        };
        for permission in &role.permissions {
            let actions: Vec<Action> = if permission.actions.iter().any(|a| a == "*") {
                Action::ALL.to_vec()
            } else {
                permission
                    .actions
                    .iter()
                    .filter_map(|a| a.parse().ok())
                    .collect()
            };
            for action in actions {
                let allowed = keyring
                    .auth
                    .decide(caller, &permission.product, &permission.resource, action)
                    .is_some_and(|d| d.is_allowed());
                if !allowed {
                    return false;
                }
            }
        }
    }
    true
}

/// Whether `caller` holds every right that membership of `groups` gives.
pub fn holds_groups(state: &AppState, caller: &Principal, groups: &[String]) -> bool {
    let (policy, _) = state.policy();
    holds(state, caller, &roles_of_groups(&policy, groups))
}
