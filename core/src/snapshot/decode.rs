//! Decoding: size limit, envelope, signature, content hash, then the content with every
//! count, length, order and index checked. Unauthenticated bytes never reach the content
//! parser, and the parser never panics on any input.

use std::cmp::Ordering;
use std::collections::hash_map::RandomState;

use sha2::{Digest as _, Sha256};

use super::encode::user_name;
use super::envelope::Envelope;
use super::err::{SnapshotError, Violation};
use super::keys::TrustedKey;
use super::lookup::{EmailRecord, OwnedRecord, Snapshot, UserRecord, AMBIGUOUS};
use super::table::{text_at, PositionTable, Span, TableFull};
use super::wire::Reader;
use super::{
    MAX_STRING_BYTES, OPTIONAL_TAGS, TAG_ANCESTORS, TAG_GROUPS, TAG_OWNED, TAG_RULES, TAG_USERS,
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

impl Snapshot {
    /// Verifies and decodes a snapshot. It must be signed by one of `trusted` (matched by key
    /// id), its content must match its hash, and its content must be well formed within
    /// `limits`. Version ordering is the caller's decision ([`Snapshot::is_newer_than`]).
    pub fn decode(
        bytes: &[u8],
        trusted: &[TrustedKey],
        limits: &DecodeLimits,
    ) -> Result<Snapshot, SnapshotError> {
        if bytes.len() > limits.max_bytes {
            return Err(SnapshotError::TooLarge {
                len: bytes.len(),
                max: limits.max_bytes,
            });
        }
        let envelope = Envelope::parse(bytes)?;
        let mut candidates = trusted
            .iter()
            .filter(|key| key.kid() == envelope.kid)
            .peekable();
        if candidates.peek().is_none() {
            return Err(SnapshotError::UnknownKey {
                kid: envelope.kid.to_owned(),
            });
        }
        if !candidates.any(|key| key.verify(envelope.signed, envelope.signature)) {
            return Err(SnapshotError::BadSignature {
                kid: envelope.kid.to_owned(),
            });
        }
        if <[u8; 32]>::from(Sha256::digest(envelope.content)) != envelope.header.content_hash {
            return Err(SnapshotError::HashMismatch);
        }
        let content = Content::parse(envelope.content, limits)?;
        Ok(content.finish(envelope.header, envelope.kid, bytes.len()))
    }
}

/// The snapshot under construction.
struct Content<'l> {
    limits: &'l DecodeLimits,
    hasher: RandomState,
    text: String,
    members: Vec<u32>,
    groups: Vec<Span>,
    users: Vec<UserRecord>,
    emails: Vec<EmailRecord>,
    email_table: PositionTable,
    ambiguous_emails: usize,
    kinds: Vec<Span>,
    owned: Vec<OwnedRecord>,
    /// Per group index, its ancestors in `members` (empty when it has none).
    ancestors: Vec<Span>,
    rules: Option<Box<str>>,
}

impl<'l> Content<'l> {
    fn parse(content: &[u8], limits: &'l DecodeLimits) -> Result<Content<'l>, SnapshotError> {
        let hasher = RandomState::new();
        let mut parsed = Content {
            limits,
            text: String::with_capacity(content.len().min(limits.max_text_bytes)),
            members: Vec::new(),
            groups: Vec::new(),
            users: Vec::new(),
            emails: Vec::new(),
            email_table: PositionTable::new(0, hasher.clone()),
            ambiguous_emails: 0,
            kinds: Vec::new(),
            owned: Vec::new(),
            ancestors: Vec::new(),
            rules: None,
            hasher,
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

    /// The lookup tables for users and resources are built once all records are known;
    /// their keys are unique (the tables are strictly sorted), so no insert finds an equal key.
    fn finish(self, header: super::SnapshotHeader, kid: &str, encoded_len: usize) -> Snapshot {
        let text = self.text.into_boxed_str();
        let mut user_table = PositionTable::new(self.users.len(), self.hasher.clone());
        for (position, user) in (0u32..).zip(self.users.iter()) {
            let hash = user_table.hash(text_at(&text, user.entity_ref));
            let _ = user_table.insert(hash, position, |_| false);
        }
        let mut owned_table = PositionTable::new(self.owned.len(), self.hasher);
        for (position, record) in (0u32..).zip(self.owned.iter()) {
            let hash = owned_table.hash(&(record.kind, text_at(&text, record.id)));
            let _ = owned_table.insert(hash, position, |_| false);
        }
        Snapshot {
            header,
            key_id: kid.into(),
            encoded_len,
            text,
            members: self.members.into_boxed_slice(),
            groups: self.groups.into_boxed_slice(),
            users: self.users.into_boxed_slice(),
            user_table,
            emails: self.emails.into_boxed_slice(),
            email_table: self.email_table,
            ambiguous_emails: self.ambiguous_emails,
            kinds: self.kinds.into_boxed_slice(),
            owned: self.owned.into_boxed_slice(),
            owned_table,
            ancestors: self.ancestors.into_boxed_slice(),
            rules: self.rules,
        }
    }

    fn push_text(&mut self, r: &Reader<'_>, value: &str) -> Result<Span, SnapshotError> {
        let start = self.text.len();
        let end = start.saturating_add(value.len());
        let span = Span::new(start, end).filter(|_| end <= self.limits.max_text_bytes);
        let Some(span) = span else {
            return Err(r.fail(Violation::TooMany {
                what: "decoded string bytes",
                value: end as u64,
                max: self.limits.max_text_bytes.min(u32::MAX as usize) as u64,
            }));
        };
        self.text.push_str(value);
        Ok(span)
    }

    fn push_members(
        &mut self,
        r: &mut Reader<'_>,
        what: &'static str,
    ) -> Result<Span, SnapshotError> {
        let start = self.members.len();
        r.indices_into(&mut self.members, what, self.groups.len())?;
        Span::new(start, self.members.len()).ok_or_else(|| {
            r.fail(Violation::TooMany {
                what: "group memberships",
                value: self.members.len() as u64,
                max: u64::from(u32::MAX),
            })
        })
    }

    fn groups(&mut self, r: &mut Reader<'_>) -> Result<(), SnapshotError> {
        // Indices are u32.
        let max = self.limits.max_groups.min(u32::MAX as usize);
        let count = r.bounded("group count", max)?;
        self.groups.reserve(count.min(r.remaining()));
        let mut current = Vec::new();
        for _ in 0..count {
            let order = r.front_coded(&mut current, "group ref", self.limits.max_string_bytes)?;
            let name = r.utf8(&current, "group ref")?;
            check_order(r, order, "group ref", name)?;
            let span = self.push_text(r, name)?;
            self.groups.push(span);
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
        // Each user takes at least one byte, so this bounds the users that can follow.
        let capacity = count.min(r.remaining());
        self.users.reserve(capacity);
        self.email_table = PositionTable::new(capacity, self.hasher.clone());
        let (mut local, mut address) = (Vec::new(), String::new());
        current.clear();
        for _ in 0..count {
            let order = r.front_coded(&mut current, "user ref", max_string)?;
            let entity_ref = r.utf8(&current, "user ref")?;
            check_order(r, order, "user ref", entity_ref)?;
            let position = u32::try_from(self.users.len()).unwrap_or(AMBIGUOUS);
            let ref_span = self.push_text(r, entity_ref)?;
            let code = r.varint("email")?;
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
                self.add_email(r, &address, position)?;
            }
            let groups = self.push_members(r, "user group")?;
            self.users.push(UserRecord {
                entity_ref: ref_span,
                groups,
            });
        }
        Ok(())
    }

    /// Records `email` for the user at `position`; an email seen before becomes ambiguous.
    fn add_email(
        &mut self,
        r: &Reader<'_>,
        email: &str,
        position: u32,
    ) -> Result<(), SnapshotError> {
        let hash = self.email_table.hash(email);
        let next = u32::try_from(self.emails.len()).unwrap_or(AMBIGUOUS);
        let (emails, text) = (&self.emails, &self.text);
        let existing = self.email_table.insert(hash, next, |other| {
            emails
                .get(other as usize)
                .is_some_and(|record| text_at(text, record.email) == email)
        });
        match existing {
            Ok(None) => {
                let span = self.push_text(r, email)?;
                self.emails.push(EmailRecord {
                    email: span,
                    user: position,
                });
            }
            Ok(Some(existing)) => {
                if let Some(record) = self.emails.get_mut(existing as usize) {
                    if record.user != AMBIGUOUS {
                        record.user = AMBIGUOUS;
                        self.ambiguous_emails = self.ambiguous_emails.saturating_add(1);
                    }
                }
            }
            Err(TableFull) => {
                return Err(r.fail(Violation::TooMany {
                    what: "email",
                    value: self.emails.len() as u64,
                    max: self.emails.len() as u64,
                }))
            }
        }
        Ok(())
    }

    fn owned(&mut self, r: &mut Reader<'_>) -> Result<(), SnapshotError> {
        let max_string = self.limits.max_string_bytes;
        let kinds = r.bounded("kind count", self.limits.max_owned)?;
        self.kinds.reserve(kinds.min(r.remaining()));
        let (mut kind, mut id) = (Vec::new(), Vec::new());
        for _ in 0..kinds {
            let order = r.front_coded(&mut kind, "resource kind", max_string)?;
            let kind_name = r.utf8(&kind, "resource kind")?;
            check_order(r, order, "resource kind", kind_name)?;
            let kind_index = u32::try_from(self.kinds.len()).unwrap_or(u32::MAX);
            let span = self.push_text(r, kind_name)?;
            self.kinds.push(span);
            let left = self.limits.max_owned.saturating_sub(self.owned.len());
            let count = r.bounded("resource count", left)?;
            self.owned.reserve(count.min(r.remaining()));
            id.clear();
            for _ in 0..count {
                let order = r.front_coded(&mut id, "resource id", max_string)?;
                let id_name = r.utf8(&id, "resource id")?;
                check_order(r, order, "resource id", id_name)?;
                let id_span = self.push_text(r, id_name)?;
                let owners = self.push_members(r, "owner group")?;
                self.owned.push(OwnedRecord {
                    kind: kind_index,
                    id: id_span,
                    owners,
                });
            }
        }
        Ok(())
    }
}

impl Content<'_> {
    /// Each group's closed ancestors, by strictly increasing group index.
    fn ancestors(&mut self, r: &mut Reader<'_>) -> Result<(), SnapshotError> {
        let groups = self.groups.len();
        let count = r.bounded("ancestor entry count", groups)?;
        self.ancestors = vec![Span::default(); groups];
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
            let span = self.push_members(r, "ancestor")?;
            match usize::try_from(group)
                .ok()
                .and_then(|g| self.ancestors.get_mut(g))
            {
                Some(slot) => *slot = span,
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
        self.rules = Some(Box::from(r.utf8(bytes, "rules")?));
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
