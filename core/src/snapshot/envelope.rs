//! The outer layer of a snapshot: fixed header, content, and the detached signature with its
//! key id. See `docs/snapshot.md` for the byte layout.

use super::err::SnapshotError;
use super::keys::{read_trailer, TrailerError, MAX_KEY_ID_BYTES};

/// First bytes of every snapshot.
pub const MAGIC: [u8; 6] = *b"MGSNAP";
/// The layout this build writes. Format 2 stores each user's direct groups and relies on the
/// groups' closed ancestors; format 1 stored each user's closed groups.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest layout this build still reads. Format 1 content is read the same way: a closed
/// list unioned with its groups' ancestors is itself.
pub const OLDEST_FORMAT_VERSION: u16 = 1;
/// Magic, format, version, generated_at, content length, content hash.
pub const HEADER_BYTES: usize = 6 + 2 + 8 + 8 + 4 + 32;

/// The signed header of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SnapshotHeader {
    /// Monotonic: a filter never replaces a snapshot with one of a lower or equal version.
    pub version: u64,
    /// Unix seconds when the control plane built it; informational.
    pub generated_at: i64,
    /// SHA-256 of the content section. Equal contents have equal hashes whatever their
    /// version, so the control plane can tell that nothing changed.
    pub content_hash: [u8; 32],
}

impl SnapshotHeader {
    /// Reads the header without checking the signature, for instance to skip the full
    /// decode of a snapshot that is not newer than the current one. Nothing read this way
    /// may be trusted: only [`super::Snapshot::decode`] authenticates.
    pub fn peek(bytes: &[u8]) -> Result<SnapshotHeader, SnapshotError> {
        Envelope::parse(bytes).map(|envelope| envelope.header)
    }

    /// The format number of a snapshot's bytes, read and checked like [`SnapshotHeader::peek`]
    /// (the whole envelope is parsed): not authenticated either.
    pub fn peek_format(bytes: &[u8]) -> Result<u16, SnapshotError> {
        Envelope::parse(bytes)?;
        let format = bytes
            .get(MAGIC.len()..MAGIC.len() + 2)
            .and_then(|field| field.try_into().ok())
            .map_or(0, u16::from_le_bytes);
        Ok(format)
    }

    /// The content hash as lowercase hex.
    pub fn content_hash_hex(&self) -> String {
        hex(&self.content_hash)
    }
}

/// A snapshot split into its parts, not yet verified.
pub(crate) struct Envelope<'a> {
    pub header: SnapshotHeader,
    /// Header and content: what the signature covers.
    pub signed: &'a [u8],
    pub content: &'a [u8],
    pub kid: &'a str,
    pub signature: &'a [u8],
}

impl<'a> Envelope<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>, SnapshotError> {
        let truncated = |what, needed| SnapshotError::Truncated { what, needed };
        let Some((fixed, rest)) = bytes.split_first_chunk::<HEADER_BYTES>() else {
            if !MAGIC.starts_with(bytes) && !bytes.starts_with(&MAGIC) {
                return Err(SnapshotError::NotASnapshot);
            }
            return Err(truncated(
                "header",
                HEADER_BYTES.saturating_sub(bytes.len()),
            ));
        };
        let mut cursor: &[u8] = fixed;
        let magic: [u8; 6] = take_array(&mut cursor);
        if magic != MAGIC {
            return Err(SnapshotError::NotASnapshot);
        }
        let format = u16::from_le_bytes(take_array(&mut cursor));
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&format) {
            return Err(SnapshotError::UnsupportedFormat {
                found: format,
                supported: FORMAT_VERSION,
            });
        }
        let version = u64::from_le_bytes(take_array(&mut cursor));
        let generated_at = i64::from_le_bytes(take_array(&mut cursor));
        let content_len = u32::from_le_bytes(take_array(&mut cursor)) as usize;
        let content_hash: [u8; 32] = take_array(&mut cursor);

        let Some((content, trailer)) = rest.split_at_checked(content_len) else {
            return Err(truncated("content", content_len.saturating_sub(rest.len())));
        };
        let (kid, signature) = read_trailer(trailer).map_err(|error| match error {
            TrailerError::Truncated { what, needed } => truncated(what, needed),
            TrailerError::TrailingBytes { extra } => SnapshotError::TrailingBytes { extra },
            TrailerError::InvalidKeyId => SnapshotError::InvalidKeyId {
                max: MAX_KEY_ID_BYTES,
            },
        })?;
        let signed_len = HEADER_BYTES.saturating_add(content_len);
        Ok(Envelope {
            header: SnapshotHeader {
                version,
                generated_at,
                content_hash,
            },
            signed: bytes.get(..signed_len).unwrap_or_default(),
            content,
            kid,
            signature,
        })
    }
}

/// The next `N` bytes of a cursor known to hold enough; zeros otherwise (never reached: the
/// header's fields add up to [`HEADER_BYTES`]).
fn take_array<const N: usize>(cursor: &mut &[u8]) -> [u8; N] {
    match cursor.split_first_chunk::<N>() {
        Some((head, tail)) => {
            *cursor = tail;
            *head
        }
        None => [0; N],
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        for nibble in [byte >> 4, byte & 0x0f] {
            out.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    out
}
