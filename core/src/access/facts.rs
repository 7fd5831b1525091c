//! What the access decisions ask the catalog, as a trait the control plane implements over
//! its catalog model, and [`MemoryFacts`], a small in-memory catalog for tests.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{normalize_user, AccessTarget};

/// Catalog questions. Refs go in and come out in the catalog's spelling
/// (`user:default/alice`, `group:default/data-eng`, lowercased); targets are normalized.
pub trait AccessFacts {
    /// Whether `user` is a user in the catalog.
    fn user_exists(&self, user: &str) -> bool;
    /// The user's closed groups: direct groups and all their ancestors.
    fn groups_of(&self, user: &str) -> Vec<String>;
    /// The groups the user is a direct member of.
    fn direct_groups_of(&self, user: &str) -> Vec<String>;
    /// The direct parents of `group`.
    fn parents_of(&self, group: &str) -> Vec<String>;
    /// Whether the group or resource is in the catalog.
    fn exists(&self, target: &AccessTarget) -> bool;
    /// The owners the catalog names for the target entity: group refs and user refs. For a
    /// group, its owners if the catalog model has any (Backstage groups usually have none;
    /// then the group's own members approve, see `decide`).
    fn owners_of(&self, target: &AccessTarget) -> Vec<String>;
    /// The value of annotation `key` on the target entity.
    fn annotation(&self, target: &AccessTarget, key: &str) -> Option<String>;
}

/// An in-memory catalog: users with direct groups, groups with parents, resources with
/// owners, annotations. Refs given in short form are normalized.
#[derive(Debug, Clone, Default)]
pub struct MemoryFacts {
    users: BTreeMap<String, Vec<String>>,
    parents: BTreeMap<String, Vec<String>>,
    owners: BTreeMap<AccessTarget, Vec<String>>,
    annotations: BTreeMap<(AccessTarget, String), String>,
}

fn group_ref(name: &str) -> String {
    match AccessTarget::group(name) {
        Some(AccessTarget::Group(group)) => group,
        _ => name.to_owned(),
    }
}

/// A user or group owner, in the catalog's spelling.
fn owner_ref(name: &str) -> String {
    if name
        .get(..5)
        .is_some_and(|kind| kind.eq_ignore_ascii_case("user:"))
    {
        normalize_user(name).unwrap_or_else(|| name.to_owned())
    } else {
        group_ref(name)
    }
}

impl MemoryFacts {
    pub fn new() -> MemoryFacts {
        MemoryFacts::default()
    }

    /// A user and its direct groups (which need not be declared with [`Self::group`]).
    pub fn user(mut self, user: &str, groups: &[&str]) -> MemoryFacts {
        let user = normalize_user(user).unwrap_or_else(|| user.to_owned());
        self.users
            .insert(user, groups.iter().map(|g| group_ref(g)).collect());
        self
    }

    /// A group and its direct parents.
    pub fn group(mut self, group: &str, parents: &[&str]) -> MemoryFacts {
        self.parents.insert(
            group_ref(group),
            parents.iter().map(|g| group_ref(g)).collect(),
        );
        self
    }

    /// A resource and its owners (`data-eng`, `group:default/x` or `user:default/bob`).
    pub fn resource(mut self, kind: &str, id: &str, owners: &[&str]) -> MemoryFacts {
        self.owners.insert(
            AccessTarget::Resource {
                kind: kind.to_owned(),
                id: id.to_owned(),
            },
            owners.iter().map(|o| owner_ref(o)).collect(),
        );
        self
    }

    /// Owners of a group entity (most catalogs have none).
    pub fn group_owners(mut self, group: &str, owners: &[&str]) -> MemoryFacts {
        self.parents.entry(group_ref(group)).or_default();
        self.owners.insert(
            AccessTarget::Group(group_ref(group)),
            owners.iter().map(|o| owner_ref(o)).collect(),
        );
        self
    }

    /// An annotation on a target entity.
    pub fn annotate(mut self, target: &AccessTarget, key: &str, value: &str) -> MemoryFacts {
        self.annotations
            .insert((target.clone(), key.to_owned()), value.to_owned());
        self
    }
}

impl AccessFacts for MemoryFacts {
    fn user_exists(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    fn groups_of(&self, user: &str) -> Vec<String> {
        // Breadth-first over parents; the set stops cycles.
        let mut closed = BTreeSet::new();
        let mut queue: VecDeque<String> = self.direct_groups_of(user).into();
        while let Some(group) = queue.pop_front() {
            if closed.insert(group.clone()) {
                queue.extend(self.parents_of(&group));
            }
        }
        closed.into_iter().collect()
    }

    fn direct_groups_of(&self, user: &str) -> Vec<String> {
        self.users.get(user).cloned().unwrap_or_default()
    }

    fn parents_of(&self, group: &str) -> Vec<String> {
        self.parents.get(group).cloned().unwrap_or_default()
    }

    fn exists(&self, target: &AccessTarget) -> bool {
        match target {
            AccessTarget::Group(group) => {
                self.parents.contains_key(group)
                    || self.users.values().flatten().any(|g| g == group)
                    || self.parents.values().flatten().any(|g| g == group)
            }
            AccessTarget::Resource { .. } => self.owners.contains_key(target),
        }
    }

    fn owners_of(&self, target: &AccessTarget) -> Vec<String> {
        self.owners.get(target).cloned().unwrap_or_default()
    }

    fn annotation(&self, target: &AccessTarget, key: &str) -> Option<String> {
        self.annotations
            .get(&(target.clone(), key.to_owned()))
            .cloned()
    }
}
