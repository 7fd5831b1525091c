//! A decoded snapshot and its request-path lookups. Decoding builds the tables once, off the
//! request path; lookups allocate nothing (except for an email with upper-case letters, which
//! is lowercased first).

use super::envelope::SnapshotHeader;
use super::table::{text_at, PositionTable, Span};

/// Marks an email that several users share.
pub(crate) const AMBIGUOUS: u32 = u32::MAX;

/// A verified snapshot. Build one with [`Snapshot::decode`].
#[derive(Clone)]
pub struct Snapshot {
    pub(crate) header: SnapshotHeader,
    pub(crate) key_id: Box<str>,
    pub(crate) encoded_len: usize,
    /// Every string of the snapshot, back to back.
    pub(crate) text: Box<str>,
    /// Every group index list, back to back; each list strictly increasing.
    pub(crate) members: Box<[u32]>,
    /// Group refs in `text`, sorted; a group's index is its position.
    pub(crate) groups: Box<[Span]>,
    /// Sorted by ref.
    pub(crate) users: Box<[UserRecord]>,
    pub(crate) user_table: PositionTable,
    /// Lowercased emails; `user` is [`AMBIGUOUS`] when several users share one.
    pub(crate) emails: Box<[EmailRecord]>,
    pub(crate) email_table: PositionTable,
    pub(crate) ambiguous_emails: usize,
    /// Resource kinds in `text`, sorted.
    pub(crate) kinds: Box<[Span]>,
    /// Sorted by (kind, id).
    pub(crate) owned: Box<[OwnedRecord]>,
    pub(crate) owned_table: PositionTable,
    /// Per group index, its closed ancestors in `members`; empty when the snapshot has none.
    pub(crate) ancestors: Box<[Span]>,
    /// Rules JSON, compiled by the loader.
    pub(crate) rules: Option<Box<str>>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct UserRecord {
    pub entity_ref: Span,
    /// In `members`.
    pub groups: Span,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct EmailRecord {
    pub email: Span,
    pub user: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnedRecord {
    pub kind: u32,
    pub id: Span,
    /// In `members`.
    pub owners: Span,
}

/// A set of groups from one snapshot: a user's memberships (closed under nesting), a
/// resource's owners or a group's ancestors. Indices are sorted, so membership tests are
/// binary searches.
#[derive(Clone, Copy)]
pub struct GroupSet<'a> {
    indices: &'a [u32],
    /// `indices` are a user's direct groups: the set is them and all their ancestors.
    closed: bool,
    snapshot: &'a Snapshot,
}

/// A catalog user found in a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct UserView<'a> {
    pub entity_ref: &'a str,
    pub groups: GroupSet<'a>,
}

impl Snapshot {
    pub fn header(&self) -> &SnapshotHeader {
        &self.header
    }

    pub fn version(&self) -> u64 {
        self.header.version
    }

    pub fn generated_at(&self) -> i64 {
        self.header.generated_at
    }

    /// SHA-256 of the content section.
    pub fn content_hash(&self) -> &[u8; 32] {
        &self.header.content_hash
    }

    pub fn content_hash_hex(&self) -> String {
        self.header.content_hash_hex()
    }

    /// The id of the trusted key that signed this snapshot.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Size of the encoded snapshot in bytes.
    pub fn encoded_len(&self) -> usize {
        self.encoded_len
    }

    /// Whether this snapshot should replace `other`: versions only ever go up.
    pub fn is_newer_than(&self, other: &Snapshot) -> bool {
        self.header.version > other.header.version
    }

    /// The closed group memberships of a user, by entity ref (`user:default/alice`).
    pub fn groups_of_user(&self, entity_ref: &str) -> Option<GroupSet<'_>> {
        self.user(entity_ref).map(|user| user.groups)
    }

    /// A user by entity ref.
    pub fn user(&self, entity_ref: &str) -> Option<UserView<'_>> {
        let hash = self.user_table.hash(entity_ref);
        let position = self.user_table.find(hash, |position| {
            self.user_at(position)
                .is_some_and(|user| self.text(user.entity_ref) == entity_ref)
        })?;
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
        let hash = self.email_table.hash(email);
        let position = self.email_table.find(hash, |position| {
            self.emails
                .get(position as usize)
                .is_some_and(|record| self.text(record.email) == email)
        })?;
        let user = self.emails.get(position as usize)?.user;
        if user == AMBIGUOUS {
            return None;
        }
        self.user_view(user)
    }

    /// The groups owning a resource, such as (`airflow.dag`, `etl_daily`).
    pub fn owners_of(&self, kind: &str, id: &str) -> Option<GroupSet<'_>> {
        let kind = self.kind_index(kind)?;
        let hash = self.owned_table.hash(&(kind, id));
        let position = self.owned_table.find(hash, |position| {
            self.owned
                .get(position as usize)
                .is_some_and(|record| record.kind == kind && self.text(record.id) == id)
        })?;
        let record = self.owned.get(position as usize)?;
        Some(self.set(record.owners))
    }

    /// The ref of the group at `index`.
    pub fn group_ref(&self, index: u32) -> Option<&str> {
        self.groups.get(index as usize).map(|&span| self.text(span))
    }

    /// The index of a group ref.
    pub fn group_index(&self, group_ref: &str) -> Option<u32> {
        self.groups
            .binary_search_by(|&span| self.text(span).cmp(group_ref))
            .ok()
            .and_then(|index| u32::try_from(index).ok())
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Number of (kind, id) resources.
    pub fn owned_count(&self) -> usize {
        self.owned.len()
    }

    /// Emails shared by several users, which map to no user.
    pub fn ambiguous_email_count(&self) -> usize {
        self.ambiguous_emails
    }

    /// Heap bytes held by this decoded snapshot (arenas, records and tables), for a memory
    /// gauge. It is the same on every target: nothing in it is pointer-sized.
    pub fn heap_size(&self) -> usize {
        use std::mem::size_of_val;
        self.key_id.len()
            + self.text.len()
            + size_of_val(&*self.members)
            + size_of_val(&*self.groups)
            + size_of_val(&*self.users)
            + size_of_val(&*self.emails)
            + size_of_val(&*self.kinds)
            + size_of_val(&*self.owned)
            + self.user_table.heap_bytes()
            + self.email_table.heap_bytes()
            + self.owned_table.heap_bytes()
            + size_of_val(&*self.ancestors)
            + self.rules.as_deref().map_or(0, str::len)
    }

    /// Every group above the group at `index` (empty when none, or when the snapshot
    /// carries no hierarchy).
    pub fn ancestors_of(&self, index: u32) -> GroupSet<'_> {
        let span = self
            .ancestors
            .get(index as usize)
            .copied()
            .unwrap_or_default();
        self.set(span)
    }

    /// The ancestors of the group at `index` as a sorted list (empty when none).
    fn ancestor_list(&self, index: u32) -> &[u32] {
        let span = self
            .ancestors
            .get(index as usize)
            .copied()
            .unwrap_or_default();
        self.members.get(span.range()).unwrap_or_default()
    }

    /// The rules the control plane published, as JSON text.
    pub fn rules_json(&self) -> Option<&str> {
        self.rules.as_deref()
    }

    fn text(&self, span: Span) -> &str {
        text_at(&self.text, span)
    }

    fn user_at(&self, position: u32) -> Option<&UserRecord> {
        self.users.get(position as usize)
    }

    fn user_view(&self, position: u32) -> Option<UserView<'_>> {
        let user = self.user_at(position)?;
        Some(UserView {
            entity_ref: self.text(user.entity_ref),
            groups: GroupSet {
                closed: true,
                ..self.set(user.groups)
            },
        })
    }

    fn kind_index(&self, kind: &str) -> Option<u32> {
        self.kinds
            .binary_search_by(|&span| self.text(span).cmp(kind))
            .ok()
            .and_then(|index| u32::try_from(index).ok())
    }

    fn set(&self, span: Span) -> GroupSet<'_> {
        GroupSet {
            indices: self.members.get(span.range()).unwrap_or_default(),
            closed: false,
            snapshot: self,
        }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.header.version)
            .field("generated_at", &self.header.generated_at)
            .field("content_hash", &self.header.content_hash_hex())
            .field("key_id", &self.key_id)
            .field("users", &self.users.len())
            .field("groups", &self.groups.len())
            .field("owned", &self.owned.len())
            .finish_non_exhaustive()
    }
}

impl<'a> GroupSet<'a> {
    /// Group indices of the whole set, strictly increasing. Allocates for a user's set (its
    /// closure is computed): meant for headers and logs, not for the allow/deny test.
    pub fn indices(&self) -> Vec<u32> {
        if !self.closed {
            return self.indices.to_vec();
        }
        let mut all: Vec<u32> = self.raw().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Number of groups in the whole set.
    pub fn len(&self) -> usize {
        if self.closed {
            self.indices().len()
        } else {
            self.indices.len()
        }
    }

    /// A user's closure is empty exactly when they have no direct group.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Group refs of the whole set, in sorted order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let snapshot = self.snapshot;
        // Indices were checked against the group table when the snapshot was decoded.
        self.indices()
            .into_iter()
            .map(move |index| snapshot.group_ref(index).unwrap_or_default())
    }

    /// Whether the group at `index` is in the set: for a user, one of their direct groups
    /// or an ancestor of one. Allocation-free.
    pub fn contains_index(&self, index: u32) -> bool {
        if !self.closed {
            return self.indices.binary_search(&index).is_ok();
        }
        self.indices.iter().any(|&direct| {
            direct == index
                || self
                    .snapshot
                    .ancestor_list(direct)
                    .binary_search(&index)
                    .is_ok()
        })
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
            (false, false) => sorted_lists_meet(self.indices, other.indices),
            // Walk the plain list (a resource's few owners) and test each in the closure.
            (true, false) => other.indices.iter().any(|&i| self.contains_index(i)),
            (false, true) => self.indices.iter().any(|&i| other.contains_index(i)),
            (true, true) => self.raw().any(|i| other.contains_index(i)),
        }
    }

    /// Every member, possibly repeated: direct groups followed by their ancestors.
    fn raw(&self) -> impl Iterator<Item = u32> + 'a {
        let (snapshot, closed) = (self.snapshot, self.closed);
        self.indices.iter().flat_map(move |&direct| {
            let above: &[u32] = if closed {
                snapshot.ancestor_list(direct)
            } else {
                &[]
            };
            std::iter::once(direct).chain(above.iter().copied())
        })
    }
}

/// Whether two strictly increasing lists share a value: a merge.
fn sorted_lists_meet(a: &[u32], b: &[u32]) -> bool {
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => {
                a.next();
            }
            std::cmp::Ordering::Greater => {
                b.next();
            }
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

impl std::fmt::Debug for GroupSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
