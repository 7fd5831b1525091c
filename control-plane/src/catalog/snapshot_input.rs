//! The catalog turned into what a snapshot carries (format 2): users with their direct
//! groups, groups with their closed ancestors, and owned tool resources. The filter unions a
//! user's direct groups with their ancestors at lookup.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use super::closure::{close_membership_cached, ClosureCache, RelationStats};
use super::index::CatalogIndex;
use super::ownership::{owned_resources, OwnershipAnnotations};
use super::warning::CatalogWarning;

pub use meshgate_core::snapshot::{
    GroupInput, IndexedGroup, IndexedInput, IndexedOwned, IndexedUser, OwnedInput, SnapshotInput,
    UserInput,
};

/// The email as stored and compared: trimmed, ASCII-lowercased, `None` when empty.
pub fn normalize_email(email: &str) -> Option<String> {
    let email = email.trim();
    (!email.is_empty()).then(|| email.to_ascii_lowercase())
}

/// Snapshot input built from one catalog read, with what the publish guards look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogBuild {
    /// Refs interned: groups × depth ancestor entries stay integers all the way to the encoder.
    pub input: IndexedInput,
    /// Sorted and deduplicated: the index's own warnings plus those found here.
    pub warnings: Vec<CatalogWarning>,
    /// Membership relations and how many of them dangle.
    pub relations: RelationStats,
}

/// [`build_snapshot_input`] with the default ownership annotations, without the relation
/// counts, with refs spelled out.
pub fn to_snapshot_input(index: &CatalogIndex) -> (SnapshotInput, Vec<CatalogWarning>) {
    let build = build_snapshot_input(index, &OwnershipAnnotations::default());
    let mut input = build.input.to_strings();
    // The string form is compared in tests: sorted like the encoder sorts.
    for user in &mut input.users {
        user.groups.sort();
    }
    input.users.sort_by(|a, b| a.entity_ref.cmp(&b.entity_ref));
    for group in &mut input.groups {
        group.ancestors.sort();
    }
    input.groups.sort_by(|a, b| a.entity_ref.cmp(&b.entity_ref));
    (input, build.warnings)
}

/// Builds snapshot input from `index`: every user with their direct groups, every group with
/// its closed ancestors (every group is listed, also those without any, so the group table
/// holds the whole hierarchy), every resource named by one of `annotations` with its
/// owners. Rules are not the catalog's business and are left `None`. Refs stay interned (the
/// closure's own ids), owned entries are sorted, and so are the warnings, so replicas reading
/// the same catalog in any order produce identical snapshots.
pub fn build_snapshot_input(
    index: &CatalogIndex,
    annotations: &OwnershipAnnotations,
) -> CatalogBuild {
    build_snapshot_input_cached(index, annotations, &mut ClosureCache::default())
}

/// [`build_snapshot_input`], reusing the group closure in `cache` when the hierarchy did not
/// change since it was computed (the same result either way).
pub fn build_snapshot_input_cached(
    index: &CatalogIndex,
    annotations: &OwnershipAnnotations,
    cache: &mut ClosureCache,
) -> CatalogBuild {
    std::thread::scope(|scope| {
        // Ownership reads the index only: it runs beside the closure and the user table (a
        // sixth of a sync at organisation scale). Without a thread, it runs after them.
        let ownership = std::thread::Builder::new()
            .name("meshgate-ownership".into())
            .spawn_scoped(scope, || owned_resources(index, annotations))
            .ok();
        build_with_ownership(index, cache, move || match ownership {
            // A panic there is a panic here, as if it had run on this thread.
            Some(thread) => thread
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            None => owned_resources(index, annotations),
        })
    })
}

/// [`build_snapshot_input_cached`] with the owned resources from `ownership`, called once
/// the rest is built.
fn build_with_ownership(
    index: &CatalogIndex,
    cache: &mut ClosureCache,
    ownership: impl FnOnce() -> (Vec<OwnedInput>, Vec<CatalogWarning>),
) -> CatalogBuild {
    let mut warnings: Vec<CatalogWarning> = index.warnings().to_vec();
    let (membership, mut found) = close_membership_cached(index, cache);
    warnings.append(&mut found);

    // The ref table starts with the groups in closure order, so closure ids are positions.
    let mut refs: Vec<String> = membership
        .groups()
        .iter()
        .map(ToString::to_string)
        .collect();

    // In reference order already; the encoder sorts by string, which may differ.
    let users: Vec<IndexedUser> = index
        .of_kind("user")
        .zip(0..)
        .map(|(user, position)| IndexedUser {
            entity_ref: user.entity_ref.text(),
            email: user.email.as_deref().and_then(normalize_email),
            groups: membership.direct_group_ids(position).to_vec(),
        })
        .collect();

    let groups: Vec<IndexedGroup> = (0..refs.len())
        .zip(0u32..)
        .map(|(position, group)| IndexedGroup {
            group,
            ancestors: membership.ancestor_ids(position).to_vec(),
        })
        .collect();
    let relations = membership.stats;
    drop(membership);

    // Hashing, not sorting: 100,000 emails are compared once each, and only shared ones
    // get a list.
    let mut first_holder: HashMap<&str, &str> = HashMap::with_capacity(users.len());
    let mut shared: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for user in &users {
        let Some(email) = user.email.as_deref() else {
            continue;
        };
        match first_holder.entry(email) {
            Entry::Vacant(slot) => {
                slot.insert(&user.entity_ref);
            }
            Entry::Occupied(first) => shared
                .entry(email)
                .or_insert_with(|| vec![*first.get()])
                .push(&user.entity_ref),
        }
    }
    for (email, mut holders) in shared {
        holders.sort_unstable();
        warnings.push(CatalogWarning::DuplicateEmail {
            email: email.to_owned(),
            users: holders.into_iter().map(str::to_owned).collect(),
        });
    }

    let (mut resources, mut found) = ownership();
    warnings.append(&mut found);
    resources.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
    // Owners are groups (already in the table) or users, added once each.
    let mut positions: HashMap<String, u32> = refs.iter().cloned().zip(0u32..).collect();
    let owned: Vec<IndexedOwned> = resources
        .into_iter()
        .map(|resource| IndexedOwned {
            owners: resource
                .owners
                .into_iter()
                .map(|owner| match positions.get(&owner) {
                    Some(&position) => position,
                    None => {
                        let position = u32::try_from(refs.len()).unwrap_or(u32::MAX);
                        refs.push(owner.clone());
                        positions.insert(owner, position);
                        position
                    }
                })
                .collect(),
            kind: resource.kind,
            id: resource.id,
        })
        .collect();

    warnings.sort();
    warnings.dedup();
    CatalogBuild {
        input: IndexedInput {
            refs,
            users,
            groups,
            owned,
            rules: None,
            grants: Default::default(),
        },
        warnings,
        relations,
    }
}

#[cfg(test)]
mod tests {
    use rand::seq::SliceRandom as _;
    use rand::SeedableRng as _;
    use serde_json::json;

    use super::super::model::{Entity, RelationSource};
    use super::super::ownership::AIRFLOW_DAG_ANNOTATION;
    use super::*;

    fn catalog() -> Vec<serde_json::Value> {
        let mut values = vec![
            json!({"kind": "Group", "metadata": {"name": "data-eng"}, "spec": {"children": []}}),
            json!({"kind": "Group", "metadata": {"name": "Analytics"},
                   "spec": {"parent": "Data-Eng", "members": ["User:Bob"]}}),
            json!({"kind": "Group", "metadata": {"name": "loop-a"}, "spec": {"parent": "loop-b"}}),
            json!({"kind": "Group", "metadata": {"name": "loop-b"}, "spec": {"parent": "loop-a"}}),
            json!({"kind": "User", "metadata": {"name": "alice"},
                   "spec": {"profile": {"email": "Alice@Example.COM"}, "memberOf": ["data-eng", "loop-a"]}}),
            json!({"kind": "User", "metadata": {"name": "bob"},
                   "spec": {"profile": {"email": "bob@example.com"}, "memberOf": []}}),
            json!({"kind": "User", "metadata": {"name": "twin"},
                   "spec": {"profile": {"email": "BOB@example.com"}, "memberOf": ["ghost"]}}),
            json!({"kind": "Component", "metadata": {"name": "etl",
                   "annotations": {AIRFLOW_DAG_ANNOTATION: "etl_daily"}}, "spec": {"owner": "DATA-ENG"}}),
            json!({"kind": "Resource", "metadata": {"name": "report",
                   "annotations": {AIRFLOW_DAG_ANNOTATION: "marketing_report"}}, "spec": {"owner": "analytics"}}),
        ];
        for n in 0..20 {
            values.push(
                json!({"kind": "User", "metadata": {"name": format!("user{n}")},
                "spec": {"memberOf": [format!("team{}", n % 4)]}}),
            );
            values.push(
                json!({"kind": "Group", "metadata": {"name": format!("team{}", n % 5)},
                "spec": {"parent": "analytics"}}),
            );
        }
        values
    }

    fn build(values: &[serde_json::Value]) -> (SnapshotInput, Vec<CatalogWarning>) {
        let mut entities = Vec::new();
        let mut warnings = Vec::new();
        for value in values {
            let (entity, mut found) = Entity::from_value(value, "t", RelationSource::Spec);
            entities.extend(entity);
            warnings.append(&mut found);
        }
        to_snapshot_input(&CatalogIndex::new(entities, warnings))
    }

    /// A user's closed groups as the filter computes them from format 2: direct groups and
    /// the ancestors of each.
    fn closed(input: &SnapshotInput, user: &UserInput) -> Vec<String> {
        let mut closed: Vec<String> = user.groups.clone();
        for group in &user.groups {
            if let Some(found) = input.groups.iter().find(|g| &g.entity_ref == group) {
                closed.extend(found.ancestors.iter().cloned());
            }
        }
        closed.sort();
        closed.dedup();
        closed
    }

    #[test]
    fn users_owned_and_warnings_from_a_small_catalog() {
        let (input, warnings) = build(&catalog());
        let bob = input
            .users
            .iter()
            .find(|u| u.entity_ref == "user:default/bob")
            .unwrap();
        // Direct groups only; the closure comes from the groups' ancestors.
        assert_eq!(bob.groups, ["group:default/analytics"]);
        assert_eq!(
            closed(&input, bob),
            ["group:default/analytics", "group:default/data-eng"]
        );
        let alice = &input.users[0];
        assert_eq!(alice.entity_ref, "user:default/alice");
        assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
        assert_eq!(
            alice.groups,
            ["group:default/data-eng", "group:default/loop-a"]
        );
        assert_eq!(
            closed(&input, alice),
            [
                "group:default/data-eng",
                "group:default/loop-a",
                "group:default/loop-b"
            ]
        );
        let user7 = input
            .users
            .iter()
            .find(|u| u.entity_ref == "user:default/user7")
            .unwrap();
        assert_eq!(user7.groups, ["group:default/team3"]);
        assert_eq!(
            closed(&input, user7),
            [
                "group:default/analytics",
                "group:default/data-eng",
                "group:default/team3"
            ]
        );
        let ancestors = |group: &str| -> Vec<&str> {
            input
                .groups
                .iter()
                .find(|g| g.entity_ref == group)
                .unwrap()
                .ancestors
                .iter()
                .map(String::as_str)
                .collect()
        };
        // Every group is listed (9: data-eng, analytics, loop-a, loop-b, team0..team4), in order.
        assert_eq!(input.groups.len(), 9);
        assert!(input
            .groups
            .windows(2)
            .all(|pair| pair[0].entity_ref < pair[1].entity_ref));
        assert_eq!(
            ancestors("group:default/team3"),
            ["group:default/analytics", "group:default/data-eng"]
        );
        assert_eq!(
            ancestors("group:default/analytics"),
            ["group:default/data-eng"]
        );
        assert!(ancestors("group:default/data-eng").is_empty());
        // In a cycle each group is above the other, never above itself.
        assert_eq!(ancestors("group:default/loop-a"), ["group:default/loop-b"]);
        assert_eq!(input.rules, None);
        assert_eq!(input.owned.len(), 2);
        assert_eq!(input.owned[0].id, "etl_daily");
        assert_eq!(input.owned[0].owners, ["group:default/data-eng"]);
        assert_eq!(input.owned[1].owners, ["group:default/analytics"]);
        assert_eq!(
            warnings,
            [
                CatalogWarning::DanglingRef {
                    entity: "user:default/twin".into(),
                    relation: "memberOf".into(),
                    target: "group:default/ghost".into()
                },
                CatalogWarning::GroupCycle {
                    groups: vec!["group:default/loop-a".into(), "group:default/loop-b".into()]
                },
                CatalogWarning::DuplicateEmail {
                    email: "bob@example.com".into(),
                    users: vec!["user:default/bob".into(), "user:default/twin".into()]
                },
            ]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn shuffled_input_gives_identical_output() {
        let values = catalog();
        let reference = build(&values);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..25 {
            let mut shuffled = values.clone();
            shuffled.shuffle(&mut rng);
            assert_eq!(build(&shuffled), reference);
        }
    }
}
