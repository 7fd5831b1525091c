//! Backstage catalog entities as meshgate needs them: entity references, the few spec fields
//! that carry identity and ownership, annotations, and relations.
//!
//! Entity references follow Backstage's `parseEntityRef`: `[kind:][namespace/]name`, where a
//! missing kind and namespace come from context (the field being read, and the namespace of
//! the entity that wrote the reference). Backstage compares references case-insensitively, so
//! meshgate stores every part lowercased and compares exactly.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::warning::CatalogWarning;

/// The namespace of references and entities that name none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// `kind:namespace/name`, every part lowercased.
///
/// The parts are shared strings: a sync clones references by the hundred thousand (indexes,
/// mirrored relations), and a clone is then three reference-count increments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityRef {
    kind: Arc<str>,
    namespace: Arc<str>,
    name: Arc<str>,
}

/// A reference that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("entity reference `{reference}` names no kind, and none is implied here")]
    MissingKind { reference: String },
    #[error("entity reference `{reference}` has an empty {part}")]
    EmptyPart {
        reference: String,
        part: &'static str,
    },
}

impl EntityRef {
    /// A reference from its parts; each must be non-empty and is lowercased.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Result<EntityRef, RefError> {
        let reference = format!("{kind}:{namespace}/{name}");
        for (part, text) in [("kind", kind), ("namespace", namespace), ("name", name)] {
            if text.trim().is_empty() {
                return Err(RefError::EmptyPart { reference, part });
            }
        }
        Ok(EntityRef {
            kind: Arc::from(kind.to_lowercase()),
            namespace: Arc::from(namespace.to_lowercase()),
            name: Arc::from(name.to_lowercase()),
        })
    }

    /// Parses `[kind:][namespace/]name` like Backstage's `parseEntityRef`: a `:` after the first
    /// `/` belongs to the name, a missing kind is `default_kind` (an error when `None`), and a
    /// missing namespace is `default_namespace`.
    pub fn parse(
        reference: &str,
        default_kind: Option<&str>,
        default_namespace: &str,
    ) -> Result<EntityRef, RefError> {
        let colon = reference.find(':');
        let slash = reference.find('/');
        let has_kind = match (colon, slash) {
            (Some(colon), Some(slash)) => colon < slash,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let (kind, rest) = match reference.split_once(':').filter(|_| has_kind) {
            Some((kind, rest)) => (Some(kind), rest),
            None => (None, reference),
        };
        let (namespace, name) = match rest.split_once('/') {
            Some((namespace, name)) => (Some(namespace), name),
            None => (None, rest),
        };
        let kind = match kind.or(default_kind) {
            Some(kind) => kind,
            None => {
                return Err(RefError::MissingKind {
                    reference: reference.to_owned(),
                })
            }
        };
        let empty = |part| RefError::EmptyPart {
            reference: reference.to_owned(),
            part,
        };
        // An explicitly written empty part is an error, not a request for the default.
        if kind.is_empty() {
            return Err(empty("kind"));
        }
        if namespace.is_some_and(str::is_empty) {
            return Err(empty("namespace"));
        }
        if name.is_empty() {
            return Err(empty("name"));
        }
        EntityRef::new(kind, namespace.unwrap_or(default_namespace), name)
    }

    /// The same reference with its kind and namespace strings taken from `share` (which
    /// returns an equal string, typically one already held elsewhere).
    pub(crate) fn sharing_parts(&self, share: &mut impl FnMut(&Arc<str>) -> Arc<str>) -> EntityRef {
        EntityRef {
            kind: share(&self.kind),
            namespace: share(&self.namespace),
            name: Arc::clone(&self.name),
        }
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_user(&self) -> bool {
        &*self.kind == "user"
    }

    pub fn is_group(&self) -> bool {
        &*self.kind == "group"
    }
}

impl EntityRef {
    /// `kind:namespace/name`, as `to_string` writes it, without the formatting machinery: a
    /// sync spells out a few hundred thousand of them.
    pub fn text(&self) -> String {
        let mut text =
            String::with_capacity(self.kind.len() + self.namespace.len() + self.name.len() + 2);
        text.push_str(&self.kind);
        text.push(':');
        text.push_str(&self.namespace);
        text.push('/');
        text.push_str(&self.name);
        text
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.kind, self.namespace, self.name)
    }
}

/// The relation types meshgate reads; Backstage's other relations (`dependsOn`, `partOf`, …)
/// are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RelationType {
    /// user → group.
    MemberOf,
    /// group → user.
    HasMember,
    /// group → parent group.
    ChildOf,
    /// group → child group.
    ParentOf,
    /// entity → owner (group, or user).
    OwnedBy,
    /// owner → entity.
    OwnerOf,
}

impl RelationType {
    pub const ALL: [RelationType; 6] = [
        RelationType::MemberOf,
        RelationType::HasMember,
        RelationType::ChildOf,
        RelationType::ParentOf,
        RelationType::OwnedBy,
        RelationType::OwnerOf,
    ];

    /// The name Backstage uses in `relations[].type`.
    pub fn as_str(self) -> &'static str {
        match self {
            RelationType::MemberOf => "memberOf",
            RelationType::HasMember => "hasMember",
            RelationType::ChildOf => "childOf",
            RelationType::ParentOf => "parentOf",
            RelationType::OwnedBy => "ownedBy",
            RelationType::OwnerOf => "ownerOf",
        }
    }

    /// The type named `name` (exact, as Backstage writes it), if meshgate reads it.
    pub fn from_name(name: &str) -> Option<RelationType> {
        RelationType::ALL
            .into_iter()
            .find(|relation| relation.as_str() == name)
    }

    /// The same relation seen from its target.
    pub fn inverse(self) -> RelationType {
        match self {
            RelationType::MemberOf => RelationType::HasMember,
            RelationType::HasMember => RelationType::MemberOf,
            RelationType::ChildOf => RelationType::ParentOf,
            RelationType::ParentOf => RelationType::ChildOf,
            RelationType::OwnedBy => RelationType::OwnerOf,
            RelationType::OwnerOf => RelationType::OwnedBy,
        }
    }
}

impl fmt::Display for RelationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outgoing relation of an entity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Relation {
    pub relation: RelationType,
    pub target: EntityRef,
}

/// One catalog entity, reduced to what meshgate reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entity {
    pub entity_ref: EntityRef,
    /// `spec.profile.email` of a user, as written.
    pub email: Option<String>,
    /// `metadata.annotations` with string values.
    pub annotations: BTreeMap<String, String>,
    /// Outgoing relations. Entities read from a source carry what the source says (derived
    /// from `spec` for YAML, `relations` for the API); a [`super::CatalogIndex`] adds the
    /// inverse of every relation that points at an entity it holds.
    pub relations: Vec<Relation>,
}

/// Entities with where each was read (`file#document`, or its place in an API answer), in
/// source order, and the warnings found while reading them.
pub type LocatedEntities = (Vec<(String, Entity)>, Vec<CatalogWarning>);

/// Where an entity's relations come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationSource {
    /// Derived from `spec` the way Backstage's built-in processors do (catalog YAML files, as
    /// written by people).
    Spec,
    /// Read from `relations` (entities processed by a Backstage backend). `spec` is then left
    /// alone: Backstage does not rewrite it, so it may disagree with the relations.
    Relations,
}

impl Entity {
    /// The entity described by `value` (a YAML document or an API item), or `None` with a
    /// warning when it is not an entity. Fields meshgate reads that have the wrong shape are
    /// skipped with a warning; the rest of the entity is kept. `location` says where `value`
    /// came from, for warnings about entities without a readable reference.
    pub fn from_value(
        value: &Value,
        location: &str,
        source: RelationSource,
    ) -> (Option<Entity>, Vec<CatalogWarning>) {
        let mut warnings = Vec::new();
        let invalid = |reason: String| CatalogWarning::InvalidEntity {
            location: location.to_owned(),
            reason,
        };
        if !value.is_object() {
            return (None, vec![invalid("not a mapping".to_owned())]);
        }
        let Some(kind) = value.get("kind").and_then(Value::as_str) else {
            return (None, vec![invalid("no string `kind`".to_owned())]);
        };
        let metadata = value.get("metadata");
        let Some(name) = metadata
            .and_then(|metadata| metadata.get("name"))
            .and_then(Value::as_str)
        else {
            return (None, vec![invalid("no string `metadata.name`".to_owned())]);
        };
        let namespace = match metadata.and_then(|metadata| metadata.get("namespace")) {
            None | Some(Value::Null) => DEFAULT_NAMESPACE,
            Some(Value::String(namespace)) => namespace.as_str(),
            Some(_) => {
                return (
                    None,
                    vec![invalid("`metadata.namespace` is not a string".to_owned())],
                )
            }
        };
        let entity_ref = match EntityRef::new(kind, namespace, name) {
            Ok(entity_ref) => entity_ref,
            Err(error) => return (None, vec![invalid(error.to_string())]),
        };
        let mut fields = FieldReader {
            entity: &entity_ref,
            warnings: &mut warnings,
        };
        let annotations =
            fields.annotations(metadata.and_then(|metadata| metadata.get("annotations")));
        let spec = value.get("spec");
        let email = if entity_ref.is_user() {
            fields.optional_string(
                spec.and_then(|spec| spec.get("profile"))
                    .and_then(|profile| profile.get("email")),
                "spec.profile.email",
            )
        } else {
            None
        };
        let relations = match source {
            RelationSource::Spec => fields.spec_relations(spec),
            RelationSource::Relations => fields.listed_relations(value.get("relations")),
        };
        let entity = Entity {
            entity_ref,
            email,
            annotations,
            relations,
        };
        (Some(entity), warnings)
    }
}

/// Reads optional fields of one entity, collecting warnings about the ones it cannot use.
struct FieldReader<'a> {
    entity: &'a EntityRef,
    warnings: &'a mut Vec<CatalogWarning>,
}

impl FieldReader<'_> {
    fn warn(&mut self, field: &str, reason: impl Into<String>) {
        self.warnings.push(CatalogWarning::InvalidField {
            entity: self.entity.to_string(),
            field: field.to_owned(),
            reason: reason.into(),
        });
    }

    fn annotations(&mut self, value: Option<&Value>) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::new();
        match value {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    match value {
                        Value::String(text) => {
                            annotations.insert(key.clone(), text.clone());
                        }
                        _ => self.warn(
                            &format!("metadata.annotations.{key}"),
                            "annotation value is not a string",
                        ),
                    }
                }
            }
            Some(_) => self.warn("metadata.annotations", "not a mapping"),
        }
        annotations
    }

    fn optional_string(&mut self, value: Option<&Value>, field: &str) -> Option<String> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                self.warn(field, "not a string");
                None
            }
        }
    }

    fn string_list(&mut self, value: Option<&Value>, field: &str) -> Vec<String> {
        match value {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut strings = Vec::new();
                for (position, item) in items.iter().enumerate() {
                    match item {
                        Value::String(text) => strings.push(text.clone()),
                        _ => self.warn(&format!("{field}[{position}]"), "not a string"),
                    }
                }
                strings
            }
            Some(_) => {
                self.warn(field, "not a list");
                Vec::new()
            }
        }
    }

    fn reference(
        &mut self,
        text: &str,
        default_kind: Option<&str>,
        field: &str,
    ) -> Option<EntityRef> {
        match EntityRef::parse(text, default_kind, self.entity.namespace()) {
            Ok(reference) => Some(reference),
            Err(error) => {
                self.warn(field, error.to_string());
                None
            }
        }
    }

    /// The relations Backstage's built-in processors emit for this entity's `spec`:
    /// `User.spec.memberOf` → `memberOf`, `Group.spec.parent` → `childOf`,
    /// `Group.spec.children` → `parentOf`, `Group.spec.members` → `hasMember`, and
    /// `spec.owner` of other kinds → `ownedBy`. Group is the implied kind, except for members
    /// (User).
    fn spec_relations(&mut self, spec: Option<&Value>) -> Vec<Relation> {
        let field = |name: &str| spec.and_then(|spec| spec.get(name));
        let mut wanted: Vec<(RelationType, String, &'static str, String)> = Vec::new();
        match self.entity.kind() {
            "user" => {
                for (position, text) in self
                    .string_list(field("memberOf"), "spec.memberOf")
                    .into_iter()
                    .enumerate()
                {
                    let name = format!("spec.memberOf[{position}]");
                    wanted.push((RelationType::MemberOf, text, "group", name));
                }
            }
            "group" => {
                if let Some(parent) = self.optional_string(field("parent"), "spec.parent") {
                    wanted.push((RelationType::ChildOf, parent, "group", "spec.parent".into()));
                }
                for (list, relation, kind) in [
                    ("children", RelationType::ParentOf, "group"),
                    ("members", RelationType::HasMember, "user"),
                ] {
                    let path = format!("spec.{list}");
                    for (position, text) in
                        self.string_list(field(list), &path).into_iter().enumerate()
                    {
                        wanted.push((relation, text, kind, format!("{path}[{position}]")));
                    }
                }
            }
            _ => {
                if let Some(owner) = self.optional_string(field("owner"), "spec.owner") {
                    wanted.push((RelationType::OwnedBy, owner, "group", "spec.owner".into()));
                }
            }
        }
        wanted
            .into_iter()
            .filter_map(|(relation, text, kind, field)| {
                self.reference(&text, Some(kind), &field)
                    .map(|target| Relation { relation, target })
            })
            .collect()
    }

    /// `relations: [{type, targetRef}]` as a Backstage backend returns them; types meshgate
    /// does not read are skipped silently.
    fn listed_relations(&mut self, value: Option<&Value>) -> Vec<Relation> {
        let items = match value {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.warn("relations", "not a list");
                return Vec::new();
            }
        };
        let mut relations = Vec::new();
        for (position, item) in items.iter().enumerate() {
            let field = format!("relations[{position}]");
            let Some(relation) = item.get("type").and_then(Value::as_str) else {
                self.warn(&field, "no string `type`");
                continue;
            };
            let Some(relation) = RelationType::from_name(relation) else {
                continue;
            };
            let Some(target) = item.get("targetRef").and_then(Value::as_str) else {
                self.warn(&field, "no string `targetRef`");
                continue;
            };
            if let Some(target) = self.reference(target, None, &format!("{field}.targetRef")) {
                relations.push(Relation { relation, target });
            }
        }
        relations
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(text: &str) -> Result<String, RefError> {
        EntityRef::parse(text, Some("group"), "default").map(|r| r.to_string())
    }

    #[test]
    fn refs_take_defaults_from_context_like_backstage() {
        assert_eq!(parse("data-eng").unwrap(), "group:default/data-eng");
        assert_eq!(parse("user:alice").unwrap(), "user:default/alice");
        assert_eq!(parse("ops/alice").unwrap(), "group:ops/alice");
        assert_eq!(parse("User:Ops/Alice").unwrap(), "user:ops/alice");
        // A colon after the first slash belongs to the name.
        assert_eq!(parse("ns/a:b").unwrap(), "group:ns/a:b");
        let in_namespace = EntityRef::parse("team", Some("group"), "Ops").unwrap();
        assert_eq!(in_namespace.to_string(), "group:ops/team");
        assert_eq!(
            EntityRef::parse("alice", None, "default"),
            Err(RefError::MissingKind {
                reference: "alice".into()
            })
        );
        for bad in ["", ":x", "user:/x", "user:ns/", "ns/"] {
            assert!(
                matches!(parse(bad), Err(RefError::EmptyPart { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn refs_compare_case_insensitively() {
        let a = EntityRef::parse("Group:Default/Data-Eng", None, "default").unwrap();
        let b = EntityRef::parse("data-eng", Some("group"), "DEFAULT").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.kind(), "group");
        assert_eq!(a.namespace(), "default");
        assert_eq!(a.name(), "data-eng");
    }

    #[test]
    fn relation_names_round_trip_and_invert() {
        for relation in RelationType::ALL {
            assert_eq!(RelationType::from_name(relation.as_str()), Some(relation));
            assert_eq!(relation.inverse().inverse(), relation);
            assert_ne!(relation.inverse(), relation);
        }
        assert_eq!(RelationType::from_name("dependsOn"), None);
    }

    #[test]
    fn spec_relations_follow_the_builtin_processors() {
        let group = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Group",
            "metadata": {"name": "Analytics", "namespace": "Ops"},
            "spec": {"type": "team", "parent": "data-eng", "children": ["default/bi"],
                     "members": ["bob", "user:default/Carol"]}
        });
        let (entity, warnings) = Entity::from_value(&group, "x", RelationSource::Spec);
        assert_eq!(warnings, vec![]);
        let entity = entity.unwrap();
        assert_eq!(entity.entity_ref.to_string(), "group:ops/analytics");
        let relations: Vec<String> = entity
            .relations
            .iter()
            .map(|r| format!("{} {}", r.relation, r.target))
            .collect();
        assert_eq!(
            relations,
            [
                "childOf group:ops/data-eng",
                "parentOf group:default/bi",
                "hasMember user:ops/bob",
                "hasMember user:default/carol",
            ]
        );

        let user = json!({"kind": "User", "metadata": {"name": "bob"},
            "spec": {"profile": {"email": "Bob@Example.com"}, "memberOf": ["analytics"]}});
        let entity = Entity::from_value(&user, "x", RelationSource::Spec)
            .0
            .unwrap();
        assert_eq!(entity.email.as_deref(), Some("Bob@Example.com"));
        assert_eq!(
            entity.relations[0].target.to_string(),
            "group:default/analytics"
        );

        let component = json!({"kind": "Component", "metadata": {"name": "etl",
            "annotations": {"meshgate.io/airflow-dag": "etl_daily"}},
            "spec": {"owner": "user:alice", "type": "service"}});
        let entity = Entity::from_value(&component, "x", RelationSource::Spec)
            .0
            .unwrap();
        assert_eq!(entity.relations[0].relation, RelationType::OwnedBy);
        assert_eq!(entity.relations[0].target.to_string(), "user:default/alice");
        assert_eq!(entity.annotations["meshgate.io/airflow-dag"], "etl_daily");
    }

    #[test]
    fn api_entities_read_relations_not_spec() {
        let user = json!({"kind": "User", "metadata": {"name": "bob", "namespace": "default"},
        "spec": {"memberOf": ["ignored"]},
        "relations": [
            {"type": "memberOf", "targetRef": "group:default/Analytics"},
            {"type": "dependsOn", "targetRef": "component:default/x"},
            {"type": "memberOf", "targetRef": "no-kind"},
            {"type": "memberOf"}
        ]});
        let (entity, warnings) = Entity::from_value(&user, "x", RelationSource::Relations);
        let entity = entity.unwrap();
        assert_eq!(entity.relations.len(), 1);
        assert_eq!(
            entity.relations[0].target.to_string(),
            "group:default/analytics"
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn malformed_documents_and_fields_are_warnings() {
        for (value, reason) in [
            (json!("text"), "not a mapping"),
            (json!({"metadata": {"name": "x"}}), "no string `kind`"),
            (
                json!({"kind": "User", "metadata": {}}),
                "no string `metadata.name`",
            ),
            (
                json!({"kind": "User", "metadata": {"name": ""}}),
                "empty name",
            ),
        ] {
            let (entity, warnings) = Entity::from_value(&value, "f.yaml#0", RelationSource::Spec);
            assert!(entity.is_none());
            assert!(
                matches!(&warnings[..], [CatalogWarning::InvalidEntity { location, reason: got }]
                    if location == "f.yaml#0" && got.contains(reason)),
                "{warnings:?}"
            );
        }
        let group = json!({"kind": "Group", "metadata": {"name": "g",
            "annotations": {"a": 1, "b": "ok"}},
            "spec": {"members": "alice", "children": ["ok", 3], "parent": ["x"]}});
        let (entity, warnings) = Entity::from_value(&group, "x", RelationSource::Spec);
        let entity = entity.unwrap();
        assert_eq!(entity.annotations.len(), 1);
        assert_eq!(entity.relations.len(), 1);
        let fields: Vec<&str> = warnings
            .iter()
            .map(|w| match w {
                CatalogWarning::InvalidField { field, .. } => field.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            fields,
            [
                "metadata.annotations.a",
                "spec.parent",
                "spec.children[1]",
                "spec.members"
            ]
        );
    }
}
