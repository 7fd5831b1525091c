//! Signed deltas: the changes from one snapshot to the next, expressed by refs (indices shift
//! when groups come and go), so that a one-user change costs a sidecar a few hundred bytes
//! instead of the whole snapshot. [`encode_delta`] compares two snapshots;
//! [`super::Snapshot::apply_delta`] (in `apply.rs`) verifies and applies one. The byte layout
//! is in `docs/snapshot.md`.

use std::cmp::Ordering;

use super::envelope::hex;
use super::err::{DeltaError, EncodeError, SnapshotError};
use super::grants::{Grant, Grants};
use super::keys::{
    append_trailer, read_trailer, SigningKey, TrailerError, MAX_KEY_ID_BYTES, SIGNATURE_BYTES,
};
use super::lookup::IndexList;
use super::lookup::Snapshot;
use super::wire::{Reader, Writer};

/// First bytes of every delta.
pub const DELTA_MAGIC: [u8; 7] = *b"MGDELTA";
/// The delta layout this build writes and reads.
pub const DELTA_FORMAT_VERSION: u16 = 1;
/// Magic, format, base version and hash, target version, time, size, hash and image hash,
/// body length.
pub const DELTA_HEADER_BYTES: usize = 7 + 2 + 8 + 32 + 8 + 8 + 8 + 32 + 32 + 4;

/// The signed header of a delta: which snapshot it applies to and which it produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeltaHeader {
    pub base_version: u64,
    /// Content hash of the snapshot the delta applies to.
    pub base_content_hash: [u8; 32],
    pub target_version: u64,
    pub target_generated_at: i64,
    /// Size of the full target snapshot, reported by the result's `encoded_len`.
    pub target_encoded_len: u64,
    /// Content hash of the full target snapshot, reported by the result's `content_hash`.
    pub target_content_hash: [u8; 32],
    /// [`Snapshot::image_content_hash`] of the result: the applier checks it.
    pub target_image_hash: [u8; 32],
}

impl DeltaHeader {
    /// Reads the header without checking the signature, to decide whether a delta is worth
    /// applying. Nothing read this way may be trusted: only [`Snapshot::apply_delta`]
    /// authenticates.
    pub fn peek(bytes: &[u8]) -> Result<DeltaHeader, DeltaError> {
        DeltaEnvelope::parse(bytes).map(|envelope| envelope.header)
    }

    pub fn target_content_hash_hex(&self) -> String {
        hex(&self.target_content_hash)
    }
}

/// A delta split into its parts, not yet verified.
pub(crate) struct DeltaEnvelope<'a> {
    pub header: DeltaHeader,
    pub signed: &'a [u8],
    pub body: &'a [u8],
    pub kid: &'a str,
    pub signature: &'a [u8],
}

impl<'a> DeltaEnvelope<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<DeltaEnvelope<'a>, DeltaError> {
        let truncated = |what, needed| DeltaError::Truncated { what, needed };
        let Some((fixed, rest)) = bytes.split_first_chunk::<DELTA_HEADER_BYTES>() else {
            if !DELTA_MAGIC.starts_with(bytes) && !bytes.starts_with(&DELTA_MAGIC) {
                return Err(DeltaError::NotADelta);
            }
            return Err(truncated(
                "header",
                DELTA_HEADER_BYTES.saturating_sub(bytes.len()),
            ));
        };
        let mut cursor: &[u8] = fixed;
        if take::<7>(&mut cursor) != DELTA_MAGIC {
            return Err(DeltaError::NotADelta);
        }
        let format = u16::from_le_bytes(take(&mut cursor));
        if format != DELTA_FORMAT_VERSION {
            return Err(DeltaError::UnsupportedFormat {
                found: format,
                supported: DELTA_FORMAT_VERSION,
            });
        }
        let header = DeltaHeader {
            base_version: u64::from_le_bytes(take(&mut cursor)),
            base_content_hash: take(&mut cursor),
            target_version: u64::from_le_bytes(take(&mut cursor)),
            target_generated_at: i64::from_le_bytes(take(&mut cursor)),
            target_encoded_len: u64::from_le_bytes(take(&mut cursor)),
            target_content_hash: take(&mut cursor),
            target_image_hash: take(&mut cursor),
        };
        let body_len = u32::from_le_bytes(take(&mut cursor)) as usize;
        let Some((body, trailer)) = rest.split_at_checked(body_len) else {
            return Err(truncated("body", body_len.saturating_sub(rest.len())));
        };
        let (kid, signature) = read_trailer(trailer).map_err(|error| match error {
            TrailerError::Truncated { what, needed } => truncated(what, needed),
            TrailerError::TrailingBytes { extra } => DeltaError::TrailingBytes { extra },
            TrailerError::InvalidKeyId => DeltaError::InvalidKeyId {
                max: MAX_KEY_ID_BYTES,
            },
        })?;
        let signed_len = DELTA_HEADER_BYTES.saturating_add(body_len);
        Ok(DeltaEnvelope {
            header,
            signed: bytes.get(..signed_len).unwrap_or_default(),
            body,
            kid,
            signature,
        })
    }
}

/// The next `N` bytes of a cursor known to hold enough; zeros otherwise (never reached: the
/// header's fields add up to [`DELTA_HEADER_BYTES`]).
fn take<const N: usize>(cursor: &mut &[u8]) -> [u8; N] {
    match cursor.split_first_chunk::<N>() {
        Some((head, tail)) => {
            *cursor = tail;
            *head
        }
        None => [0; N],
    }
}

/// What changes from base to target, by refs. Lists of refs are sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    pub groups_removed: Vec<String>,
    pub groups_added: Vec<String>,
    /// A group and its whole new ancestor list; an empty list removes its ancestors.
    pub ancestors: Vec<(String, Vec<String>)>,
    pub users_removed: Vec<String>,
    pub users_upserted: Vec<UserChange>,
    pub owned_removed: Vec<(String, String)>,
    /// (kind, id, owners).
    pub owned_upserted: Vec<(String, String, Vec<String>)>,
    pub rules: RulesChange,
    pub grants: GrantsChange,
}

/// Grants by (user, id): those gone (or changed), then those new (or changed). Written after
/// the rules only when not empty, so a delta without grant changes reads as before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GrantsChange {
    pub removed: Vec<(String, String)>,
    pub added: Grants,
}

impl GrantsChange {
    fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserChange {
    pub entity_ref: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum RulesChange {
    #[default]
    Unchanged,
    Removed,
    Replaced(String),
}

/// Encodes and signs the delta that turns `base` into `target`. The target's version, time,
/// size and content hash go in the header, with the image content hash the result must have.
/// The same pair and key always give the same bytes. Both images are read in place: nothing
/// but the changes is allocated, so a control plane signing deltas from several kept versions
/// pays one merge of two images per version, not a copy of each.
pub fn encode_delta(
    base: &Snapshot,
    target: &Snapshot,
    key: &SigningKey,
) -> Result<Vec<u8>, EncodeError> {
    let body = write_changes(&diff(base, target)?)?;
    let body_len = u32::try_from(body.len()).map_err(|_| EncodeError::TooMany {
        what: "delta byte",
        count: body.len(),
        max: u32::MAX as usize,
    })?;
    let kid_len = key.kid().len();
    let mut out =
        Vec::with_capacity(DELTA_HEADER_BYTES + body.len() + 1 + kid_len + SIGNATURE_BYTES);
    out.extend_from_slice(&DELTA_MAGIC);
    out.extend_from_slice(&DELTA_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&base.version().to_le_bytes());
    out.extend_from_slice(base.content_hash());
    out.extend_from_slice(&target.version().to_le_bytes());
    out.extend_from_slice(&target.generated_at().to_le_bytes());
    out.extend_from_slice(&(target.encoded_len() as u64).to_le_bytes());
    out.extend_from_slice(target.content_hash());
    out.extend_from_slice(&target.image_content_hash());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&body);
    append_trailer(&mut out, key);
    Ok(out)
}

/// Which image a corrupt record was found in.
const BASE: &str = "base";
const TARGET: &str = "target";

/// Base group indices mapped to the target's: the same ref, wherever the groups added and
/// removed in between moved it. Lists compare as integers through it, never as strings.
struct GroupMap(Vec<Option<u32>>);

impl GroupMap {
    /// Whether base list `before` names the same refs as target list `after`.
    fn same(&self, before: IndexList<'_>, after: IndexList<'_>) -> bool {
        // Both lists are sorted and the map keeps order, so equal sets are equal sequences.
        let mapped = before
            .iter()
            .map(|index| self.0.get(index as usize).copied().flatten());
        mapped.eq(after.iter().map(Some))
    }
}

/// The refs of a target list, in order (indices out of range are skipped).
fn refs_of(snapshot: &Snapshot, list: IndexList<'_>) -> Vec<String> {
    list.iter()
        .filter_map(|index| snapshot.group_ref(index).map(str::to_owned))
        .collect()
}

/// The changes from `from` to `to`, found by merging their images' sorted tables.
fn diff(from: &Snapshot, to: &Snapshot) -> Result<Changes, EncodeError> {
    let mut changes = Changes::default();
    let mut map = GroupMap(vec![None; from.group_count()]);
    // Target group index -> its ancestors in the base, for the groups both have.
    let mut base_ancestors: Vec<Option<IndexList<'_>>> = vec![None; to.group_count()];
    merge(
        numbered(from.group_entries()),
        numbered(to.group_entries()),
        |a, b| a.1.cmp(b.1),
        |step| match step {
            Step::Left((_, group, _)) => changes.groups_removed.push(group.to_owned()),
            Step::Right((_, group, _)) => changes.groups_added.push(group.to_owned()),
            Step::Both((old, _, above), (new, _, _)) => {
                if let Some(slot) = map.0.get_mut(old) {
                    *slot = u32::try_from(new).ok();
                }
                if let Some(slot) = base_ancestors.get_mut(new) {
                    *slot = Some(above);
                }
            }
        },
    )?;
    for (index, entry) in to.group_entries().enumerate() {
        let (group, above) = entry.ok_or(EncodeError::CorruptImage { which: TARGET })?;
        let before = base_ancestors
            .get(index)
            .copied()
            .flatten()
            .unwrap_or_default();
        if !map.same(before, above) {
            changes
                .ancestors
                .push((group.to_owned(), refs_of(to, above)));
        }
    }
    merge(
        from.user_entries(),
        to.user_entries(),
        |a, b| a.0.cmp(b.0),
        |step| match step {
            Step::Left((user, _, _)) => changes.users_removed.push(user.to_owned()),
            Step::Right(new) => changes.users_upserted.push(user_change(to, new)),
            Step::Both((_, old_email, old_groups), new) => {
                if old_email != new.1 || !map.same(old_groups, new.2) {
                    changes.users_upserted.push(user_change(to, new));
                }
            }
        },
    )?;
    merge(
        from.owned_entries(),
        to.owned_entries(),
        |a, b| (a.0, a.1).cmp(&(b.0, b.1)),
        |step| match step {
            Step::Left((kind, id, _)) => {
                changes.owned_removed.push((kind.to_owned(), id.to_owned()))
            }
            Step::Right(new) => changes.owned_upserted.push(owned_change(to, new)),
            Step::Both((_, _, old_owners), new) => {
                if !map.same(old_owners, new.2) {
                    changes.owned_upserted.push(owned_change(to, new));
                }
            }
        },
    )?;
    changes.rules = match (from.rules_json(), to.rules_json()) {
        (a, b) if a == b => RulesChange::Unchanged,
        (_, None) => RulesChange::Removed,
        (_, Some(rules)) => RulesChange::Replaced(rules.to_owned()),
    };
    if from.grants_bytes() != to.grants_bytes() {
        changes.grants = grants_change(from.grants_bytes(), to.grants_bytes())?;
    }
    Ok(changes)
}

/// Each entry with its position.
fn numbered<'a, T>(
    entries: impl Iterator<Item = Option<(&'a str, T)>>,
) -> impl Iterator<Item = Option<(usize, &'a str, T)>> {
    entries
        .enumerate()
        .map(|(index, entry)| entry.map(|(name, rest)| (index, name, rest)))
}

/// A grants section's payload (empty: none) read into an index.
fn read_grants(bytes: &[u8], which: &'static str) -> Result<Grants, EncodeError> {
    match bytes {
        [] => Ok(Grants::default()),
        bytes => Grants::decode(bytes, 0).map_err(|_| EncodeError::CorruptImage { which }),
    }
}

fn grants_change(from: &[u8], to: &[u8]) -> Result<GrantsChange, EncodeError> {
    let (before, after) = (read_grants(from, BASE)?, read_grants(to, TARGET)?);
    let mut change = GrantsChange::default();
    let mut added = Vec::new();
    let key = |g: &Grant| (g.user.clone(), g.id.clone());
    merge(
        before.as_slice().iter().map(Some),
        after.as_slice().iter().map(Some),
        |a, b| (&a.user, &a.id).cmp(&(&b.user, &b.id)),
        |step| match step {
            Step::Left(old) => change.removed.push(key(old)),
            Step::Right(new) => added.push(new.clone()),
            Step::Both(old, new) => {
                if old != new {
                    change.removed.push(key(old));
                    added.push(new.clone());
                }
            }
        },
    )?;
    change.added = Grants::new(added);
    Ok(change)
}

fn user_change(
    snapshot: &Snapshot,
    (entity_ref, email, groups): (&str, Option<&str>, IndexList<'_>),
) -> UserChange {
    UserChange {
        entity_ref: entity_ref.to_owned(),
        email: email.map(str::to_owned),
        groups: refs_of(snapshot, groups),
    }
}

fn owned_change(
    snapshot: &Snapshot,
    (kind, id, owners): (&str, &str, IndexList<'_>),
) -> (String, String, Vec<String>) {
    (kind.to_owned(), id.to_owned(), refs_of(snapshot, owners))
}

enum Step<T> {
    Left(T),
    Right(T),
    Both(T, T),
}

/// Walks two sorted tables together. An entry that is `None` (a corrupt record) stops the
/// walk with an error naming the side it was on.
fn merge<T: Copy>(
    left: impl Iterator<Item = Option<T>>,
    right: impl Iterator<Item = Option<T>>,
    compare: impl Fn(&T, &T) -> Ordering,
    mut visit: impl FnMut(Step<T>),
) -> Result<(), EncodeError> {
    let corrupt = |which| EncodeError::CorruptImage { which };
    let (mut left, mut right) = (left.peekable(), right.peekable());
    loop {
        let a = match left.peek() {
            Some(Some(entry)) => Some(*entry),
            Some(None) => return Err(corrupt(BASE)),
            None => None,
        };
        let b = match right.peek() {
            Some(Some(entry)) => Some(*entry),
            Some(None) => return Err(corrupt(TARGET)),
            None => None,
        };
        match (a, b) {
            (Some(a), Some(b)) => match compare(&a, &b) {
                Ordering::Less => {
                    visit(Step::Left(a));
                    left.next();
                }
                Ordering::Greater => {
                    visit(Step::Right(b));
                    right.next();
                }
                Ordering::Equal => {
                    visit(Step::Both(a, b));
                    left.next();
                    right.next();
                }
            },
            (Some(a), None) => {
                visit(Step::Left(a));
                left.next();
            }
            (None, Some(b)) => {
                visit(Step::Right(b));
                right.next();
            }
            (None, None) => return Ok(()),
        }
    }
}

/// The body: eight parts in a fixed order, strings front-coded within each list.
pub(crate) fn write_changes(changes: &Changes) -> Result<Vec<u8>, EncodeError> {
    let mut w = Writer::default();
    write_strings(&mut w, &changes.groups_removed);
    write_strings(&mut w, &changes.groups_added);
    w.len(changes.ancestors.len());
    for (group, above) in &changes.ancestors {
        w.front_coded(b"", group.as_bytes());
        write_strings(&mut w, above);
    }
    write_strings(&mut w, &changes.users_removed);
    w.len(changes.users_upserted.len());
    for user in &changes.users_upserted {
        w.front_coded(b"", user.entity_ref.as_bytes());
        match &user.email {
            None => w.len(0),
            Some(email) => {
                w.len(1);
                w.front_coded(b"", email.as_bytes());
            }
        }
        write_strings(&mut w, &user.groups);
    }
    w.len(changes.owned_removed.len());
    for (kind, id) in &changes.owned_removed {
        w.front_coded(b"", kind.as_bytes());
        w.front_coded(b"", id.as_bytes());
    }
    w.len(changes.owned_upserted.len());
    for (kind, id, owners) in &changes.owned_upserted {
        w.front_coded(b"", kind.as_bytes());
        w.front_coded(b"", id.as_bytes());
        write_strings(&mut w, owners);
    }
    match &changes.rules {
        RulesChange::Unchanged => w.len(0),
        RulesChange::Removed => w.len(1),
        RulesChange::Replaced(rules) => {
            w.len(2);
            w.len(rules.len());
            w.buf.extend_from_slice(rules.as_bytes());
        }
    }
    if !changes.grants.is_empty() {
        w.len(changes.grants.removed.len());
        for (user, id) in &changes.grants.removed {
            w.front_coded(b"", user.as_bytes());
            w.front_coded(b"", id.as_bytes());
        }
        let added = changes.grants.added.encode()?;
        w.len(added.len());
        w.buf.extend_from_slice(&added);
    }
    Ok(w.buf)
}

fn write_strings(w: &mut Writer, values: &[String]) {
    w.len(values.len());
    let mut previous = "";
    for value in values {
        w.front_coded(previous.as_bytes(), value.as_bytes());
        previous = value;
    }
}

/// Bounds for reading a body.
pub(crate) struct BodyLimits {
    pub max_string_bytes: usize,
    pub max_rules_bytes: usize,
}

/// Reads a body written by [`write_changes`]. Counts are bounded by the bytes left, strings
/// by `limits`.
pub(crate) fn read_changes(body: &[u8], limits: &BodyLimits) -> Result<Changes, DeltaError> {
    let mut r = Reader::new(body, 0);
    let mut body_reader = BodyReader {
        r: &mut r,
        max: limits.max_string_bytes,
    };
    let b = &mut body_reader;
    let mut changes = Changes {
        groups_removed: b.strings("removed group")?,
        groups_added: b.strings("added group")?,
        ..Changes::default()
    };
    for _ in 0..b.count("ancestor entry")? {
        let group = b.string("ancestor group")?;
        changes.ancestors.push((group, b.strings("ancestor")?));
    }
    changes.users_removed = b.strings("removed user")?;
    for _ in 0..b.count("user")? {
        let entity_ref = b.string("user ref")?;
        let email = match b.r.varint("email flag").map_err(malformed)? {
            0 => None,
            _ => Some(b.string("email")?),
        };
        let groups = b.strings("user group")?;
        changes.users_upserted.push(UserChange {
            entity_ref,
            email,
            groups,
        });
    }
    for _ in 0..b.count("removed resource")? {
        let kind = b.string("resource kind")?;
        changes.owned_removed.push((kind, b.string("resource id")?));
    }
    for _ in 0..b.count("resource")? {
        let kind = b.string("resource kind")?;
        let id = b.string("resource id")?;
        changes.owned_upserted.push((kind, id, b.strings("owner")?));
    }
    changes.rules = match b.r.varint("rules change").map_err(malformed)? {
        0 => RulesChange::Unchanged,
        1 => RulesChange::Removed,
        _ => {
            let len =
                b.r.bounded("rules", limits.max_rules_bytes)
                    .map_err(malformed)?;
            let bytes = b.r.take(len as u64, "rules").map_err(malformed)?;
            RulesChange::Replaced(b.r.utf8(bytes, "rules").map_err(malformed)?.to_owned())
        }
    };
    if !b.r.is_empty() {
        for _ in 0..b.count("removed grant")? {
            let user = b.string("grant user")?;
            changes.grants.removed.push((user, b.string("grant id")?));
        }
        let len = b.count("added grants")?;
        let start = b.r.offset();
        let bytes = b.r.take(len as u64, "added grants").map_err(malformed)?;
        changes.grants.added = Grants::decode(bytes, start).map_err(malformed)?;
    }
    if !b.r.is_empty() {
        return Err(malformed(b.r.fail(
            super::err::Violation::SectionNotConsumed {
                tag: 0,
                extra: b.r.remaining(),
            },
        )));
    }
    Ok(changes)
}

struct BodyReader<'r, 'a> {
    r: &'r mut Reader<'a>,
    max: usize,
}

impl BodyReader<'_, '_> {
    /// A count; each entry takes at least one byte, so more than the bytes left is corrupt.
    fn count(&mut self, what: &'static str) -> Result<usize, DeltaError> {
        let left = self.r.remaining();
        self.r.bounded(what, left).map_err(malformed)
    }

    fn string(&mut self, what: &'static str) -> Result<String, DeltaError> {
        let mut current = Vec::new();
        self.r
            .front_coded(&mut current, what, self.max)
            .map_err(malformed)?;
        Ok(self.r.utf8(&current, what).map_err(malformed)?.to_owned())
    }

    fn strings(&mut self, what: &'static str) -> Result<Vec<String>, DeltaError> {
        let count = self.count(what)?;
        let mut out = Vec::with_capacity(count);
        let mut current = Vec::new();
        for _ in 0..count {
            self.r
                .front_coded(&mut current, what, self.max)
                .map_err(malformed)?;
            out.push(self.r.utf8(&current, what).map_err(malformed)?.to_owned());
        }
        Ok(out)
    }
}

pub(crate) fn malformed(error: SnapshotError) -> DeltaError {
    match error {
        SnapshotError::Malformed { offset, violation } => {
            DeltaError::Malformed { offset, violation }
        }
        other => DeltaError::Build(other),
    }
}
