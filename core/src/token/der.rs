//! JWS values and JWK public keys in the DER forms X.509 libraries verify (Envoy's
//! BoringSSL through `verify_signature`): an ECDSA signature as an `ECDSA-Sig-Value`, a
//! public key as a `SubjectPublicKeyInfo`. A small DER writer of our own, from the bytes a
//! JWK or JWS carries: no bignum or curve arithmetic, so the default filter artifact links
//! none (the `portable-crypto` feature adds the Rust verifiers, not another encoder). The
//! tests check every form byte for byte against the `rsa` and curve crates' encoders.

use crate::token::alg::Algorithm;

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

/// The NIST curves meshgate verifies ECDSA on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    /// The JWK `crv` name (RFC 7518 §6.2.1.1).
    pub fn from_jwk_name(name: &str) -> Option<Curve> {
        match name {
            "P-256" => Some(Curve::P256),
            "P-384" => Some(Curve::P384),
            "P-521" => Some(Curve::P521),
            _ => None,
        }
    }

    /// Bytes of a field element or scalar: the length of a JWK `x`/`y` and of `r`/`s`.
    pub fn size(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// The DER content of the curve's object identifier (RFC 5480 §2.1.1.1).
    pub fn oid(self) -> &'static [u8] {
        match self {
            // 1.2.840.10045.3.1.7 (secp256r1)
            Curve::P256 => &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            // 1.3.132.0.34 (secp384r1)
            Curve::P384 => &[0x2b, 0x81, 0x04, 0x00, 0x22],
            // 1.3.132.0.35 (secp521r1)
            Curve::P521 => &[0x2b, 0x81, 0x04, 0x00, 0x23],
        }
    }

    /// The curve whose object identifier has this DER content.
    pub fn from_oid(oid: &[u8]) -> Option<Curve> {
        [Curve::P256, Curve::P384, Curve::P521]
            .into_iter()
            .find(|curve| curve.oid() == oid)
    }

    /// The order n of the curve's group, big-endian, [`size`](Self::size) bytes (FIPS 186-4 D.1.2).
    fn order(self) -> &'static [u8] {
        match self {
            Curve::P256 => &P256_ORDER,
            Curve::P384 => &P384_ORDER,
            Curve::P521 => &P521_ORDER,
        }
    }

    fn of(alg: Algorithm) -> Option<Curve> {
        match alg {
            Algorithm::Es256 => Some(Curve::P256),
            Algorithm::Es384 => Some(Curve::P384),
            Algorithm::Es512 => Some(Curve::P521),
            _ => None,
        }
    }
}

const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
const P384_ORDER: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];
const P521_ORDER: [u8; 66] = [
    0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xfa, 0x51, 0x86, 0x87, 0x83, 0xbf, 0x2f, 0x96, 0x6b, 0x7f, 0xcc, 0x01, 0x48, 0xf7, 0x09,
    0xa5, 0xd0, 0x3b, 0xb5, 0xc9, 0xb8, 0x89, 0x9c, 0x47, 0xae, 0xbb, 0x6f, 0xb7, 0x1e, 0x91, 0x38,
    0x64, 0x09,
];

/// 1.2.840.113549.1.1.1 (`rsaEncryption`, RFC 3279 §2.3.1).
pub const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// 1.2.840.10045.2.1 (`id-ecPublicKey`, RFC 5480 §2.1.1).
pub const EC_PUBLIC_KEY_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

/// One DER element: tag, definite length (short form below 128, else the fewest bytes),
/// content.
fn element(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(len.saturating_add(6));
    out.push(tag);
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes = len.to_be_bytes();
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(0);
        let significant = bytes.get(first..).unwrap_or_default();
        out.push(0x80 | u8::try_from(significant.len()).unwrap_or(0));
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER from unsigned big-endian bytes: leading zeros stripped, one 0x00
/// put back when the top bit is set (it would make the number negative), zero as `00`.
fn unsigned_integer(big_endian: &[u8]) -> Vec<u8> {
    let first = big_endian
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(big_endian.len());
    let digits = big_endian.get(first..).unwrap_or_default();
    let mut content = Vec::with_capacity(digits.len().saturating_add(1));
    if digits.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0x00);
    }
    content.extend_from_slice(digits);
    element(TAG_INTEGER, &content)
}

fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    element(TAG_SEQUENCE, &parts.concat())
}

/// A BIT STRING of whole bytes (no unused bits).
fn bit_string(bytes: &[u8]) -> Vec<u8> {
    element(TAG_BIT_STRING, &[&[0x00], bytes].concat())
}

/// The `SubjectPublicKeyInfo` of an RSA key (RFC 3279 §2.3.1) from a JWK's `n` and `e`,
/// unsigned big-endian.
pub fn rsa_public_key_der(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let algorithm = sequence(&[
        &element(TAG_OID, RSA_ENCRYPTION_OID),
        &element(TAG_NULL, &[]),
    ]);
    let key = sequence(&[&unsigned_integer(modulus), &unsigned_integer(exponent)]);
    sequence(&[&algorithm, &bit_string(&key)])
}

/// The `SubjectPublicKeyInfo` of an EC key (RFC 5480) from its SEC1 uncompressed point
/// (`0x04 ‖ x ‖ y`). Whether the point is on the curve is not checked here.
pub fn ec_public_key_der(curve: Curve, point: &[u8]) -> Vec<u8> {
    let algorithm = sequence(&[
        &element(TAG_OID, EC_PUBLIC_KEY_OID),
        &element(TAG_OID, curve.oid()),
    ]);
    sequence(&[&algorithm, &bit_string(point)])
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
    let curve = Curve::of(alg).ok_or(EcdsaSignatureError::NotEcdsa { alg: alg.name() })?;
    let size = curve.size();
    let expected = size.saturating_mul(2);
    let (r, s) = raw
        .split_at_checked(size)
        .filter(|_| raw.len() == expected)
        .ok_or(EcdsaSignatureError::Length {
            alg: alg.name(),
            len: raw.len(),
            expected,
        })?;
    // Equal lengths, big-endian: byte-wise order is numeric order.
    let in_range = |scalar: &[u8]| scalar.iter().any(|&b| b != 0) && scalar < curve.order();
    if !(in_range(r) && in_range(s)) {
        return Err(EcdsaSignatureError::NonCanonical { alg: alg.name() });
    }
    Ok(sequence(&[&unsigned_integer(r), &unsigned_integer(s)]))
}

#[cfg(test)]
mod tests;
