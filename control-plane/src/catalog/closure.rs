//! Transitive closure of the group hierarchy: a group nested in another is inside every
//! ancestor of it (`analytics childOf data-eng`), so a member of analytics counts as a member
//! of data-eng.
//!
//! The closure is over groups only (groups × depth), never per user: a user's closed groups
//! are their direct groups plus the closed ancestors of each, which the filter unions at
//! lookup. Entities are interned to integer ids once, and relations and the closure are kept
//! as integer rows; strings are made only when the snapshot input is built. With 100,000
//! users in groups 400 levels deep, a per-user closure holds 40 million entries, this one
//! holds the users' direct groups plus the groups' ancestors.
//!
//! Safe on any graph: cycles (`a childOf b childOf a`) are reported and their groups treated as
//! one, relations to entities the catalog does not hold are reported, counted and ignored.

use std::collections::{BTreeSet, HashMap};

use super::index::CatalogIndex;
use super::model::{Entity, EntityRef, RelationType};
use super::warning::CatalogWarning;

/// Rows of integer ids, stored end to end: row `n` is `items[starts[n]..starts[n + 1]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rows {
    starts: Vec<usize>,
    items: Vec<u32>,
}

impl Rows {
    fn new() -> Rows {
        Rows {
            starts: vec![0],
            items: Vec::new(),
        }
    }

    fn push_row(&mut self, row: impl IntoIterator<Item = u32>) {
        self.items.extend(row);
        self.starts.push(self.items.len());
    }

    fn row(&self, row: usize) -> &[u32] {
        let start = self.starts.get(row).copied().unwrap_or(0);
        let end = self.starts.get(row + 1).copied().unwrap_or(start);
        self.items.get(start..end).unwrap_or(&[])
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// How many membership and hierarchy relations (`memberOf`, `hasMember`, `childOf`,
/// `parentOf`, both directions counted) the catalog holds, and how many name an entity it does
/// not hold. A freshly started Backstage returns groups whose members are not there yet: a
/// high dangling fraction means the read is not consistent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelationStats {
    pub membership_relations: usize,
    pub dangling: usize,
}

impl RelationStats {
    /// `dangling / membership_relations`, 0 when there are none.
    pub fn dangling_fraction(&self) -> f64 {
        if self.membership_relations == 0 {
            return 0.0;
        }
        // Counts far below 2^52: exact as floating point.
        #[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
        let fraction = self.dangling as f64 / self.membership_relations as f64;
        fraction
    }
}

/// Users' direct groups and groups' closed ancestors, over interned ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership<'a> {
    /// Every group of the catalog, in reference order; a group's id is its position here.
    groups: Vec<&'a EntityRef>,
    /// Every user of the catalog, in reference order.
    users: Vec<&'a EntityRef>,
    /// Per user, their direct groups (group ids, sorted).
    direct: Rows,
    /// Per group, every group above it (group ids, sorted), itself excluded.
    ancestors: Rows,
    pub stats: RelationStats,
}

impl<'a> Membership<'a> {
    /// Every group, in reference order.
    pub fn groups(&self) -> &[&'a EntityRef] {
        &self.groups
    }

    /// Every user, in reference order.
    pub fn users(&self) -> &[&'a EntityRef] {
        &self.users
    }

    fn resolve<'s>(&'s self, ids: &'s [u32]) -> impl Iterator<Item = &'a EntityRef> + 's {
        ids.iter().filter_map(|id| {
            usize::try_from(*id)
                .ok()
                .and_then(|id| self.groups.get(id).copied())
        })
    }

    /// The groups the `user`-th user is a direct member of.
    pub fn direct_groups(&self, user: usize) -> impl Iterator<Item = &'a EntityRef> + '_ {
        self.resolve(self.direct.row(user))
    }

    /// The groups above the `group`-th group, itself excluded (also in a cycle).
    pub fn ancestors(&self, group: usize) -> impl Iterator<Item = &'a EntityRef> + '_ {
        self.resolve(self.ancestors.row(group))
    }

    /// The direct groups of the `user`-th user, as positions in [`Membership::groups`].
    pub fn direct_group_ids(&self, user: usize) -> &[u32] {
        self.direct.row(user)
    }

    /// The ancestors of the `group`-th group, as positions in [`Membership::groups`].
    pub fn ancestor_ids(&self, group: usize) -> &[u32] {
        self.ancestors.row(group)
    }

    /// Entries the closure holds (direct memberships plus ancestors): what the snapshot pays.
    pub fn entries(&self) -> usize {
        self.direct.len() + self.ancestors.len()
    }

    /// Every group `user` belongs to, directly or through nesting; `None` for an unknown user.
    pub fn closed_groups_of(&self, user: &EntityRef) -> Option<BTreeSet<&'a EntityRef>> {
        let position = self.users.binary_search(&user).ok()?;
        let mut closed = BTreeSet::new();
        for &group in self.direct.row(position) {
            closed.extend(self.resolve(&[group]));
            let row = usize::try_from(group).map_or(&[][..], |group| self.ancestors.row(group));
            closed.extend(self.resolve(row));
        }
        Some(closed)
    }
}

/// The group closure of the last build, reused while no group's parents change: a change
/// to users (or to anything but the hierarchy) needs no closure walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClosureCache {
    /// Every group, in reference order, when the closure below was computed.
    groups: Vec<EntityRef>,
    /// Their parents (group ids), the closure's only input.
    parents: Rows,
    ancestors: Rows,
    cycles: Vec<CatalogWarning>,
}

/// Closes the hierarchy of every group in `index` and lists every user's direct groups.
/// Warnings: dangling and wrong-kind `memberOf`/`hasMember`/`childOf`/`parentOf` relations, and
/// one per hierarchy cycle.
pub fn close_membership(index: &CatalogIndex) -> (Membership<'_>, Vec<CatalogWarning>) {
    close_membership_cached(index, &mut ClosureCache::default())
}

/// [`close_membership`], walking the hierarchy only when the groups or a group's parents
/// differ from those `cache` was computed for (then `cache` holds the new closure).
pub fn close_membership_cached<'a>(
    index: &'a CatalogIndex,
    cache: &mut ClosureCache,
) -> (Membership<'a>, Vec<CatalogWarning>) {
    let (mut warnings, stats) = check_relations(index);

    let group_entities: Vec<&Entity> = index.of_kind("group").collect();
    let user_entities: Vec<&Entity> = index.of_kind("user").collect();
    let groups: Vec<&EntityRef> = group_entities.iter().map(|g| &g.entity_ref).collect();
    let users: Vec<&EntityRef> = user_entities.iter().map(|u| &u.entity_ref).collect();
    let id_of: HashMap<&EntityRef, u32> = groups.iter().copied().zip(0..).collect();
    let targets = |entity: &Entity, wanted: RelationType| -> Vec<u32> {
        let mut ids: Vec<u32> = entity
            .relations
            .iter()
            .filter(|relation| relation.relation == wanted)
            .filter_map(|relation| id_of.get(&relation.target).copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut parents = Rows::new();
    for group in &group_entities {
        parents.push_row(targets(group, RelationType::ChildOf));
    }
    let mut direct = Rows::new();
    for user in &user_entities {
        direct.push_row(targets(user, RelationType::MemberOf));
    }

    let same_hierarchy = cache.parents == parents
        && cache.groups.len() == groups.len()
        && cache.groups.iter().eq(groups.iter().copied());
    if !same_hierarchy {
        let (ancestors, cycles) = close_groups(&groups, &parents);
        *cache = ClosureCache {
            groups: groups.iter().copied().cloned().collect(),
            parents,
            ancestors,
            cycles,
        };
    }
    warnings.extend(cache.cycles.iter().cloned());
    warnings.sort();
    warnings.dedup();
    let membership = Membership {
        groups,
        users,
        direct,
        ancestors: cache.ancestors.clone(),
        stats,
    };
    (membership, warnings)
}

/// Every group's ancestors (sorted group ids, itself excluded) from its parents, and one
/// warning per cycle.
fn close_groups(groups: &[&EntityRef], parents: &Rows) -> (Rows, Vec<CatalogWarning>) {
    // One walk per group over its ancestors. `seen[g] == stamp` marks groups reached in the
    // current walk, so no set is allocated per group.
    let mut ancestors = Rows::new();
    let mut cyclic: Vec<u32> = Vec::new();
    let mut seen: Vec<u32> = vec![0; groups.len()];
    let mut pending: Vec<u32> = Vec::new();
    let mut reached: Vec<u32> = Vec::new();
    for (group, stamp) in (0..groups.len()).zip(1u32..) {
        reached.clear();
        pending.extend_from_slice(parents.row(group));
        while let Some(parent) = pending.pop() {
            let Some(mark) = usize::try_from(parent).ok().and_then(|p| seen.get_mut(p)) else {
                continue;
            };
            if *mark != stamp {
                *mark = stamp;
                reached.push(parent);
                pending
                    .extend_from_slice(usize::try_from(parent).map_or(&[][..], |p| parents.row(p)));
            }
        }
        let own = u32::try_from(group).unwrap_or(u32::MAX);
        if reached.contains(&own) {
            cyclic.push(own);
        }
        reached.retain(|other| *other != own);
        reached.sort_unstable();
        ancestors.push_row(reached.iter().copied());
    }

    let mut cycles: BTreeSet<Vec<String>> = BTreeSet::new();
    for &group in &cyclic {
        let above = usize::try_from(group).map_or(&[][..], |g| ancestors.row(g));
        let mut cycle: Vec<String> = above
            .iter()
            .copied()
            .filter(|other| {
                usize::try_from(*other)
                    .is_ok_and(|other| ancestors.row(other).binary_search(&group).is_ok())
            })
            .chain(std::iter::once(group))
            .filter_map(|id| usize::try_from(id).ok().and_then(|id| groups.get(id)))
            .map(ToString::to_string)
            .collect();
        cycle.sort();
        cycles.insert(cycle);
    }
    let cycles = cycles
        .into_iter()
        .map(|groups| CatalogWarning::GroupCycle { groups })
        .collect();
    (ancestors, cycles)
}

/// Warnings for membership and hierarchy relations that point nowhere or at the wrong kind,
/// and the counts the consistency guard reads.
fn check_relations(index: &CatalogIndex) -> (Vec<CatalogWarning>, RelationStats) {
    let mut warnings = Vec::new();
    let mut stats = RelationStats::default();
    for entity in index.entities() {
        for relation in &entity.relations {
            let expected = match relation.relation {
                RelationType::MemberOf | RelationType::ChildOf | RelationType::ParentOf => "group",
                RelationType::HasMember => "user",
                RelationType::OwnedBy | RelationType::OwnerOf => continue,
            };
            stats.membership_relations += 1;
            let describe = || {
                (
                    entity.entity_ref.to_string(),
                    relation.relation.to_string(),
                    relation.target.to_string(),
                )
            };
            if !index.contains(&relation.target) {
                stats.dangling += 1;
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
    (warnings, stats)
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

    fn groups_of(membership: &Membership<'_>, user: &str) -> Vec<String> {
        membership
            .closed_groups_of(&r(user))
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn ancestors_of(membership: &Membership<'_>, group: &str) -> Vec<String> {
        let position = membership
            .groups()
            .iter()
            .position(|g| **g == r(group))
            .unwrap();
        membership
            .ancestors(position)
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
        let index = CatalogIndex::new(entities, vec![]);
        let (membership, warnings) = close_membership(&index);
        assert!(warnings.is_empty(), "{warnings:?}");
        let groups = groups_of(&membership, "user:deep");
        assert_eq!(groups.len(), 11);
        assert!(groups.contains(&"group:default/g10".to_owned()));
        assert_eq!(ancestors_of(&membership, "group:g5").len(), 5);
        // The user holds one direct group; the rest is the groups' closure (groups × depth).
        let deep = membership
            .users()
            .iter()
            .position(|u| **u == r("user:deep"))
            .unwrap();
        assert_eq!(membership.direct_groups(deep).count(), 1);
        assert_eq!(membership.entries(), 1 + (0..=10).sum::<usize>());
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
        let index = CatalogIndex::new(entities, vec![]);
        let (membership, warnings) = close_membership(&index);
        assert_eq!(
            groups_of(&membership, "user:u"),
            ["group:default/a", "group:default/b", "group:default/c"]
        );
        // In a cycle each group is above the other, never above itself.
        assert_eq!(ancestors_of(&membership, "group:a"), ["group:default/b"]);
        assert!(ancestors_of(&membership, "group:self").is_empty());
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
        let index = CatalogIndex::new(entities, vec![]);
        let (membership, warnings) = close_membership(&index);
        assert_eq!(groups_of(&membership, "user:u"), ["group:default/a"]);
        // 3 dangling (a childOf gone, u memberOf missing, b hasMember nobody) of 7 membership
        // relations (also u memberOf a and u memberOf svc, and their mirrors on a and svc).
        assert_eq!(
            membership.stats,
            RelationStats {
                membership_relations: 7,
                dangling: 3
            }
        );
        assert!((membership.stats.dangling_fraction() - 3.0 / 7.0).abs() < 1e-9);
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
        let index = CatalogIndex::new(entities, vec![]);
        let (membership, warnings) = close_membership(&index);
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
