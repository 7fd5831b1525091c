//! Ownership: which groups own which tool resources.
//!
//! A catalog entity (usually a Component, Resource or System) stands for tool resources
//! through annotations in `metadata.annotations`:
//!
//! | Annotation | Resource kind | Resource id | Example value |
//! |---|---|---|---|
//! | `meshgate.io/airflow-dag` | `airflow.dag` | DAG id (case kept; `[A-Za-z0-9_.-]+`) | `etl_daily` |
//! | `buildkite.com/pipeline-slug` | `buildkite.pipeline` | `org/pipeline`, lowercased | `acme/deploy` |
//! | `meshgate.io/airbyte-connection` | `airbyte.connection` | connection id (UUID), lowercased | `3f0c…` |
//! | `meshgate.io/service-host` | `service.host` | host name, lowercased, no trailing dot | `orders.svc.internal` |
//!
//! `buildkite.com/pipeline-slug` is the annotation of Backstage's Buildkite plugin, so entities
//! already set up for it need nothing more. Every value may list several ids separated by
//! commas (`etl_daily, etl_hourly`). The owners of those resources are the entity's owners:
//! the targets of its `ownedBy` relations, which come from `spec.owner` (a group, or a user).

use std::collections::{BTreeMap, BTreeSet};

use super::index::CatalogIndex;
use super::model::{Entity, RelationType};
use super::snapshot_input::OwnedInput;
use super::warning::CatalogWarning;

pub const AIRFLOW_DAG_ANNOTATION: &str = "meshgate.io/airflow-dag";
pub const BUILDKITE_PIPELINE_ANNOTATION: &str = "buildkite.com/pipeline-slug";
pub const AIRBYTE_CONNECTION_ANNOTATION: &str = "meshgate.io/airbyte-connection";
pub const SERVICE_HOST_ANNOTATION: &str = "meshgate.io/service-host";

/// One annotation that maps an entity to tool resources.
#[derive(Debug, Clone, Copy)]
pub struct ResourceAnnotation {
    /// The annotation key.
    pub annotation: &'static str,
    /// The resource kind in snapshots, `tool.thing`.
    pub kind: &'static str,
    /// Turns one listed value into the resource id, or says why it is none.
    normalize: fn(&str) -> Result<String, &'static str>,
}

impl ResourceAnnotation {
    /// The resource id one listed value names.
    pub fn normalize(&self, value: &str) -> Result<String, &'static str> {
        (self.normalize)(value)
    }
}

/// Every annotation meshgate reads, in documentation order.
pub const RESOURCE_ANNOTATIONS: &[ResourceAnnotation] = &[
    ResourceAnnotation {
        annotation: AIRFLOW_DAG_ANNOTATION,
        kind: "airflow.dag",
        normalize: airflow_dag,
    },
    ResourceAnnotation {
        annotation: BUILDKITE_PIPELINE_ANNOTATION,
        kind: "buildkite.pipeline",
        normalize: buildkite_pipeline,
    },
    ResourceAnnotation {
        annotation: AIRBYTE_CONNECTION_ANNOTATION,
        kind: "airbyte.connection",
        normalize: airbyte_connection,
    },
    ResourceAnnotation {
        annotation: SERVICE_HOST_ANNOTATION,
        kind: "service.host",
        normalize: service_host,
    },
];

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

/// The `(kind, id)` resources `entity`'s annotations name, sorted and deduplicated, with
/// warnings for values that name none.
pub fn resources_of(entity: &Entity) -> (Vec<(String, String)>, Vec<CatalogWarning>) {
    let mut resources = BTreeSet::new();
    let mut warnings = Vec::new();
    for mapping in RESOURCE_ANNOTATIONS {
        let Some(value) = entity.annotations.get(mapping.annotation) else {
            continue;
        };
        let mut warn = |reason: &str| {
            warnings.push(CatalogWarning::InvalidAnnotation {
                entity: entity.entity_ref.to_string(),
                annotation: mapping.annotation.to_owned(),
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
            match mapping.normalize(item) {
                Ok(id) => {
                    resources.insert((mapping.kind.to_owned(), id));
                }
                Err(reason) => warn(&format!("`{item}`: {reason}")),
            }
        }
    }
    (resources.into_iter().collect(), warnings)
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
        let (name, relation_name, target) = (
            entity.entity_ref.to_string(),
            relation.relation.to_string(),
            relation.target.to_string(),
        );
        if !index.contains(&relation.target) {
            warnings.push(CatalogWarning::DanglingRef {
                entity: name,
                relation: relation_name,
                target,
            });
        } else if relation.target.is_group() || relation.target.is_user() {
            owners.insert(target);
        } else {
            warnings.push(CatalogWarning::UnexpectedTargetKind {
                entity: name,
                relation: relation_name,
                target,
            });
        }
    }
    (owners.into_iter().collect(), warnings)
}

/// Every resource named by an annotation in `index`, with its owners, sorted by `(kind, id)`.
/// A resource named by several entities is published once with the union of their owners.
pub fn owned_resources(index: &CatalogIndex) -> (Vec<OwnedInput>, Vec<CatalogWarning>) {
    let mut warnings = Vec::new();
    // (kind, id) → (owners, entities naming it)
    let mut owned: BTreeMap<(String, String), (BTreeSet<String>, BTreeSet<String>)> =
        BTreeMap::new();
    for entity in index.entities() {
        let (resources, mut found) = resources_of(entity);
        warnings.append(&mut found);
        if resources.is_empty() {
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
            entities.insert(entity.entity_ref.to_string());
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
        let (owned, warnings) = owned_resources(&index);
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
        let (owned, warnings) = owned_resources(&index);
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
}
