//! A snapshot held as its canonical image, and the request-path lookups that read it in
//! place. Every read is bounds-checked: a corrupt image gives `None` or empty answers, never a
//! panic. Lookups allocate nothing, except for an email with upper-case letters (lowercased
//! first) and [`GroupSet::indices`]/[`GroupSet::iter`] on a user's closed set.

use std::cmp::Ordering;
use std::ops::Range;

use super::envelope::SnapshotHeader;
use super::err::{ImageError, SnapshotError};
use super::grants::Grants;
use super::image::{self, read_u32, Layout, Part, AT_KID};
use super::sorted::{OwnedEntry, SortedContent, UserEntry};

/// A verified snapshot. Build one with [`Snapshot::decode`], adopt a published one with
/// [`Snapshot::from_image`], or move one forward with [`Snapshot::apply_delta`].
#[derive(Clone)]
pub struct Snapshot {
    image: Vec<u8>,
    layout: Layout,
}

/// A set of groups from one snapshot: a user's memberships (closed under nesting), a
/// resource's owners or a group's ancestors. Indices are sorted and delta coded, so a
/// membership test is a scan that stops at the first larger index.
#[derive(Clone, Copy)]
pub struct GroupSet<'a> {
    list: IndexList<'a>,
    /// `list` holds a user's direct groups: the set is them and all their ancestors.
    closed: bool,
    snapshot: &'a Snapshot,
}

/// A catalog user found in a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct UserView<'a> {
    pub entity_ref: &'a str,
    pub groups: GroupSet<'a>,
}

/// A resource of a snapshot with its owners, as [`Snapshot::owned`] lists them.
#[derive(Debug, Clone, Copy)]
pub struct OwnedView<'a> {
    /// `airflow.dag`.
    pub kind: &'a str,
    /// `etl_daily`.
    pub id: &'a str,
    /// Groups, and users when a user owns it.
    pub owners: GroupSet<'a>,
}

impl Snapshot {
    /// Adopts an image made by [`Snapshot::image`], typically by another Envoy worker, without
    /// copying it. Checks the magic, layout, envelope and the bounds of every part: O(number
    /// of parts), no content scan and no signature (whoever built the image verified the
    /// snapshot). Never panics; lookups on a corrupt image give empty answers.
    pub fn from_image(image: Vec<u8>) -> Result<Snapshot, ImageError> {
        let layout = image::parse_layout(&image)?;
        Ok(Snapshot { image, layout })
    }

    /// The canonical image: what a worker publishes once for the others to adopt.
    pub fn image(&self) -> &[u8] {
        &self.image
    }

    /// SHA-256 of the image's content part: everything but the envelope (version, time, key
    /// id, wire size and hash). Equal contents give equal hashes.
    pub fn image_content_hash(&self) -> [u8; 32] {
        image::content_hash(&self.image)
    }

    pub fn header(&self) -> &SnapshotHeader {
        &self.layout.header
    }

    pub fn version(&self) -> u64 {
        self.layout.header.version
    }

    pub fn generated_at(&self) -> i64 {
        self.layout.header.generated_at
    }

    /// SHA-256 of the signed snapshot's content section.
    pub fn content_hash(&self) -> &[u8; 32] {
        &self.layout.header.content_hash
    }

    pub fn content_hash_hex(&self) -> String {
        self.layout.header.content_hash_hex()
    }

    /// The id of the trusted key that signed this snapshot (or the delta that made it).
    pub fn key_id(&self) -> &str {
        self.image
            .get(AT_KID..AT_KID.saturating_add(self.layout.key_id_len))
            .and_then(|kid| std::str::from_utf8(kid).ok())
            .unwrap_or_default()
    }

    /// Size of the signed snapshot in bytes.
    pub fn encoded_len(&self) -> usize {
        self.layout.encoded_len
    }

    /// Whether this snapshot should replace `other`: versions only ever go up.
    pub fn is_newer_than(&self, other: &Snapshot) -> bool {
        self.version() > other.version()
    }

    /// The groups of a user, closed under nesting, by entity ref (`user:default/alice`).
    pub fn groups_of_user(&self, entity_ref: &str) -> Option<GroupSet<'_>> {
        self.user(entity_ref).map(|user| user.groups)
    }

    /// A user by entity ref.
    pub fn user(&self, entity_ref: &str) -> Option<UserView<'_>> {
        let position = self.find(Part::Users, 0..self.count(Part::Users), entity_ref)?;
        self.user_view(position)
    }

    /// The user whose catalog email is `email`, compared ignoring ASCII case. An email that
    /// several users share maps to none of them, as Backstage's sign-in resolvers refuse
    /// ambiguous matches.
    pub fn user_by_email(&self, email: &str) -> Option<UserView<'_>> {
        let lowered;
        let email = if email.bytes().any(|byte| byte.is_ascii_uppercase()) {
            lowered = email.to_ascii_lowercase();
            lowered.as_str()
        } else {
            email
        };
        let key = email.as_bytes();
        let email_of = |record: usize| -> Option<(usize, &[u8])> {
            let [user] = self.record::<1>(Part::Emails, record)?;
            let [_, _, _, offset, len] = self.record::<5>(Part::Users, user as usize)?;
            Some((user as usize, self.bytes_at(offset, len)?))
        };
        let (mut low, mut high) = (0, self.count(Part::Emails));
        while low < high {
            let middle = low + (high - low) / 2;
            let (user, found) = email_of(middle)?;
            match found.cmp(key) {
                Ordering::Less => low = middle + 1,
                Ordering::Greater => high = middle,
                Ordering::Equal => {
                    // Shared by several users (adjacent records): none of them.
                    let shared = [middle.checked_sub(1), middle.checked_add(1)]
                        .into_iter()
                        .flatten()
                        .any(|other| email_of(other).is_some_and(|(_, e)| e == key));
                    return if shared { None } else { self.user_view(user) };
                }
            }
        }
        None
    }

    /// The owners of a resource, such as (`airflow.dag`, `etl_daily`): groups, and users
    /// when a user owns it.
    pub fn owners_of(&self, kind: &str, id: &str) -> Option<GroupSet<'_>> {
        let kind = self.find(Part::Kinds, 0..self.count(Part::Kinds), kind)?;
        let [_, _, first, count] = self.record::<4>(Part::Kinds, kind)?;
        let first = first as usize;
        let entries = first..first.checked_add(count as usize)?;
        let position = self.find(Part::Owned, entries, id)?;
        let [_, _, list] = self.record::<3>(Part::Owned, position)?;
        Some(self.set(list, false))
    }

    /// Every user, by entity ref, for tools that list a snapshot (not for the request path).
    pub fn users(&self) -> impl Iterator<Item = UserView<'_>> + '_ {
        (0..self.count(Part::Users)).filter_map(|position| self.user_view(position))
    }

    /// The email of the user `entity_ref` (lowercased), when the catalog gave one. An email
    /// several users share is listed for each, though [`Snapshot::user_by_email`] finds none.
    pub fn user_email(&self, entity_ref: &str) -> Option<&str> {
        let position = self.find(Part::Users, 0..self.count(Part::Users), entity_ref)?;
        let [_, _, _, email, email_len] = self.record::<5>(Part::Users, position)?;
        (email_len != 0)
            .then(|| self.str_at(email, email_len))
            .flatten()
    }

    /// Every resource with its owners, sorted by kind, then id, for tools that list a
    /// snapshot (not for the request path).
    pub fn owned(&self) -> impl Iterator<Item = OwnedView<'_>> + '_ {
        (0..self.count(Part::Kinds))
            .filter_map(|kind| self.record::<4>(Part::Kinds, kind))
            .flat_map(move |[offset, len, first, count]| {
                let kind = self.str_at(offset, len).unwrap_or_default();
                let positions = first..first.saturating_add(count);
                positions.filter_map(move |position| {
                    let [offset, len, list] = self.record::<3>(Part::Owned, position as usize)?;
                    Some(OwnedView {
                        kind,
                        id: self.str_at(offset, len)?,
                        owners: self.set(list, false),
                    })
                })
            })
    }

    /// The ref of the group at `index`.
    pub fn group_ref(&self, index: u32) -> Option<&str> {
        let [offset, len] = self.record::<2>(Part::Groups, index as usize)?;
        self.str_at(offset, len)
    }

    /// The index of a group ref.
    pub fn group_index(&self, group_ref: &str) -> Option<u32> {
        let index = self.find(Part::Groups, 0..self.count(Part::Groups), group_ref)?;
        u32::try_from(index).ok()
    }

    pub fn user_count(&self) -> usize {
        self.count(Part::Users)
    }

    pub fn group_count(&self) -> usize {
        self.count(Part::Groups)
    }

    /// Number of (kind, id) resources.
    pub fn owned_count(&self) -> usize {
        self.count(Part::Owned)
    }

    /// Emails shared by several users, which map to no user.
    pub fn ambiguous_email_count(&self) -> usize {
        read_u32(self.part(Part::Meta), 0).map_or(0, |count| count as usize)
    }

    /// Bytes held by this snapshot, for a memory gauge: its image. The same on every target.
    pub fn heap_size(&self) -> usize {
        self.image.len()
    }

    /// Every group above the group at `index` (empty when none, or when the snapshot
    /// carries no hierarchy).
    pub fn ancestors_of(&self, index: u32) -> GroupSet<'_> {
        GroupSet {
            list: self.ancestor_list(index),
            closed: false,
            snapshot: self,
        }
    }

    /// The rules the control plane published, as JSON text.
    pub fn rules_json(&self) -> Option<&str> {
        let present = read_u32(self.part(Part::Meta), 4)? != 0;
        present
            .then(|| std::str::from_utf8(self.part(Part::Rules)).ok())
            .flatten()
    }

    /// The active grants the control plane published, read into an index. An image's grants
    /// were checked when the snapshot was decoded; an image adopted from another VM is read
    /// with the same checks, so a corrupt one is refused here.
    pub fn grants(&self) -> Result<Grants, SnapshotError> {
        match self.part(Part::Grants) {
            [] => Ok(Grants::default()),
            payload => Grants::decode(payload, 0),
        }
    }

    /// The grants section's bytes, empty when there are none.
    pub(crate) fn grants_bytes(&self) -> &[u8] {
        self.part(Part::Grants)
    }

    /// Every group as (ref, ancestors), in order, for a delta to carry over; `None` for a
    /// corrupt record.
    pub(crate) fn group_entries(&self) -> impl Iterator<Item = Option<(&str, IndexList<'_>)>> {
        (0..self.count(Part::Groups)).map(|index| {
            let [offset, len, list] = self.record::<3>(Part::Groups, index)?;
            Some((self.str_at(offset, len)?, self.list(list)?))
        })
    }

    /// Every user as (ref, email, direct groups), in order of ref; `None` for a corrupt record.
    pub(crate) fn user_entries(
        &self,
    ) -> impl Iterator<Item = Option<(&str, Option<&str>, IndexList<'_>)>> {
        (0..self.count(Part::Users)).map(|index| {
            let [offset, len, list, email, email_len] = self.record::<5>(Part::Users, index)?;
            let email = match email_len {
                0 => None,
                _ => Some(self.str_at(email, email_len)?),
            };
            Some((self.str_at(offset, len)?, email, self.list(list)?))
        })
    }

    /// Every resource as (kind, id, owners), in order of (kind, id); `None` for a corrupt
    /// record.
    pub(crate) fn owned_entries(
        &self,
    ) -> impl Iterator<Item = Option<(&str, &str, IndexList<'_>)>> {
        (0..self.count(Part::Kinds)).flat_map(move |kind| {
            let record = self.record::<4>(Part::Kinds, kind);
            let name = record.and_then(|[offset, len, _, _]| self.str_at(offset, len));
            let positions = record.map_or(0..0, |[_, _, first, count]| {
                first..first.saturating_add(count)
            });
            let broken = (name.is_none() || record.is_none()).then_some(None);
            broken.into_iter().chain(positions.map(move |position| {
                let [offset, len, list] = self.record::<3>(Part::Owned, position as usize)?;
                Some((name?, self.str_at(offset, len)?, self.list(list)?))
            }))
        })
    }

    /// The editable content back from the image, for a delta to change. `None` when the
    /// image is corrupt.
    pub(crate) fn to_sorted(&self) -> Option<SortedContent> {
        let mut content = SortedContent::default();
        for index in 0..self.count(Part::Groups) {
            let [offset, len, list] = self.record::<3>(Part::Groups, index)?;
            content.groups.push(Box::from(self.str_at(offset, len)?));
            content.ancestors.push(self.list(list)?.to_vec()?);
        }
        for index in 0..self.count(Part::Users) {
            let [offset, len, list, email, email_len] = self.record::<5>(Part::Users, index)?;
            let email = match email_len {
                0 => None,
                _ => Some(Box::from(self.str_at(email, email_len)?)),
            };
            content.users.push(UserEntry {
                entity_ref: Box::from(self.str_at(offset, len)?),
                email,
                groups: self.list(list)?.to_vec()?,
            });
        }
        for kind in 0..self.count(Part::Kinds) {
            let [offset, len, first, count] = self.record::<4>(Part::Kinds, kind)?;
            let kind: Box<str> = Box::from(self.str_at(offset, len)?);
            for position in first..first.checked_add(count)? {
                let [offset, len, list] = self.record::<3>(Part::Owned, position as usize)?;
                content.owned.push(OwnedEntry {
                    kind: kind.clone(),
                    id: Box::from(self.str_at(offset, len)?),
                    owners: self.list(list)?.to_vec()?,
                });
            }
        }
        content.rules = self.rules_json().map(Box::from);
        content.grants = match self.grants_bytes() {
            [] => None,
            bytes => Some(Box::from(bytes)),
        };
        Some(content)
    }

    fn part(&self, part: Part) -> &[u8] {
        self.image.get(self.layout.part(part)).unwrap_or_default()
    }

    fn count(&self, part: Part) -> usize {
        self.part(part).len() / part.record_bytes()
    }

    /// The first `N` fields of record `index` of a part.
    fn record<const N: usize>(&self, part: Part, index: usize) -> Option<[u32; N]> {
        let bytes = self.part(part);
        let start = index.checked_mul(part.record_bytes())?;
        let mut fields = [0u32; N];
        for (i, field) in fields.iter_mut().enumerate() {
            *field = read_u32(bytes, start.checked_add(i * 4)?)?;
        }
        Some(fields)
    }

    fn bytes_at(&self, offset: u32, len: u32) -> Option<&[u8]> {
        let start = offset as usize;
        self.part(Part::Strings)
            .get(start..start.checked_add(len as usize)?)
    }

    fn str_at(&self, offset: u32, len: u32) -> Option<&str> {
        std::str::from_utf8(self.bytes_at(offset, len)?).ok()
    }

    /// The index list at byte `offset` of the lists part; `None` when out of bounds.
    fn list(&self, offset: u32) -> Option<IndexList<'_>> {
        let bytes = self.part(Part::Lists).get(offset as usize..)?;
        Some(IndexList { bytes })
    }

    fn set(&self, offset: u32, closed: bool) -> GroupSet<'_> {
        GroupSet {
            list: self.list(offset).unwrap_or_default(),
            closed,
            snapshot: self,
        }
    }

    fn ancestor_list(&self, index: u32) -> IndexList<'_> {
        self.record::<3>(Part::Groups, index as usize)
            .and_then(|[_, _, offset]| self.list(offset))
            .unwrap_or_default()
    }

    fn user_view(&self, position: usize) -> Option<UserView<'_>> {
        let [offset, len, list] = self.record::<3>(Part::Users, position)?;
        Some(UserView {
            entity_ref: self.str_at(offset, len)?,
            groups: self.set(list, true),
        })
    }

    /// Binary search among records `range` of a sorted part whose first two fields are a
    /// string key. `None` when absent or when a record is unreadable.
    fn find(&self, part: Part, range: Range<usize>, key: &str) -> Option<usize> {
        let key = key.as_bytes();
        let (mut low, mut high) = (range.start, range.end.min(self.count(part)));
        while low < high {
            let middle = low + (high - low) / 2;
            let [offset, len] = self.record::<2>(part, middle)?;
            match self.bytes_at(offset, len)?.cmp(key) {
                Ordering::Less => low = middle + 1,
                Ordering::Greater => high = middle,
                Ordering::Equal => return Some(middle),
            }
        }
        None
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version())
            .field("generated_at", &self.generated_at())
            .field("content_hash", &self.content_hash_hex())
            .field("key_id", &self.key_id())
            .field("users", &self.user_count())
            .field("groups", &self.group_count())
            .field("owned", &self.owned_count())
            .field("image_bytes", &self.image.len())
            .finish_non_exhaustive()
    }
}

/// A sorted list of group indices inside the image, read in place: a varint count, the first
/// index, then each following index minus the previous one minus 1 (as on the wire). Reading
/// stops at the first varint that is cut off, too long or out of `u32` range, so a corrupt
/// image gives a shorter list, never a panic; a list longer than its count is cut at it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IndexList<'a> {
    /// The list and whatever follows it in the lists part.
    bytes: &'a [u8],
}

impl<'a> IndexList<'a> {
    pub(crate) fn iter(self) -> ListIter<'a> {
        let mut iter = ListIter {
            bytes: self.bytes,
            left: 0,
            next: Some(0),
            cut: false,
        };
        match iter.varint() {
            Some(count) => iter.left = count,
            None => iter.cut = true,
        }
        iter
    }

    fn is_empty(self) -> bool {
        self.iter().next().is_none()
    }

    fn len(self) -> usize {
        self.iter().count()
    }

    /// Appends every index to `out`; false when the list is corrupt (shorter than its count).
    pub(crate) fn read_into(self, out: &mut Vec<u32>) -> bool {
        let mut iter = self.iter();
        out.extend(iter.by_ref());
        !iter.cut
    }

    /// Every index, or `None` when the list is corrupt (shorter than its count).
    fn to_vec(self) -> Option<Vec<u32>> {
        let mut iter = self.iter();
        let mut values = Vec::with_capacity(usize::try_from(iter.left).unwrap_or(0).min(1024));
        values.extend(iter.by_ref());
        (!iter.cut).then_some(values)
    }

    /// A scan that stops at the first index not below `value`: O(list length), at most a few
    /// hundred one- or two-byte varints for a group's ancestors.
    fn contains(self, value: u32) -> bool {
        self.iter()
            .find(|&index| index >= value)
            .is_some_and(|index| index == value)
    }
}

/// Decodes an [`IndexList`].
pub(crate) struct ListIter<'a> {
    bytes: &'a [u8],
    /// Indices still to read.
    left: u64,
    /// The smallest value the next index can take; `None` after `u32::MAX`.
    next: Option<u32>,
    /// The list ended before its count: a varint was cut off, too long or out of range.
    cut: bool,
}

impl ListIter<'_> {
    /// One LEB128 varint; `None` when cut off or over 64 bits.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
            if byte & 0x80 == 0 {
                self.bytes = self.bytes.get(i + 1..).unwrap_or_default();
                return Some(value);
            }
        }
        None
    }
}

impl Iterator for ListIter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.left == 0 {
            return None;
        }
        let value = self
            .varint()
            .and_then(|gap| u32::try_from(gap).ok())
            .and_then(|gap| self.next?.checked_add(gap));
        let Some(value) = value else {
            self.left = 0;
            self.cut = true;
            return None;
        };
        self.left -= 1;
        self.next = value.checked_add(1);
        Some(value)
    }
}

impl<'a> GroupSet<'a> {
    /// Group indices of the whole set, strictly increasing. Allocates (a user's closure is
    /// computed): meant for headers and logs, not for the allow/deny test.
    pub fn indices(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self.raw().collect();
        if self.closed {
            all.sort_unstable();
            all.dedup();
        }
        all
    }

    /// Number of groups in the whole set.
    pub fn len(&self) -> usize {
        if self.closed {
            self.indices().len()
        } else {
            self.list.len()
        }
    }

    /// For a user's groups, only the groups they are a direct member of, without the
    /// ancestors the closure adds; any other set as it is.
    pub fn direct(&self) -> GroupSet<'a> {
        GroupSet {
            closed: false,
            ..*self
        }
    }

    /// A user's closure is empty exactly when they have no direct group.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Group refs of the whole set, in sorted order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let snapshot = self.snapshot;
        self.indices()
            .into_iter()
            .map(move |index| snapshot.group_ref(index).unwrap_or_default())
    }

    /// Whether the group at `index` is in the set: for a user, one of their direct groups
    /// or an ancestor of one. Allocation-free: a scan of each direct group's ancestors (they
    /// are sorted, so it stops at the first larger index), O(direct groups × depth).
    pub fn contains_index(&self, index: u32) -> bool {
        if !self.closed {
            return self.list.contains(index);
        }
        self.list
            .iter()
            .any(|direct| direct == index || self.snapshot.ancestor_list(direct).contains(index))
    }

    pub fn contains(&self, group_ref: &str) -> bool {
        self.snapshot
            .group_index(group_ref)
            .is_some_and(|index| self.contains_index(index))
    }

    /// Whether the two sets share a group, for example whether a user's groups include an
    /// owner of a resource. Both sets must come from the same snapshot. Allocation-free.
    pub fn intersects(&self, other: &GroupSet<'_>) -> bool {
        match (self.closed, other.closed) {
            (false, false) => sorted_lists_meet(self.list, other.list),
            // Walk the plain list (a resource's few owners) and test each in the closure.
            (true, false) => other.list.iter().any(|i| self.contains_index(i)),
            (false, true) => self.list.iter().any(|i| other.contains_index(i)),
            (true, true) => self.raw().any(|i| other.contains_index(i)),
        }
    }

    /// Every member, possibly repeated for a closed set: each direct group, then its
    /// ancestors.
    fn raw(&self) -> impl Iterator<Item = u32> + 'a {
        let (snapshot, closed) = (self.snapshot, self.closed);
        self.list.iter().flat_map(move |direct| {
            let above = if closed {
                snapshot.ancestor_list(direct)
            } else {
                IndexList::default()
            };
            std::iter::once(direct).chain(above.iter())
        })
    }
}

/// Whether two strictly increasing lists share a value: a merge.
fn sorted_lists_meet(a: IndexList<'_>, b: IndexList<'_>) -> bool {
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
        match x.cmp(y) {
            Ordering::Less => {
                a.next();
            }
            Ordering::Greater => {
                b.next();
            }
            Ordering::Equal => return true,
        }
    }
    false
}

impl std::fmt::Debug for GroupSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::IndexList;

    /// Hostile list bytes: a list reads as far as its bytes are sound, never panics, and a
    /// list shorter than its count is refused by `to_vec`.
    #[test]
    fn hostile_lists_stop_early() {
        let cases: [(&str, &[u8], &[u32], bool); 9] = [
            ("no count", &[], &[], false),
            ("empty list", &[0], &[], true),
            ("three indices", &[3, 2, 0, 5], &[2, 3, 9], true),
            ("two-byte gap", &[2, 1, 0x80, 0x01], &[1, 130], true),
            ("count over the bytes", &[5, 1, 1], &[1, 3], false),
            ("varint cut off", &[2, 1, 0x80], &[1], false),
            (
                "varint over ten bytes",
                &[
                    1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                &[],
                false,
            ),
            (
                "index past u32",
                &[2, 0xff, 0xff, 0xff, 0xff, 0x0f, 0],
                &[u32::MAX],
                false,
            ),
            (
                "huge count",
                &[0xff, 0xff, 0xff, 0xff, 0x7f, 4],
                &[4],
                false,
            ),
        ];
        for (name, bytes, expected, whole) in cases {
            let list = IndexList { bytes };
            assert_eq!(list.iter().collect::<Vec<_>>(), expected, "{name}");
            assert_eq!(list.len(), expected.len(), "{name}");
            assert_eq!(list.is_empty(), expected.is_empty(), "{name}");
            assert_eq!(list.to_vec().is_some(), whole, "{name}");
            for &value in expected {
                assert!(list.contains(value), "{name}: {value}");
            }
            assert!(!list.contains(7), "{name}");
        }
    }
}
