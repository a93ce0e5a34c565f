//! The RBAC policy document (SPEC §6): roles, their permissions and inclusions, and groups.
//!
//! A [`Policy`] is data: it is loaded (built-in, file or JSON text), validated, then compiled
//! into a [`CompiledPolicy`](crate::CompiledPolicy) that answers decisions with a few hash
//! lookups.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::error::PolicyError;

/// The built-in policy, mirroring Midaz and its plugins (`lib-auth/policy/midaz.json`).
pub const MIDAZ_POLICY_JSON: &str = include_str!("../policy/midaz.json");

/// A policy document: `{version, defaultUserRoles?, roles, groups}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Format version; `1`.
    pub version: u32,
    /// Roles that every authenticated *user* holds, whatever its groups (applications do not).
    /// The built-in policy uses it to let every user change its own password. An extension of
    /// the SPEC §6 format; optional.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_user_roles: Vec<String>,
    /// The roles.
    pub roles: Vec<Role>,
    /// The groups, each granting roles.
    #[serde(default)]
    pub groups: Vec<Group>,
}

/// A role: permissions, plus the roles it includes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Role {
    /// Unique id, e.g. `midaz-viewer-role`. Tokens carry it in `roles`.
    pub id: String,
    /// Roles whose permissions this role also holds (transitively). Cycles are an error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub includes: Vec<String>,
    /// The permissions held directly.
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

/// Permission to perform `actions` on `resource` of `product`. `*` as the resource or as an
/// action matches any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// Product, e.g. `midaz`.
    pub product: String,
    /// Resource, e.g. `ledgers`, or `*`.
    pub resource: String,
    /// Actions (`get post put patch delete head`) or `*`.
    pub actions: Vec<String>,
}

/// A group of users, granting roles to its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Unique id, e.g. `midaz-viewer-group`.
    pub id: String,
    /// Display name; tokens may carry either the id or the name in `groups`.
    pub name: String,
    /// The roles granted.
    pub roles: Vec<String>,
}

impl Policy {
    /// The built-in Midaz policy (SPEC §6).
    pub fn midaz() -> Policy {
        // The built-in document is checked by a unit test; a failure here is a build defect.
        Policy::from_json(MIDAZ_POLICY_JSON).unwrap_or_else(|e| {
            panic!("the built-in policy is invalid: {e}");
        })
    }

    /// Parses and validates a policy document.
    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy =
            serde_json::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Reads, parses and validates a policy file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Policy::from_json(&text)
    }

    /// Checks the document: non-empty unique ids, group names that name one group only, known
    /// role references, known actions, no cycles.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let mut role_ids = HashSet::new();
        for role in &self.roles {
            if role.id.is_empty() {
                return Err(PolicyError::Parse("a role has an empty id".to_owned()));
            }
            if !role_ids.insert(role.id.as_str()) {
                return Err(PolicyError::DuplicateRole {
                    role: role.id.clone(),
                });
            }
        }
        let check_ref = |referrer: &dyn Fn() -> String, role: &str| {
            if role_ids.contains(role) {
                Ok(())
            } else {
                Err(PolicyError::UnknownRole {
                    referrer: referrer(),
                    role: role.to_owned(),
                })
            }
        };
        for role in &self.roles {
            for included in &role.includes {
                check_ref(&|| format!("role {}", role.id), included)?;
            }
            for permission in &role.permissions {
                if permission.product.is_empty() {
                    return Err(PolicyError::EmptyField {
                        role: role.id.clone(),
                        field: "product",
                    });
                }
                if permission.resource.is_empty() {
                    return Err(PolicyError::EmptyField {
                        role: role.id.clone(),
                        field: "resource",
                    });
                }
                for action in &permission.actions {
                    if action != "*" && action.parse::<Action>().is_err() {
                        return Err(PolicyError::UnknownAction {
                            role: role.id.clone(),
                            action: action.clone(),
                        });
                    }
                }
            }
        }
        let mut group_ids = HashSet::new();
        for group in &self.groups {
            if group.id.is_empty() || group.name.is_empty() {
                return Err(PolicyError::Parse(format!(
                    "group {:?} has an empty id or name",
                    group.id
                )));
            }
            if !group_ids.insert(group.id.as_str()) {
                return Err(PolicyError::DuplicateGroup {
                    group: group.id.clone(),
                });
            }
            for role in &group.roles {
                check_ref(&|| format!("group {}", group.id), role)?;
            }
        }
        // Tokens name a group by id or by name, looked up in one table: a name that is another
        // group's id or name would silently stand for the wrong group.
        let mut group_keys = group_ids;
        for group in &self.groups {
            if group.name != group.id && !group_keys.insert(group.name.as_str()) {
                return Err(PolicyError::DuplicateGroup {
                    group: group.name.clone(),
                });
            }
        }
        for role in &self.default_user_roles {
            check_ref(&|| "defaultUserRoles".to_owned(), role)?;
        }
        self.check_cycles()
    }

    /// Depth-first search over `includes`, reporting the first cycle found with its path.
    fn check_cycles(&self) -> Result<(), PolicyError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let index: HashMap<&str, usize> = self
            .roles
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let mut marks = vec![Mark::New; self.roles.len()];
        for start in 0..self.roles.len() {
            if marks[start] != Mark::New {
                continue;
            }
            // Explicit stack of (role, next include to visit) to keep deep chains off the call stack.
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            marks[start] = Mark::OnPath;
            while let Some(&mut (role, ref mut next)) = stack.last_mut() {
                let includes = &self.roles[role].includes;
                if *next == includes.len() {
                    marks[role] = Mark::Done;
                    stack.pop();
                    continue;
                }
                let child = index[includes[*next].as_str()];
                *next += 1;
                match marks[child] {
                    Mark::New => {
                        marks[child] = Mark::OnPath;
                        stack.push((child, 0));
                    }
                    Mark::OnPath => {
                        let from = stack.iter().position(|&(r, _)| r == child).unwrap_or(0);
                        let mut path: Vec<&str> = stack[from..]
                            .iter()
                            .map(|&(r, _)| self.roles[r].id.as_str())
                            .collect();
                        path.push(self.roles[child].id.as_str());
                        return Err(PolicyError::Cycle {
                            role: self.roles[child].id.clone(),
                            path: path.join(" -> "),
                        });
                    }
                    Mark::Done => {}
                }
            }
        }
        Ok(())
    }

    /// The roles a role holds: itself and every role it includes, transitively.
    /// Assumes a validated policy; unknown ids are skipped.
    #[cfg(test)]
    pub(crate) fn closure_of<'a>(&'a self, role: &'a str) -> Vec<&'a str> {
        let by_id: HashMap<&str, &Role> = self.roles.iter().map(|r| (r.id.as_str(), r)).collect();
        let mut seen: Vec<&str> = vec![role];
        let mut i = 0;
        while i < seen.len() {
            if let Some(r) = by_id.get(seen[i]) {
                for inc in &r.includes {
                    if !seen.contains(&inc.as_str()) {
                        seen.push(inc.as_str());
                    }
                }
            }
            i += 1;
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(roles: &str, groups: &str) -> String {
        format!(r#"{{"version":1,"roles":[{roles}],"groups":[{groups}]}}"#)
    }

    #[test]
    fn builtin_policy_is_valid_and_has_every_product_level() {
        let p = Policy::midaz();
        for product in [
            "midaz",
            "routing",
            "plugin-fees",
            "plugin-crm",
            "plugin-smart-templates",
            "plugin-identity",
        ] {
            for level in ["editor", "contributor", "viewer"] {
                let role = format!("{product}-{level}-role");
                assert!(p.roles.iter().any(|r| r.id == role), "{role}");
                let group = format!("{product}-{level}-group");
                assert!(p.groups.iter().any(|g| g.id == group), "{group}");
            }
        }
        assert!(p.groups.iter().any(|g| g.id == "admin-group"));
    }

    #[test]
    fn unknown_role_reference_names_the_culprit() {
        let text = doc(
            r#"{"id":"a","permissions":[]}"#,
            r#"{"id":"g","name":"g","roles":["ghost"]}"#,
        );
        let err = Policy::from_json(&text).unwrap_err().to_string();
        assert!(err.contains("group g") && err.contains("ghost"), "{err}");

        let text = doc(r#"{"id":"a","includes":["nope"]}"#, "");
        let err = Policy::from_json(&text).unwrap_err().to_string();
        assert!(err.contains("role a") && err.contains("nope"), "{err}");
    }

    #[test]
    fn include_cycle_is_an_error_with_its_path() {
        let text = doc(
            r#"{"id":"a","includes":["b"]},{"id":"b","includes":["c"]},{"id":"c","includes":["a"]}"#,
            "",
        );
        let err = Policy::from_json(&text).unwrap_err();
        match &err {
            PolicyError::Cycle { path, .. } => assert_eq!(path, "a -> b -> c -> a"),
            other => panic!("expected a cycle, got {other}"),
        }
        let text = doc(r#"{"id":"self","includes":["self"]}"#, "");
        assert!(matches!(
            Policy::from_json(&text),
            Err(PolicyError::Cycle { .. })
        ));
    }

    #[test]
    fn diamond_includes_are_not_a_cycle() {
        let text = doc(
            r#"{"id":"top","includes":["l","r"]},{"id":"l","includes":["base"]},{"id":"r","includes":["base"]},{"id":"base"}"#,
            "",
        );
        let p = Policy::from_json(&text).unwrap();
        let mut c = p.closure_of("top");
        c.sort();
        assert_eq!(c, ["base", "l", "r", "top"]);
    }

    #[test]
    fn unknown_action_duplicate_ids_and_unknown_fields_are_errors() {
        let bad_action = doc(
            r#"{"id":"a","permissions":[{"product":"p","resource":"r","actions":["fly"]}]}"#,
            "",
        );
        assert!(matches!(
            Policy::from_json(&bad_action),
            Err(PolicyError::UnknownAction { .. })
        ));
        let dup = doc(r#"{"id":"a"},{"id":"a"}"#, "");
        assert!(matches!(
            Policy::from_json(&dup),
            Err(PolicyError::DuplicateRole { .. })
        ));
        let unknown_field = doc(r#"{"id":"a","grants":[]}"#, "");
        assert!(matches!(
            Policy::from_json(&unknown_field),
            Err(PolicyError::Parse(_))
        ));
    }
}
