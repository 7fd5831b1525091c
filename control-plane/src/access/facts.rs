//! Core's [`AccessFacts`] over the control plane's current catalog snapshot: users and their
//! closed groups, group parents from the ancestor lists, owners of resources.
//!
//! Annotations are not in the snapshot, and the catalog model the syncer reads is not
//! reachable from here: [`SnapshotFacts::annotation`] knows none. So that an
//! `unless_annotation` condition never approves what it should not, the service compiles the
//! policy without the auto-approval entries that use it (`without_annotation_conditions`):
//! those requests wait for a human.

use meshgate_core::access::{AccessFacts, AccessPolicy, AccessTarget};
use meshgate_core::snapshot::Snapshot;

pub struct SnapshotFacts<'a> {
    pub snapshot: &'a Snapshot,
}

impl AccessFacts for SnapshotFacts<'_> {
    fn user_exists(&self, user: &str) -> bool {
        self.snapshot.user(user).is_some()
    }

    fn groups_of(&self, user: &str) -> Vec<String> {
        self.snapshot
            .groups_of_user(user)
            .map(|groups| groups.iter().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn direct_groups_of(&self, user: &str) -> Vec<String> {
        self.snapshot
            .groups_of_user(user)
            .map(|groups| groups.direct().iter().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn parents_of(&self, group: &str) -> Vec<String> {
        // The snapshot keeps every ancestor; the direct parents are the ancestors that are
        // not above another ancestor.
        let Some(index) = self.snapshot.group_index(group) else {
            return Vec::new();
        };
        let ancestors = self.snapshot.ancestors_of(index).indices();
        ancestors
            .iter()
            .filter(|candidate| {
                !ancestors.iter().any(|other| {
                    other != *candidate
                        && self
                            .snapshot
                            .ancestors_of(*other)
                            .contains_index(**candidate)
                })
            })
            .filter_map(|index| self.snapshot.group_ref(*index).map(str::to_owned))
            .collect()
    }

    fn exists(&self, target: &AccessTarget) -> bool {
        match target {
            AccessTarget::Group(group) => self.snapshot.group_index(group).is_some(),
            AccessTarget::Resource { kind, id } => self.snapshot.owners_of(kind, id).is_some(),
        }
    }

    fn owners_of(&self, target: &AccessTarget) -> Vec<String> {
        match target {
            AccessTarget::Group(_) => Vec::new(),
            AccessTarget::Resource { kind, id } => self
                .snapshot
                .owners_of(kind, id)
                .map(|owners| owners.iter().map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }

    fn annotation(&self, _target: &AccessTarget, _key: &str) -> Option<String> {
        None
    }
}

/// `policy` without the auto-approval conditions that look at annotations, which these facts
/// cannot see (fail closed: such requests wait for an approver).
pub fn without_annotation_conditions(policy: &AccessPolicy) -> AccessPolicy {
    let mut policy = policy.clone();
    for entry in &mut policy.requestable {
        entry
            .auto_approve
            .retain(|rule| rule.unless_annotation.is_empty());
    }
    policy
}
