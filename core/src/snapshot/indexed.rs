//! Snapshot input with its refs interned: what a control plane that already keeps integer ids
//! hands the encoder, so that groups × depth ancestor entries never become strings. At 10,000
//! groups nested 400 deep that is two million strings (and their sorting) not made per sync.
//!
//! [`SnapshotInput`] (strings) and [`IndexedInput`] say the same thing; [`SnapshotInput::interned`]
//! and [`IndexedInput::to_strings`] convert, and both encode to the same bytes, because the
//! string form is encoded by interning it first.

use std::collections::HashMap;

use super::grants::Grants;
use super::lookup::Snapshot;
use super::model::{GroupInput, OwnedInput, SnapshotInput, UserInput};

/// [`SnapshotInput`] with every group and owner ref replaced by its position in
/// [`IndexedInput::refs`].
///
/// As with [`SnapshotInput`], the order of every list is irrelevant, and so is the order of
/// `refs`: the encoder sorts the refs and renumbers. A ref that no list points at is not
/// written, and two equal refs are one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexedInput {
    /// Group refs (`group:default/data-eng`) and user refs that own resources.
    pub refs: Vec<String>,
    pub users: Vec<IndexedUser>,
    /// Groups with their closed ancestors; a group listed without ancestors is still written
    /// to the group table.
    pub groups: Vec<IndexedGroup>,
    pub owned: Vec<IndexedOwned>,
    /// Rules in the filter's rule language, as JSON text.
    pub rules: Option<String>,
    /// Active access grants. The string form ([`SnapshotInput`]) carries none: grants come
    /// from the control plane's store, not from the catalog.
    pub grants: Grants,
}

/// [`UserInput`] with direct groups as positions in [`IndexedInput::refs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexedUser {
    pub entity_ref: String,
    pub email: Option<String>,
    pub groups: Vec<u32>,
}

/// [`GroupInput`] as positions in [`IndexedInput::refs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexedGroup {
    pub group: u32,
    /// Every group above `group`, closed; `group` itself and duplicates are ignored.
    pub ancestors: Vec<u32>,
}

/// [`OwnedInput`] with owners as positions in [`IndexedInput::refs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexedOwned {
    pub kind: String,
    pub id: String,
    pub owners: Vec<u32>,
}

impl SnapshotInput {
    /// The same content with refs interned, in order of first appearance.
    pub fn interned(&self) -> IndexedInput {
        let mut interner = Interner::default();
        let users = self
            .users
            .iter()
            .map(|user| IndexedUser {
                entity_ref: user.entity_ref.clone(),
                email: user.email.clone(),
                groups: interner.all(&user.groups),
            })
            .collect();
        let owned = self
            .owned
            .iter()
            .map(|entry| IndexedOwned {
                kind: entry.kind.clone(),
                id: entry.id.clone(),
                owners: interner.all(&entry.owners),
            })
            .collect();
        let groups = self
            .groups
            .iter()
            .map(|group| IndexedGroup {
                group: interner.one(&group.entity_ref),
                ancestors: interner.all(&group.ancestors),
            })
            .collect();
        IndexedInput {
            refs: interner.refs,
            users,
            groups,
            owned,
            rules: self.rules.clone(),
            grants: Grants::default(),
        }
    }
}

impl IndexedInput {
    /// The same content with refs spelled out. A position outside `refs` is left out (the
    /// encoder refuses it instead).
    pub fn to_strings(&self) -> SnapshotInput {
        let names = |ids: &[u32]| -> Vec<String> {
            ids.iter()
                .filter_map(|&id| self.ref_at(id))
                .map(str::to_owned)
                .collect()
        };
        SnapshotInput {
            users: self
                .users
                .iter()
                .map(|user| UserInput {
                    entity_ref: user.entity_ref.clone(),
                    email: user.email.clone(),
                    groups: names(&user.groups),
                })
                .collect(),
            owned: self
                .owned
                .iter()
                .map(|entry| OwnedInput {
                    kind: entry.kind.clone(),
                    id: entry.id.clone(),
                    owners: names(&entry.owners),
                })
                .collect(),
            groups: self
                .groups
                .iter()
                .filter_map(|group| {
                    Some(GroupInput {
                        entity_ref: self.ref_at(group.group)?.to_owned(),
                        ancestors: names(&group.ancestors),
                    })
                })
                .collect(),
            rules: self.rules.clone(),
        }
    }

    /// The ref at `position`, if there is one.
    pub fn ref_at(&self, position: u32) -> Option<&str> {
        let position = usize::try_from(position).ok()?;
        self.refs.get(position).map(String::as_str)
    }
}

impl Snapshot {
    /// The snapshot's content as encoder input: encoding it again (with another version or
    /// other grants) gives what encoding the original input would. Lets the control plane
    /// republish what it serves with new grants without touching the catalog. `None` when
    /// the image is corrupt.
    pub fn to_indexed(&self) -> Option<IndexedInput> {
        let content = self.to_sorted()?;
        let grants = match &content.grants {
            Some(bytes) => Grants::decode(bytes, 0).ok()?,
            None => Grants::default(),
        };
        let groups = (0u32..)
            .zip(&content.ancestors)
            .filter(|(_, above)| !above.is_empty())
            .map(|(group, above)| IndexedGroup {
                group,
                ancestors: above.clone(),
            })
            .collect();
        Some(IndexedInput {
            refs: content.groups.iter().map(|g| g.to_string()).collect(),
            users: content
                .users
                .into_iter()
                .map(|user| IndexedUser {
                    entity_ref: user.entity_ref.into(),
                    email: user.email.map(Into::into),
                    groups: user.groups,
                })
                .collect(),
            groups,
            owned: content
                .owned
                .into_iter()
                .map(|entry| IndexedOwned {
                    kind: entry.kind.into(),
                    id: entry.id.into(),
                    owners: entry.owners,
                })
                .collect(),
            rules: content.rules.map(Into::into),
            grants,
        })
    }
}

/// Positions of refs in order of first appearance.
#[derive(Default)]
struct Interner {
    refs: Vec<String>,
    positions: HashMap<String, u32>,
}

impl Interner {
    fn one(&mut self, name: &str) -> u32 {
        if let Some(&position) = self.positions.get(name) {
            return position;
        }
        // More refs than u32 positions can't be encoded; the encoder counts the table first.
        let position = u32::try_from(self.refs.len()).unwrap_or(u32::MAX);
        self.refs.push(name.to_owned());
        self.positions.insert(name.to_owned(), position);
        position
    }

    fn all(&mut self, names: &[String]) -> Vec<u32> {
        names.iter().map(|name| self.one(name)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_org::Org;
    use super::super::{encode, encode_indexed, EncodeError, SigningKey};
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_seed("cp-1", [7; 32]).unwrap()
    }

    fn org() -> SnapshotInput {
        Org {
            users: 400,
            groups: 60,
            parent_window: 6,
            max_direct: 3,
            owned: 80,
            seed: 11,
        }
        .build()
    }

    #[test]
    fn both_forms_encode_to_the_same_bytes_and_convert_back() {
        let input = org();
        let indexed = input.interned();
        assert_eq!(
            encode_indexed(&indexed, 3, 1_700_000_000, &key()).unwrap(),
            encode(&input, 3, 1_700_000_000, &key()).unwrap()
        );
        assert_eq!(indexed.to_strings(), input);
    }

    /// Ref order, duplicate refs and refs nothing points at don't change the bytes.
    #[test]
    fn ref_order_duplicates_and_unused_refs_do_not_matter() {
        let input = org();
        let reference = encode(&input, 3, 0, &key()).unwrap();
        let mut indexed = input.interned();
        // Reverse the table and renumber every list.
        let len = u32::try_from(indexed.refs.len()).unwrap();
        indexed.refs.reverse();
        let flip = |ids: &mut Vec<u32>| ids.iter_mut().for_each(|id| *id = len - 1 - *id);
        indexed.users.iter_mut().for_each(|u| flip(&mut u.groups));
        indexed.owned.iter_mut().for_each(|o| flip(&mut o.owners));
        for group in &mut indexed.groups {
            group.group = len - 1 - group.group;
            flip(&mut group.ancestors);
        }
        // A second copy of the first ref, pointed at by one user; and a ref nobody names.
        let first = indexed.users[0].groups.first().copied().unwrap();
        indexed.refs.push(indexed.refs[first as usize].clone());
        indexed.users[0].groups.push(len);
        indexed.refs.push("group:default/nobody-points-here".into());
        assert_eq!(encode_indexed(&indexed, 3, 0, &key()).unwrap(), reference);
    }

    #[test]
    fn a_decoded_snapshot_encodes_again_to_the_same_bytes() {
        use super::super::{DecodeLimits, Grant, GrantTarget};
        use crate::request::UnixTime;

        let mut indexed = org().interned();
        indexed.rules = Some(String::from("[]"));
        indexed.grants = Grants::new(vec![Grant {
            id: "g".into(),
            user: "user:default/u0001".into(),
            target: GrantTarget::Group("group:default/g0001".into()),
            not_after: UnixTime::from_secs(1_700_000_900),
        }]);
        let bytes = encode_indexed(&indexed, 3, 1_700_000_000, &key()).unwrap();
        let snapshot =
            Snapshot::decode(&bytes, &[key().trusted_key()], &DecodeLimits::default()).unwrap();
        let again = snapshot.to_indexed().unwrap();
        assert_eq!(
            encode_indexed(&again, 3, 1_700_000_000, &key()).unwrap(),
            bytes
        );
        // Without the grant, the same bytes as the input without it.
        let mut bare = again.clone();
        bare.grants = Grants::default();
        indexed.grants = Grants::default();
        assert_eq!(
            encode_indexed(&bare, 4, 0, &key()).unwrap(),
            encode_indexed(&indexed, 4, 0, &key()).unwrap()
        );
    }

    #[test]
    fn positions_outside_the_table_and_bad_refs_are_refused() {
        let mut indexed = org().interned();
        let refs = indexed.refs.len();
        indexed.owned[0].owners.push(u32::MAX);
        assert_eq!(
            encode_indexed(&indexed, 1, 0, &key()),
            Err(EncodeError::UnknownRef {
                what: "owner",
                position: u32::MAX,
                refs
            })
        );
        let mut indexed = org().interned();
        indexed.refs[0] = String::new();
        assert_eq!(
            encode_indexed(&indexed, 1, 0, &key()),
            Err(EncodeError::EmptyString { what: "group ref" })
        );
        let empty = IndexedInput::default();
        assert!(encode_indexed(&empty, 1, 0, &key()).is_ok());
        assert_eq!(empty.to_strings(), SnapshotInput::default());
    }
}
