//! Ownership: which groups (or users) own which tool resources.
//!
//! A catalog entity (usually a Component, Resource or System) stands for tool resources
//! through annotations in `metadata.annotations`. Which annotation keys name which resource
//! kind is [`OwnershipAnnotations`]: by default one key per kind,
//!
//! | Annotation | Resource kind | Resource id | Example value |
//! |---|---|---|---|
//! | `meshgate.io/airflow-dag` | `airflow.dag` | DAG id (case kept; `[A-Za-z0-9_.-]+`) | `etl_daily` |
//! | `buildkite.com/pipeline-slug` | `buildkite.pipeline` | `org/pipeline`, lowercased | `acme/deploy` |
//! | `meshgate.io/airbyte-connection` | `airbyte.connection` | connection id (UUID), lowercased | `3f0c…` |
//! | `meshgate.io/service-host` | `service.host` | host name, lowercased, no trailing dot | `orders.svc.internal` |
//!
//! and the control-plane configuration (`catalog.ownership_annotations`) can give each kind
//! other keys. `buildkite.com/pipeline-slug` is the annotation of Backstage's Buildkite
//! plugin, so entities already set up for it need nothing more. Every value may list several
//! ids separated by commas (`etl_daily, etl_hourly`), and an entity carrying several keys of one
//! kind names the ids of all of them. The owners of those resources are the entity's owners:
//! the targets of its `ownedBy` relations, which come from `spec.owner` (a group, or a user).
//!
//! An entity that carries none of the configured keys but an annotation that looks like a
//! tool's ([`looks_like_tool_annotation`]) is reported ([`CatalogWarning::UnmappedAnnotation`]):
//! it is probably meant to protect something and protects nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use meshgate_core::snapshot::OwnedInput;

use super::index::CatalogIndex;
use super::model::{Entity, RelationType};
use super::warning::CatalogWarning;

pub const AIRFLOW_DAG_ANNOTATION: &str = "meshgate.io/airflow-dag";
pub const BUILDKITE_PIPELINE_ANNOTATION: &str = "buildkite.com/pipeline-slug";
pub const AIRBYTE_CONNECTION_ANNOTATION: &str = "meshgate.io/airbyte-connection";
pub const SERVICE_HOST_ANNOTATION: &str = "meshgate.io/service-host";

/// Longest name part of an annotation key (after the `/`), as Backstage and Kubernetes allow.
pub const MAX_KEY_NAME_CHARS: usize = 63;
/// Longest prefix of an annotation key (before the `/`): a DNS name.
pub const MAX_KEY_PREFIX_CHARS: usize = 253;

/// Entity kinds (lowercase) whose annotations are checked for tool look-alikes.
pub const PROTECTED_LOOKING_KINDS: [&str; 3] = ["component", "resource", "system"];

/// A kind of tool resource whose ownership snapshots carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    AirflowDag,
    BuildkitePipeline,
    AirbyteConnection,
    ServiceHost,
}

impl ResourceKind {
    /// Every kind, in documentation order.
    pub const ALL: [ResourceKind; 4] = [
        ResourceKind::AirflowDag,
        ResourceKind::BuildkitePipeline,
        ResourceKind::AirbyteConnection,
        ResourceKind::ServiceHost,
    ];

    /// The kind as snapshots, rules (`when.owns.kind`) and views name it: `tool.thing`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::AirflowDag => "airflow.dag",
            ResourceKind::BuildkitePipeline => "buildkite.pipeline",
            ResourceKind::AirbyteConnection => "airbyte.connection",
            ResourceKind::ServiceHost => "service.host",
        }
    }

    /// The kind named `name` (exactly as [`ResourceKind::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<ResourceKind> {
        ResourceKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// The annotation keys read for this kind when the configuration names none.
    pub fn default_annotations(self) -> &'static [&'static str] {
        match self {
            ResourceKind::AirflowDag => &[AIRFLOW_DAG_ANNOTATION],
            ResourceKind::BuildkitePipeline => &[BUILDKITE_PIPELINE_ANNOTATION],
            ResourceKind::AirbyteConnection => &[AIRBYTE_CONNECTION_ANNOTATION],
            ResourceKind::ServiceHost => &[SERVICE_HOST_ANNOTATION],
        }
    }

    /// The resource id one listed value names, or why it names none.
    pub fn normalize(self, value: &str) -> Result<String, &'static str> {
        match self {
            ResourceKind::AirflowDag => airflow_dag(value),
            ResourceKind::BuildkitePipeline => buildkite_pipeline(value),
            ResourceKind::AirbyteConnection => airbyte_connection(value),
            ResourceKind::ServiceHost => service_host(value),
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which annotation keys name resources of which kind. Every kind has at least one key and a
/// key names one kind only. [`Default`] is [`ResourceKind::default_annotations`] for every kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipAnnotations {
    /// In [`ResourceKind::ALL`] order; keys in the order configured.
    keys: Vec<(ResourceKind, Vec<String>)>,
}

impl Default for OwnershipAnnotations {
    fn default() -> Self {
        OwnershipAnnotations {
            keys: ResourceKind::ALL
                .into_iter()
                .map(|kind| {
                    let keys = kind.default_annotations().iter();
                    (kind, keys.map(|key| (*key).to_owned()).collect())
                })
                .collect(),
        }
    }
}

/// A mapping from kinds to annotation keys that cannot be used. [`AnnotationsError::field`]
/// says where, relative to the mapping (`airflow.dag[1]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationsError {
    #[error("`{kind}` is not a resource kind meshgate reads (airflow.dag, buildkite.pipeline, airbyte.connection, service.host)")]
    UnknownKind { kind: String },
    #[error("must list at least one annotation key")]
    NoKeys { kind: ResourceKind },
    #[error("`{key}` is not a Backstage annotation key ([prefix/]name): {reason}")]
    BadKey {
        kind: ResourceKind,
        position: usize,
        key: String,
        reason: &'static str,
    },
    #[error("`{key}` is listed twice")]
    Repeated {
        kind: ResourceKind,
        position: usize,
        key: String,
    },
    #[error("`{key}` already names `{other}`; a key names one resource kind")]
    SharedKey {
        kind: ResourceKind,
        position: usize,
        key: String,
        other: ResourceKind,
    },
}

impl AnnotationsError {
    /// Where the problem is, relative to the mapping: the kind, or the kind and the key's
    /// position in its list.
    pub fn field(&self) -> String {
        match self {
            AnnotationsError::UnknownKind { kind } => kind.clone(),
            AnnotationsError::NoKeys { kind } => kind.to_string(),
            AnnotationsError::BadKey { kind, position, .. }
            | AnnotationsError::Repeated { kind, position, .. }
            | AnnotationsError::SharedKey { kind, position, .. } => format!("{kind}[{position}]"),
        }
    }
}

impl OwnershipAnnotations {
    /// The defaults, with the keys of every kind in `configured` instead of that kind's
    /// defaults. Kinds not named keep their default keys.
    pub fn new(configured: &BTreeMap<String, Vec<String>>) -> Result<Self, AnnotationsError> {
        let mut mapping = OwnershipAnnotations::default();
        for (name, keys) in configured {
            let kind = ResourceKind::from_name(name)
                .ok_or_else(|| AnnotationsError::UnknownKind { kind: name.clone() })?;
            if keys.is_empty() {
                return Err(AnnotationsError::NoKeys { kind });
            }
            for (position, key) in keys.iter().enumerate() {
                check_annotation_key(key).map_err(|reason| AnnotationsError::BadKey {
                    kind,
                    position,
                    key: key.clone(),
                    reason,
                })?;
            }
            if let Some((_, slot)) = mapping.keys.iter_mut().find(|(k, _)| *k == kind) {
                slot.clone_from(keys);
            }
        }
        // Only now are the other kinds' final keys known.
        let mut seen: BTreeMap<&str, ResourceKind> = BTreeMap::new();
        for (kind, keys) in &mapping.keys {
            for (position, key) in keys.iter().enumerate() {
                if let Some(other) = seen.insert(key, *kind) {
                    let error = if other == *kind {
                        AnnotationsError::Repeated {
                            kind: *kind,
                            position,
                            key: key.clone(),
                        }
                    } else {
                        // Report it on the kind the configuration named, when only one did.
                        let (kind, other, position) = if configured.contains_key(kind.as_str()) {
                            (*kind, other, position)
                        } else {
                            let position = mapping
                                .keys_of(other)
                                .iter()
                                .position(|k| k == key)
                                .unwrap_or_default();
                            (other, *kind, position)
                        };
                        AnnotationsError::SharedKey {
                            kind,
                            position,
                            key: key.clone(),
                            other,
                        }
                    };
                    return Err(error);
                }
            }
        }
        Ok(mapping)
    }

    /// The keys read for `kind`.
    pub fn keys_of(&self, kind: ResourceKind) -> &[String] {
        self.keys
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(&[], |(_, keys)| keys.as_slice())
    }

    /// Every (kind, key), kinds in [`ResourceKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (ResourceKind, &str)> {
        self.keys
            .iter()
            .flat_map(|(kind, keys)| keys.iter().map(move |key| (*kind, key.as_str())))
    }

    /// Whether `key` names a resource kind.
    pub fn contains(&self, key: &str) -> bool {
        self.iter().any(|(_, k)| k == key)
    }
}

/// Checks a Backstage annotation key, `[prefix/]name`: the prefix a DNS name (lowercase
/// labels of letters, digits and `-`, separated by `.`), the name 1 to 63 letters, digits,
/// `-`, `_` or `.`, starting and ending with a letter or digit. Says why it is not one.
pub fn check_annotation_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("it is empty");
    }
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if name.contains('/') {
        return Err("it has more than one `/`");
    }
    if let Some(prefix) = prefix {
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if prefix.is_empty()
            || prefix.len() > MAX_KEY_PREFIX_CHARS
            || !prefix.split('.').all(label_ok)
        {
            return Err("the prefix before `/` must be a DNS name: lowercase letters, digits, `-` and `.`, at most 253 characters");
        }
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty()
        || name.len() > MAX_KEY_NAME_CHARS
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || !edge_ok(name.chars().next())
        || !edge_ok(name.chars().last())
    {
        return Err("the name must be 1 to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit");
    }
    Ok(())
}

/// Whether an annotation key looks like one that names a tool resource: it mentions Airflow,
/// Buildkite or Airbyte, is under `meshgate.io/`, or its name ends in `-dag`, `dag-id`,
/// `pipeline-slug` or `connection` (compared ignoring case). A Component, Resource or System
/// carrying such a key and none of the configured ones is reported.
pub fn looks_like_tool_annotation(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let name = key.rsplit('/').next().unwrap_or_default();
    ["airflow", "buildkite", "airbyte"]
        .iter()
        .any(|tool| key.contains(tool))
        || key.starts_with("meshgate.io/")
        || ["-dag", "dag-id", "pipeline-slug", "connection"]
            .iter()
            .any(|end| name.ends_with(end))
}

fn airflow_dag(value: &str) -> Result<String, &'static str> {
    // Airflow's own rule for DAG ids (`KEY_REGEX`).
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        Ok(value.to_owned())
    } else {
        Err("a DAG id has only letters, digits, `_`, `.` and `-`")
    }
}

fn buildkite_pipeline(value: &str) -> Result<String, &'static str> {
    match value.split_once('/') {
        Some((org, pipeline))
            if !org.is_empty()
                && !pipeline.is_empty()
                && !pipeline.contains('/')
                && !value.contains(char::is_whitespace) =>
        {
            Ok(value.to_lowercase())
        }
        _ => Err("expected `organization-slug/pipeline-slug`"),
    }
}

fn airbyte_connection(value: &str) -> Result<String, &'static str> {
    if value.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        Ok(value.to_ascii_lowercase())
    } else {
        Err("a connection id is a UUID")
    }
}

fn service_host(value: &str) -> Result<String, &'static str> {
    let host = value.strip_suffix('.').unwrap_or(value);
    if !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
    {
        Ok(host.to_lowercase())
    } else {
        Err("expected a host name, optionally with a port")
    }
}

/// The `(kind, id)` resources `entity`'s annotations name under `annotations`, sorted and
/// deduplicated, with warnings for values that name none.
pub fn resources_of(
    entity: &Entity,
    annotations: &OwnershipAnnotations,
) -> (Vec<(String, String)>, Vec<CatalogWarning>) {
    let mut resources = BTreeSet::new();
    let mut warnings = Vec::new();
    for (kind, key) in annotations.iter() {
        let Some(value) = entity.annotations.get(key) else {
            continue;
        };
        let mut warn = |reason: &str| {
            warnings.push(CatalogWarning::InvalidAnnotation {
                entity: entity.entity_ref.to_string(),
                annotation: key.to_owned(),
                reason: reason.to_owned(),
            });
        };
        let listed: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .collect();
        if listed.is_empty() {
            warn("empty value");
        }
        for item in listed {
            match kind.normalize(item) {
                Ok(id) => {
                    resources.insert((kind.as_str().to_owned(), id));
                }
                Err(reason) => warn(&format!("`{item}`: {reason}")),
            }
        }
    }
    (resources.into_iter().collect(), warnings)
}

/// The warning for an entity that looks meant to protect a tool resource and protects none:
/// a Component, Resource or System with no configured key and at least one key that
/// [`looks_like_tool_annotation`].
pub fn unmapped_annotation(
    entity: &Entity,
    annotations: &OwnershipAnnotations,
) -> Option<CatalogWarning> {
    if !PROTECTED_LOOKING_KINDS.contains(&entity.entity_ref.kind()) {
        return None;
    }
    let keys = entity.annotations.keys();
    if keys.clone().any(|key| annotations.contains(key)) {
        return None;
    }
    let looks: Vec<String> = keys
        .filter(|key| looks_like_tool_annotation(key))
        .cloned()
        .collect();
    (!looks.is_empty()).then(|| CatalogWarning::UnmappedAnnotation {
        entity: entity.entity_ref.to_string(),
        annotations: looks,
    })
}

/// The owners of `entity`: its `ownedBy` targets that the catalog holds and that are groups or
/// users, as sorted reference strings; warnings for the others.
pub fn owners_of(index: &CatalogIndex, entity: &Entity) -> (Vec<String>, Vec<CatalogWarning>) {
    let mut owners = BTreeSet::new();
    let mut warnings = Vec::new();
    for relation in &entity.relations {
        if relation.relation != RelationType::OwnedBy {
            continue;
        }
        // The entity and relation are spelled out only for a warning.
        let (name, relation_name) = (
            || entity.entity_ref.text(),
            || relation.relation.to_string(),
        );
        let target = relation.target.text();
        if !index.contains(&relation.target) {
            warnings.push(CatalogWarning::DanglingRef {
                entity: name(),
                relation: relation_name(),
                target,
            });
        } else if relation.target.is_group() || relation.target.is_user() {
            owners.insert(target);
        } else {
            warnings.push(CatalogWarning::UnexpectedTargetKind {
                entity: name(),
                relation: relation_name(),
                target,
            });
        }
    }
    (owners.into_iter().collect(), warnings)
}

/// Every resource named by an annotation of `annotations` in `index`, with its owners, sorted
/// by `(kind, id)`. A resource named by several entities is published once with the union of
/// their owners. Entities that look meant to protect a resource and carry none of the keys are
/// warned about ([`unmapped_annotation`]).
pub fn owned_resources(
    index: &CatalogIndex,
    annotations: &OwnershipAnnotations,
) -> (Vec<OwnedInput>, Vec<CatalogWarning>) {
    let mut warnings = Vec::new();
    // (kind, id) → (owners, entities naming it)
    let mut owned: BTreeMap<(String, String), (BTreeSet<String>, BTreeSet<String>)> =
        BTreeMap::new();
    for entity in index.entities() {
        let (resources, mut found) = resources_of(entity, annotations);
        warnings.append(&mut found);
        if resources.is_empty() {
            warnings.extend(unmapped_annotation(entity, annotations));
            continue;
        }
        let (owners, mut found) = owners_of(index, entity);
        warnings.append(&mut found);
        for (kind, id) in resources {
            if owners.is_empty() {
                warnings.push(CatalogWarning::UnownedResource {
                    entity: entity.entity_ref.to_string(),
                    kind: kind.clone(),
                    id: id.clone(),
                });
            }
            let (all_owners, entities) = owned.entry((kind, id)).or_default();
            all_owners.extend(owners.iter().cloned());
            entities.insert(entity.entity_ref.text());
        }
    }
    let mut resources = Vec::with_capacity(owned.len());
    for ((kind, id), (owners, entities)) in owned {
        if entities.len() > 1 {
            warnings.push(CatalogWarning::SharedResource {
                kind: kind.clone(),
                id: id.clone(),
                entities: entities.into_iter().collect(),
            });
        }
        resources.push(OwnedInput {
            kind,
            id,
            owners: owners.into_iter().collect(),
        });
    }
    warnings.sort();
    warnings.dedup();
    (resources, warnings)
}

/// The annotations of the entities that name each owned resource, restricted to the keys it
/// was computed for: what the access policy's `unless_annotation` conditions read. Only
/// resources carrying at least one of the keys are held; one that is not held carries none of
/// them, but only for a key it [`ResourceAnnotations::computed_for`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAnnotations {
    keys: BTreeSet<String>,
    /// kind → id → (key, value) pairs, the union over the entities naming the resource.
    resources: BTreeMap<String, BTreeMap<String, BTreeSet<(String, String)>>>,
}

impl ResourceAnnotations {
    /// Whether `key` was among the keys read (otherwise nothing is known about it).
    pub fn computed_for(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    /// The values of `key` on the entities naming resource `kind`/`id`, sorted; empty when
    /// none carries it. `None` when `key` was not computed.
    pub fn values(&self, kind: &str, id: &str, key: &str) -> Option<Vec<&str>> {
        if !self.computed_for(key) {
            return None;
        }
        let pairs = self.resources.get(kind).and_then(|ids| ids.get(id));
        Some(
            pairs
                .into_iter()
                .flatten()
                .filter(|(k, _)| k == key)
                .map(|(_, value)| value.as_str())
                .collect(),
        )
    }

    /// How many resources carry at least one of the keys.
    pub fn len(&self) -> usize {
        self.resources.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

/// For every resource [`owned_resources`] publishes from `index`, the `(key, value)`
/// annotations among `keys` of the entities that name it (the union when several do). With no
/// keys nothing is read.
pub fn resource_annotations(
    index: &CatalogIndex,
    annotations: &OwnershipAnnotations,
    keys: &BTreeSet<String>,
) -> ResourceAnnotations {
    let mut found = ResourceAnnotations {
        keys: keys.clone(),
        resources: BTreeMap::new(),
    };
    if keys.is_empty() {
        return found;
    }
    for entity in index.entities() {
        let pairs: Vec<(&String, &String)> = entity
            .annotations
            .iter()
            .filter(|(key, _)| keys.contains(*key))
            .collect();
        if pairs.is_empty() {
            continue;
        }
        let (resources, _) = resources_of(entity, annotations);
        for (kind, id) in resources {
            let held = found
                .resources
                .entry(kind)
                .or_default()
                .entry(id)
                .or_default();
            held.extend(
                pairs
                    .iter()
                    .map(|(key, value)| ((*key).clone(), (*value).clone())),
            );
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::model::RelationSource;
    use super::*;

    fn index(values: &[serde_json::Value]) -> CatalogIndex {
        let entities = values.iter().map(|value| {
            Entity::from_value(value, "t", RelationSource::Spec)
                .0
                .unwrap()
        });
        CatalogIndex::new(entities, Vec::new())
    }

    fn component(
        name: &str,
        owner: Option<&str>,
        annotations: serde_json::Value,
    ) -> serde_json::Value {
        json!({"kind": "Component", "metadata": {"name": name, "annotations": annotations},
               "spec": {"owner": owner, "type": "service"}})
    }

    fn group(name: &str) -> serde_json::Value {
        json!({"kind": "Group", "metadata": {"name": name}, "spec": {"type": "team"}})
    }

    #[test]
    fn annotations_map_to_resources() {
        let index = index(&[
            group("data-eng"),
            group("ci-admins"),
            group("platform"),
            component(
                "etl",
                Some("Data-Eng"),
                json!({
                    AIRFLOW_DAG_ANNOTATION: "etl_daily, etl_hourly",
                    AIRBYTE_CONNECTION_ANNOTATION: "3F0C5D2E-0000-4000-8000-00000000AB12",
                    "backstage.io/techdocs-ref": "dir:."
                }),
            ),
            component(
                "deploy",
                Some("group:default/ci-admins"),
                json!({
                    BUILDKITE_PIPELINE_ANNOTATION: "Acme/Deploy"
                }),
            ),
            component(
                "orders",
                Some("platform"),
                json!({
                    SERVICE_HOST_ANNOTATION: "Orders.SVC.internal."
                }),
            ),
        ]);
        let (owned, warnings) = owned_resources(&index, &OwnershipAnnotations::default());
        assert!(warnings.is_empty(), "{warnings:?}");
        let flat: Vec<(String, String, Vec<String>)> = owned
            .into_iter()
            .map(|o| (o.kind, o.id, o.owners))
            .collect();
        let row = |kind: &str, id: &str, owner: &str| {
            (kind.to_owned(), id.to_owned(), vec![owner.to_owned()])
        };
        assert_eq!(
            flat,
            [
                row(
                    "airbyte.connection",
                    "3f0c5d2e-0000-4000-8000-00000000ab12",
                    "group:default/data-eng"
                ),
                row("airflow.dag", "etl_daily", "group:default/data-eng"),
                row("airflow.dag", "etl_hourly", "group:default/data-eng"),
                row(
                    "buildkite.pipeline",
                    "acme/deploy",
                    "group:default/ci-admins"
                ),
                row(
                    "service.host",
                    "orders.svc.internal",
                    "group:default/platform"
                ),
            ]
        );
    }

    #[test]
    fn bad_values_missing_and_shared_owners_are_reported() {
        let index = index(&[
            group("a"),
            group("b"),
            json!({"kind": "User", "metadata": {"name": "solo"}}),
            component("one", Some("a"), json!({AIRFLOW_DAG_ANNOTATION: "shared"})),
            component("two", Some("b"), json!({AIRFLOW_DAG_ANNOTATION: "shared"})),
            component(
                "mine",
                Some("user:solo"),
                json!({AIRFLOW_DAG_ANNOTATION: "personal"}),
            ),
            component("orphan", None, json!({AIRFLOW_DAG_ANNOTATION: "orphan"})),
            component(
                "ghost",
                Some("gone"),
                json!({BUILDKITE_PIPELINE_ANNOTATION: "no-slash"}),
            ),
            component("blank", Some("a"), json!({AIRFLOW_DAG_ANNOTATION: " , "})),
        ]);
        let (owned, warnings) = owned_resources(&index, &OwnershipAnnotations::default());
        let shared = owned.iter().find(|o| o.id == "shared").unwrap();
        assert_eq!(shared.owners, ["group:default/a", "group:default/b"]);
        let personal = owned.iter().find(|o| o.id == "personal").unwrap();
        assert_eq!(personal.owners, ["user:default/solo"]);
        let orphan = owned.iter().find(|o| o.id == "orphan").unwrap();
        assert!(orphan.owners.is_empty());
        assert_eq!(owned.len(), 3);
        let kinds: Vec<String> = warnings.iter().map(|w| format!("{w}")).collect();
        assert_eq!(warnings.len(), 4, "{kinds:#?}");
        assert!(warnings.contains(&CatalogWarning::SharedResource {
            kind: "airflow.dag".into(),
            id: "shared".into(),
            entities: vec![
                "component:default/one".into(),
                "component:default/two".into()
            ],
        }));
        assert!(warnings.contains(&CatalogWarning::UnownedResource {
            entity: "component:default/orphan".into(),
            kind: "airflow.dag".into(),
            id: "orphan".into(),
        }));
        assert!(warnings
            .iter()
            .any(|w| matches!(w, CatalogWarning::InvalidAnnotation { entity, .. } if entity == "component:default/ghost")));
        assert!(warnings
            .iter()
            .any(|w| matches!(w, CatalogWarning::InvalidAnnotation { reason, .. } if reason == "empty value")));
    }

    fn configured(pairs: &[(&str, &[&str])]) -> Result<OwnershipAnnotations, AnnotationsError> {
        let map: BTreeMap<String, Vec<String>> = pairs
            .iter()
            .map(|(kind, keys)| {
                (
                    (*kind).to_owned(),
                    keys.iter().map(|key| (*key).to_owned()).collect(),
                )
            })
            .collect();
        OwnershipAnnotations::new(&map)
    }

    #[test]
    fn configured_keys_replace_the_defaults_of_their_kind_only() {
        let mapping = configured(&[(
            "airflow.dag",
            &["airflow.apache.org/dag-id", AIRFLOW_DAG_ANNOTATION],
        )])
        .unwrap();
        assert_eq!(
            mapping.keys_of(ResourceKind::AirflowDag),
            ["airflow.apache.org/dag-id", AIRFLOW_DAG_ANNOTATION]
        );
        assert_eq!(
            mapping.keys_of(ResourceKind::BuildkitePipeline),
            [BUILDKITE_PIPELINE_ANNOTATION]
        );
        assert_eq!(configured(&[]).unwrap(), OwnershipAnnotations::default());
        let defaults = OwnershipAnnotations::default();
        let pairs: Vec<(ResourceKind, &str)> = defaults.iter().collect();
        assert_eq!(
            pairs,
            [
                (ResourceKind::AirflowDag, AIRFLOW_DAG_ANNOTATION),
                (
                    ResourceKind::BuildkitePipeline,
                    BUILDKITE_PIPELINE_ANNOTATION
                ),
                (
                    ResourceKind::AirbyteConnection,
                    AIRBYTE_CONNECTION_ANNOTATION
                ),
                (ResourceKind::ServiceHost, SERVICE_HOST_ANNOTATION),
            ]
        );
    }

    #[test]
    fn bad_mappings_name_the_kind_and_key() {
        let long_name = format!("x/{}", "a".repeat(64));
        let ok_name = format!("x/{}", "a".repeat(63));
        let long_prefix = format!("{}.io/name", "a".repeat(64));
        // (mapping, None when accepted or Some((field, message part)) when refused)
        type Case<'a> = (Vec<(&'a str, Vec<&'a str>)>, Option<(&'a str, &'a str)>);
        let cases: Vec<Case<'_>> = vec![
            (vec![("airflow.dag", vec!["a.io/x", "b"])], None),
            (vec![("service.host", vec![ok_name.as_str()])], None),
            (vec![("airflow.dag", vec!["Dag_ID.v1"])], None),
            (
                vec![("airflow_dag", vec!["a.io/x"])],
                Some(("airflow_dag", "is not a resource kind")),
            ),
            (
                vec![("airflow.dag", vec![])],
                Some(("airflow.dag", "at least one annotation key")),
            ),
            (
                vec![("airflow.dag", vec![""])],
                Some(("airflow.dag[0]", "it is empty")),
            ),
            (
                vec![("airflow.dag", vec!["a.io/x", "a.io/x/y"])],
                Some(("airflow.dag[1]", "more than one `/`")),
            ),
            (
                vec![("airflow.dag", vec!["A.io/x"])],
                Some(("airflow.dag[0]", "the prefix")),
            ),
            (
                vec![("airflow.dag", vec!["a..io/x"])],
                Some(("airflow.dag[0]", "the prefix")),
            ),
            (
                vec![("airflow.dag", vec!["-a.io/x"])],
                Some(("airflow.dag[0]", "the prefix")),
            ),
            (
                vec![("airflow.dag", vec!["/x"])],
                Some(("airflow.dag[0]", "the prefix")),
            ),
            (
                vec![("airflow.dag", vec![long_prefix.as_str()])],
                Some(("airflow.dag[0]", "the prefix")),
            ),
            (
                vec![("airflow.dag", vec!["a.io/"])],
                Some(("airflow.dag[0]", "the name")),
            ),
            (
                vec![("airflow.dag", vec![long_name.as_str()])],
                Some(("airflow.dag[0]", "the name")),
            ),
            (
                vec![("airflow.dag", vec!["a.io/dag id"])],
                Some(("airflow.dag[0]", "the name")),
            ),
            (
                vec![("airflow.dag", vec!["a.io/dag-"])],
                Some(("airflow.dag[0]", "the name")),
            ),
            (
                vec![("airflow.dag", vec![" a.io/dag"])],
                Some(("airflow.dag[0]", "the prefix")),
            ),
            (
                vec![("airflow.dag", vec!["a.io/x", "a.io/x"])],
                Some(("airflow.dag[1]", "`a.io/x` is listed twice")),
            ),
            (
                vec![
                    ("airflow.dag", vec!["a.io/x"]),
                    ("service.host", vec!["a.io/x"]),
                ],
                Some(("service.host[0]", "already names `airflow.dag`")),
            ),
            // A configured key that is another kind's default key.
            (
                vec![(
                    "service.host",
                    vec!["a.io/h", BUILDKITE_PIPELINE_ANNOTATION],
                )],
                Some(("service.host[1]", "already names `buildkite.pipeline`")),
            ),
            (
                vec![("airbyte.connection", vec![SERVICE_HOST_ANNOTATION])],
                Some(("airbyte.connection[0]", "already names `service.host`")),
            ),
        ];
        for (pairs, expected) in cases {
            let pairs: Vec<(&str, &[&str])> = pairs
                .iter()
                .map(|(kind, keys)| (*kind, keys.as_slice()))
                .collect();
            match (configured(&pairs), expected) {
                (Ok(_), None) => {}
                (Err(error), Some((field, text))) => {
                    assert_eq!(error.field(), field, "{pairs:?}: {error}");
                    assert!(error.to_string().contains(text), "{pairs:?}: {error}");
                }
                (result, expected) => panic!("{pairs:?}: {result:?}, wanted {expected:?}"),
            }
        }
    }

    #[test]
    fn a_configured_key_maps_ownership_and_the_default_no_longer_does() {
        let index = index(&[
            group("data-eng"),
            component(
                "etl",
                Some("data-eng"),
                json!({"airflow.apache.org/dag-id": "etl_daily"}),
            ),
            component(
                "old",
                Some("data-eng"),
                json!({AIRFLOW_DAG_ANNOTATION: "old_dag"}),
            ),
            component(
                "ci",
                Some("data-eng"),
                json!({BUILDKITE_PIPELINE_ANNOTATION: "acme/ci"}),
            ),
        ]);
        let mapping = configured(&[("airflow.dag", &["airflow.apache.org/dag-id"])]).unwrap();
        let (owned, _) = owned_resources(&index, &mapping);
        let ids: Vec<(&str, &str)> = owned
            .iter()
            .map(|o| (o.kind.as_str(), o.id.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("airflow.dag", "etl_daily"),
                ("buildkite.pipeline", "acme/ci")
            ]
        );
        // With the defaults, the custom key is ignored and the old one maps.
        let (owned, _) = owned_resources(&index, &OwnershipAnnotations::default());
        let ids: Vec<&str> = owned.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["old_dag", "acme/ci"]);
        // Several keys of one kind on one entity: the union of their ids.
        let both = configured(&[(
            "airflow.dag",
            &["airflow.apache.org/dag-id", AIRFLOW_DAG_ANNOTATION],
        )])
        .unwrap();
        let index = self::index(&[
            group("data-eng"),
            component(
                "etl",
                Some("data-eng"),
                json!({"airflow.apache.org/dag-id": "a", AIRFLOW_DAG_ANNOTATION: "b, a"}),
            ),
        ]);
        let (owned, warnings) = owned_resources(&index, &both);
        assert!(warnings.is_empty(), "{warnings:?}");
        let ids: Vec<&str> = owned.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn protected_looking_entities_without_configured_keys_are_reported() {
        let mut values = vec![group("data-eng")];
        for n in 0..40 {
            values.push(component(
                &format!("dag{n}"),
                Some("data-eng"),
                json!({"airflow.apache.org/dag-id": format!("dag_{n}")}),
            ));
        }
        values.extend([
            // A configured key as well: not reported, even with a look-alike next to it.
            component(
                "mapped",
                Some("data-eng"),
                json!({AIRFLOW_DAG_ANNOTATION: "x", "airflow.apache.org/dag-id": "x"}),
            ),
            // A configured key with a bad value is reported as that, not as unmapped.
            component("bad", Some("data-eng"), json!({AIRFLOW_DAG_ANNOTATION: "a b"})),
            // Nothing tool-like.
            component(
                "docs",
                Some("data-eng"),
                json!({"backstage.io/techdocs-ref": "dir:.", "github.com/project-slug": "a/b"}),
            ),
            // Not a kind that stands for resources.
            json!({"kind": "API", "metadata": {"name": "api", "annotations": {"buildkite.com/pipeline": "a/b"}},
                   "spec": {"owner": "data-eng"}}),
            json!({"kind": "System", "metadata": {"name": "sys", "annotations":
                   {"example.com/nightly-dag": "n", "example.com/warehouse-connection": "w"}},
                   "spec": {"owner": "data-eng"}}),
        ]);
        let index = index(&values);
        let (_, warnings) = owned_resources(&index, &OwnershipAnnotations::default());
        let unmapped: Vec<&CatalogWarning> = warnings
            .iter()
            .filter(|w| w.kind() == "unmapped_annotation")
            .collect();
        assert_eq!(unmapped.len(), 41, "{unmapped:#?}");
        assert!(unmapped.contains(&&CatalogWarning::UnmappedAnnotation {
            entity: "system:default/sys".into(),
            annotations: vec![
                "example.com/nightly-dag".into(),
                "example.com/warehouse-connection".into()
            ],
        }));
        assert!(!unmapped.iter().any(|w| {
            let text = w.to_string();
            text.contains("/mapped") || text.contains("/bad") || text.contains("/docs")
        }));
        let summaries = super::super::warning::summarize(unmapped, 3);
        assert_eq!(summaries.len(), 1);
        let line = summaries[0].to_string();
        assert!(
            line.starts_with("41 × unmapped_annotation, e.g. component:default/dag0 carries `airflow.apache.org/dag-id`")
                && line.ends_with("… 38 more"),
            "{line}"
        );
        // Once the key is configured instead of the default, the DAGs map; now `bad`, which
        // carries only the default key that is no longer read, is the one reported (and the
        // System, whose keys are still unmapped).
        let mapping = configured(&[("airflow.dag", &["airflow.apache.org/dag-id"])]).unwrap();
        let (owned, warnings) = owned_resources(&index, &mapping);
        assert_eq!(owned.len(), 41);
        let unmapped: Vec<String> = warnings
            .iter()
            .filter_map(|w| match w {
                CatalogWarning::UnmappedAnnotation { entity, .. } => Some(entity.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(unmapped, ["component:default/bad", "system:default/sys"]);
    }

    #[test]
    fn tool_look_alikes() {
        for (key, looks) in [
            ("airflow.apache.org/dag-id", true),
            ("acme.com/Buildkite", true),
            ("airbyte.com/connection-id", true),
            ("meshgate.io/service-hosts", true),
            ("example.com/nightly-dag", true),
            ("example.com/dag-id", true),
            ("circleci.com/pipeline-slug", true),
            ("example.com/db-connection", true),
            ("backstage.io/techdocs-ref", false),
            ("github.com/project-slug", false),
            ("example.com/dagger", false),
            ("dag", false),
        ] {
            assert_eq!(looks_like_tool_annotation(key), looks, "{key}");
        }
    }

    #[test]
    fn value_rules() {
        assert!(airflow_dag("etl daily").is_err());
        assert!(buildkite_pipeline("a/b/c").is_err());
        assert!(buildkite_pipeline("/b").is_err());
        assert!(airbyte_connection("not-a-uuid!").is_err());
        assert_eq!(service_host("Host:8080").unwrap(), "host:8080");
        assert!(service_host("a/b").is_err());
        assert!(service_host(".").is_err());
    }

    #[test]
    fn resource_annotations_are_the_union_over_naming_entities_for_the_keys_asked() {
        const ENV: &str = "meshgate.io/environment";
        const TIER: &str = "meshgate.io/tier";
        let index = index(&[
            group("a"),
            component(
                "prod",
                Some("a"),
                json!({AIRFLOW_DAG_ANNOTATION: "shared, prod_only", ENV: "production", TIER: "1"}),
            ),
            component(
                "staging",
                Some("a"),
                json!({AIRFLOW_DAG_ANNOTATION: "shared, staging_only", ENV: "staging"}),
            ),
            component(
                "plain",
                Some("a"),
                json!({BUILDKITE_PIPELINE_ANNOTATION: "acme/plain"}),
            ),
            // Annotated, but names no resource (its value is bad): nothing to attach it to.
            component(
                "bad",
                Some("a"),
                json!({AIRFLOW_DAG_ANNOTATION: "a b", ENV: "production"}),
            ),
            // Not an owned resource at all.
            json!({"kind": "System", "metadata": {"name": "sys", "annotations": {ENV: "production"}}}),
        ]);
        let keys: BTreeSet<String> = [ENV.to_owned()].into();
        let found = resource_annotations(&index, &OwnershipAnnotations::default(), &keys);
        // (kind, id, key, expected values; None when the key was not computed)
        let cases: [(&str, &str, &str, Option<&[&str]>); 8] = [
            (
                "airflow.dag",
                "shared",
                ENV,
                Some(&["production", "staging"]),
            ),
            ("airflow.dag", "prod_only", ENV, Some(&["production"])),
            ("airflow.dag", "staging_only", ENV, Some(&["staging"])),
            ("buildkite.pipeline", "acme/plain", ENV, Some(&[])),
            ("airflow.dag", "unknown", ENV, Some(&[])),
            ("service.host", "sys", ENV, Some(&[])),
            // Not asked for: unknown, even where the entity carries it.
            ("airflow.dag", "prod_only", TIER, None),
            ("airflow.dag", "prod_only", "other.io/x", None),
        ];
        for (kind, id, key, expected) in cases {
            let values = found.values(kind, id, key);
            assert_eq!(values.as_deref(), expected, "{kind} {id} {key}");
        }
        assert_eq!(found.len(), 3);
        assert!(found.computed_for(ENV) && !found.computed_for(TIER));
        // No keys: nothing read, nothing held.
        let none = resource_annotations(&index, &OwnershipAnnotations::default(), &BTreeSet::new());
        assert!(none.is_empty() && !none.computed_for(ENV));
        assert_eq!(none, ResourceAnnotations::default());
    }
}
