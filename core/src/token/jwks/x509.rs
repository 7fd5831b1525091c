//! The X.509 form of a key set: a JSON object mapping each key id to a PEM certificate,
//! as Google publishes for service accounts and Firebase (`.../x509/...`,
//! `securetoken@system.gserviceaccount.com`). Only the certificate's public key is used:
//! the document comes from the provider's configured URI like any JWKS, so the
//! certificate's issuer, validity and extensions add no trust and are not checked
//! (Envoy's `jwt_authn` does the same).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use x509_cert::der::asn1::{ObjectIdentifier, UintRef};
use x509_cert::der::{Decode as _, Reader as _, SliceReader};
use x509_cert::Certificate;

use super::VerificationKey;
use super::{ec_point_material, rsa_material, verification_key, KeySkipped, RSA_FAMILY};
use crate::token::alg::Algorithm;
use crate::token::der::{Curve, EC_PUBLIC_KEY_OID, RSA_ENCRYPTION_OID};

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// The verification key in one certificate; the map key is its `kid`.
pub(super) fn parse_certificate(kid: String, pem: &str) -> Result<VerificationKey, KeySkipped> {
    let label: String = kid.chars().take(64).collect();
    let unparseable = |detail: &str| KeySkipped::Unparseable {
        kid: label.clone(),
        detail: detail.to_owned(),
    };
    let der = pem_to_der(pem).map_err(unparseable)?;
    let certificate = Certificate::from_der(&der)
        .map_err(|e| unparseable(&format!("certificate is not valid DER: {e}")))?;
    let spki = &certificate.tbs_certificate.subject_public_key_info;
    let key_bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| unparseable("public key bit string has unused bits"))?;
    let (algorithms, (material, der)) = match spki.algorithm.oid.as_bytes() {
        oid if oid == RSA_ENCRYPTION_OID => {
            let (modulus, exponent) = rsa_public_key(key_bits)
                .map_err(|e| unparseable(&format!("RSA public key: {e}")))?;
            let key = rsa_material(modulus.as_bytes(), exponent.as_bytes())
                .map_err(|e| unparseable(&format!("RSA public key: {e}")))?;
            (RSA_FAMILY, key)
        }
        oid if oid == EC_PUBLIC_KEY_OID => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| unparseable("EC key without a named curve"))?;
            let (name, alg) = match Curve::from_oid(curve.as_bytes()) {
                Some(Curve::P256) => ("P-256", Algorithm::Es256),
                Some(Curve::P384) => ("P-384", Algorithm::Es384),
                Some(Curve::P521) => ("P-521", Algorithm::Es512),
                None => {
                    return Err(KeySkipped::UnsupportedKeyType {
                        kid: label,
                        kty: String::from("EC"),
                        crv: curve.to_string(),
                    })
                }
            };
            (
                alg.as_slice(),
                ec_point_material(name, key_bits).map_err(unparseable)?,
            )
        }
        _ => {
            return Err(KeySkipped::UnsupportedKeyType {
                kid: label,
                kty: spki.algorithm.oid.to_string(),
                crv: String::from("(none)"),
            })
        }
    };
    verification_key(Some(kid), label, algorithms, material, Some(der))
}

/// PKCS#1 `RSAPublicKey` (RFC 8017 §A.1.1): `SEQUENCE { modulus INTEGER, publicExponent
/// INTEGER }`, both non-negative, nothing after it.
fn rsa_public_key(der: &[u8]) -> x509_cert::der::Result<(UintRef<'_>, UintRef<'_>)> {
    let mut reader = SliceReader::new(der)?;
    let parts = reader.sequence(|seq| Ok((UintRef::decode(seq)?, UintRef::decode(seq)?)))?;
    reader.finish(parts)
}

/// One PEM `CERTIFICATE` block (RFC 7468) to DER. Line breaks and surrounding whitespace
/// are allowed; anything else (a second block, headers, bad base64) is refused.
fn pem_to_der(pem: &str) -> Result<Vec<u8>, &'static str> {
    let body = pem
        .trim()
        .strip_prefix(PEM_BEGIN)
        .and_then(|rest| rest.strip_suffix(PEM_END))
        .ok_or("not one PEM certificate (`-----BEGIN CERTIFICATE-----` ... `-----END CERTIFICATE-----`)")?;
    let base64: String = body.split_ascii_whitespace().collect();
    if base64.is_empty() {
        return Err("PEM certificate is empty");
    }
    STANDARD
        .decode(base64.as_bytes())
        .map_err(|_| "PEM certificate body is not base64")
}

#[cfg(test)]
mod tests;
