//! The editable form of a snapshot's content: sorted tables of owned strings and index lists.
//! [`super::Snapshot::to_sorted`] reads it back from an image for the delta encoder (the
//! control plane), and tests compare images with the plain decoder's tables. The filter never
//! builds it: decoding and applying a delta write the image directly. Off the request path.

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

impl SortedContent {
    /// The index of a group ref.
    pub fn group_index(&self, group_ref: &str) -> Option<u32> {
        self.groups
            .binary_search_by(|g| (**g).cmp(group_ref))
            .ok()
            .and_then(|i| u32::try_from(i).ok())
    }

    /// The refs of an index list; indices out of range are skipped.
    pub fn refs<'s>(&'s self, indices: &'s [u32]) -> impl Iterator<Item = &'s str> + 's {
        indices
            .iter()
            .filter_map(|&i| self.groups.get(i as usize).map(|g| &**g))
    }
}
