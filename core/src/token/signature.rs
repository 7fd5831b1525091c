//! Signature checks a host can do for meshgate: Envoy verifies RS256/384/512 (PKCS#1 v1.5)
//! and ES256/384/512 with its own BoringSSL through the proxy-wasm foreign function
//! `verify_signature`, much faster than Rust compiled to Wasm. Everything here is pure:
//! the encodings that call needs (DER public keys and ECDSA signatures, the protobuf
//! arguments and result) and a self-test a backend must pass before it is trusted.
//! The host call itself lives in the filter, behind [`SignatureBackend`].
//!
//! PS256/384/512, EdDSA and HS256/384/512 are always verified in Rust.

use std::borrow::Cow;

use rsa::traits::PublicKeyParts;

use crate::token::alg::Algorithm;
use crate::token::jwks::{KeyMaterial, KeyOrigin, KeySet, VerificationKey};

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
            if signature.len() != rsa.size() {
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

// --- DER (X.690) ---------------------------------------------------------------------

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

/// 1.2.840.113549.1.1.1
pub(crate) const OID_RSA_ENCRYPTION: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// 1.2.840.10045.2.1
pub(crate) const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// 1.2.840.10045.3.1.7 (P-256)
pub(crate) const OID_PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// 1.3.132.0.34 (P-384)
pub(crate) const OID_SECP384R1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
/// 1.3.132.0.35 (P-521)
pub(crate) const OID_SECP521R1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

/// The order n of the P-256 group, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
/// The order n of the P-384 group, big-endian.
const P384_ORDER: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];
/// The order n of the P-521 group, big-endian, in 66 bytes.
const P521_ORDER: [u8; 66] = [
    0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xfa, 0x51, 0x86, 0x87, 0x83, 0xbf, 0x2f, 0x96, 0x6b, 0x7f, 0xcc, 0x01, 0x48, 0xf7, 0x09,
    0xa5, 0xd0, 0x3b, 0xb5, 0xc9, 0xb8, 0x89, 0x9c, 0x47, 0xae, 0xbb, 0x6f, 0xb7, 0x1e, 0x91, 0x38,
    0x64, 0x09,
];

/// A definite length: short form below 128, else the minimal long form.
fn der_length(len: usize, out: &mut Vec<u8>) {
    match u8::try_from(len) {
        Ok(short) if short < 0x80 => out.push(short),
        _ => {
            let bytes = len.to_be_bytes();
            let significant: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
            // At most size_of::<usize>() bytes, so the count fits in the low 7 bits.
            let count = u8::try_from(significant.len()).unwrap_or(0x7f) & 0x7f;
            out.push(0x80 | count);
            out.extend_from_slice(&significant);
        }
    }
}

fn der_tlv(tag: u8, content: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    der_length(content.len(), out);
    out.extend_from_slice(content);
}

/// A non-negative INTEGER from big-endian magnitude bytes: leading zeros dropped, one
/// zero added back when the high bit is set (or for zero itself).
fn der_unsigned_integer(magnitude: &[u8], out: &mut Vec<u8>) {
    let start = magnitude
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(magnitude.len());
    let digits = magnitude.get(start..).unwrap_or_default();
    let mut content = Vec::with_capacity(digits.len().saturating_add(1));
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    der_tlv(TAG_INTEGER, &content, out);
}

fn der_sequence(parts: &[&[u8]]) -> Vec<u8> {
    let content = parts.concat();
    let mut out = Vec::with_capacity(content.len().saturating_add(4));
    der_tlv(TAG_SEQUENCE, &content, &mut out);
    out
}

/// `SubjectPublicKeyInfo` from an algorithm identifier's content and the key bits.
fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut algorithm_id = Vec::new();
    der_tlv(TAG_SEQUENCE, algorithm, &mut algorithm_id);
    let mut bits = Vec::with_capacity(key.len().saturating_add(1));
    bits.push(0); // no unused bits
    bits.extend_from_slice(key);
    let mut bit_string = Vec::new();
    der_tlv(TAG_BIT_STRING, &bits, &mut bit_string);
    der_sequence(&[&algorithm_id, &bit_string])
}

/// RFC 8017 `RSAPublicKey` in an RFC 3279 `SubjectPublicKeyInfo` (rsaEncryption, NULL
/// parameters), from the big-endian modulus and exponent.
pub fn rsa_spki_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut integers = Vec::new();
    der_unsigned_integer(n, &mut integers);
    der_unsigned_integer(e, &mut integers);
    let mut rsa_public_key = Vec::new();
    der_tlv(TAG_SEQUENCE, &integers, &mut rsa_public_key);
    let mut algorithm = Vec::new();
    der_tlv(TAG_OID, OID_RSA_ENCRYPTION, &mut algorithm);
    der_tlv(TAG_NULL, &[], &mut algorithm);
    spki(&algorithm, &rsa_public_key)
}

/// RFC 5480 `SubjectPublicKeyInfo` for a P-256 key (id-ecPublicKey, prime256v1) from its
/// uncompressed point `0x04 ‖ x ‖ y`. `None` for anything else.
pub fn p256_spki_der(uncompressed_point: &[u8]) -> Option<Vec<u8>> {
    ec_spki_der(OID_PRIME256V1, 32, uncompressed_point)
}

/// As [`p256_spki_der`], for a named curve whose coordinates are `size` bytes.
fn ec_spki_der(curve: &[u8], size: usize, uncompressed_point: &[u8]) -> Option<Vec<u8>> {
    if uncompressed_point.len() != size.saturating_mul(2).saturating_add(1)
        || uncompressed_point.first() != Some(&0x04)
    {
        return None;
    }
    let mut algorithm = Vec::new();
    der_tlv(TAG_OID, OID_EC_PUBLIC_KEY, &mut algorithm);
    der_tlv(TAG_OID, curve, &mut algorithm);
    Some(spki(&algorithm, uncompressed_point))
}

/// The DER public key of a parsed key, for the key types a backend verifies.
pub(crate) fn public_key_der(material: &KeyMaterial) -> Option<Vec<u8>> {
    match material {
        KeyMaterial::Rsa(key) => Some(rsa_spki_der(&key.n().to_bytes_be(), &key.e().to_bytes_be())),
        KeyMaterial::P256(key) => p256_spki_der(key.to_encoded_point(false).as_bytes()),
        KeyMaterial::P384(key) => {
            ec_spki_der(OID_SECP384R1, 48, key.to_encoded_point(false).as_bytes())
        }
        KeyMaterial::P521(key) => {
            ec_spki_der(OID_SECP521R1, 66, key.to_encoded_point(false).as_bytes())
        }
        _ => None,
    }
}

/// Why a JWS ECDSA signature can't be converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EcdsaSignatureError {
    #[error("{alg} signature is {len} bytes, not {expected}")]
    Length {
        alg: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("{alg} signature has r or s equal to zero or not below the group order")]
    NonCanonical { alg: &'static str },
    #[error("{alg} is not an ECDSA algorithm")]
    NotEcdsa { alg: &'static str },
}

/// A JWS ES256 signature as a DER `ECDSA-Sig-Value`; see [`ecdsa_signature_der`].
pub fn es256_signature_der(raw: &[u8]) -> Result<Vec<u8>, EcdsaSignatureError> {
    ecdsa_signature_der(Algorithm::Es256, raw)
}

/// A JWS ECDSA signature (RFC 7518 §3.4: `r ‖ s`, each as long as the group order:
/// 32, 48 or 66 bytes, big-endian) as the DER `ECDSA-Sig-Value` X.509 libraries verify.
/// Scalars outside `[1, n-1]` are refused here, so no backend ever sees a signature that
/// has two encodings.
pub fn ecdsa_signature_der(alg: Algorithm, raw: &[u8]) -> Result<Vec<u8>, EcdsaSignatureError> {
    let order: &[u8] = match alg {
        Algorithm::Es256 => &P256_ORDER,
        Algorithm::Es384 => &P384_ORDER,
        Algorithm::Es512 => &P521_ORDER,
        _ => return Err(EcdsaSignatureError::NotEcdsa { alg: alg.name() }),
    };
    let size = order.len();
    let (r, s) = match raw.split_at_checked(size) {
        Some((r, s)) if s.len() == size => (r, s),
        _ => {
            return Err(EcdsaSignatureError::Length {
                alg: alg.name(),
                len: raw.len(),
                expected: size.saturating_mul(2),
            })
        }
    };
    for scalar in [r, s] {
        // Same length, big-endian: lexicographic order is numeric order.
        if scalar.iter().all(|b| *b == 0) || scalar >= order {
            return Err(EcdsaSignatureError::NonCanonical { alg: alg.name() });
        }
    }
    let mut integers = Vec::with_capacity(size.saturating_mul(2).saturating_add(8));
    der_unsigned_integer(r, &mut integers);
    der_unsigned_integer(s, &mut integers);
    let mut out = Vec::with_capacity(integers.len().saturating_add(2));
    der_tlv(TAG_SEQUENCE, &integers, &mut out);
    Ok(out)
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

// --- Self-test -----------------------------------------------------------------------

/// Public keys of RFC 7515 Appendices A.2 (RSA) and A.3 (P-256), meshgate's P-384 test key
/// and RFC 7520 §3.2's P-521 key.
const SELF_TEST_JWKS: &str = r#"{"keys": [
{"kty": "RSA", "kid": "rsa", "e": "AQAB", "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"},
{"kty": "EC", "kid": "ec", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
{"kty": "EC", "kid": "ec384", "crv": "P-384", "x": "G-0VCQebNFg-D0Gw4zK2OzCtBhZXRTyCmXzUQaddeS9pmLwE1iCZhaplwXrBa3n8", "y": "Q9a--ydchrxxngl0KspVsxmY2fQsdgyZkWfiJK02gkLch5o3S7AvMMtbRGqWLeoN"},
{"kty": "EC", "kid": "bilbo.baggins@hobbiton.example", "crv": "P-521", "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt", "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1"}
]}"#;

/// RFC 7515 Appendix A.2: RS256.
pub(crate) const RFC7515_A2: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
/// RFC 7515 Appendix A.3: ES256 (raw `r ‖ s`).
pub(crate) const RFC7515_A3: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
/// The A.2 payload under an RS384 and an RS512 header, signed with the A.2 key
/// (`openssl dgst -sha384|-sha512 -sign`; PKCS#1 v1.5 is deterministic, and a unit test
/// checks both in Rust).
pub(crate) const RS384_A2_KEY: &str = "eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.UqgNjrJOGhk4wfoSG6Uvrt9GcKu-TgPwInExALrMBadg1pol1uTw7mZADTddAWsC6ZzdFiTFUmIi7DuD38ftLAZoW4qezdAO7RYf1yZDsbT20bt8DJJN1I4VovL2PLg80B6x6ug-kaW8k5LaM5ce0dk1zgWhjafKC3Mb4UNLL8f9fqVMkHpdWYRjF6QjTz12Ap-gq-tPyUoWSdvzCIYOcZ9-08SQQdUTTgsNF1Qwu3TqeWPqzNJwmWHiHMmaV8I4ktMFEX-AiEBa55KsfYTx0jSbTHP-odqmnLQJ4n-oQJ2RSXy0HQP6BkdiwDHdoMUk4z_wAeOsfDTs_mLxTgOInQ";
pub(crate) const RS512_A2_KEY: &str = "eyJhbGciOiJSUzUxMiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.ZatQfsb2gyCu3y9cDuz59a-IKm4bkqtT0HuT8BpNlPCmA3Y2eH91CVSI0TbkPqI9v2jaXuWvPcoJGNRtTpUXafTAbqzxWSMjqx8SkJRTuUz6imaHBctra42j2AvJ1t7qJwf2NN49y9PZbkYn3ejhU-iCmKJ3J-_GLsYp5VlximYm-o3sMul0tyCMvHUdmuWvadnVEaio-jix3pXYWfyFC8tp19zZrTaofxTAzCqlqundx22tfsuqchto_zVnZk_ZBr1R5lr29Qle5JgLmRkfDNbVSQZFdwg6mSlODL8BrOiM_vreMaPCO8U_JGezKUob0ONv7DA7XDfpbaXaFsHipQ";
/// The A.2 payload under an ES384 header, signed once with meshgate's P-384 test key
/// (`testing::ec384_private`) by Python's `cryptography` (OpenSSL). No RFC has an ES384
/// example.
pub(crate) const ES384_TEST_KEY: &str = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.n_qnPEeS44EDwZQdrFBThzonwXaDZusgYAo7-lbesPlDbzrEN_XmPeQNweZ94Ti5XiW4UXwWucFzAc7JocV0LGO99TRL5hrdCKK9LKL7YnZCod2wKVX7dkVxfjc8VFwg";
/// RFC 7520 §4.3: ES512 over the cookbook's text payload (not a JSON object, so it is not
/// a token meshgate would accept; the signature layer is what is tested).
pub(crate) const RFC7520_4_3: &str = "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2";

/// The known answers of the self-test: a compact JWS, its algorithm, the key that signed
/// it, and whether the same signature over altered bytes is also tried.
const SELF_TEST_VECTORS: [(&str, Algorithm, &str, bool); 6] = [
    (RFC7515_A2, Algorithm::Rs256, "rsa", true),
    (RS384_A2_KEY, Algorithm::Rs384, "rsa", false),
    (RS512_A2_KEY, Algorithm::Rs512, "rsa", false),
    (RFC7515_A3, Algorithm::Es256, "ec", true),
    (ES384_TEST_KEY, Algorithm::Es384, "ec384", true),
    (
        RFC7520_4_3,
        Algorithm::Es512,
        "bilbo.baggins@hobbiton.example",
        true,
    ),
];

/// Why a backend is not trusted with signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelfTestError {
    #[error("{0}")]
    Unavailable(BackendError),
    #[error("it rejects a valid {alg} signature")]
    RejectsValid { alg: &'static str },
    #[error("it accepts a wrong {alg} signature")]
    AcceptsInvalid { alg: &'static str },
    /// The built-in vectors themselves didn't parse (a bug here, not in the backend).
    #[error("self-test vector `{alg}` is unusable")]
    Vector { alg: &'static str },
}

/// Checks a backend on known answers before it verifies any token: RFC 7515's RS256 and
/// ES256 examples, RFC 7520's ES512 example, an ES384 signature by meshgate's test key and
/// RS384/RS512 signatures by the RFC 7515 key must verify, and the same signatures over
/// other bytes must not. The keys go through the same parsing and DER encoding as a
/// provider's keys, so a wrong encoding fails here, not on traffic.
pub fn self_test(backend: &dyn SignatureBackend) -> Result<(), SelfTestError> {
    let keys = KeySet::parse(SELF_TEST_JWKS.as_bytes(), KeyOrigin::Remote)
        .map_err(|_| SelfTestError::Vector { alg: "JWKS" })?;
    for (token, alg, kid, also_tampered) in SELF_TEST_VECTORS {
        let vector = || SelfTestError::Vector { alg: alg.name() };
        let (message, signature) = token.rsplit_once('.').ok_or_else(vector)?;
        let signature =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
                .map_err(|_| vector())?;
        let key = keys.candidates(Some(kid)).next().ok_or_else(vector)?;
        let HostForm::Check {
            hash,
            public_key,
            signature,
        } = host_form(alg, key, &signature)
        else {
            return Err(vector());
        };
        let check = SignatureCheck {
            hash,
            public_key,
            signature: &signature,
            message: message.as_bytes(),
        };
        if !backend.verify(&check).map_err(SelfTestError::Unavailable)? {
            return Err(SelfTestError::RejectsValid { alg: alg.name() });
        }
        if also_tampered {
            let mut message = check.message.to_vec();
            if let Some(last) = message.last_mut() {
                *last ^= 0x01;
            }
            let tampered = SignatureCheck {
                message: &message,
                ..check
            };
            if backend
                .verify(&tampered)
                .map_err(SelfTestError::Unavailable)?
            {
                return Err(SelfTestError::AcceptsInvalid { alg: alg.name() });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
