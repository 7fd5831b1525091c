//! All entities of one catalog read, keyed by reference, with relations in both directions.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use super::model::{Entity, EntityRef, Relation};
use super::warning::CatalogWarning;

/// One consistent read of a catalog. Built from entities in any order; the result does not
/// depend on that order.
///
/// Entities are kept sorted by reference in one vector, with a hash index beside it: at
/// 160,000 entities a tree keyed by reference spent most of a sync comparing strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogIndex {
    /// Sorted by reference (kind first, so each kind is one run).
    entities: Vec<Entity>,
    /// Position of each reference in `entities`.
    positions: HashMap<EntityRef, usize>,
    /// Problems found while reading the source and building the index.
    warnings: Vec<CatalogWarning>,
}

impl CatalogIndex {
    /// Indexes `entities`, keeping `warnings` from reading them. Locations in duplicate
    /// warnings are the entities' positions in `entities` (`#0`, `#1`, …); sources that know
    /// better use [`CatalogIndex::from_located`].
    pub fn new(
        entities: impl IntoIterator<Item = Entity>,
        warnings: Vec<CatalogWarning>,
    ) -> CatalogIndex {
        let located = entities
            .into_iter()
            .enumerate()
            .map(|(position, entity)| (format!("#{position}"), entity));
        CatalogIndex::from_located(located, warnings)
    }

    /// Indexes `(location, entity)` pairs given in source order (file path order then document
    /// order for files, page order for the API), keeping `warnings` from reading them.
    ///
    /// Entities with the same reference: identical copies collapse silently (a paged API read
    /// can return one twice); for differing ones the first in source order is kept and a
    /// warning names both locations. Every relation whose target is in the index is mirrored
    /// onto the target (`memberOf` ↔ `hasMember`, `childOf` ↔ `parentOf`, `ownedBy` ↔
    /// `ownerOf`), as Backstage's processors emit both directions, so a user listed only in
    /// `Group.spec.members` is still `memberOf` that group. Relations are then sorted and
    /// deduplicated.
    pub fn from_located(
        entities: impl IntoIterator<Item = (String, Entity)>,
        warnings: Vec<CatalogWarning>,
    ) -> CatalogIndex {
        let mut warnings = warnings;
        let mut kept: Vec<(String, Entity)> = Vec::new();
        let mut first: HashMap<EntityRef, usize> = HashMap::new();
        for (location, entity) in entities {
            match first.entry(entity.entity_ref.clone()) {
                Entry::Vacant(slot) => {
                    slot.insert(kept.len());
                    kept.push((location, entity));
                }
                Entry::Occupied(slot) => {
                    if let Some((kept_at, earlier)) = kept.get(*slot.get()) {
                        if *earlier != entity {
                            warnings.push(CatalogWarning::DuplicateEntity {
                                entity: entity.entity_ref.to_string(),
                                kept: kept_at.clone(),
                                dropped: location,
                            });
                        }
                    }
                }
            }
        }
        drop(first);
        CatalogIndex::from_unique(
            kept.into_iter().map(|(_, entity)| entity).collect(),
            warnings,
        )
    }

    /// Indexes entities whose references are all different (duplicates already resolved),
    /// mirroring relations as [`CatalogIndex::from_located`] does.
    pub(crate) fn from_unique(
        mut entities: Vec<Entity>,
        mut warnings: Vec<CatalogWarning>,
    ) -> CatalogIndex {
        entities.sort_unstable_by(|a, b| a.entity_ref.cmp(&b.entity_ref));
        let positions: HashMap<EntityRef, usize> = entities
            .iter()
            .enumerate()
            .map(|(position, entity)| (entity.entity_ref.clone(), position))
            .collect();
        let mirrored: Vec<(usize, Relation)> = entities
            .iter()
            .flat_map(|entity| {
                let positions = &positions;
                entity.relations.iter().filter_map(move |relation| {
                    Some((
                        *positions.get(&relation.target)?,
                        Relation {
                            relation: relation.relation.inverse(),
                            target: entity.entity_ref.clone(),
                        },
                    ))
                })
            })
            .collect();
        for (position, relation) in mirrored {
            if let Some(entity) = entities.get_mut(position) {
                entity.relations.push(relation);
            }
        }
        for entity in &mut entities {
            entity.relations.sort();
            entity.relations.dedup();
            // Kept between syncs by a directory source: no spare capacity.
            entity.relations.shrink_to_fit();
        }
        warnings.sort();
        warnings.dedup();
        CatalogIndex {
            entities,
            positions,
            warnings,
        }
    }

    /// Replaces entities (by reference; new references are added), removes `removed` and
    /// takes `warnings` (sorted here) as the index's warnings. Relations are taken as given:
    /// the caller mirrors them (see [`super::live::LiveIndex`]).
    pub(crate) fn update(
        &mut self,
        removed: &HashSet<EntityRef>,
        upserts: Vec<Entity>,
        mut warnings: Vec<CatalogWarning>,
    ) {
        let mut added = Vec::new();
        for entity in upserts {
            match self
                .positions
                .get(&entity.entity_ref)
                .and_then(|&position| self.entities.get_mut(position))
            {
                Some(slot) => *slot = entity,
                None => added.push(entity),
            }
        }
        if !removed.is_empty() || !added.is_empty() {
            self.entities
                .retain(|entity| !removed.contains(&entity.entity_ref));
            added.sort_unstable_by(|a, b| a.entity_ref.cmp(&b.entity_ref));
            self.entities.extend(added);
            // Two sorted runs: the stable sort merges them in linear time.
            self.entities
                .sort_by(|a, b| a.entity_ref.cmp(&b.entity_ref));
            self.positions = self
                .entities
                .iter()
                .enumerate()
                .map(|(position, entity)| (entity.entity_ref.clone(), position))
                .collect();
        }
        warnings.sort();
        warnings.dedup();
        self.warnings = warnings;
    }

    pub fn get(&self, entity_ref: &EntityRef) -> Option<&Entity> {
        self.entities.get(*self.positions.get(entity_ref)?)
    }

    pub fn contains(&self, entity_ref: &EntityRef) -> bool {
        self.positions.contains_key(entity_ref)
    }

    /// Every entity, in reference order.
    pub fn entities(&self) -> impl Iterator<Item = &Entity> {
        self.entities.iter()
    }

    /// Entities of `kind` (lowercase), in reference order: one run of the sorted entities.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Entity> + 'a {
        let start = self
            .entities
            .partition_point(|entity| entity.entity_ref.kind() < kind);
        let end = self
            .entities
            .partition_point(|entity| entity.entity_ref.kind() <= kind);
        self.entities.get(start..end).unwrap_or(&[]).iter()
    }

    pub fn len(&self) -> usize {
        self.entities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Problems found while reading the source and indexing it, sorted.
    pub fn warnings(&self) -> &[CatalogWarning] {
        &self.warnings
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::model::RelationType;
    use super::*;

    fn entity(reference: &str, relations: &[(RelationType, &str)]) -> Entity {
        Entity {
            entity_ref: EntityRef::parse(reference, None, "default").unwrap(),
            email: None,
            annotations: BTreeMap::new(),
            relations: relations
                .iter()
                .map(|(relation, target)| Relation {
                    relation: *relation,
                    target: EntityRef::parse(target, None, "default").unwrap(),
                })
                .collect(),
        }
    }

    #[test]
    fn relations_are_mirrored_onto_held_targets() {
        let index = CatalogIndex::new(
            [
                entity("group:analytics", &[(RelationType::HasMember, "user:bob")]),
                entity("user:bob", &[]),
                entity("user:alice", &[(RelationType::MemberOf, "group:ghost")]),
            ],
            Vec::new(),
        );
        let bob = index.get(&EntityRef::parse("user:bob", None, "default").unwrap());
        assert_eq!(
            bob.unwrap().relations,
            vec![Relation {
                relation: RelationType::MemberOf,
                target: EntityRef::parse("group:analytics", None, "default").unwrap()
            }]
        );
        assert_eq!(index.len(), 3);
        assert_eq!(index.of_kind("user").count(), 2);
    }

    #[test]
    fn duplicates_keep_the_first_in_source_order_and_name_both_places() {
        // A stray parentless copy after the real group must not strip it from its parent.
        let real = entity("Group:X", &[(RelationType::ChildOf, "group:a")]);
        let stray = entity("group:default/x", &[]);
        let x = EntityRef::parse("group:x", None, "default").unwrap();
        let cases = [
            (&real, &stray, "a.yaml#3", "b.yaml#0", 1),
            (&stray, &real, "a.yaml#3", "b.yaml#0", 0),
        ];
        for (first, second, first_at, second_at, relations) in cases {
            let index = CatalogIndex::from_located(
                [
                    (first_at.to_owned(), first.clone()),
                    (second_at.to_owned(), second.clone()),
                ],
                Vec::new(),
            );
            assert_eq!(index.len(), 1);
            assert_eq!(index.get(&x).unwrap().relations.len(), relations);
            assert_eq!(
                index.warnings(),
                [CatalogWarning::DuplicateEntity {
                    entity: "group:default/x".into(),
                    kept: first_at.into(),
                    dropped: second_at.into(),
                }]
            );
            let text = index.warnings()[0].to_string();
            assert!(
                text.contains(first_at) && text.contains(second_at) && text.contains("kept"),
                "{text}"
            );
        }
        let same = CatalogIndex::new([real.clone(), real], Vec::new());
        assert!(same.warnings().is_empty());
    }
}
