//! The editable form of a snapshot's content: sorted tables of owned strings and index lists.
//! [`super::Snapshot::to_sorted`] reads it back from an image for re-encoding (the control
//! plane's grants-only republish), and tests compare images with the plain decoder's tables.
//! The filter never builds it: decoding and applying a delta write the image directly.

/// A snapshot's content. Canonical when every table is strictly increasing (groups by ref,
/// users by ref, owned by (kind, id)) and every index list strictly increasing: the decoder
/// checks that for the wire, and deltas keep it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SortedContent {
    /// Every ref named anywhere (groups, ancestors, owners); an index is a position here.
    pub groups: Vec<Box<str>>,
    /// Per group, its closed ancestors; same length as `groups`.
    pub ancestors: Vec<Vec<u32>>,
    pub users: Vec<UserEntry>,
    pub owned: Vec<OwnedEntry>,
    pub rules: Option<Box<str>>,
    /// The grants section's payload, checked and canonical ([`super::grants`]); `None` when
    /// there are no grants.
    pub grants: Option<Box<[u8]>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserEntry {
    pub entity_ref: Box<str>,
    /// Lowercased.
    pub email: Option<Box<str>>,
    /// Direct groups (or, from format 1, closed ones).
    pub groups: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnedEntry {
    pub kind: Box<str>,
    pub id: Box<str>,
    pub owners: Vec<u32>,
}
