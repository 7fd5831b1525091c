//! Snapshots: what the control plane computed from the catalog (users with their direct
//! groups, groups with their closed ancestors, resources with their owners), in a compact,
//! deterministic, signed binary form that the filter verifies and loads off the request path.
//!
//! - [`encode`] sorts and interns the input, hashes the content (SHA-256) and signs the whole
//!   body with Ed25519. The same input in any order gives the same bytes.
//! - [`Snapshot::decode`] checks the size, the format, the signature against trusted keys, the
//!   content hash, and then every count, string, order and index, and lays the content out as
//!   one canonical image ([`Snapshot::image`]) that other workers adopt with
//!   [`Snapshot::from_image`].
//! - [`Snapshot`] answers the request path from the image: a user's groups (closed under
//!   nesting), a user by email, a resource's owners.
//!
//! The byte layout is documented in `docs/snapshot.md`.

mod apply;
mod decode;
mod delta;
mod encode;
mod envelope;
mod err;
mod grants;
mod image;
mod indexed;
mod keys;
mod lookup;
mod model;
mod sorted;
mod wire;

#[cfg(test)]
mod delta_tests;
#[cfg(test)]
mod image_tests;
#[cfg(test)]
mod test_org;
#[cfg(test)]
mod tests;

pub use decode::{DecodeLimits, UnverifiedSnapshot};
pub use delta::{encode_delta, DeltaHeader, DELTA_FORMAT_VERSION, DELTA_HEADER_BYTES, DELTA_MAGIC};
pub use encode::{encode, encode_indexed};
pub use envelope::{SnapshotHeader, FORMAT_VERSION, HEADER_BYTES, MAGIC, OLDEST_FORMAT_VERSION};
pub use err::{DeltaError, EncodeError, ImageError, KeyError, SnapshotError, Violation};
pub use grants::{Grant, GrantTarget, Grants, MAX_GRANTS};
pub use image::{IMAGE_LAYOUT, IMAGE_MAGIC};
pub use indexed::{IndexedGroup, IndexedInput, IndexedOwned, IndexedUser};
pub use keys::{
    PublicKeySpec, SigningKey, TrustedKey, MAX_KEY_ID_BYTES, PRIVATE_KEY_BYTES, PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
};
pub use lookup::{GroupSet, OwnedView, Snapshot, UserView};
pub use model::{GroupInput, OwnedInput, SnapshotInput, UserInput};

/// Longest string the encoder writes, and the decoder's default bound.
pub const MAX_STRING_BYTES: usize = 1024;

/// Content section tags. Tags below [`OPTIONAL_TAGS`] must be understood; a reader skips
/// unknown tags from [`OPTIONAL_TAGS`] up, so later revisions can add data older filters may
/// ignore.
const TAG_GROUPS: u64 = 1;
const TAG_USERS: u64 = 2;
const TAG_OWNED: u64 = 3;
const OPTIONAL_TAGS: u64 = 128;
/// Optional: each group's closed ancestors.
const TAG_ANCESTORS: u64 = 128;
/// Optional: rules as JSON text.
const TAG_RULES: u64 = 129;
/// Optional: active access grants (`grants.rs`).
const TAG_GRANTS: u64 = 130;
