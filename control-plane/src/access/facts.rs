//! Core's [`AccessFacts`] over the control plane's current catalog snapshot: users and their
//! closed groups, group parents from the ancestor lists, owners of resources, and the
//! annotations of the entities naming each resource.
//!
//! Annotations are not in the snapshot. The syncer reads them from the catalog at every sync,
//! for the keys the policy's `unless_annotation` conditions test, and publishes them beside
//! the snapshot ([`crate::serve::Published::annotations`]); a resource named by several
//! entities carries the union of their annotations, so `production` on any of them counts.
//! Core asks for one value per key ([`AccessFacts::annotation`]); the value reported is the
//! one the policy tests, when the resource carries it.
//!
//! Where nothing is known the conditions fail closed (they do not hold, the request waits for
//! a human): for a key the annotations were not computed for, and for group targets (only
//! owned resources carry annotations here). When a target holds two values of one key that
//! the policy both tests, no single answer fails both; [`SnapshotFacts::deciding`] leaves the
//! rules testing them out of the policy for that request.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use meshgate_core::access::{AccessFacts, AccessPolicy, AccessTarget};
use meshgate_core::snapshot::Snapshot;

use crate::catalog::ResourceAnnotations;

/// The values each annotation key is tested for by a policy's `unless_annotation` conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestedAnnotations(BTreeMap<String, BTreeSet<String>>);

impl TestedAnnotations {
    pub fn of(policy: &AccessPolicy) -> TestedAnnotations {
        let mut tested: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let pairs = policy
            .requestable
            .iter()
            .flat_map(|entry| &entry.auto_approve)
            .flat_map(|rule| &rule.unless_annotation);
        for (key, value) in pairs {
            tested.entry(key.clone()).or_default().insert(value.clone());
        }
        TestedAnnotations(tested)
    }

    /// The keys tested: what the syncer reads from the catalog.
    pub fn keys(&self) -> BTreeSet<String> {
        self.0.keys().cloned().collect()
    }
}

pub struct SnapshotFacts<'a> {
    pub snapshot: &'a Snapshot,
    /// Published with `snapshot`.
    pub annotations: &'a ResourceAnnotations,
    /// What the policy decided with tests.
    pub tested: &'a TestedAnnotations,
}

impl SnapshotFacts<'_> {
    /// The values of `key` on `target`, `None` when unknown (not computed for `key`, or a
    /// group).
    fn known(&self, target: &AccessTarget, key: &str) -> Option<Vec<&str>> {
        match target {
            AccessTarget::Resource { kind, id } => self.annotations.values(kind, id, key),
            AccessTarget::Group(_) => None,
        }
    }

    /// The tested values of `key` that hold at `target`: those it carries, or every tested
    /// value when its annotations are unknown (fail closed).
    fn holding<'t>(
        &self,
        target: &AccessTarget,
        key: &str,
        tested: &'t BTreeSet<String>,
    ) -> Vec<&'t String> {
        match self.known(target, key) {
            Some(known) => tested
                .iter()
                .filter(|value| known.contains(&value.as_str()))
                .collect(),
            None => tested.iter().collect(),
        }
    }

    /// `policy` for a request for `target`: as it is, unless for some key more than one
    /// tested value holds at the target. Core asks for one value per key, so the
    /// auto-approval rules testing those values (which cannot approve: the target carries
    /// their value, or may) are left out.
    pub fn deciding<'p>(
        &self,
        policy: &'p AccessPolicy,
        target: &AccessTarget,
    ) -> Cow<'p, AccessPolicy> {
        let Some(target) = target.normalized() else {
            return Cow::Borrowed(policy);
        };
        let mut clashing: Vec<(String, String)> = Vec::new();
        for (key, tested) in &self.tested.0 {
            let holding = self.holding(&target, key, tested);
            if holding.len() > 1 {
                clashing.extend(
                    holding
                        .into_iter()
                        .map(|value| (key.clone(), value.clone())),
                );
            }
        }
        if clashing.is_empty() {
            return Cow::Borrowed(policy);
        }
        let mut policy = policy.clone();
        for entry in &mut policy.requestable {
            entry.auto_approve.retain(|rule| {
                !rule
                    .unless_annotation
                    .iter()
                    .any(|pair| clashing.contains(pair))
            });
        }
        Cow::Owned(policy)
    }
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

    fn annotation(&self, target: &AccessTarget, key: &str) -> Option<String> {
        let tested = self.tested.0.get(key);
        match self.known(target, key) {
            // The value the policy tests when the target carries it, so that a condition
            // on it fails; any value otherwise.
            Some(known) => known
                .iter()
                .find(|value| tested.is_some_and(|tested| tested.contains(**value)))
                .or(known.first())
                .map(|value| (*value).to_owned()),
            // Unknown: report the tested value, so the condition does not hold.
            None => tested.and_then(|tested| tested.first()).cloned(),
        }
    }
}
