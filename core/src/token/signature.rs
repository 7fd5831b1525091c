//! Signature checks a host can do for meshgate: Envoy verifies RS256/384/512 (PKCS#1 v1.5)
//! and ES256/384/512 with its own BoringSSL through the proxy-wasm foreign function
//! `verify_signature`, much faster than Rust compiled to Wasm. Everything here is pure: what
//! one check hands a backend (the key's and signature's DER forms, from `jwks` and `der`)
//! and the protobuf arguments and result of that call. The self-test a backend must pass
//! before it is trusted is `self_test`; the host call itself lives in the filter, behind
//! [`SignatureBackend`].
//!
//! PS256/384/512, EdDSA and HS256/384/512 are always verified in Rust.

use std::borrow::Cow;

use crate::token::alg::Algorithm;
use crate::token::der::ecdsa_signature_der;
use crate::token::jwks::{KeyMaterial, VerificationKey};

/// The name Envoy registers the foreign function under.
pub const VERIFY_SIGNATURE: &str = "verify_signature";

/// The hash a signature was made over, named as Envoy's `verify_signature` expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFunction {
    Sha256,
    Sha384,
    Sha512,
}

impl HashFunction {
    pub fn name(self) -> &'static str {
        match self {
            HashFunction::Sha256 => "sha256",
            HashFunction::Sha384 => "sha384",
            HashFunction::Sha512 => "sha512",
        }
    }
}

/// One signature check in the form a host crypto library takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureCheck<'a> {
    pub hash: HashFunction,
    /// DER `SubjectPublicKeyInfo`.
    pub public_key: &'a [u8],
    /// PKCS#1 v1.5 signature bytes (RSA) or a DER `ECDSA-Sig-Value` (ES256/384/512).
    pub signature: &'a [u8],
    /// The signed bytes: a JWS signing input, `header.payload`.
    pub message: &'a [u8],
}

/// A backend could not answer; the signature is then checked in Rust.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("`{function}` failed: {status}")]
    Call {
        function: &'static str,
        status: String,
    },
    #[error("`{function}` answered something that is not a result: {error}")]
    Answer {
        function: &'static str,
        error: ProtobufError,
    },
}

/// Verifies signatures outside this crate. `Ok(false)` means the signature is wrong;
/// `Err` means no answer, and never leads to an allow by itself.
pub trait SignatureBackend {
    fn verify(&self, check: &SignatureCheck<'_>) -> Result<bool, BackendError>;
}

/// Who checked the signatures of one decision, counted per check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignatureChecks {
    /// Answered by the backend.
    pub foreign: u32,
    /// Decided in Rust: no backend, an algorithm the backend doesn't do, a backend
    /// failure, or a signature malformed for its algorithm (refused before any math).
    pub rust: u32,
    /// Backend calls that failed (each then counted in `rust` too).
    pub foreign_failed: u32,
}

/// What a key and a token's signature become for a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostForm<'a> {
    /// The backend does not do this algorithm or key: verify in Rust.
    NotHandled,
    /// The signature can't be right for this key (wrong length, non-canonical ECDSA
    /// scalars): refuse without asking anyone.
    Malformed,
    Check {
        hash: HashFunction,
        public_key: &'a [u8],
        signature: Cow<'a, [u8]>,
    },
}

/// The backend form of checking `signature` with `key` under `alg`. The key is already
/// pinned to `alg`; its DER form was computed when the key set was parsed.
pub(crate) fn host_form<'a>(
    alg: Algorithm,
    key: &'a VerificationKey,
    signature: &'a [u8],
) -> HostForm<'a> {
    let Some(public_key) = key.public_key_der.as_deref() else {
        return HostForm::NotHandled;
    };
    let hash = match alg {
        Algorithm::Rs256 | Algorithm::Es256 => HashFunction::Sha256,
        Algorithm::Rs384 | Algorithm::Es384 => HashFunction::Sha384,
        Algorithm::Rs512 | Algorithm::Es512 => HashFunction::Sha512,
        _ => return HostForm::NotHandled,
    };
    match (alg, &key.material) {
        (Algorithm::Rs256 | Algorithm::Rs384 | Algorithm::Rs512, KeyMaterial::Rsa(rsa)) => {
            // RFC 8017 §8.2.2 step 1, which the Rust path checks too.
            if signature.len() != rsa.modulus_bytes {
                return HostForm::Malformed;
            }
            HostForm::Check {
                hash,
                public_key,
                signature: Cow::Borrowed(signature),
            }
        }
        (Algorithm::Es256, KeyMaterial::P256(_))
        | (Algorithm::Es384, KeyMaterial::P384(_))
        | (Algorithm::Es512, KeyMaterial::P521(_)) => match ecdsa_signature_der(alg, signature) {
            Ok(der) => HostForm::Check {
                hash,
                public_key,
                signature: Cow::Owned(der),
            },
            Err(_) => HostForm::Malformed,
        },
        _ => HostForm::NotHandled,
    }
}

// --- Protobuf (proto3 wire format) ---------------------------------------------------

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push(u8::try_from(value & 0x7f).unwrap_or(0) | 0x80);
        value >>= 7;
    }
    out.push(u8::try_from(value).unwrap_or(0));
}

fn put_bytes_field(field: u8, value: &[u8], out: &mut Vec<u8>) {
    // proto3 leaves empty fields out.
    if value.is_empty() {
        return;
    }
    put_varint(u64::from(field << 3 | WIRE_LEN), out);
    put_varint(u64::try_from(value.len()).unwrap_or(u64::MAX), out);
    out.extend_from_slice(value);
}

/// Envoy's `VerifySignatureArguments`: `hash_function` = 1 (string), `public_key` = 2
/// (DER bytes), `signature` = 3, `text` = 4. (Field 5, `public_key_pem`, is not used.)
pub fn encode_verify_arguments(check: &SignatureCheck<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        check
            .public_key
            .len()
            .saturating_add(check.signature.len())
            .saturating_add(check.message.len())
            .saturating_add(24),
    );
    put_bytes_field(1, check.hash.name().as_bytes(), &mut out);
    put_bytes_field(2, check.public_key, &mut out);
    put_bytes_field(3, check.signature, &mut out);
    put_bytes_field(4, check.message, &mut out);
    out
}

/// Envoy's `VerifySignatureResult`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyResult {
    /// Field 1: the signature verified.
    pub valid: bool,
    /// Field 2: why not, in BoringSSL's words.
    pub error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("message ends inside a field")]
    Truncated,
    #[error("varint longer than 10 bytes")]
    VarintTooLong,
    #[error("field {field} has unsupported wire type {wire_type}")]
    WireType { field: u64, wire_type: u8 },
}

fn take_varint(input: &mut &[u8]) -> Result<u64, ProtobufError> {
    let mut value = 0u64;
    for index in 0..10u32 {
        let (&byte, rest) = input.split_first().ok_or(ProtobufError::Truncated)?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ProtobufError::VarintTooLong)
}

fn take_bytes<'a>(input: &mut &'a [u8], len: u64) -> Result<&'a [u8], ProtobufError> {
    let len = usize::try_from(len).map_err(|_| ProtobufError::Truncated)?;
    let (taken, rest) = input
        .split_at_checked(len)
        .ok_or(ProtobufError::Truncated)?;
    *input = rest;
    Ok(taken)
}

/// Decodes a `VerifySignatureResult`. Absent fields take proto3 defaults (an empty
/// message is `result: false`); unknown fields are skipped; for repeated scalars the
/// last one wins, as in protobuf.
pub fn decode_verify_result(mut input: &[u8]) -> Result<VerifyResult, ProtobufError> {
    let mut result = VerifyResult::default();
    while !input.is_empty() {
        let key = take_varint(&mut input)?;
        let field = key >> 3;
        let wire_type = u8::try_from(key & 0x07).unwrap_or(u8::MAX);
        match (field, wire_type) {
            (1, WIRE_VARINT) => result.valid = take_varint(&mut input)? != 0,
            (2, WIRE_LEN) => {
                let len = take_varint(&mut input)?;
                let text = take_bytes(&mut input, len)?;
                result.error = String::from_utf8_lossy(text).chars().take(200).collect();
            }
            (_, WIRE_VARINT) => {
                take_varint(&mut input)?;
            }
            (_, WIRE_I64) => {
                take_bytes(&mut input, 8)?;
            }
            (_, WIRE_LEN) => {
                let len = take_varint(&mut input)?;
                take_bytes(&mut input, len)?;
            }
            (_, WIRE_I32) => {
                take_bytes(&mut input, 4)?;
            }
            (field, wire_type) => return Err(ProtobufError::WireType { field, wire_type }),
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests;
