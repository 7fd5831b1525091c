//! Scoped views: the part of the catalog one sidecar needs, like Istio's `Sidecar` resource
//! scopes the configuration each proxy receives.
//!
//! A view names groups (and the entity kinds whose ownership its rules check). It keeps:
//! - the owned entries of those kinds, with their owners unchanged;
//! - the *relevant* groups: the named ones and every owner of a kept entry;
//! - each user who is in at least one relevant group (directly or through nesting) or who owns
//!   a kept entry, with their relevant groups already closed (so a user needs no hierarchy);
//! - for every catalog group below a relevant group, the relevant groups above it, so the
//!   groups a token names are still closed at the edge.
//!
//! Rules see exactly what they would see in the whole snapshot for every group in the view:
//! a caller is in a relevant group in the view if and only if they are in the full snapshot.
//! A rule naming a group outside the view sees nobody in it; `from_rules` views derive their
//! scope from the rules, so that can't happen for the rules they were derived from.

use std::collections::{BTreeSet, HashMap, HashSet};

use meshgate_core::config::{compile_rules_json, ConfigError};
use meshgate_core::snapshot::{IndexedGroup, IndexedInput, IndexedOwned, IndexedUser};

/// What a view keeps: group refs (`group:default/data-eng`, lowercased) and entity kinds
/// (`airflow.dag`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewScope {
    pub groups: BTreeSet<String>,
    pub kinds: BTreeSet<String>,
}

impl ViewScope {
    /// The groups and ownership kinds that a list of rules (JSON, the filter's rule language)
    /// refers to.
    pub fn from_rules_json(json: &str) -> Result<ViewScope, ConfigError> {
        let rules = compile_rules_json(json)?;
        let mut scope = ViewScope::default();
        for rule in rules.deny.iter().chain(&rules.allow) {
            let when = &rule.when;
            for group in when.groups_any.iter().chain(&when.groups_all) {
                scope.groups.insert(group.catalog_ref.clone());
            }
            if let Some(owns) = &when.owns {
                scope.kinds.insert(owns.kind.clone());
            }
        }
        Ok(scope)
    }

    /// Both scopes together.
    pub fn union(mut self, other: ViewScope) -> ViewScope {
        self.groups.extend(other.groups);
        self.kinds.extend(other.kinds);
        self
    }
}

/// The part of `input` that `scope` needs; rules are kept as they are. Works on interned refs,
/// so a view of a deep hierarchy costs integers, not strings.
pub fn project(input: &IndexedInput, scope: &ViewScope) -> IndexedInput {
    // One position per distinct ref, so the same ref at two positions is one group.
    let mut first: HashMap<&str, u32> = HashMap::with_capacity(input.refs.len());
    let canonical: Vec<u32> = input
        .refs
        .iter()
        .zip(0u32..)
        .map(|(name, position)| *first.entry(name.as_str()).or_insert(position))
        .collect();
    let canon =
        |position: u32| -> Option<u32> { canonical.get(usize::try_from(position).ok()?).copied() };

    let owned: Vec<IndexedOwned> = input
        .owned
        .iter()
        .filter(|entry| scope.kinds.contains(&entry.kind))
        .cloned()
        .collect();
    let mut relevant = vec![false; input.refs.len()];
    let mut mark = |position: u32| {
        if let Some(slot) = canon(position)
            .and_then(|p| usize::try_from(p).ok())
            .and_then(|p| relevant.get_mut(p))
        {
            *slot = true;
        }
    };
    for group in &scope.groups {
        if let Some(&position) = first.get(group.as_str()) {
            mark(position);
        }
    }
    let mut owner_users: HashSet<&str> = HashSet::new();
    for &owner in owned.iter().flat_map(|entry| &entry.owners) {
        match input.ref_at(owner) {
            Some(name) if name.starts_with("user:") => {
                owner_users.insert(name);
            }
            Some(_) => mark(owner),
            None => {}
        }
    }

    let mut above = RelevantAbove {
        ancestors: HashMap::new(),
        relevant,
        memo: HashMap::new(),
    };
    for group in &input.groups {
        if let Some(own) = canon(group.group) {
            above
                .ancestors
                .entry(own)
                .or_default()
                .extend(group.ancestors.iter().filter_map(|&a| canon(a)));
        }
    }

    let mut users = Vec::new();
    for user in &input.users {
        let mut groups: Vec<u32> = user
            .groups
            .iter()
            .filter_map(|&group| canon(group))
            .flat_map(|group| above.of(group))
            .collect();
        groups.sort_unstable();
        groups.dedup();
        if groups.is_empty() && !owner_users.contains(user.entity_ref.as_str()) {
            continue;
        }
        users.push(IndexedUser {
            entity_ref: user.entity_ref.clone(),
            email: user.email.clone(),
            groups,
        });
    }

    let groups = input
        .groups
        .iter()
        .filter_map(|group| {
            let own = canon(group.group)?;
            let kept: Vec<u32> = above.of(own).into_iter().filter(|&g| g != own).collect();
            (!kept.is_empty()).then_some(IndexedGroup {
                group: own,
                ancestors: kept,
            })
        })
        .collect();

    IndexedInput {
        refs: input.refs.clone(),
        users,
        owned,
        groups,
        rules: input.rules.clone(),
        // Every grant goes to every view: a grant names one user and one target, and a
        // sidecar honours only what its rules check.
        grants: input.grants.clone(),
    }
}

/// A group and everything above it, kept to the relevant groups; computed once per group.
/// Positions are canonical (the first position of each distinct ref).
struct RelevantAbove {
    ancestors: HashMap<u32, Vec<u32>>,
    relevant: Vec<bool>,
    memo: HashMap<u32, Vec<u32>>,
}

impl RelevantAbove {
    fn of(&mut self, group: u32) -> Vec<u32> {
        if let Some(found) = self.memo.get(&group) {
            return found.clone();
        }
        let is_relevant = |position: u32| {
            usize::try_from(position)
                .ok()
                .and_then(|p| self.relevant.get(p))
                .copied()
                .unwrap_or(false)
        };
        let upward = self
            .ancestors
            .get(&group)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let found: Vec<u32> = std::iter::once(group)
            .chain(upward.iter().copied())
            .filter(|&g| is_relevant(g))
            .collect();
        self.memo.insert(group, found.clone());
        found
    }
}

#[cfg(test)]
mod tests {
    use meshgate_core::snapshot::{GroupInput, OwnedInput, SnapshotInput, UserInput};

    use super::*;

    /// [`super::project`] on the string form, user groups sorted like the encoder sorts them.
    fn project(input: &SnapshotInput, scope: &ViewScope) -> SnapshotInput {
        let mut view = super::project(&input.interned(), scope).to_strings();
        for user in &mut view.users {
            user.groups.sort();
        }
        view
    }

    fn user(name: &str, groups: &[&str]) -> UserInput {
        UserInput {
            entity_ref: format!("user:default/{name}"),
            email: Some(format!("{name}@example.com")),
            groups: groups
                .iter()
                .map(|g| format!("group:default/{g}"))
                .collect(),
        }
    }

    fn group(name: &str, ancestors: &[&str]) -> GroupInput {
        GroupInput {
            entity_ref: format!("group:default/{name}"),
            ancestors: ancestors
                .iter()
                .map(|g| format!("group:default/{g}"))
                .collect(),
        }
    }

    fn owned(kind: &str, id: &str, owners: &[&str]) -> OwnedInput {
        OwnedInput {
            kind: kind.into(),
            id: id.into(),
            owners: owners.iter().map(|o| (*o).to_owned()).collect(),
        }
    }

    /// engineering ⊃ data-eng ⊃ analytics; platform alone; a DAG owned by data-eng, a
    /// pipeline owned by platform, a DAG owned by the user erin.
    fn org() -> SnapshotInput {
        SnapshotInput {
            users: vec![
                user("alice", &["analytics"]),
                user("bob", &["data-eng"]),
                user("carol", &["platform"]),
                user("dave", &[]),
                user("erin", &[]),
            ],
            groups: vec![
                group("analytics", &["data-eng", "engineering"]),
                group("data-eng", &["engineering"]),
            ],
            owned: vec![
                owned("airflow.dag", "etl_daily", &["group:default/data-eng"]),
                owned("airflow.dag", "erins_dag", &["user:default/erin"]),
                owned("buildkite.pipeline", "deploy", &["group:default/platform"]),
            ],
            rules: Some("[]".into()),
        }
    }

    fn scope(groups: &[&str], kinds: &[&str]) -> ViewScope {
        ViewScope {
            groups: groups
                .iter()
                .map(|g| format!("group:default/{g}"))
                .collect(),
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    fn users_of(view: &SnapshotInput) -> Vec<(String, Vec<String>)> {
        view.users
            .iter()
            .map(|u| (u.entity_ref.clone(), u.groups.clone()))
            .collect()
    }

    #[test]
    fn a_group_view_keeps_its_members_closed_and_nothing_else() {
        let view = project(&org(), &scope(&["engineering"], &[]));
        assert_eq!(
            users_of(&view),
            [
                (
                    "user:default/alice".into(),
                    vec!["group:default/engineering".into()]
                ),
                (
                    "user:default/bob".into(),
                    vec!["group:default/engineering".into()]
                ),
            ]
        );
        assert!(view.owned.is_empty());
        // Token groups below engineering still close up to it.
        assert_eq!(
            view.groups,
            [
                group("analytics", &["engineering"]),
                group("data-eng", &["engineering"])
            ]
        );
        assert_eq!(view.rules.as_deref(), Some("[]"));
    }

    #[test]
    fn a_kind_view_keeps_that_kind_its_owners_and_their_members() {
        let view = project(&org(), &scope(&[], &["airflow.dag"]));
        assert_eq!(
            view.owned.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
            ["etl_daily", "erins_dag"]
        );
        assert_eq!(
            users_of(&view),
            [
                (
                    "user:default/alice".into(),
                    vec!["group:default/data-eng".into()]
                ),
                (
                    "user:default/bob".into(),
                    vec!["group:default/data-eng".into()]
                ),
                ("user:default/erin".into(), vec![]),
            ],
            "erin owns a DAG herself; carol and dave have nothing here"
        );
        assert_eq!(view.groups, [group("analytics", &["data-eng"])]);
    }

    #[test]
    fn an_empty_scope_keeps_nothing_but_the_rules() {
        let view = project(&org(), &ViewScope::default());
        assert!(view.users.is_empty() && view.groups.is_empty() && view.owned.is_empty());
        assert_eq!(view.rules.as_deref(), Some("[]"));
    }

    #[test]
    fn unknown_groups_and_kinds_in_the_scope_keep_nothing() {
        let view = project(&org(), &scope(&["nobody"], &["no.kind"]));
        assert!(view.users.is_empty() && view.groups.is_empty() && view.owned.is_empty());
    }

    /// In the view, every user is in exactly the relevant groups they are in in the whole
    /// catalog: checked for every user and every relevant group of a generated hierarchy.
    #[test]
    fn membership_of_relevant_groups_is_the_same_as_in_the_whole_catalog() {
        // A chain g0 ⊃ g1 ⊃ … ⊃ g59 plus a second root; users spread over them.
        let groups: Vec<GroupInput> = (1..60)
            .map(|i| GroupInput {
                entity_ref: format!("group:default/g{i}"),
                ancestors: (0..i).map(|a| format!("group:default/g{a}")).collect(),
            })
            .collect();
        let users: Vec<UserInput> = (0..300)
            .map(|i| UserInput {
                entity_ref: format!("user:default/u{i}"),
                email: None,
                groups: vec![format!("group:default/g{}", i % 61)],
            })
            .collect();
        let input = SnapshotInput {
            users,
            groups,
            ..SnapshotInput::default()
        };
        let picked = scope(&["g7", "g30", "g59", "g60"], &[]);
        let view = project(&input, &picked);
        let closed = |groups: &[GroupInput], user: &UserInput| -> BTreeSet<String> {
            user.groups
                .iter()
                .flat_map(|g| {
                    let up = groups
                        .iter()
                        .find(|x| &x.entity_ref == g)
                        .map(|x| x.ancestors.clone())
                        .unwrap_or_default();
                    std::iter::once(g.clone()).chain(up)
                })
                .collect()
        };
        for user in &input.users {
            let whole: BTreeSet<String> = closed(&input.groups, user)
                .intersection(&picked.groups)
                .cloned()
                .collect();
            let in_view = view
                .users
                .iter()
                .find(|u| u.entity_ref == user.entity_ref)
                .map(|u| closed(&view.groups, u))
                .unwrap_or_default();
            assert_eq!(whole, in_view, "{}", user.entity_ref);
        }
        assert!(view.users.len() < input.users.len());
    }

    #[test]
    fn scopes_come_from_rules() {
        let rules = r#"[
            {"id": "read", "action": "allow", "paths": ["/a"], "when": {"groups_any": ["data-eng", "group:default/Analytics"]}},
            {"id": "no", "action": "deny", "paths": ["/b"], "when": {"groups_all": ["contractors"]}},
            {"id": "own", "action": "allow", "paths": ["/dags/{dag_id}"], "when": {"owns": {"kind": "airflow.dag", "id": "{dag_id}"}}}
        ]"#;
        assert_eq!(
            ViewScope::from_rules_json(rules).unwrap(),
            scope(&["analytics", "contractors", "data-eng"], &["airflow.dag"])
        );
        assert!(ViewScope::from_rules_json("[{\"id\": 1}]").is_err());
        assert!(ViewScope::from_rules_json("").is_err());
    }
}
