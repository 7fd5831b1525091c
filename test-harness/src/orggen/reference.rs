//! The expected answer, computed from the generator's own model with plain graph walks and the
//! resolution rules of the module documentation, never with the control plane's code.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::generate::{group_ref, user_ref, Org, Owner, Side};

/// Each group's closure and each resource's owners, as the snapshot must carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Per group index: itself and every ancestor, sorted, duplicates removed.
    closure: Vec<Vec<u32>>,
    /// The group whose stray copy wins: its own definition's group-side lists don't count.
    stray: usize,
    /// (kind, id) → owner refs, sorted.
    owned: BTreeMap<(String, String), Vec<String>>,
}

impl Reference {
    /// Computes the closures and owners of `org` as it is now.
    pub fn build(org: &Org) -> Reference {
        let stray = org.adversarial.stray_copy_of;
        let parents = effective_parents(org, stray);
        let closure = (0..org.groups.len())
            .map(|group| closed_upward(group, &parents))
            .collect();
        let mut owned: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for entity in &org.owned {
            let owners = owned.entry(entity.resource.clone()).or_default();
            match &entity.owner {
                Owner::Group(group, _) => owners.extend(org.group_ref(*group)),
                Owner::User(user) => owners.extend(org.user_ref(*user)),
                Owner::Missing(_) => {}
            }
        }
        Reference {
            closure,
            stray,
            owned: owned
                .into_iter()
                .map(|(key, owners)| (key, owners.into_iter().collect()))
                .collect(),
        }
    }

    /// The groups `user` belongs to directly, as the catalog resolves them now: dangling
    /// `memberOf` entries dropped, group-side listings of the stray-copied group dropped.
    pub fn direct_groups(&self, org: &Org, user: usize) -> Vec<usize> {
        let mut direct: Vec<usize> = org
            .users
            .get(user)
            .into_iter()
            .flat_map(|u| &u.memberships)
            .filter(|m| m.side == Side::Own || m.group != self.stray)
            .map(|m| m.group)
            .collect();
        direct.sort_unstable();
        direct.dedup();
        direct
    }

    /// The indices of every group `user` is in, directly or through nesting, sorted.
    pub fn user_group_indices(&self, org: &Org, user: usize) -> Vec<u32> {
        let mut closed: Vec<u32> = self
            .direct_groups(org, user)
            .into_iter()
            .filter_map(|group| self.closure.get(group))
            .flatten()
            .copied()
            .collect();
        closed.sort_unstable();
        closed.dedup();
        closed
    }

    /// The refs of every group `user` is in, sorted.
    pub fn user_groups(&self, org: &Org, user: usize) -> Vec<String> {
        let mut refs: Vec<String> = self
            .user_group_indices(org, user)
            .into_iter()
            .filter_map(|group| org.group_ref(group as usize))
            .collect();
        refs.sort();
        refs
    }

    /// Whether `user` is in `group_name` (a bare name like `data-eng`) now.
    pub fn user_in(&self, org: &Org, user: usize, group_name: &str) -> bool {
        let wanted = group_ref(group_name);
        self.user_group_indices(org, user)
            .into_iter()
            .any(|group| org.group_ref(group as usize).as_deref() == Some(wanted.as_str()))
    }

    /// The group itself and its ancestors.
    pub fn group_closure(&self, group: usize) -> &[u32] {
        self.closure.get(group).map_or(&[], Vec::as_slice)
    }

    /// Every published resource with its owner refs.
    pub fn owned(&self) -> &BTreeMap<(String, String), Vec<String>> {
        &self.owned
    }

    /// Every user's ref and lowercased email; the duplicated user counts once.
    pub fn users(org: &Org) -> Vec<(String, String)> {
        org.users
            .iter()
            .map(|u| (user_ref(&u.name), u.email.to_lowercase()))
            .collect()
    }
}

/// Per group, its parents as the catalog resolves them.
pub(crate) fn effective_parents(org: &Org, stray: usize) -> Vec<Vec<usize>> {
    let mut parents = vec![Vec::new(); org.groups.len()];
    for (index, group) in org.groups.iter().enumerate() {
        if let Some(parent) = group.parent {
            // Written on the child (lost if the child is the stray copy's group) or on the
            // parent's `children` (lost if the parent is).
            let kept = match group.parent_side {
                Side::Own => index != stray,
                Side::Other => parent != stray,
            };
            if kept {
                if let Some(list) = parents.get_mut(index) {
                    list.push(parent);
                }
            }
        }
        if index != stray {
            for child in &group.extra_children {
                if let Some(list) = parents.get_mut(*child) {
                    list.push(index);
                }
            }
        }
    }
    parents
}

/// `group` and everything above it, by breadth-first walk; a cycle ends the walk.
fn closed_upward(group: usize, parents: &[Vec<usize>]) -> Vec<u32> {
    let mut seen: BTreeSet<usize> = BTreeSet::from([group]);
    let mut pending: VecDeque<usize> = VecDeque::from([group]);
    while let Some(at) = pending.pop_front() {
        for parent in parents.get(at).into_iter().flatten() {
            if seen.insert(*parent) {
                pending.push_back(*parent);
            }
        }
    }
    seen.into_iter()
        .filter_map(|g| u32::try_from(g).ok())
        .collect()
}
