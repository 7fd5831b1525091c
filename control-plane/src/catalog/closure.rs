//! Transitive closure of group membership: a user in a group is in every ancestor of that group
//! (`analytics childOf data-eng` puts analytics' members in data-eng).
//!
//! Safe on any graph: cycles (`a childOf b childOf a`) are reported and their groups treated as
//! one, relations to entities the catalog does not hold are reported and ignored. The work is
//! a walk per group over its ancestors, so the cost follows the size of the result.

use std::collections::{BTreeMap, BTreeSet};

use super::index::CatalogIndex;
use super::model::{EntityRef, RelationType};
use super::warning::CatalogWarning;

/// Group membership closed under nesting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// Every user, with every group they belong to directly or through nesting.
    pub users: BTreeMap<EntityRef, BTreeSet<EntityRef>>,
    /// Every group, with itself and all its ancestors.
    pub groups: BTreeMap<EntityRef, BTreeSet<EntityRef>>,
}

/// Closes the membership of every user and group in `index`. Warnings: dangling and wrong-kind
/// `memberOf`/`hasMember`/`childOf`/`parentOf` relations, and one per hierarchy cycle.
pub fn close_membership(index: &CatalogIndex) -> (Membership, Vec<CatalogWarning>) {
    let mut warnings = check_relations(index);

    let groups: Vec<&EntityRef> = index
        .of_kind("group")
        .map(|group| &group.entity_ref)
        .collect();
    let position: BTreeMap<&EntityRef, usize> = groups
        .iter()
        .enumerate()
        .map(|(position, group)| (*group, position))
        .collect();
    let targets = |entity: &EntityRef, wanted: RelationType| -> Vec<usize> {
        index
            .get(entity)
            .map(|entity| {
                entity
                    .relations
                    .iter()
                    .filter(|relation| relation.relation == wanted)
                    .filter_map(|relation| position.get(&relation.target).copied())
                    .collect()
            })
            .unwrap_or_default()
    };
    let parents: Vec<Vec<usize>> = groups
        .iter()
        .map(|group| targets(group, RelationType::ChildOf))
        .collect();
    let parents_of = |group: usize| parents.get(group).map_or(&[][..], Vec::as_slice);

    // Each group's ancestors, itself included; `cyclic` marks groups that are their own ancestor.
    let mut ancestors: Vec<BTreeSet<usize>> = Vec::with_capacity(groups.len());
    let mut cyclic: BTreeSet<usize> = BTreeSet::new();
    for group in 0..groups.len() {
        let mut seen = BTreeSet::new();
        let mut pending: Vec<usize> = parents_of(group).to_vec();
        while let Some(parent) = pending.pop() {
            if seen.insert(parent) {
                pending.extend_from_slice(parents_of(parent));
            }
        }
        if !seen.insert(group) {
            cyclic.insert(group);
        }
        ancestors.push(seen);
    }

    let name = |group: usize| groups.get(group).map(|group| group.to_string());
    let mut cycles: BTreeSet<Vec<String>> = BTreeSet::new();
    for &group in &cyclic {
        let mut cycle: Vec<String> = ancestors
            .get(group)
            .into_iter()
            .flatten()
            .filter(|other| {
                ancestors
                    .get(**other)
                    .is_some_and(|theirs| theirs.contains(&group))
            })
            .filter_map(|other| name(*other))
            .collect();
        cycle.sort();
        cycles.insert(cycle);
    }
    warnings.extend(
        cycles
            .into_iter()
            .map(|groups| CatalogWarning::GroupCycle { groups }),
    );

    let resolve = |set: &BTreeSet<usize>| -> BTreeSet<EntityRef> {
        set.iter()
            .filter_map(|group| groups.get(*group).map(|group| (*group).clone()))
            .collect()
    };
    let mut membership = Membership::default();
    for user in index.of_kind("user") {
        let mut closed = BTreeSet::new();
        for group in targets(&user.entity_ref, RelationType::MemberOf) {
            closed.extend(ancestors.get(group).into_iter().flatten().copied());
        }
        membership
            .users
            .insert(user.entity_ref.clone(), resolve(&closed));
    }
    for (group, closed) in groups.iter().zip(&ancestors) {
        membership.groups.insert((*group).clone(), resolve(closed));
    }
    warnings.sort();
    warnings.dedup();
    (membership, warnings)
}

/// Warnings for membership and hierarchy relations that point nowhere or at the wrong kind.
fn check_relations(index: &CatalogIndex) -> Vec<CatalogWarning> {
    let mut warnings = Vec::new();
    for entity in index.entities() {
        for relation in &entity.relations {
            let expected = match relation.relation {
                RelationType::MemberOf | RelationType::ChildOf | RelationType::ParentOf => "group",
                RelationType::HasMember => "user",
                RelationType::OwnedBy | RelationType::OwnerOf => continue,
            };
            let describe = || {
                (
                    entity.entity_ref.to_string(),
                    relation.relation.to_string(),
                    relation.target.to_string(),
                )
            };
            if !index.contains(&relation.target) {
                let (entity, relation, target) = describe();
                warnings.push(CatalogWarning::DanglingRef {
                    entity,
                    relation,
                    target,
                });
            } else if relation.target.kind() != expected {
                let (entity, relation, target) = describe();
                warnings.push(CatalogWarning::UnexpectedTargetKind {
                    entity,
                    relation,
                    target,
                });
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::model::{Entity, Relation};
    use super::*;

    fn r(text: &str) -> EntityRef {
        EntityRef::parse(text, None, "default").unwrap()
    }

    fn entity(reference: &str, relations: &[(RelationType, &str)]) -> Entity {
        Entity {
            entity_ref: r(reference),
            email: None,
            annotations: BTreeMap::new(),
            relations: relations
                .iter()
                .map(|(relation, target)| Relation {
                    relation: *relation,
                    target: r(target),
                })
                .collect(),
        }
    }

    fn groups_of(membership: &Membership, user: &str) -> Vec<String> {
        membership.users[&r(user)]
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn deep_nesting_reaches_the_root() {
        let mut entities: Vec<Entity> = (0..10)
            .map(|level| {
                let parent = format!("group:g{}", level + 1);
                entity(
                    &format!("group:g{level}"),
                    &[(RelationType::ChildOf, &parent)],
                )
            })
            .collect();
        entities.push(entity("group:g10", &[]));
        entities.push(entity("user:deep", &[(RelationType::MemberOf, "group:g0")]));
        let (membership, warnings) = close_membership(&CatalogIndex::new(entities, vec![]));
        assert!(warnings.is_empty(), "{warnings:?}");
        let groups = groups_of(&membership, "user:deep");
        assert_eq!(groups.len(), 11);
        assert!(groups.contains(&"group:default/g10".to_owned()));
        assert_eq!(membership.groups[&r("group:g5")].len(), 6);
    }

    #[test]
    fn cycles_terminate_and_are_reported_once() {
        let entities = vec![
            entity("group:a", &[(RelationType::ChildOf, "group:b")]),
            entity("group:b", &[(RelationType::ChildOf, "group:a")]),
            entity("group:c", &[(RelationType::ChildOf, "group:a")]),
            entity("group:self", &[(RelationType::ChildOf, "group:self")]),
            entity("user:u", &[(RelationType::MemberOf, "group:c")]),
        ];
        let (membership, warnings) = close_membership(&CatalogIndex::new(entities, vec![]));
        assert_eq!(
            groups_of(&membership, "user:u"),
            ["group:default/a", "group:default/b", "group:default/c"]
        );
        assert_eq!(
            warnings,
            [
                CatalogWarning::GroupCycle {
                    groups: vec!["group:default/a".into(), "group:default/b".into()]
                },
                CatalogWarning::GroupCycle {
                    groups: vec!["group:default/self".into()]
                },
            ]
        );
    }

    #[test]
    fn dangling_refs_are_reported_and_ignored() {
        let entities = vec![
            entity("group:a", &[(RelationType::ChildOf, "group:gone")]),
            entity(
                "user:u",
                &[
                    (RelationType::MemberOf, "group:a"),
                    (RelationType::MemberOf, "group:missing"),
                    (RelationType::MemberOf, "component:svc"),
                ],
            ),
            entity("component:svc", &[]),
            entity("group:b", &[(RelationType::HasMember, "user:nobody")]),
        ];
        let (membership, warnings) = close_membership(&CatalogIndex::new(entities, vec![]));
        assert_eq!(groups_of(&membership, "user:u"), ["group:default/a"]);
        let dangling = |entity: &str, relation: &str, target: &str| CatalogWarning::DanglingRef {
            entity: entity.into(),
            relation: relation.into(),
            target: target.into(),
        };
        assert_eq!(
            warnings,
            [
                dangling("group:default/a", "childOf", "group:default/gone"),
                dangling("group:default/b", "hasMember", "user:default/nobody"),
                dangling("user:default/u", "memberOf", "group:default/missing"),
                CatalogWarning::UnexpectedTargetKind {
                    entity: "user:default/u".into(),
                    relation: "memberOf".into(),
                    target: "component:default/svc".into(),
                },
            ]
        );
    }

    #[test]
    fn members_listed_only_on_the_group_count() {
        // Backstage leaves spec as written: bob's memberOf is empty, analytics lists him, and
        // data-eng's children are empty while analytics names it as parent.
        let entities = vec![
            entity("user:bob", &[]),
            entity(
                "group:analytics",
                &[
                    (RelationType::HasMember, "user:bob"),
                    (RelationType::ChildOf, "group:data-eng"),
                ],
            ),
            entity("group:data-eng", &[]),
            entity(
                "group:parent-only",
                &[(RelationType::ParentOf, "group:data-eng")],
            ),
        ];
        let (membership, warnings) = close_membership(&CatalogIndex::new(entities, vec![]));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            groups_of(&membership, "user:bob"),
            [
                "group:default/analytics",
                "group:default/data-eng",
                "group:default/parent-only"
            ]
        );
    }
}
