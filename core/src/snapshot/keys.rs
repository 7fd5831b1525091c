//! Ed25519 keys for snapshots: the control plane's signing key and the filter's trusted public
//! keys, each named by a key id that the snapshot carries next to its signature.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_compact::{KeyPair, PublicKey, Seed, Signature};
use serde::{Deserialize, Serialize};

use super::err::KeyError;

/// Longest key id, in bytes.
pub const MAX_KEY_ID_BYTES: usize = 64;
/// Length of a signature in a snapshot.
pub const SIGNATURE_BYTES: usize = Signature::BYTES;
/// Length of an encoded private key: the 32-byte seed followed by the 32-byte public key.
pub const PRIVATE_KEY_BYTES: usize = KeyPair::BYTES;
/// Length of an encoded public key.
pub const PUBLIC_KEY_BYTES: usize = PublicKey::BYTES;

/// A public key as written in configuration: `{"kid": "...", "public_key": "<base64url>"}`.
/// `meshgate keygen` prints exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeySpec {
    pub kid: String,
    /// The 32-byte Ed25519 public key, base64url without padding.
    pub public_key: String,
}

/// A public key that snapshots may be signed with.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedKey {
    kid: String,
    key: PublicKey,
}

impl TrustedKey {
    /// A key from its raw 32 bytes. Keys that are not canonical curve points, or have small
    /// order, are refused: no signature could be trusted under them.
    pub fn new(kid: &str, public_key: &[u8]) -> Result<TrustedKey, KeyError> {
        check_kid(kid)?;
        let key = PublicKey::from_slice(public_key).map_err(|_| KeyError::Length {
            what: "public key",
            len: public_key.len(),
            expected: PUBLIC_KEY_BYTES,
        })?;
        key.validate()
            .map_err(|_| KeyError::Invalid { what: "public key" })?;
        Ok(TrustedKey {
            kid: kid.to_owned(),
            key,
        })
    }

    /// A key as configured.
    pub fn from_spec(spec: &PublicKeySpec) -> Result<TrustedKey, KeyError> {
        let bytes = decode_base64(&spec.public_key, "public key")?;
        TrustedKey::new(&spec.kid, &bytes)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn public_key_bytes(&self) -> [u8; PUBLIC_KEY_BYTES] {
        *self.key
    }

    /// The configuration form of this key.
    pub fn to_spec(&self) -> PublicKeySpec {
        PublicKeySpec {
            kid: self.kid.clone(),
            public_key: URL_SAFE_NO_PAD.encode(*self.key),
        }
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature)
            .and_then(|signature| self.key.verify(message, &signature))
            .is_ok()
    }
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedKey")
            .field("kid", &self.kid)
            .field("public_key", &URL_SAFE_NO_PAD.encode(*self.key))
            .finish()
    }
}

/// The control plane's snapshot signing key.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    pair: KeyPair,
}

impl SigningKey {
    /// A key derived from 32 random bytes (the caller supplies the randomness).
    pub fn from_seed(kid: &str, seed: [u8; 32]) -> Result<SigningKey, KeyError> {
        check_kid(kid)?;
        let pair = KeyPair::try_from_seed(Seed::new(seed)).map_err(|_| KeyError::Invalid {
            what: "private key seed",
        })?;
        Ok(SigningKey {
            kid: kid.to_owned(),
            pair,
        })
    }

    /// A key from its 64-byte encoding (seed, then public key). The public half must be the
    /// one the seed derives, so a damaged key file is noticed before anything is signed.
    pub fn from_private_key(kid: &str, private_key: &[u8]) -> Result<SigningKey, KeyError> {
        check_kid(kid)?;
        let invalid = KeyError::Invalid {
            what: "private key",
        };
        let pair = KeyPair::from_slice(private_key).map_err(|_| KeyError::Length {
            what: "private key",
            len: private_key.len(),
            expected: PRIVATE_KEY_BYTES,
        })?;
        pair.sk
            .validate_public_key(&pair.pk)
            .map_err(|_| invalid.clone())?;
        pair.pk.validate().map_err(|_| invalid)?;
        Ok(SigningKey {
            kid: kid.to_owned(),
            pair,
        })
    }

    /// [`SigningKey::from_private_key`] from base64url without padding.
    pub fn from_base64url(kid: &str, private_key: &str) -> Result<SigningKey, KeyError> {
        let bytes = decode_base64(private_key, "private key")?;
        SigningKey::from_private_key(kid, &bytes)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The 64-byte private key, base64url without padding: what a key file stores.
    pub fn private_key_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(*self.pair.sk)
    }

    /// The public key the filter must trust to accept this key's snapshots.
    pub fn trusted_key(&self) -> TrustedKey {
        TrustedKey {
            kid: self.kid.clone(),
            key: self.pair.pk,
        }
    }

    /// Deterministic Ed25519 (RFC 8032, no added noise): replicas signing the same body with
    /// the same key produce the same bytes.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_BYTES] {
        *self.pair.sk.sign(message, None)
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("public_key", &URL_SAFE_NO_PAD.encode(*self.pair.pk))
            .finish_non_exhaustive()
    }
}

/// Key ids are printable ASCII without spaces, 1 to [`MAX_KEY_ID_BYTES`] bytes.
pub(crate) fn valid_kid(kid: &[u8]) -> bool {
    !kid.is_empty() && kid.len() <= MAX_KEY_ID_BYTES && kid.iter().all(u8::is_ascii_graphic)
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    if valid_kid(kid.as_bytes()) {
        Ok(())
    } else {
        Err(KeyError::InvalidKeyId {
            kid: kid.to_owned(),
            max: MAX_KEY_ID_BYTES,
        })
    }
}

fn decode_base64(text: &str, what: &'static str) -> Result<Vec<u8>, KeyError> {
    URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| KeyError::Base64 { what })
}

/// Why the trailer of a signed snapshot or delta could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrailerError {
    /// `needed` more bytes of `what` were expected.
    Truncated {
        what: &'static str,
        needed: usize,
    },
    TrailingBytes {
        extra: usize,
    },
    InvalidKeyId,
}

/// Signs everything in `out` with `key` and appends the trailer [`read_trailer`] reads.
pub(crate) fn append_trailer(out: &mut Vec<u8>, key: &SigningKey) {
    let signature = key.sign(out);
    let kid = key.kid().as_bytes();
    // `SigningKey` guarantees a key id of 1 to 64 bytes.
    out.push(u8::try_from(kid.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(kid);
    out.extend_from_slice(&signature);
}

/// The trailer every signed file ends with, after the signed part: key id length (1 byte),
/// key id, Ed25519 signature, and nothing after. Returns the key id and the signature.
pub(crate) fn read_trailer(trailer: &[u8]) -> Result<(&str, &[u8]), TrailerError> {
    let truncated = |what, needed| TrailerError::Truncated { what, needed };
    let Some((&kid_len, trailer)) = trailer.split_first() else {
        return Err(truncated("key id length", 1));
    };
    let kid_len = usize::from(kid_len);
    let Some((kid, trailer)) = trailer.split_at_checked(kid_len) else {
        return Err(truncated("key id", kid_len.saturating_sub(trailer.len())));
    };
    let Some((signature, trailer)) = trailer.split_at_checked(SIGNATURE_BYTES) else {
        return Err(truncated(
            "signature",
            SIGNATURE_BYTES.saturating_sub(trailer.len()),
        ));
    };
    if !trailer.is_empty() {
        return Err(TrailerError::TrailingBytes {
            extra: trailer.len(),
        });
    }
    match std::str::from_utf8(kid) {
        Ok(kid) if valid_kid(kid.as_bytes()) => Ok((kid, signature)),
        _ => Err(TrailerError::InvalidKeyId),
    }
}
