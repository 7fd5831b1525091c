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
use super::sorted::SortedContent;
use super::wire::Writer;

/// First bytes of every image.
pub const IMAGE_MAGIC: [u8; 8] = *b"MGIMAGE\0";
/// The image layout this build writes and reads.
/// Layout 2 codes index lists as the wire does (count, first index, gaps minus one, LEB128),
/// so records no longer carry a list count: at organisation scale (2 million ancestor entries)
/// that makes the image 30% smaller than layout 1's `u32` lists.
pub const IMAGE_LAYOUT: u32 = 2;

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

/// Marks an email that several users share.
pub(crate) const AMBIGUOUS: u32 = u32::MAX;

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
    /// Per distinct lowercased email, sorted: email (offset, length), user position or
    /// [`AMBIGUOUS`].
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
}

pub(crate) const PARTS: [Part; 9] = [
    Part::Meta,
    Part::Groups,
    Part::Users,
    Part::Emails,
    Part::Kinds,
    Part::Owned,
    Part::Lists,
    Part::Strings,
    Part::Rules,
];
const DIRECTORY_BYTES: usize = PARTS.len() * 8;
const META_BYTES: usize = 8;

impl Part {
    /// Bytes per record; a part's length must be a multiple.
    pub fn record_bytes(self) -> usize {
        match self {
            Part::Meta => META_BYTES,
            Part::Kinds => 16,
            Part::Groups | Part::Owned | Part::Emails => 12,
            Part::Users => 20,
            Part::Lists | Part::Strings | Part::Rules => 1,
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

/// Lays out `content` as an image. `None` when it does not fit `u32` offsets (4 GiB).
pub(crate) fn build(content: &SortedContent, stamp: &Stamp<'_>) -> Option<Vec<u8>> {
    let mut out = Parts::default();
    let no_list: &[u32] = &[];
    for (i, group) in content.groups.iter().enumerate() {
        let name = out.string(group)?;
        let above = content.ancestors.get(i).map_or(no_list, Vec::as_slice);
        let list = out.list(above)?;
        out.record(Part::Groups, &[name.0, name.1, list]);
    }
    let mut emails: Vec<(&str, u32, (u32, u32))> = Vec::new();
    for (position, user) in (0u32..).zip(&content.users) {
        let name = out.string(&user.entity_ref)?;
        let list = out.list(&user.groups)?;
        let email = match &user.email {
            Some(email) => {
                let span = out.string(email)?;
                emails.push((email, position, span));
                span
            }
            None => (0, 0),
        };
        out.record(Part::Users, &[name.0, name.1, list, email.0, email.1]);
    }
    // An email several users share maps to none of them.
    emails.sort_unstable();
    let mut ambiguous = 0u32;
    let mut rest = emails.as_slice();
    while let Some(&(email, user, span)) = rest.first() {
        let run = rest
            .iter()
            .take_while(|(other, _, _)| *other == email)
            .count();
        rest = rest.get(run..).unwrap_or_default();
        let user = if run > 1 {
            ambiguous = ambiguous.saturating_add(1);
            AMBIGUOUS
        } else {
            user
        };
        out.record(Part::Emails, &[span.0, span.1, user]);
    }
    let mut position = 0usize;
    while let Some(first) = content.owned.get(position) {
        let count = content
            .owned
            .get(position..)
            .unwrap_or_default()
            .iter()
            .take_while(|entry| entry.kind == first.kind)
            .count();
        let name = out.string(&first.kind)?;
        let start = u32::try_from(position).ok()?;
        let count_32 = u32::try_from(count).ok()?;
        out.record(Part::Kinds, &[name.0, name.1, start, count_32]);
        position = position.saturating_add(count.max(1));
    }
    for entry in &content.owned {
        let id = out.string(&entry.id)?;
        let list = out.list(&entry.owners)?;
        out.record(Part::Owned, &[id.0, id.1, list]);
    }
    let has_rules = u32::from(content.rules.is_some());
    out.record(Part::Meta, &[ambiguous, has_rules]);
    if let Some(rules) = &content.rules {
        out.bytes_mut(Part::Rules)
            .extend_from_slice(rules.as_bytes());
    }
    out.finish(stamp)
}

/// The parts of an image under construction.
#[derive(Default)]
struct Parts {
    meta: Vec<u8>,
    groups: Vec<u8>,
    users: Vec<u8>,
    emails: Vec<u8>,
    kinds: Vec<u8>,
    owned: Vec<u8>,
    lists: Writer,
    strings: Vec<u8>,
    rules: Vec<u8>,
}

impl Parts {
    fn bytes_mut(&mut self, part: Part) -> &mut Vec<u8> {
        match part {
            Part::Meta => &mut self.meta,
            Part::Groups => &mut self.groups,
            Part::Users => &mut self.users,
            Part::Emails => &mut self.emails,
            Part::Kinds => &mut self.kinds,
            Part::Owned => &mut self.owned,
            Part::Lists => &mut self.lists.buf,
            Part::Strings => &mut self.strings,
            Part::Rules => &mut self.rules,
        }
    }

    /// In [`PARTS`] order.
    fn in_order(&self) -> [&Vec<u8>; PARTS.len()] {
        [
            &self.meta,
            &self.groups,
            &self.users,
            &self.emails,
            &self.kinds,
            &self.owned,
            &self.lists.buf,
            &self.strings,
            &self.rules,
        ]
    }

    fn record(&mut self, part: Part, fields: &[u32]) {
        let buffer = self.bytes_mut(part);
        for field in fields {
            buffer.extend_from_slice(&field.to_le_bytes());
        }
    }

    /// Appends a string, returning its (offset, length).
    fn string(&mut self, value: &str) -> Option<(u32, u32)> {
        let strings = self.bytes_mut(Part::Strings);
        let offset = u32::try_from(strings.len()).ok()?;
        let len = u32::try_from(value.len()).ok()?;
        strings.extend_from_slice(value.as_bytes());
        Some((offset, len))
    }

    /// Appends a strictly increasing index list, returning its byte offset.
    fn list(&mut self, values: &[u32]) -> Option<u32> {
        let offset = u32::try_from(self.lists.buf.len()).ok()?;
        u32::try_from(values.len()).ok()?;
        self.lists.indices(values);
        Some(offset)
    }

    fn finish(self, stamp: &Stamp<'_>) -> Option<Vec<u8>> {
        // Every part starts 4-byte aligned within the content.
        let padded = |len: usize| len.checked_add(3).map(|l| l & !3);
        let mut total = DIRECTORY_BYTES;
        for buffer in self.in_order() {
            total = total.checked_add(padded(buffer.len())?)?;
        }
        let content_len = u32::try_from(total).ok()?;
        let mut image = Vec::with_capacity(ENVELOPE_BYTES.checked_add(total)?);
        image.extend_from_slice(&IMAGE_MAGIC);
        image.extend_from_slice(&IMAGE_LAYOUT.to_le_bytes());
        image.extend_from_slice(&content_len.to_le_bytes());
        image.extend_from_slice(&stamp.header.version.to_le_bytes());
        image.extend_from_slice(&stamp.header.generated_at.to_le_bytes());
        image.extend_from_slice(&(stamp.encoded_len as u64).to_le_bytes());
        image.extend_from_slice(&stamp.header.content_hash);
        let kid = stamp.key_id.as_bytes();
        let kid = kid
            .get(..kid.len().min(MAX_KEY_ID_BYTES))
            .unwrap_or_default();
        image.extend_from_slice(&(kid.len() as u32).to_le_bytes());
        image.extend_from_slice(kid);
        image.resize(ENVELOPE_BYTES, 0);
        let mut offset = DIRECTORY_BYTES;
        for buffer in self.in_order() {
            image.extend_from_slice(&u32::try_from(offset).ok()?.to_le_bytes());
            image.extend_from_slice(&u32::try_from(buffer.len()).ok()?.to_le_bytes());
            offset = offset.checked_add(padded(buffer.len())?)?;
        }
        for buffer in self.in_order() {
            image.extend_from_slice(buffer);
            image.resize(image.len() + (padded(buffer.len())? - buffer.len()), 0);
        }
        Some(image)
    }
}
