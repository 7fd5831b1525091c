//! What was wrong with a catalog that could still be used. Warnings never stop a sync: the
//! affected entity, field, relation or resource is left out (or kept as described per
//! variant) and the rest of the catalog is used.

use std::fmt;

use serde::Serialize;

/// One problem found while reading a catalog or building snapshot input. Ordered, so a list of
/// warnings can be sorted and deduplicated into the same list on every replica.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "warning", rename_all = "snake_case")]
pub enum CatalogWarning {
    /// A YAML document or API item that is not an entity (no `kind`, no `metadata.name`, …);
    /// skipped. `location` is `file#document` for YAML, `kind=<k> page <n> item <i>` for the API.
    InvalidEntity { location: String, reason: String },
    /// A field meshgate reads has the wrong shape or holds an unreadable entity reference; the
    /// field (or the one list item) is skipped, the rest of the entity kept.
    InvalidField {
        entity: String,
        field: String,
        reason: String,
    },
    /// Several different entities with the same (case-insensitive) reference; the smallest
    /// one in meshgate's ordering is kept so every replica keeps the same one.
    DuplicateEntity { entity: String },
    /// A membership, hierarchy or ownership relation names an entity the catalog does not
    /// hold; the relation is ignored.
    DanglingRef {
        entity: String,
        relation: String,
        target: String,
    },
    /// A relation names an entity of the wrong kind (a user `memberOf` a component, a group
    /// `childOf` a user, an owner that is neither a group nor a user); ignored.
    UnexpectedTargetKind {
        entity: String,
        relation: String,
        target: String,
    },
    /// Groups that are each other's ancestors (`a childOf b childOf a`); each member of the
    /// cycle gets every group of the cycle and their ancestors.
    GroupCycle { groups: Vec<String> },
    /// Several users share one email (compared case-insensitively); resolving a caller by that
    /// email is ambiguous and fails.
    DuplicateEmail { email: String, users: Vec<String> },
    /// An ownership annotation whose value names no resource (empty, or malformed for its
    /// kind); skipped.
    InvalidAnnotation {
        entity: String,
        annotation: String,
        reason: String,
    },
    /// A resource mapped from an annotation whose entity has no owner; published with no
    /// owners, so ownership rules never match it.
    UnownedResource {
        entity: String,
        kind: String,
        id: String,
    },
    /// One resource claimed by several entities; its owners are the union of theirs.
    SharedResource {
        kind: String,
        id: String,
        entities: Vec<String>,
    },
}

impl fmt::Display for CatalogWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogWarning::InvalidEntity { location, reason } => {
                write!(f, "{location}: not an entity ({reason}); skipped")
            }
            CatalogWarning::InvalidField {
                entity,
                field,
                reason,
            } => write!(f, "{entity}: `{field}` ignored: {reason}"),
            CatalogWarning::DuplicateEntity { entity } => {
                write!(
                    f,
                    "{entity} is defined more than once with different content"
                )
            }
            CatalogWarning::DanglingRef {
                entity,
                relation,
                target,
            } => write!(
                f,
                "{entity} {relation} {target}, which is not in the catalog; ignored"
            ),
            CatalogWarning::UnexpectedTargetKind {
                entity,
                relation,
                target,
            } => write!(
                f,
                "{entity} {relation} {target}, which is the wrong kind; ignored"
            ),
            CatalogWarning::GroupCycle { groups } => {
                write!(f, "group hierarchy cycle: {}", groups.join(", "))
            }
            CatalogWarning::DuplicateEmail { email, users } => {
                write!(f, "email {email} belongs to {}", users.join(", "))
            }
            CatalogWarning::InvalidAnnotation {
                entity,
                annotation,
                reason,
            } => write!(f, "{entity}: annotation `{annotation}` ignored: {reason}"),
            CatalogWarning::UnownedResource { entity, kind, id } => {
                write!(f, "{kind} `{id}` of {entity} has no owner")
            }
            CatalogWarning::SharedResource { kind, id, entities } => {
                write!(f, "{kind} `{id}` is claimed by {}", entities.join(", "))
            }
        }
    }
}
