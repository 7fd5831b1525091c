//! The canonical in-memory image of a snapshot: one contiguous byte buffer that every lookup
//! reads in place. No pointers, no hash tables, no per-process randomness: fixed-width
//! little-endian `u32` records in sorted tables (binary search), strings in one arena, index
//! lists delta-varint coded (as on the wire) in one arena, rules JSON at the end. The same
//! content always gives the same bytes, so one worker can decode and publish the image and every other Envoy worker VM adopts it
//! with [`super::Snapshot::from_image`] instead of decoding. See `docs/snapshot.md`.

use std::ops::Range;

use sha2::{Digest as _, Sha256};

use super::envelope::SnapshotHeader;
use super::err::ImageError;
use super::keys::{valid_kid, MAX_KEY_ID_BYTES};
use super::wire::Writer;

/// First bytes of every image.
pub const IMAGE_MAGIC: [u8; 8] = *b"MGIMAGE\0";
/// The image layout this build writes and reads.
/// Layout 2 codes index lists as the wire does (count, first index, gaps minus one, LEB128),
/// so records no longer carry a list count: at organisation scale (2 million ancestor entries)
/// that makes the image 30% smaller than layout 1's `u32` lists.
pub const IMAGE_LAYOUT: u32 = 3;

/// The envelope: what describes this copy of the content (magic, layout, version, time,
/// wire size and hash, key id), outside the content hash of the image.
pub(crate) const ENVELOPE_BYTES: usize = 144;
const AT_LAYOUT: usize = 8;
const AT_CONTENT_LEN: usize = 12;
const AT_VERSION: usize = 16;
const AT_GENERATED_AT: usize = 24;
const AT_ENCODED_LEN: usize = 32;
const AT_CONTENT_HASH: usize = 40;
const AT_KID_LEN: usize = 72;
pub(crate) const AT_KID: usize = 76;

/// The parts of the content, in the order they are laid out after the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Ambiguous email count, whether rules are present.
    Meta,
    /// Per group, sorted by ref: ref (string offset, length), ancestors (list offset).
    Groups,
    /// Per user, sorted by ref: ref (offset, length), groups (list offset), email (offset,
    /// length; length 0 when none).
    Users,
    /// Per user with an email, sorted by (email, position): the user's position. An email
    /// several users share is in several adjacent records, and maps to none of them.
    Emails,
    /// Per resource kind, sorted: kind (offset, length), first owned position, count.
    Kinds,
    /// Per resource, sorted by (kind, id): id (offset, length), owners (list offset).
    Owned,
    /// Every index list, back to back, coded as on the wire: a varint count, the first index,
    /// then each following index minus the previous one minus 1. A list offset counts bytes.
    Lists,
    /// Every string, back to back.
    Strings,
    /// The rules JSON text.
    Rules,
    /// The grants section's payload, as on the wire (`grants.rs`); empty when none.
    Grants,
}

pub(crate) const PARTS: [Part; 10] = [
    Part::Meta,
    Part::Groups,
    Part::Users,
    Part::Emails,
    Part::Kinds,
    Part::Owned,
    Part::Lists,
    Part::Strings,
    Part::Rules,
    Part::Grants,
];
const DIRECTORY_BYTES: usize = PARTS.len() * 8;
const META_BYTES: usize = 8;

impl Part {
    /// Bytes per record; a part's length must be a multiple.
    pub fn record_bytes(self) -> usize {
        match self {
            Part::Meta => META_BYTES,
            Part::Kinds => 16,
            Part::Groups | Part::Owned => 12,
            Part::Emails => 4,
            Part::Users => 20,
            Part::Lists | Part::Strings | Part::Rules | Part::Grants => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Part::Meta => "meta",
            Part::Groups => "groups",
            Part::Users => "users",
            Part::Emails => "emails",
            Part::Kinds => "kinds",
            Part::Owned => "owned",
            Part::Lists => "lists",
            Part::Strings => "strings",
            Part::Rules => "rules",
            Part::Grants => "grants",
        }
    }
}

/// What the envelope of an image records about the snapshot it was built from.
pub(crate) struct Stamp<'a> {
    pub header: SnapshotHeader,
    pub key_id: &'a str,
    pub encoded_len: usize,
}

/// Where each part of an image lies, checked against its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub header: SnapshotHeader,
    pub key_id_len: usize,
    pub encoded_len: usize,
    /// Absolute byte ranges, in [`PARTS`] order.
    pub parts: [Range<usize>; PARTS.len()],
}

impl Layout {
    pub fn part(&self, part: Part) -> Range<usize> {
        self.parts.get(part as usize).cloned().unwrap_or_default()
    }
}

/// Reads the envelope and directory of an image: O(number of parts), no content scan.
pub(crate) fn parse_layout(image: &[u8]) -> Result<Layout, ImageError> {
    let Some(envelope) = image.get(..ENVELOPE_BYTES) else {
        if !image.is_empty() && !IMAGE_MAGIC.starts_with(image) && !image.starts_with(&IMAGE_MAGIC)
        {
            return Err(ImageError::NotAnImage);
        }
        return Err(ImageError::Truncated {
            needed: ENVELOPE_BYTES.saturating_sub(image.len()),
        });
    };
    if envelope.get(..IMAGE_MAGIC.len()) != Some(&IMAGE_MAGIC[..]) {
        return Err(ImageError::NotAnImage);
    }
    let layout = read_u32(envelope, AT_LAYOUT).unwrap_or(0);
    if layout != IMAGE_LAYOUT {
        return Err(ImageError::UnsupportedLayout {
            found: layout,
            supported: IMAGE_LAYOUT,
        });
    }
    let content_len = read_u32(envelope, AT_CONTENT_LEN).unwrap_or(0) as usize;
    let actual = image.len().saturating_sub(ENVELOPE_BYTES);
    if content_len != actual {
        return Err(ImageError::LengthMismatch {
            declared: content_len,
            actual,
        });
    }
    let key_id_len = read_u32(envelope, AT_KID_LEN).unwrap_or(0) as usize;
    let kid_ok = key_id_len <= MAX_KEY_ID_BYTES
        && envelope
            .get(AT_KID..AT_KID.saturating_add(key_id_len))
            .is_some_and(valid_kid);
    if !kid_ok {
        return Err(ImageError::InvalidKeyId {
            max: MAX_KEY_ID_BYTES,
        });
    }
    let header = SnapshotHeader {
        version: read_u64(envelope, AT_VERSION).unwrap_or(0),
        generated_at: read_u64(envelope, AT_GENERATED_AT).map_or(0, |v| v as i64),
        content_hash: envelope
            .get(AT_CONTENT_HASH..AT_CONTENT_HASH + 32)
            .and_then(|bytes| bytes.try_into().ok())
            .unwrap_or([0; 32]),
    };
    let encoded_len = read_u64(envelope, AT_ENCODED_LEN)
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(0);

    let content = image.get(ENVELOPE_BYTES..).unwrap_or_default();
    if content.len() < DIRECTORY_BYTES {
        return Err(ImageError::Truncated {
            needed: DIRECTORY_BYTES - content.len(),
        });
    }
    let mut parts: [Range<usize>; PARTS.len()] = Default::default();
    for (slot, (i, part)) in parts.iter_mut().zip(PARTS.iter().enumerate()) {
        let at = i * 8;
        let offset = read_u32(content, at).unwrap_or(u32::MAX) as usize;
        let len = read_u32(content, at + 4).unwrap_or(u32::MAX) as usize;
        let in_bounds = offset >= DIRECTORY_BYTES
            && offset
                .checked_add(len)
                .is_some_and(|end| end <= content.len());
        if !in_bounds {
            return Err(ImageError::PartOutOfBounds { part: part.name() });
        }
        let exact = match part {
            Part::Meta => len == META_BYTES,
            _ => len % part.record_bytes() == 0,
        };
        if !exact {
            return Err(ImageError::PartSize { part: part.name() });
        }
        let start = ENVELOPE_BYTES + offset;
        *slot = start..start + len;
    }
    Ok(Layout {
        header,
        key_id_len,
        encoded_len,
        parts,
    })
}

/// SHA-256 of everything after the envelope.
pub(crate) fn content_hash(image: &[u8]) -> [u8; 32] {
    Sha256::digest(image.get(ENVELOPE_BYTES..).unwrap_or_default()).into()
}

pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let word: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(word))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let end = at.checked_add(8)?;
    let word: [u8; 8] = bytes.get(at..end)?.try_into().ok()?;
    Some(u64::from_le_bytes(word))
}

/// Where the strings part starts: it is written first, straight into the image buffer, so
/// the largest part is never copied (and never held twice) while the image is laid out.
const STRINGS_AT: usize = ENVELOPE_BYTES + DIRECTORY_BYTES;

/// Lays out an image from content fed in canonical order: every group ref (sorted), then
/// every user (sorted by ref), then every resource (sorted by kind, then id), then the
/// ancestors of the groups that have any (by increasing group index), then the rules. The
/// decoder feeds it straight from the wire and a delta straight from the base image, so no
/// editable copy of the content is ever built. Canonical arenas: strings in that order (a
/// kind once, before its first resource); lists start with the shared empty list, then the
/// users', the owners' and the groups' ancestors.
pub(crate) struct ImageBuilder {
    /// Envelope and directory (filled by [`ImageBuilder::finish`]), then the strings.
    image: Vec<u8>,
    /// Per group: its ref (offset, length) and its ancestors' list offset.
    groups: Vec<[u32; 3]>,
    users: Vec<u8>,
    /// Per user with an email: the email (offset, length) and the user's position.
    emails: Vec<[u32; 3]>,
    /// Per kind: its name (offset, length), first resource position and resource count.
    kinds: Vec<[u32; 4]>,
    owned: Vec<u8>,
    owned_count: u32,
    user_count: u32,
    lists: Writer,
    rules: Option<Vec<u8>>,
    /// The grants section's payload, checked by whoever feeds it.
    grants: Vec<u8>,
    /// An offset or count overflowed `u32`: [`ImageBuilder::finish`] gives `None`.
    too_large: bool,
}

/// The offset of the empty list every arena starts with.
const EMPTY_LIST: u32 = 0;

impl ImageBuilder {
    /// `capacity` is a guess of the image's size: reserved up front so the buffer is not
    /// grown (and copied) while strings are appended.
    pub fn new(capacity: usize) -> ImageBuilder {
        let mut image = Vec::with_capacity(capacity.max(STRINGS_AT));
        image.resize(STRINGS_AT, 0);
        let mut lists = Writer::default();
        lists.indices(&[]);
        ImageBuilder {
            image,
            groups: Vec::new(),
            users: Vec::new(),
            emails: Vec::new(),
            kinds: Vec::new(),
            owned: Vec::new(),
            owned_count: 0,
            user_count: 0,
            lists,
            rules: None,
            grants: Vec::new(),
            too_large: false,
        }
    }

    /// The next group, in increasing order of ref.
    pub fn group(&mut self, group_ref: &str) {
        let (offset, len) = self.string(group_ref);
        self.groups.push([offset, len, EMPTY_LIST]);
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The next user, in increasing order of ref, with its direct groups (strictly increasing).
    /// An email that starts with the user's name (the ref after its last `/`), as
    /// `alice@example.com` for `user:default/alice`, shares the name's bytes: only the rest is
    /// written, right after the ref, and the email's span starts inside the ref.
    pub fn user(&mut self, entity_ref: &str, email: Option<&str>, groups: &[u32]) {
        let name = self.string(entity_ref);
        let name_at = entity_ref
            .rfind('/')
            .map_or(0, |slash| slash.saturating_add(1));
        let user_name = entity_ref.get(name_at..).unwrap_or_default();
        let list = self.list(groups);
        let email = match email {
            Some(email) => {
                let rest = email
                    .strip_prefix(user_name)
                    .filter(|_| !user_name.is_empty());
                let span = match rest {
                    Some(rest) => {
                        let (offset, _) = self.string(rest);
                        let start = offset.saturating_sub(self.fit_u32(user_name.len()));
                        (start, self.fit_u32(email.len()))
                    }
                    None => self.string(email),
                };
                self.emails.push([span.0, span.1, self.user_count]);
                span
            }
            None => (0, 0),
        };
        for field in [name.0, name.1, list, email.0, email.1] {
            self.users.extend_from_slice(&field.to_le_bytes());
        }
        self.user_count = self.bump(self.user_count);
    }

    /// The next resource, in increasing order of (kind, id), with its owners.
    pub fn owned(&mut self, kind: &str, id: &str, owners: &[u32]) {
        let same_kind = self.kinds.last().is_some_and(|&[offset, len, _, _]| {
            self.strings_at(offset, len) == Some(kind.as_bytes())
        });
        if !same_kind {
            let (offset, len) = self.string(kind);
            self.kinds.push([offset, len, self.owned_count, 0]);
        }
        let id = self.string(id);
        let list = self.list(owners);
        for field in [id.0, id.1, list] {
            self.owned.extend_from_slice(&field.to_le_bytes());
        }
        self.owned_count = self.bump(self.owned_count);
        if let Some(kind) = self.kinds.last_mut() {
            kind[3] = kind[3].saturating_add(1);
        }
    }

    /// The closed ancestors of group `index`; after every user and resource, by increasing
    /// index. An empty list (or an index out of range) changes nothing.
    pub fn ancestors(&mut self, index: usize, above: &[u32]) {
        if above.is_empty() || index >= self.groups.len() {
            return;
        }
        let list = self.list(above);
        if let Some(group) = self.groups.get_mut(index) {
            group[2] = list;
        }
    }

    pub fn rules(&mut self, rules: &str) {
        self.rules = Some(rules.as_bytes().to_vec());
    }

    /// The grants section's payload (canonical, checked), after the rules.
    pub fn grants(&mut self, payload: &[u8]) {
        self.grants = payload.to_vec();
    }

    fn bump(&mut self, count: u32) -> u32 {
        count.checked_add(1).unwrap_or_else(|| {
            self.too_large = true;
            count
        })
    }

    fn fit_u32(&mut self, value: usize) -> u32 {
        u32::try_from(value).unwrap_or_else(|_| {
            self.too_large = true;
            0
        })
    }

    fn strings_at(&self, offset: u32, len: u32) -> Option<&[u8]> {
        let start = STRINGS_AT.checked_add(offset as usize)?;
        self.image.get(start..start.checked_add(len as usize)?)
    }

    /// Appends a string, returning its (offset, length) in the strings part.
    fn string(&mut self, value: &str) -> (u32, u32) {
        let offset = self.image.len().saturating_sub(STRINGS_AT);
        let span = (self.fit_u32(offset), self.fit_u32(value.len()));
        self.image.extend_from_slice(value.as_bytes());
        span
    }

    /// Appends a strictly increasing index list, returning its byte offset.
    fn list(&mut self, values: &[u32]) -> u32 {
        let offset = self.fit_u32(self.lists.buf.len());
        self.lists.indices(values);
        offset
    }

    /// The image: envelope, directory, strings, then the other parts (4-byte aligned) in
    /// [`PARTS`] order.
    pub fn finish(self, stamp: &Stamp<'_>) -> Option<Vec<u8>> {
        let ImageBuilder {
            mut image,
            groups,
            users,
            mut emails,
            kinds,
            owned,
            lists,
            rules,
            grants,
            too_large,
            ..
        } = self;
        if too_large {
            return None;
        }
        let strings_len = image.len().checked_sub(STRINGS_AT)?;
        // An email several users share maps to none of them.
        let text = |[offset, len, _]: &[u32; 3]| {
            let start = STRINGS_AT.saturating_add(*offset as usize);
            image
                .get(start..start.saturating_add(*len as usize))
                .unwrap_or_default()
        };
        emails.sort_unstable_by(|a, b| text(a).cmp(text(b)).then(a[2].cmp(&b[2])));
        let mut email_part = Vec::with_capacity(emails.len().saturating_mul(4));
        let mut ambiguous = 0u32;
        let mut rest = emails.as_slice();
        while let Some(first) = rest.first() {
            let run = rest.iter().take_while(|e| text(e) == text(first)).count();
            if run > 1 {
                ambiguous = ambiguous.saturating_add(1);
            }
            for email in rest.get(..run).unwrap_or_default() {
                email_part.extend_from_slice(&email[2].to_le_bytes());
            }
            rest = rest.get(run.max(1)..).unwrap_or_default();
        }
        drop(emails);
        let meta: Vec<u8> = [ambiguous, u32::from(rules.is_some())]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let group_part: Vec<u8> = groups
            .iter()
            .flatten()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let kind_part: Vec<u8> = kinds
            .iter()
            .flatten()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let rules = rules.unwrap_or_default();
        let rest_parts: [(Part, &[u8]); 9] = [
            (Part::Meta, &meta),
            (Part::Groups, &group_part),
            (Part::Users, &users),
            (Part::Emails, &email_part),
            (Part::Kinds, &kind_part),
            (Part::Owned, &owned),
            (Part::Lists, &lists.buf),
            (Part::Rules, &rules),
            (Part::Grants, &grants),
        ];
        let padded = |len: usize| len.checked_add(3).map(|l| l & !3);
        let mut directory = [(0u32, 0u32); PARTS.len()];
        let mut offset = DIRECTORY_BYTES;
        let mut place = |part: Part, len: usize| -> Option<()> {
            let slot = directory.get_mut(part as usize)?;
            *slot = (u32::try_from(offset).ok()?, u32::try_from(len).ok()?);
            offset = offset.checked_add(padded(len)?)?;
            Some(())
        };
        place(Part::Strings, strings_len)?;
        for (part, bytes) in &rest_parts {
            place(*part, bytes.len())?;
        }
        let content_len = u32::try_from(offset).ok()?;
        image.reserve_exact(offset.saturating_sub(DIRECTORY_BYTES + strings_len));
        image.resize(image.len() + (padded(strings_len)? - strings_len), 0);
        for (_, bytes) in &rest_parts {
            image.extend_from_slice(bytes);
            image.resize(image.len() + (padded(bytes.len())? - bytes.len()), 0);
        }
        let mut head = Vec::with_capacity(STRINGS_AT);
        head.extend_from_slice(&IMAGE_MAGIC);
        head.extend_from_slice(&IMAGE_LAYOUT.to_le_bytes());
        head.extend_from_slice(&content_len.to_le_bytes());
        head.extend_from_slice(&stamp.header.version.to_le_bytes());
        head.extend_from_slice(&stamp.header.generated_at.to_le_bytes());
        head.extend_from_slice(&(stamp.encoded_len as u64).to_le_bytes());
        head.extend_from_slice(&stamp.header.content_hash);
        let kid = stamp.key_id.as_bytes();
        let kid = kid
            .get(..kid.len().min(MAX_KEY_ID_BYTES))
            .unwrap_or_default();
        head.extend_from_slice(&(kid.len() as u32).to_le_bytes());
        head.extend_from_slice(kid);
        head.resize(ENVELOPE_BYTES, 0);
        for (offset, len) in directory {
            head.extend_from_slice(&offset.to_le_bytes());
            head.extend_from_slice(&len.to_le_bytes());
        }
        image.get_mut(..STRINGS_AT)?.copy_from_slice(&head);
        Some(image)
    }
}
