//! A catalog index kept between syncs: a source (a catalog file) that changed replaces only
//! its own entities, and only the entities whose relations that touches are mirrored again.
//! The result is always what [`CatalogIndex::from_located`] builds from every source in
//! source order (the test `incremental_updates_match_a_rebuild` checks it after random edits).
//!
//! The parsed entities of each source are kept once, shared (`Arc`) with the bookkeeping of
//! which copy of a reference wins (the first in source order); the index holds each winner
//! with its relations mirrored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::index::CatalogIndex;
use super::model::{Entity, EntityRef, Relation};
use super::warning::CatalogWarning;

/// The located entities and warnings of one source, as read.
pub type SourceRead = (Vec<(String, Entity)>, Vec<CatalogWarning>);

/// One source as read: `(location, entity)` in document order, and its warnings.
#[derive(Debug, Clone, Default)]
struct SourceContent {
    located: Vec<(String, Arc<Entity>)>,
    warnings: Vec<CatalogWarning>,
}

/// A copy of an entity: its source and position in that source's `located`.
type CopyAt = (Arc<Path>, usize);

/// Entities whose indexed copy changed: the copy before and after (`None`: not indexed).
type Changed = HashMap<EntityRef, (Option<Arc<Entity>>, Option<Arc<Entity>>)>;

/// An index over sources (files, keyed by path in source order) that follows their changes.
#[derive(Debug, Clone, Default)]
pub struct LiveIndex {
    index: CatalogIndex,
    sources: BTreeMap<PathBuf, SourceContent>,
    /// Every copy of each reference, in source order; the first is the one indexed.
    copies: HashMap<EntityRef, Vec<CopyAt>>,
    /// Duplicate warnings, by the reference they are about (only references that have some).
    duplicates: HashMap<EntityRef, Vec<CatalogWarning>>,
    /// Kind and namespace strings, held once.
    parts: Parts,
}

/// Kinds and namespaces seen, so that each is one string however many references name it.
#[derive(Debug, Clone, Default)]
struct Parts(HashSet<Arc<str>>);

/// Distinct kinds and namespaces held; more are not shared (a catalog has a handful).
const MAX_PARTS: usize = 1024;

impl Parts {
    fn share(&mut self, part: &Arc<str>) -> Arc<str> {
        if let Some(held) = self.0.get(part) {
            return Arc::clone(held);
        }
        if self.0.len() < MAX_PARTS {
            self.0.insert(Arc::clone(part));
        }
        Arc::clone(part)
    }
}

/// Above this share of changed entities, the index is rebuilt whole (the first read, a
/// checkout that rewrote most files): cheaper than following each change.
const REBUILD_DIVISOR: usize = 4;

impl LiveIndex {
    pub fn index(&self) -> &CatalogIndex {
        &self.index
    }

    pub fn into_index(self) -> CatalogIndex {
        self.index
    }

    /// `entity_ref` sharing the strings of the one held in `copies`, or of the kind and
    /// namespace strings held already when no entity has that reference.
    fn canonical(&mut self, entity_ref: &EntityRef) -> EntityRef {
        match self.copies.get_key_value(entity_ref) {
            Some((held, _)) => held.clone(),
            None => entity_ref.sharing_parts(&mut |part| self.parts.share(part)),
        }
    }

    /// The copy of `entity_ref` that is indexed (the first in source order).
    fn winner(&self, entity_ref: &EntityRef) -> Option<&Arc<Entity>> {
        let (path, position) = self.copies.get(entity_ref)?.first()?;
        let source = self.sources.get(&**path)?;
        source.located.get(*position).map(|(_, entity)| entity)
    }

    fn location(&self, (path, position): &CopyAt) -> Option<(&str, &Entity)> {
        let source = self.sources.get(&**path)?;
        let (location, entity) = source.located.get(*position)?;
        Some((location.as_str(), entity))
    }

    /// Replaces the content of each source named in `changes` (`None`: the source is gone)
    /// and brings the index up to date.
    pub fn apply(&mut self, changes: Vec<(PathBuf, Option<SourceRead>)>) {
        if changes.is_empty() {
            return;
        }
        // The references whose copies change, and which copy of each was indexed before.
        let mut touched: HashSet<EntityRef> = HashSet::new();
        for (path, content) in &changes {
            if let Some(old) = self.sources.get(path) {
                touched.extend(old.located.iter().map(|(_, e)| e.entity_ref.clone()));
            }
            if let Some((located, _)) = content {
                touched.extend(located.iter().map(|(_, e)| e.entity_ref.clone()));
            }
        }
        let before: HashMap<EntityRef, Arc<Entity>> = touched
            .iter()
            .filter_map(|r| Some((r.clone(), Arc::clone(self.winner(r)?))))
            .collect();
        let mut added: Vec<(PathBuf, SourceRead)> = Vec::new();
        for (path, content) in changes {
            let key: Arc<Path> = Arc::from(path.as_path());
            if let Some(old) = self.sources.remove(&path) {
                for (position, (_, entity)) in old.located.iter().enumerate() {
                    if let Some(list) = self.copies.get_mut(&entity.entity_ref) {
                        list.retain(|(at, p)| !(**at == *key && *p == position));
                        if list.is_empty() {
                            self.copies.remove(&entity.entity_ref);
                        }
                    }
                }
            }
            let Some((located, warnings)) = content else {
                continue;
            };
            for (position, (_, entity)) in located.iter().enumerate() {
                if !self.copies.contains_key(&entity.entity_ref) {
                    let shared = entity
                        .entity_ref
                        .sharing_parts(&mut |part| self.parts.share(part));
                    self.copies.insert(shared, Vec::new());
                }
                if let Some(list) = self.copies.get_mut(&entity.entity_ref) {
                    list.push((Arc::clone(&key), position));
                    list.sort();
                }
            }
            added.push((path, (located, warnings)));
        }
        // Every reference is held once: an entity's own and the targets of relations to it
        // share the strings of the key in `copies` (relations are most of the index).
        for (path, (located, warnings)) in added {
            let located = located
                .into_iter()
                .map(|(location, mut entity)| {
                    entity.entity_ref = self.canonical(&entity.entity_ref);
                    for relation in &mut entity.relations {
                        relation.target = self.canonical(&relation.target);
                    }
                    (location, Arc::new(entity))
                })
                .collect();
            self.sources
                .insert(path, SourceContent { located, warnings });
        }
        for entity_ref in &touched {
            self.recheck_duplicates(entity_ref);
        }
        // Entities whose indexed copy now differs: added, removed or changed.
        let changed: Changed = touched
            .into_iter()
            .filter_map(|r| {
                let old = before.get(&r).cloned();
                let new = self.winner(&r).cloned();
                (old != new).then_some((r, (old, new)))
            })
            .collect();
        drop(before);
        let warnings = self.warnings();
        if self.index.is_empty() || changed.len() > self.index.len() / REBUILD_DIVISOR {
            self.rebuild(warnings);
        } else {
            self.update(&changed, warnings);
        }
    }

    /// The index built from scratch from every source.
    fn rebuild(&mut self, warnings: Vec<CatalogWarning>) {
        // The old index is not read: freed first, so the two are never held together.
        self.index = CatalogIndex::default();
        let winners: Vec<Entity> = self
            .copies
            .keys()
            .filter_map(|entity_ref| self.winner(entity_ref))
            .map(|entity| (**entity).clone())
            .collect();
        // Duplicate warnings are in `warnings` already.
        self.index = CatalogIndex::from_unique(winners, warnings);
    }

    /// Every source's warnings and the duplicate warnings.
    fn warnings(&self) -> Vec<CatalogWarning> {
        self.sources
            .values()
            .flat_map(|source| source.warnings.iter().cloned())
            .chain(self.duplicates.values().flatten().cloned())
            .collect()
    }

    /// The duplicate warnings of `entity_ref`: one per later copy that differs from the kept
    /// one, naming both locations.
    fn recheck_duplicates(&mut self, entity_ref: &EntityRef) {
        let mut found = Vec::new();
        if let Some(list) = self.copies.get(entity_ref) {
            let mut copies = list.iter().filter_map(|at| self.location(at));
            if let Some((kept_at, kept)) = copies.next() {
                for (location, entity) in copies {
                    if entity != kept {
                        found.push(CatalogWarning::DuplicateEntity {
                            entity: entity.entity_ref.to_string(),
                            kept: kept_at.to_owned(),
                            dropped: location.to_owned(),
                        });
                    }
                }
            }
        }
        if found.is_empty() {
            self.duplicates.remove(entity_ref);
        } else {
            self.duplicates.insert(entity_ref.clone(), found);
        }
    }

    /// Follows `changed` (reference → indexed copy before and after) in the index: the changed
    /// entities and every entity a changed one has (or had) a relation to get their mirrored
    /// relations again.
    fn update(&mut self, changed: &Changed, warnings: Vec<CatalogWarning>) {
        // Entities whose relations are recomputed, and what changed sources mirror onto them.
        let mut affected: HashSet<EntityRef> = HashSet::new();
        let mut mirrored: HashMap<EntityRef, Vec<Relation>> = HashMap::new();
        let mut added: HashSet<&EntityRef> = HashSet::new();
        for (entity_ref, (old, new)) in changed {
            for entity in old.iter().chain(new) {
                affected.extend(entity.relations.iter().map(|r| r.target.clone()));
            }
            if let Some(new) = new {
                affected.insert(entity_ref.clone());
                if old.is_none() {
                    added.insert(entity_ref);
                }
                for relation in &new.relations {
                    mirrored
                        .entry(relation.target.clone())
                        .or_default()
                        .push(mirror(relation, entity_ref));
                }
            }
        }
        // A new entity also gets the relations that unchanged entities had to it all along.
        if !added.is_empty() {
            for source in self.sources.values() {
                for (_, entity) in &source.located {
                    for relation in &entity.relations {
                        if !added.contains(&relation.target)
                            || changed.contains_key(&entity.entity_ref)
                            || !self
                                .winner(&entity.entity_ref)
                                .is_some_and(|winner| Arc::ptr_eq(winner, entity))
                        {
                            continue;
                        }
                        mirrored
                            .entry(relation.target.clone())
                            .or_default()
                            .push(mirror(relation, &entity.entity_ref));
                    }
                }
            }
        }
        let mut upserts = Vec::new();
        for entity_ref in &affected {
            let Some(own) = self.winner(entity_ref) else {
                continue;
            };
            let mut relations = own.relations.clone();
            // Relations mirrored from unchanged entities stay.
            if let Some(old) = self.index.get(entity_ref) {
                for relation in &old.relations {
                    let source = &relation.target;
                    if changed.contains_key(source) {
                        continue;
                    }
                    let still = mirror(relation, entity_ref);
                    if self
                        .winner(source)
                        .is_some_and(|s| s.relations.contains(&still))
                    {
                        relations.push(relation.clone());
                    }
                }
            }
            relations.extend(mirrored.remove(entity_ref).unwrap_or_default());
            relations.sort();
            relations.dedup();
            relations.shrink_to_fit();
            upserts.push(Entity {
                entity_ref: own.entity_ref.clone(),
                email: own.email.clone(),
                annotations: own.annotations.clone(),
                relations,
            });
        }
        let removed: HashSet<EntityRef> = changed
            .iter()
            .filter(|(_, (_, new))| new.is_none())
            .map(|(entity_ref, _)| entity_ref.clone())
            .collect();
        self.index.update(&removed, upserts, warnings);
    }
}

/// `relation` of `source` as seen from its target.
fn mirror(relation: &Relation, source: &EntityRef) -> Relation {
    Relation {
        relation: relation.relation.inverse(),
        target: source.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::time::{Duration, SystemTime};

    use rand::rngs::StdRng;
    use rand::{Rng as _, SeedableRng as _};

    use super::super::closure::ClosureCache;
    use super::super::dir_source::{load_dir, DirSource};
    use super::super::ownership::OwnershipAnnotations;
    use super::super::snapshot_input::{build_snapshot_input, build_snapshot_input_cached};
    use crate::snapshot::{build, SigningKey};

    /// One catalog document.
    #[derive(Debug, Clone)]
    enum Doc {
        User {
            name: String,
            member_of: Vec<String>,
        },
        Group {
            name: String,
            parent: Option<String>,
            members: Vec<String>,
            children: Vec<String>,
        },
    }

    impl Doc {
        fn render(&self, out: &mut String) {
            let list = |items: &[String]| format!("[{}]", items.join(", "));
            match self {
                Doc::User { name, member_of } => {
                    let _ = write!(
                        out,
                        "---\nkind: User\nmetadata: {{name: {name}}}\nspec: {{profile: {{email: {name}@x.example}}, memberOf: {}}}\n",
                        list(member_of)
                    );
                }
                Doc::Group {
                    name,
                    parent,
                    members,
                    children,
                } => {
                    let parent = parent
                        .as_ref()
                        .map(|p| format!("parent: {p}, "))
                        .unwrap_or_default();
                    let _ = write!(
                        out,
                        "---\nkind: Group\nmetadata: {{name: {name}, annotations: {{meshgate.io/airflow-dag: dag_{name}}}}}\nspec: {{{parent}members: {}, children: {}}}\n",
                        list(members),
                        list(children)
                    );
                }
            }
        }
    }

    /// A name from a small pool, sometimes in another case (references compare
    /// case-insensitively), sometimes one no entity has (a dangling reference).
    fn name(rng: &mut StdRng, prefix: &str, pool: usize) -> String {
        let n = rng.gen_range(0..pool + 2);
        let text = format!("{prefix}{n}");
        if rng.gen_bool(0.2) {
            text.to_uppercase()
        } else {
            text
        }
    }

    fn user(rng: &mut StdRng) -> Doc {
        let groups = rng.gen_range(0..3);
        Doc::User {
            name: name(rng, "u", 40),
            member_of: (0..groups).map(|_| name(rng, "g", 12)).collect(),
        }
    }

    fn group(rng: &mut StdRng) -> Doc {
        Doc::Group {
            name: name(rng, "g", 12),
            parent: rng.gen_bool(0.7).then(|| name(rng, "g", 12)),
            members: (0..rng.gen_range(0..3))
                .map(|_| name(rng, "u", 40))
                .collect(),
            children: (0..rng.gen_range(0..2))
                .map(|_| name(rng, "g", 12))
                .collect(),
        }
    }

    /// One random edit of `files` (documents by file name); its name.
    fn edit(rng: &mut StdRng, files: &mut Vec<(String, Vec<Doc>)>) -> &'static str {
        let file = rng.gen_range(0..files.len());
        let choice = rng.gen_range(0..9);
        if choice == 5 && files.len() > 2 {
            files.remove(file);
            return "delete a file";
        }
        if choice == 6 {
            let Some(doc) = files.get(file).and_then(|(_, docs)| {
                (!docs.is_empty()).then(|| docs[rng.gen_range(0..docs.len())].clone())
            }) else {
                return "none";
            };
            let other = rng.gen_range(0..files.len());
            let docs = &mut files[other].1;
            let at = rng.gen_range(0..=docs.len());
            docs.insert(at, doc);
            return "duplicate an entity into another file";
        }
        if choice == 8 {
            let fresh = format!(
                "{}new{}.yaml",
                ["", "sub/"][rng.gen_range(0..2)],
                rng.gen::<u16>()
            );
            let docs = (0..rng.gen_range(1..4))
                .map(|_| {
                    if rng.gen_bool(0.5) {
                        user(rng)
                    } else {
                        group(rng)
                    }
                })
                .collect();
            files.push((fresh, docs));
            return "add a file";
        }
        let Some((_, docs)) = files.get_mut(file) else {
            return "none";
        };
        let groups: Vec<usize> = (0..docs.len())
            .filter(|&d| matches!(docs[d], Doc::Group { .. }))
            .collect();
        let users: Vec<usize> = (0..docs.len())
            .filter(|&d| matches!(docs[d], Doc::User { .. }))
            .collect();
        match choice {
            0 => {
                docs.push(user(rng));
                "add a user"
            }
            1 if !docs.is_empty() => {
                docs.remove(rng.gen_range(0..docs.len()));
                "remove an entity"
            }
            2 if !users.is_empty() => {
                let at = users[rng.gen_range(0..users.len())];
                let group = name(rng, "g", 12);
                if let Doc::User { member_of, .. } = &mut docs[at] {
                    member_of.clear();
                    member_of.push(group);
                }
                "move a user to another group"
            }
            3 if !groups.is_empty() => {
                let at = groups[rng.gen_range(0..groups.len())];
                let to = rng.gen_bool(0.8).then(|| name(rng, "g", 12));
                if let Doc::Group { parent, .. } = &mut docs[at] {
                    *parent = to;
                }
                "reparent a group"
            }
            4 if groups.len() >= 2 => {
                let (a, b) = (groups[0], groups[groups.len() - 1]);
                let name_of = |doc: &Doc| match doc {
                    Doc::Group { name, .. } | Doc::User { name, .. } => name.clone(),
                };
                let (name_a, name_b) = (name_of(&docs[a]), name_of(&docs[b]));
                if let Doc::Group { parent, .. } = &mut docs[a] {
                    *parent = Some(name_b);
                }
                if let Doc::Group { parent, .. } = &mut docs[b] {
                    *parent = Some(name_a);
                }
                "add a cycle"
            }
            7 => {
                let at = rng.gen_range(0..=docs.len());
                docs.insert(at, group(rng));
                "add a group"
            }
            _ => "none",
        }
    }

    /// Writes every file, with a modification time that moves on every write.
    fn write_all(dir: &std::path::Path, files: &[(String, Vec<Doc>)], round: u64) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for (name, docs) in files {
            let mut text = String::new();
            for doc in docs {
                doc.render(&mut text);
            }
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + round))
                .unwrap();
        }
    }

    #[test]
    fn incremental_updates_match_a_rebuild() {
        let dir = std::env::temp_dir().join(format!("meshgate-live-{}", std::process::id()));
        let key = SigningKey::from_seed("live-test", [9; 32]).unwrap();
        let annotations = OwnershipAnnotations::default();
        let mut rng = StdRng::seed_from_u64(13);
        for run in 0..4 {
            let mut files: Vec<(String, Vec<Doc>)> = (0..5)
                .map(|f| {
                    let docs = (0..30)
                        .map(|_| {
                            if rng.gen_bool(0.6) {
                                user(&mut rng)
                            } else {
                                group(&mut rng)
                            }
                        })
                        .collect();
                    (
                        format!("{}f{f}.yaml", if f % 2 == 0 { "" } else { "sub/" }),
                        docs,
                    )
                })
                .collect();
            write_all(&dir, &files, 0);
            let mut source = DirSource::new(&dir);
            source.refresh().unwrap();
            let mut cache = ClosureCache::default();
            for step in 1..=60 {
                let edits: Vec<&str> = (0..rng.gen_range(1..3))
                    .map(|_| edit(&mut rng, &mut files))
                    .collect();
                write_all(&dir, &files, step);
                source.refresh().unwrap();
                let scratch = load_dir(&dir).unwrap();
                assert!(
                    *source.index() == scratch,
                    "run {run} step {step} after {edits:?}: the kept index differs from a rebuild"
                );
                let kept = build_snapshot_input_cached(source.index(), &annotations, &mut cache);
                let fresh = build_snapshot_input(&scratch, &annotations);
                assert_eq!(kept.warnings, fresh.warnings, "run {run} step {step}");
                assert_eq!(
                    build(&kept.input, 1, 0, &key).unwrap(),
                    build(&fresh.input, 1, 0, &key).unwrap(),
                    "run {run} step {step} after {edits:?}: snapshot bytes differ"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
