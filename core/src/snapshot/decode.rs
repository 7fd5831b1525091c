//! Decoding: size limit, envelope, signature, content hash, then the content with every
//! count, length, order and index checked as it is written straight into the snapshot's image
//! ([`ImageBuilder`]; tests can parse into `SortedContent` instead). Unauthenticated bytes never reach the content parser, and the parser
//! never panics on any input.

use std::cmp::Ordering;

use sha2::{Digest as _, Sha256};

use super::encode::user_name;
use super::envelope::Envelope;
use super::err::{SnapshotError, Violation};
use super::grants::Grants;
use super::image::ImageBuilder;
use super::image::Stamp;
use super::keys::TrustedKey;
use super::lookup::Snapshot;
#[cfg(test)]
use super::sorted::{OwnedEntry, SortedContent, UserEntry};
use super::wire::Reader;
use super::{
    MAX_STRING_BYTES, OPTIONAL_TAGS, TAG_ANCESTORS, TAG_GRANTS, TAG_GROUPS, TAG_OWNED, TAG_RULES,
    TAG_USERS,
};

/// Bounds on what a decoder accepts, against a trusted but faulty control plane and to cap
/// the memory a snapshot can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Encoded size.
    pub max_bytes: usize,
    /// Any single string: ref, email, kind or id.
    pub max_string_bytes: usize,
    pub max_users: usize,
    pub max_groups: usize,
    /// (kind, id) resources.
    pub max_owned: usize,
    /// All strings together once decoded (front coding makes them larger than encoded).
    pub max_text_bytes: usize,
    /// The rules JSON text.
    pub max_rules_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bytes: 64 * 1024 * 1024,
            max_string_bytes: MAX_STRING_BYTES,
            max_users: 5_000_000,
            max_groups: 1_000_000,
            max_owned: 5_000_000,
            max_text_bytes: 512 * 1024 * 1024,
            max_rules_bytes: 16 * 1024 * 1024,
        }
    }
}

/// A snapshot decoded without checking its signature, for tools that show what a file holds
/// (`meshgate snapshot show` given no key). Everything else is checked as by
/// [`Snapshot::decode`]: size, format, content hash, and every count, string, order and index.
/// Nothing says who made it, so it offers its content for reading only
/// ([`UnverifiedSnapshot::contents`]) and never decides a request.
pub struct UnverifiedSnapshot {
    snapshot: Snapshot,
}

impl UnverifiedSnapshot {
    /// Decodes `bytes` within `limits`, whoever signed them.
    pub fn decode(
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<UnverifiedSnapshot, SnapshotError> {
        decode_checked(bytes, None, limits).map(|snapshot| UnverifiedSnapshot { snapshot })
    }

    /// The content, to read. The key id it names is a claim nothing has checked.
    pub fn contents(&self) -> &Snapshot {
        &self.snapshot
    }
}

impl Snapshot {
    /// Verifies and decodes a snapshot, then lays it out as its canonical image
    /// ([`Snapshot::image`]). It must be signed by one of `trusted` (matched by key id), its
    /// content must match its hash, and its content must be well formed within `limits`.
    /// Version ordering is the caller's decision ([`Snapshot::is_newer_than`]).
    pub fn decode(
        bytes: &[u8],
        trusted: &[TrustedKey],
        limits: &DecodeLimits,
    ) -> Result<Snapshot, SnapshotError> {
        decode_checked(bytes, Some(trusted), limits)
    }
}

/// [`Snapshot::decode`]; the signature is checked against `trusted` unless it is `None`.
fn decode_checked(
    bytes: &[u8],
    trusted: Option<&[TrustedKey]>,
    limits: &DecodeLimits,
) -> Result<Snapshot, SnapshotError> {
    if bytes.len() > limits.max_bytes {
        return Err(SnapshotError::TooLarge {
            len: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let envelope = Envelope::parse(bytes)?;
    if let Some(trusted) = trusted {
        verify_signature(envelope.kid, envelope.signed, envelope.signature, trusted).map_err(
            |failure| match failure {
                SignatureFailure::UnknownKey => SnapshotError::UnknownKey {
                    kid: envelope.kid.to_owned(),
                },
                SignatureFailure::BadSignature => SnapshotError::BadSignature {
                    kid: envelope.kid.to_owned(),
                },
            },
        )?;
    }
    if <[u8; 32]>::from(Sha256::digest(envelope.content)) != envelope.header.content_hash {
        return Err(SnapshotError::HashMismatch);
    }
    // The image is usually about 2.5 times the wire content; reserved, not touched.
    let guess = envelope.content.len().saturating_mul(5) / 2;
    let content = Content::parse(envelope.content, limits, ImageBuilder::new(guess))?;
    let stamp = Stamp {
        header: envelope.header,
        key_id: envelope.kid,
        encoded_len: bytes.len(),
    };
    let image = content
        .sink
        .finish(&stamp)
        .ok_or(SnapshotError::ImageTooLarge)?;
    Ok(Snapshot::from_image(image)?)
}

/// The content the plain decoder parses from a snapshot (no signature check), for tests that
/// compare an image's answers with it.
#[cfg(test)]
pub(crate) fn plain_content(bytes: &[u8]) -> Result<SortedContent, SnapshotError> {
    let envelope = Envelope::parse(bytes)?;
    Ok(Content::parse(
        envelope.content,
        &DecodeLimits::default(),
        SortedContent::default(),
    )?
    .sink)
}

/// Where the decoder puts what it parsed, in canonical order: groups, users, resources, the
/// ancestors of groups that have any (by increasing index), rules.
pub(crate) trait ContentSink {
    fn group(&mut self, group_ref: &str);
    fn group_count(&self) -> usize;
    fn user(&mut self, entity_ref: &str, email: Option<&str>, groups: &[u32]);
    fn owned(&mut self, kind: &str, id: &str, owners: &[u32]);
    /// `index` is below [`ContentSink::group_count`].
    fn ancestors(&mut self, index: usize, above: &[u32]);
    fn rules(&mut self, rules: &str);
    /// The grants section's payload, checked.
    fn grants(&mut self, payload: &[u8]);
}

impl ContentSink for ImageBuilder {
    fn group(&mut self, group_ref: &str) {
        ImageBuilder::group(self, group_ref);
    }
    fn group_count(&self) -> usize {
        ImageBuilder::group_count(self)
    }
    fn user(&mut self, entity_ref: &str, email: Option<&str>, groups: &[u32]) {
        ImageBuilder::user(self, entity_ref, email, groups);
    }
    fn owned(&mut self, kind: &str, id: &str, owners: &[u32]) {
        ImageBuilder::owned(self, kind, id, owners);
    }
    fn ancestors(&mut self, index: usize, above: &[u32]) {
        ImageBuilder::ancestors(self, index, above);
    }
    fn rules(&mut self, rules: &str) {
        ImageBuilder::rules(self, rules);
    }
    fn grants(&mut self, payload: &[u8]) {
        ImageBuilder::grants(self, payload);
    }
}

/// The plain decoder: editable sorted tables.
#[cfg(test)]
impl ContentSink for SortedContent {
    fn group(&mut self, group_ref: &str) {
        self.groups.push(Box::from(group_ref));
        self.ancestors.push(Vec::new());
    }
    fn group_count(&self) -> usize {
        self.groups.len()
    }
    fn user(&mut self, entity_ref: &str, email: Option<&str>, groups: &[u32]) {
        self.users.push(UserEntry {
            entity_ref: Box::from(entity_ref),
            email: email.map(Box::from),
            groups: groups.to_vec(),
        });
    }
    fn owned(&mut self, kind: &str, id: &str, owners: &[u32]) {
        self.owned.push(OwnedEntry {
            kind: Box::from(kind),
            id: Box::from(id),
            owners: owners.to_vec(),
        });
    }
    fn ancestors(&mut self, index: usize, above: &[u32]) {
        if let Some(slot) = self.ancestors.get_mut(index) {
            *slot = above.to_vec();
        }
    }
    fn rules(&mut self, rules: &str) {
        self.rules = Some(Box::from(rules));
    }
    fn grants(&mut self, payload: &[u8]) {
        self.grants = Some(Box::from(payload));
    }
}

/// Why a signature was refused.
pub(crate) enum SignatureFailure {
    UnknownKey,
    BadSignature,
}

/// Checks `signature` over `signed` with the trusted keys named `kid`.
pub(crate) fn verify_signature(
    kid: &str,
    signed: &[u8],
    signature: &[u8],
    trusted: &[TrustedKey],
) -> Result<(), SignatureFailure> {
    let mut candidates = trusted.iter().filter(|key| key.kid() == kid).peekable();
    if candidates.peek().is_none() {
        return Err(SignatureFailure::UnknownKey);
    }
    if !candidates.any(|key| key.verify(signed, signature)) {
        return Err(SignatureFailure::BadSignature);
    }
    Ok(())
}

/// The content under construction.
struct Content<'l, S> {
    limits: &'l DecodeLimits,
    /// Decoded string bytes so far, bounded by `max_text_bytes`.
    text_bytes: usize,
    /// Resources so far, bounded by `max_owned`.
    owned_count: usize,
    /// One index list at a time.
    list: Vec<u32>,
    sink: S,
}

impl<'l, S: ContentSink> Content<'l, S> {
    fn parse(
        content: &[u8],
        limits: &'l DecodeLimits,
        sink: S,
    ) -> Result<Content<'l, S>, SnapshotError> {
        let mut parsed = Content {
            limits,
            text_bytes: 0,
            owned_count: 0,
            list: Vec::new(),
            sink,
        };
        let mut reader = Reader::new(content, 0);
        let mut previous_tag: Option<u64> = None;
        let mut seen = [false; 3];
        while !reader.is_empty() {
            let tag = reader.varint("section tag")?;
            if let Some(previous) = previous_tag.filter(|&previous| previous >= tag) {
                return Err(reader.fail(Violation::SectionOrder { tag, previous }));
            }
            previous_tag = Some(tag);
            let len = reader.varint("section length")?;
            let start = reader.offset();
            let payload = reader.take(len, "section")?;
            let mut section = Reader::new(payload, start);
            match tag {
                TAG_GROUPS => parsed.groups(&mut section)?,
                TAG_USERS => parsed.users(&mut section)?,
                TAG_OWNED => parsed.owned(&mut section)?,
                TAG_ANCESTORS => parsed.ancestors(&mut section)?,
                TAG_RULES => parsed.rules(&mut section)?,
                TAG_GRANTS => parsed.grants(&mut section, start)?,
                // Sections from a later format revision that older readers may ignore.
                tag if tag >= OPTIONAL_TAGS => continue,
                tag => return Err(section.fail(Violation::UnknownSection { tag })),
            }
            if !section.is_empty() {
                return Err(section.fail(Violation::SectionNotConsumed {
                    tag,
                    extra: section.remaining(),
                }));
            }
            if let Some(flag) = usize::try_from(tag)
                .ok()
                .and_then(|tag| seen.get_mut(tag.wrapping_sub(1)))
            {
                *flag = true;
            }
        }
        for (flag, (tag, name)) in seen.iter().zip([
            (TAG_GROUPS, "groups"),
            (TAG_USERS, "users"),
            (TAG_OWNED, "owned"),
        ]) {
            if !flag {
                return Err(reader.fail(Violation::MissingSection { tag, name }));
            }
        }
        Ok(parsed)
    }

    /// Counts a decoded string against `max_text_bytes`.
    fn text(&mut self, r: &Reader<'_>, value: &str) -> Result<(), SnapshotError> {
        let total = self.text_bytes.saturating_add(value.len());
        if total > self.limits.max_text_bytes {
            return Err(r.fail(Violation::TooMany {
                what: "decoded string bytes",
                value: total as u64,
                max: self.limits.max_text_bytes as u64,
            }));
        }
        self.text_bytes = total;
        Ok(())
    }

    /// Reads an index list into `self.list`.
    fn list(&mut self, r: &mut Reader<'_>, what: &'static str) -> Result<(), SnapshotError> {
        self.list.clear();
        r.indices_into(&mut self.list, what, self.sink.group_count())
    }

    fn groups(&mut self, r: &mut Reader<'_>) -> Result<(), SnapshotError> {
        // Indices are u32.
        let max = self.limits.max_groups.min(u32::MAX as usize);
        let count = r.bounded("group count", max)?;
        let mut current = Vec::new();
        for _ in 0..count {
            let order = r.front_coded(&mut current, "group ref", self.limits.max_string_bytes)?;
            let name = r.utf8(&current, "group ref")?;
            check_order(r, order, "group ref", name)?;
            self.text(r, name)?;
            self.sink.group(name);
        }
        Ok(())
    }

    fn users(&mut self, r: &mut Reader<'_>) -> Result<(), SnapshotError> {
        let max_string = self.limits.max_string_bytes;
        let mut domains: Vec<Box<str>> = Vec::new();
        let mut current = Vec::new();
        let domain_count = r.bounded("domain count", self.limits.max_users)?;
        for _ in 0..domain_count {
            let order = r.front_coded(&mut current, "email domain", max_string)?;
            let domain = r.utf8(&current, "email domain")?;
            check_order(r, order, "email domain", domain)?;
            domains.push(Box::from(domain));
        }
        let count = r.bounded("user count", self.limits.max_users)?;
        let (mut local, mut address) = (Vec::new(), String::new());
        current.clear();
        for _ in 0..count {
            let order = r.front_coded(&mut current, "user ref", max_string)?;
            let entity_ref = r.utf8(&current, "user ref")?;
            check_order(r, order, "user ref", entity_ref)?;
            let code = r.varint("email")?;
            let mut email = None;
            if code != 0 {
                // 1: the email is kept whole; 2 + i: local part at domain i.
                let domain = match code.checked_sub(2) {
                    None => None,
                    Some(index) => match usize::try_from(index).ok().and_then(|i| domains.get(i)) {
                        Some(domain) => Some(domain),
                        None => {
                            return Err(r.fail(Violation::IndexOutOfRange {
                                what: "email domain",
                                index,
                                len: domains.len(),
                            }))
                        }
                    },
                };
                local.clear();
                local.extend_from_slice(user_name(entity_ref).as_bytes());
                r.front_coded(&mut local, "email", max_string)?;
                address.clear();
                address.push_str(r.utf8(&local, "email")?);
                if let Some(domain) = domain {
                    address.push('@');
                    address.push_str(domain);
                }
                if address.len() > max_string {
                    return Err(r.fail(Violation::StringTooLong {
                        what: "email",
                        len: address.len() as u64,
                        max: max_string,
                    }));
                }
                self.text(r, &address)?;
                email = Some(address.as_str());
            }
            self.text(r, entity_ref)?;
            self.list(r, "user group")?;
            self.sink.user(entity_ref, email, &self.list);
        }
        Ok(())
    }

    fn owned(&mut self, r: &mut Reader<'_>) -> Result<(), SnapshotError> {
        let max_string = self.limits.max_string_bytes;
        let kinds = r.bounded("kind count", self.limits.max_owned)?;
        let (mut kind, mut id) = (Vec::new(), Vec::new());
        for _ in 0..kinds {
            let order = r.front_coded(&mut kind, "resource kind", max_string)?;
            let kind_name = r.utf8(&kind, "resource kind")?;
            check_order(r, order, "resource kind", kind_name)?;
            self.text(r, kind_name)?;
            let left = self.limits.max_owned.saturating_sub(self.owned_count);
            let count = r.bounded("resource count", left)?;
            self.owned_count = self.owned_count.saturating_add(count);
            id.clear();
            for _ in 0..count {
                let order = r.front_coded(&mut id, "resource id", max_string)?;
                let id_name = r.utf8(&id, "resource id")?;
                check_order(r, order, "resource id", id_name)?;
                self.text(r, id_name)?;
                self.list(r, "owner group")?;
                self.sink.owned(kind_name, id_name, &self.list);
            }
        }
        Ok(())
    }

    /// Each group's closed ancestors, by strictly increasing group index.
    fn ancestors(&mut self, r: &mut Reader<'_>) -> Result<(), SnapshotError> {
        let groups = self.sink.group_count();
        let count = r.bounded("ancestor entry count", groups)?;
        let mut previous: Option<u64> = None;
        for _ in 0..count {
            let group = r.varint("ancestor group")?;
            if previous.is_some_and(|p| p >= group) {
                return Err(r.fail(Violation::OutOfOrder {
                    what: "ancestor group",
                    value: group.to_string(),
                }));
            }
            previous = Some(group);
            self.list(r, "ancestor")?;
            match usize::try_from(group).ok().filter(|&g| g < groups) {
                Some(index) => self.sink.ancestors(index, &self.list),
                None => {
                    return Err(r.fail(Violation::IndexOutOfRange {
                        what: "ancestor group",
                        index: group,
                        len: groups,
                    }))
                }
            }
        }
        Ok(())
    }

    /// The rules as UTF-8 JSON text; compiled by whoever loads the snapshot.
    fn rules(&mut self, r: &mut Reader<'_>) -> Result<(), SnapshotError> {
        let len = r.remaining();
        if len > self.limits.max_rules_bytes {
            return Err(r.fail(Violation::StringTooLong {
                what: "rules",
                len: len as u64,
                max: self.limits.max_rules_bytes,
            }));
        }
        let bytes = r.take(len as u64, "rules")?;
        self.sink.rules(r.utf8(bytes, "rules")?);
        Ok(())
    }

    /// Active grants: checked whole here, kept as their canonical bytes (each VM that loads
    /// the snapshot reads them into a [`Grants`] index).
    fn grants(&mut self, r: &mut Reader<'_>, start: usize) -> Result<(), SnapshotError> {
        let payload = r.take(r.remaining() as u64, "grants")?;
        if Grants::decode(payload, start)?.is_empty() {
            // No grants is no section: one encoding per content.
            return Err(r.fail(Violation::EmptyString { what: "grants" }));
        }
        self.sink.grants(payload);
        Ok(())
    }
}

/// Sorted tables must be strictly increasing: that rules out duplicates and keeps one
/// encoding per content.
fn check_order(
    r: &Reader<'_>,
    order: Ordering,
    what: &'static str,
    value: &str,
) -> Result<(), SnapshotError> {
    match order {
        Ordering::Greater => Ok(()),
        Ordering::Equal => Err(r.fail(Violation::Duplicate {
            what,
            value: value.to_owned(),
        })),
        Ordering::Less => Err(r.fail(Violation::OutOfOrder {
            what,
            value: value.to_owned(),
        })),
    }
}
