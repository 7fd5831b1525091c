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

#[cfg(test)]
mod tests {
    use meshgate_core::access::{assess, Assessment, RequestDraft};
    use meshgate_core::snapshot::DecodeLimits;
    use serde_json::json;

    use super::*;
    use crate::catalog::model::RelationSource;
    use crate::catalog::{
        build_snapshot_input, resource_annotations, CatalogIndex, Entity, OwnershipAnnotations,
    };
    use crate::snapshot::{build, SigningKey};

    const ENV: &str = "meshgate.io/environment";

    fn dag(name: &str, env: Option<&str>) -> serde_json::Value {
        let mut annotations = json!({"meshgate.io/airflow-dag": name});
        if let Some(env) = env {
            annotations[ENV] = json!(env);
        }
        json!({"kind": "Component", "metadata": {"name": format!("c-{name}"), "annotations": annotations},
               "spec": {"owner": "team", "type": "pipeline"}})
    }

    /// Which condition approves `target` for eve (not an owner) for 5 minutes; `None`:
    /// pending.
    fn approving(
        snapshot: &Snapshot,
        annotations: &ResourceAnnotations,
        policy: &AccessPolicy,
        target: AccessTarget,
    ) -> Option<String> {
        let tested = TestedAnnotations::of(policy);
        let facts = SnapshotFacts {
            snapshot,
            annotations,
            tested: &tested,
        };
        let draft = RequestDraft {
            requester: String::from("user:default/eve"),
            target,
            duration_s: 300,
            reason: Some(String::from("testing")),
        };
        match assess(&facts.deciding(policy, &draft.target), &draft, &facts).unwrap() {
            Assessment::AutoApproved { condition, .. } => Some(condition),
            Assessment::Pending { .. } => None,
        }
    }

    #[test]
    fn unless_annotation_reads_the_published_annotations_and_fails_closed_where_unknown() {
        let values = [
            json!({"kind": "Group", "metadata": {"name": "team"}, "spec": {"type": "team"}}),
            json!({"kind": "Group", "metadata": {"name": "other"}, "spec": {"type": "team"}}),
            json!({"kind": "User", "metadata": {"name": "eve"}, "spec": {"memberOf": ["other"]}}),
            dag("prod", Some("production")),
            dag("staging", Some("staging")),
            dag("plain", None),
            // `shared` is named by a production and a staging entity.
            dag("shared", Some("production")),
            json!({"kind": "Component", "metadata": {"name": "c-shared-2",
                   "annotations": {"meshgate.io/airflow-dag": "shared", ENV: "staging"}},
                   "spec": {"owner": "team", "type": "pipeline"}}),
        ];
        let entities = values.iter().map(|value| {
            Entity::from_value(value, "t", RelationSource::Spec)
                .0
                .unwrap()
        });
        let index = CatalogIndex::new(entities, Vec::new());
        let ownership = OwnershipAnnotations::default();
        let key = SigningKey::from_seed("facts-test", [5; 32]).unwrap();
        let bytes = build(&build_snapshot_input(&index, &ownership).input, 1, 0, &key).unwrap();
        let snapshot =
            Snapshot::decode(&bytes, &[key.trusted_key()], &DecodeLimits::default()).unwrap();
        let policy = |rules: serde_json::Value| {
            AccessPolicy::from_value(&json!({"version": 1, "requestable": [
                {"name": "dags", "target": {"resource": {"kind": "airflow.dag"}},
                 "max_duration": "1h", "auto_approve": rules},
                {"name": "team", "target": {"group": "team"}, "max_duration": "1h",
                 "auto_approve": [{"name": "not-prod", "unless_annotation": {ENV: "production"}}]}]}))
            .unwrap()
        };
        let one = policy(json!([{"name": "not-prod", "unless_annotation": {ENV: "production"}}]));
        let two = policy(json!([
            {"name": "not-prod", "unless_annotation": {ENV: "production"}},
            {"name": "not-staging", "unless_annotation": {ENV: "staging"}},
            {"name": "short", "max_duration": "10m"}
        ]));
        let keys: BTreeSet<String> = [ENV.to_owned()].into();
        let computed = resource_annotations(&index, &ownership, &keys);
        let none = ResourceAnnotations::default();
        let dag = |id: &str| AccessTarget::resource("airflow.dag", id).unwrap();
        let group = AccessTarget::group("team").unwrap();
        // (annotations, policy, target, approving condition)
        let cases = [
            (&computed, &one, dag("prod"), None),
            (&computed, &one, dag("shared"), None),
            (&computed, &one, dag("staging"), Some("not-prod")),
            (&computed, &one, dag("plain"), Some("not-prod")),
            (&computed, &two, dag("prod"), Some("not-staging")),
            (&computed, &two, dag("staging"), Some("not-prod")),
            (&computed, &two, dag("plain"), Some("not-prod")),
            // Both tested values hold: neither rule approves; the next one does.
            (&computed, &two, dag("shared"), Some("short")),
            // Not computed, or a group: fail closed.
            (&none, &one, dag("plain"), None),
            (&none, &two, dag("plain"), Some("short")),
            (&computed, &one, group.clone(), None),
            (&none, &one, group, None),
        ];
        for (annotations, policy, target, expected) in cases {
            let case = format!("{target:?} computed={}", annotations.computed_for(ENV));
            let got = approving(&snapshot, annotations, policy, target);
            assert_eq!(got.as_deref(), expected, "{case}");
        }
    }
}
