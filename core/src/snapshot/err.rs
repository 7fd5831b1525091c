//! Errors of snapshot encoding, decoding and key handling.

/// A snapshot was refused. Nothing of a refused snapshot is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("not a meshgate snapshot (bad magic)")]
    NotASnapshot,
    #[error(
        "snapshot format {found} is not supported (this build reads formats up to {supported})"
    )]
    UnsupportedFormat { found: u16, supported: u16 },
    #[error("snapshot is truncated: {what} needs {needed} more bytes")]
    Truncated { what: &'static str, needed: usize },
    #[error("snapshot has {extra} bytes after its signature")]
    TrailingBytes { extra: usize },
    #[error("snapshot key id is empty, longer than {max} bytes or not printable ASCII")]
    InvalidKeyId { max: usize },
    #[error("snapshot is signed with key `{kid}`, which is not trusted")]
    UnknownKey { kid: String },
    #[error("snapshot signature does not verify with trusted key `{kid}`")]
    BadSignature { kid: String },
    #[error("snapshot content does not match its content hash")]
    HashMismatch,
    #[error("snapshot content is malformed at byte {offset}: {violation}")]
    Malformed {
        /// Offset from the start of the content section.
        offset: usize,
        violation: Violation,
    },
    #[error("snapshot content does not fit an image with 32-bit offsets")]
    ImageTooLarge,
    #[error("snapshot image could not be built: {0}")]
    Image(#[from] ImageError),
}

/// An image handed to [`super::Snapshot::from_image`] was refused. Only its envelope and
/// directory are checked; lookups bound every read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("not a meshgate snapshot image (bad magic)")]
    NotAnImage,
    #[error(
        "snapshot image layout {found} is not supported (this build reads layout {supported})"
    )]
    UnsupportedLayout { found: u32, supported: u32 },
    #[error("snapshot image is truncated: it needs {needed} more bytes")]
    Truncated { needed: usize },
    #[error("snapshot image declares {declared} content bytes but holds {actual}")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("snapshot image key id is empty, longer than {max} bytes or not printable ASCII")]
    InvalidKeyId { max: usize },
    #[error("snapshot image part `{part}` lies outside the image")]
    PartOutOfBounds { part: &'static str },
    #[error("snapshot image part `{part}` is not a whole number of records")]
    PartSize { part: &'static str },
}

/// How a signed snapshot's content breaks the format. Only a buggy (trusted) encoder produces
/// these, since the signature is checked first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("{what} runs past the end of its section")]
    Truncated { what: &'static str },
    #[error("{what} is not a valid variable-length integer")]
    BadVarint { what: &'static str },
    #[error("{what} is {value}, more than the {max} allowed")]
    TooMany {
        what: &'static str,
        value: u64,
        max: u64,
    },
    #[error("{what} is {len} bytes, more than the {max} allowed")]
    StringTooLong {
        what: &'static str,
        len: u64,
        max: usize,
    },
    #[error("{what} is empty")]
    EmptyString { what: &'static str },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("{what} shares {shared} bytes with the previous one, which has only {previous}")]
    BadSharedPrefix {
        what: &'static str,
        shared: u64,
        previous: usize,
    },
    #[error("{what} `{value}` appears twice")]
    Duplicate { what: &'static str, value: String },
    #[error("{what} `{value}` is out of order")]
    OutOfOrder { what: &'static str, value: String },
    #[error("{what} index {index} is out of range ({len} entries)")]
    IndexOutOfRange {
        what: &'static str,
        index: u64,
        len: usize,
    },
    #[error("section {tag} follows section {previous}; sections must be in increasing order")]
    SectionOrder { tag: u64, previous: u64 },
    #[error("section {tag} is unknown and not marked optional")]
    UnknownSection { tag: u64 },
    #[error("section {tag} has {extra} unread bytes")]
    SectionNotConsumed { tag: u64, extra: usize },
    #[error("required section {tag} ({name}) is missing")]
    MissingSection { tag: u64, name: &'static str },
}

/// The control plane's input cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("user `{entity_ref}` is listed twice")]
    DuplicateUser { entity_ref: String },
    #[error("{what} is empty")]
    EmptyString { what: &'static str },
    #[error("{what} `{prefix}…` is {len} bytes, more than the {max} allowed")]
    StringTooLong {
        what: &'static str,
        /// The first characters, to find the culprit.
        prefix: String,
        len: usize,
        max: usize,
    },
    #[error("{what} count {count} is more than the {max} the format holds")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("{which} snapshot's image is corrupt")]
    CorruptImage { which: &'static str },
    #[error("{what} points at ref {position}, but there are only {refs} refs")]
    UnknownRef {
        what: &'static str,
        position: u32,
        refs: usize,
    },
}

/// A signing or public key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key id `{kid}` must be 1 to {max} printable ASCII characters without spaces")]
    InvalidKeyId { kid: String, max: usize },
    #[error("{what} is not base64url without padding")]
    Base64 { what: &'static str },
    #[error("{what} is {len} bytes; an Ed25519 {what} is {expected} bytes")]
    Length {
        what: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("{what} is not a valid Ed25519 key")]
    Invalid { what: &'static str },
}

/// A delta was refused. The snapshot it was applied to is unchanged; on
/// [`DeltaError::BaseMismatch`] or [`DeltaError::ResultMismatch`] the caller fetches the full
/// snapshot instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    #[error("delta is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("not a meshgate snapshot delta (bad magic)")]
    NotADelta,
    #[error("delta format {found} is not supported (this build reads format {supported})")]
    UnsupportedFormat { found: u16, supported: u16 },
    #[error("delta is truncated: {what} needs {needed} more bytes")]
    Truncated { what: &'static str, needed: usize },
    #[error("delta has {extra} bytes after its signature")]
    TrailingBytes { extra: usize },
    #[error("delta key id is empty, longer than {max} bytes or not printable ASCII")]
    InvalidKeyId { max: usize },
    #[error("delta is signed with key `{kid}`, which is not trusted")]
    UnknownKey { kid: String },
    #[error("delta signature does not verify with trusted key `{kid}`")]
    BadSignature { kid: String },
    #[error("delta applies to snapshot version {delta_base_version}, not to the loaded version {loaded_version} (content differs)")]
    BaseMismatch {
        delta_base_version: u64,
        loaded_version: u64,
    },
    #[error("delta body is malformed at byte {offset}: {violation}")]
    Malformed { offset: usize, violation: Violation },
    #[error("delta names group `{group_ref}`, which the resulting snapshot does not hold")]
    UnknownGroup { group_ref: String },
    #[error("delta {what} `{value}` appears twice")]
    Duplicate { what: &'static str, value: String },
    #[error("delta removes {what} `{value}`, which the loaded snapshot does not hold")]
    Missing { what: &'static str, value: String },
    #[error("the loaded snapshot's image is corrupt")]
    CorruptBase,
    #[error("delta result has {count} {what}, more than the {max} allowed")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("delta result does not match the image content hash it names (version {version})")]
    ResultMismatch { version: u64 },
    #[error("delta result cannot be laid out: {0}")]
    Build(SnapshotError),
}

/// `value` when it is a string the snapshot can carry: not empty, at most
/// [`super::MAX_STRING_BYTES`].
pub(crate) fn checked<'a>(value: &'a str, what: &'static str) -> Result<&'a str, EncodeError> {
    if value.is_empty() {
        return Err(EncodeError::EmptyString { what });
    }
    if value.len() > super::MAX_STRING_BYTES {
        return Err(EncodeError::StringTooLong {
            what,
            prefix: value.chars().take(40).collect(),
            len: value.len(),
            max: super::MAX_STRING_BYTES,
        });
    }
    Ok(value)
}
