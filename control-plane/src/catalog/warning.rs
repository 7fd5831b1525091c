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
    /// Several different entities with the same (case-insensitive) reference; the first in
    /// source order (file path, then document; page order for the API) is kept. `kept` and
    /// `dropped` are locations (`file#document`).
    DuplicateEntity {
        entity: String,
        kept: String,
        dropped: String,
    },
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
    /// A Component, Resource or System that carries none of the configured ownership
    /// annotations but keys that look like a tool's (`annotations`, sorted): it is probably
    /// meant to protect a resource and protects none. Map the key in
    /// `catalog.ownership_annotations`, or rename it.
    UnmappedAnnotation {
        entity: String,
        annotations: Vec<String>,
    },
}

impl CatalogWarning {
    /// Every kind, in the order [`CatalogWarning::kind`] sorts them.
    pub const KINDS: [&'static str; 11] = [
        "invalid_entity",
        "invalid_field",
        "duplicate_entity",
        "dangling_ref",
        "unexpected_target_kind",
        "group_cycle",
        "duplicate_email",
        "invalid_annotation",
        "unowned_resource",
        "shared_resource",
        "unmapped_annotation",
    ];

    /// The variant as a stable snake_case name (the `warning` field of its JSON form).
    pub fn kind(&self) -> &'static str {
        match self {
            CatalogWarning::InvalidEntity { .. } => "invalid_entity",
            CatalogWarning::InvalidField { .. } => "invalid_field",
            CatalogWarning::DuplicateEntity { .. } => "duplicate_entity",
            CatalogWarning::DanglingRef { .. } => "dangling_ref",
            CatalogWarning::UnexpectedTargetKind { .. } => "unexpected_target_kind",
            CatalogWarning::GroupCycle { .. } => "group_cycle",
            CatalogWarning::DuplicateEmail { .. } => "duplicate_email",
            CatalogWarning::InvalidAnnotation { .. } => "invalid_annotation",
            CatalogWarning::UnownedResource { .. } => "unowned_resource",
            CatalogWarning::SharedResource { .. } => "shared_resource",
            CatalogWarning::UnmappedAnnotation { .. } => "unmapped_annotation",
        }
    }
}

/// The most characters of one sample in a [`WarningSummary`] line.
pub const MAX_SAMPLE_CHARS: usize = 240;

/// Warnings of one kind, reduced to a count and a few examples, so a catalog with 300,000
/// broken references logs one line, not 300,000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningSummary<'a> {
    pub kind: &'static str,
    /// How many warnings of this kind.
    pub count: usize,
    /// The first few (in the order given).
    pub samples: Vec<&'a CatalogWarning>,
}

impl fmt::Display for WarningSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} × {}", self.count, self.kind)?;
        let mut separator = ", e.g. ";
        for sample in &self.samples {
            let text = sample.to_string();
            // A hostile catalog can make names as long as it likes; a log line stays short.
            match text.char_indices().nth(MAX_SAMPLE_CHARS) {
                Some((cut, _)) => write!(f, "{separator}{}…", text.get(..cut).unwrap_or(""))?,
                None => write!(f, "{separator}{text}")?,
            }
            separator = " | ";
        }
        if self.count > self.samples.len() {
            write!(f, " | … {} more", self.count - self.samples.len())?;
        }
        Ok(())
    }
}

/// One summary per kind present in `warnings`, in [`CatalogWarning::KINDS`] order, each with
/// at most `max_samples` examples.
pub fn summarize<'a>(
    warnings: impl IntoIterator<Item = &'a CatalogWarning>,
    max_samples: usize,
) -> Vec<WarningSummary<'a>> {
    let mut summaries: Vec<WarningSummary<'a>> = CatalogWarning::KINDS
        .iter()
        .map(|kind| WarningSummary {
            kind,
            count: 0,
            samples: Vec::new(),
        })
        .collect();
    for warning in warnings {
        let kind = warning.kind();
        if let Some(summary) = summaries.iter_mut().find(|summary| summary.kind == kind) {
            summary.count += 1;
            if summary.samples.len() < max_samples {
                summary.samples.push(warning);
            }
        }
    }
    summaries.retain(|summary| summary.count > 0);
    summaries
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
            CatalogWarning::DuplicateEntity {
                entity,
                kept,
                dropped,
            } => write!(
                f,
                "{entity} is defined more than once with different content: kept {kept}, ignored {dropped}"
            ),
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
            CatalogWarning::UnmappedAnnotation {
                entity,
                annotations,
            } => write!(
                f,
                "{entity} carries `{}` but no configured ownership annotation (`catalog.ownership_annotations`); it protects no resource",
                annotations.join("`, `")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dangling(n: usize) -> CatalogWarning {
        CatalogWarning::DanglingRef {
            entity: "group:default/big".into(),
            relation: "hasMember".into(),
            target: format!("user:default/u{n}"),
        }
    }

    #[test]
    fn summaries_count_every_warning_and_keep_few_samples() {
        let mut warnings: Vec<CatalogWarning> = (0..1000).map(dangling).collect();
        warnings.push(CatalogWarning::GroupCycle {
            groups: vec!["group:default/a".into()],
        });
        let summaries = summarize(&warnings, 5);
        assert_eq!(summaries.len(), 2);
        assert_eq!(
            (
                summaries[0].kind,
                summaries[0].count,
                summaries[0].samples.len()
            ),
            ("dangling_ref", 1000, 5)
        );
        let line = summaries[0].to_string();
        assert!(
            line.starts_with(
                "1000 × dangling_ref, e.g. group:default/big hasMember user:default/u0"
            ),
            "{line}"
        );
        assert!(line.ends_with("… 995 more"), "{line}");
        assert_eq!(
            summaries[1].to_string(),
            "1 × group_cycle, e.g. group hierarchy cycle: group:default/a"
        );
        assert!(summarize(&[], 5).is_empty());
        let long = CatalogWarning::InvalidEntity {
            location: "x".repeat(100_000),
            reason: "no".into(),
        };
        let line = summarize([&long], 5)[0].to_string();
        assert!(
            line.len() < MAX_SAMPLE_CHARS + 100 && line.ends_with('…'),
            "{}",
            line.len()
        );
    }

    #[test]
    fn kinds_match_the_json_tag() {
        let warning = dangling(1);
        let json = serde_json::to_value(&warning).unwrap();
        assert_eq!(json["warning"], warning.kind());
        assert!(CatalogWarning::KINDS.contains(&warning.kind()));
    }
}
