//! The Backstage catalog as the control plane reads it: who is in which group (direct groups,
//! and every group's closed ancestors) and which group owns which tool resource, turned into [`SnapshotInput`].
//!
//! Sources: a directory of catalog YAML files ([`load_dir`], relations derived from `spec`) or
//! a Backstage backend's REST API ([`RestSource`], relations read from `relations`). Both give a
//! [`CatalogIndex`]; [`to_snapshot_input`] turns it into sorted, deduplicated snapshot input
//! plus [`CatalogWarning`]s about what it had to leave out. A source that cannot be read at all
//! is a [`CatalogError`]; the caller keeps its last good snapshot.
//!
//! Ownership annotations (which keys name which resource kind, configurable) are in
//! [`ownership`]; identity mapping (Backstage sign-in resolvers) is in [`identity`].

pub mod closure;
pub mod dir_source;
pub mod error;
pub mod identity;
pub mod index;
pub mod live;
pub mod model;
pub mod ownership;
pub mod rest;
pub mod snapshot_input;
pub mod tls;
pub mod warning;
pub mod yaml_dir;

pub use closure::{
    close_membership, close_membership_cached, ClosureCache, Membership, RelationStats,
};
pub use dir_source::{load_dir, DirFingerprint, DirSource, Refresh};
pub use error::CatalogError;
pub use identity::{IdentityMapping, ResolveBy, ResolveError, UserDirectory};
pub use index::CatalogIndex;
pub use live::LiveIndex;
pub use model::{
    Entity, EntityRef, LocatedEntities, RefError, Relation, RelationSource, RelationType,
};
pub use ownership::{
    resource_annotations, AnnotationsError, OwnershipAnnotations, ResourceAnnotations, ResourceKind,
};
pub use rest::RestSource;
pub use snapshot_input::{
    build_snapshot_input, build_snapshot_input_cached, to_snapshot_input, CatalogBuild, OwnedInput,
    SnapshotInput, UserInput,
};
pub use tls::{CaBundle, CaFileError};
pub use warning::{summarize, CatalogWarning, WarningSummary};
pub use yaml_dir::{parse_documents, yaml_documents};
