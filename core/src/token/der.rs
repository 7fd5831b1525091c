//! JWS values in the DER forms X.509 libraries verify (Envoy's BoringSSL through
//! `verify_signature`): an ECDSA signature as an `ECDSA-Sig-Value`. Public keys get their
//! DER form (`SubjectPublicKeyInfo`) when a key set is parsed, in `jwks`. The encoding
//! itself is the curve crates'; this module only checks what they are given.

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

/// A JWS ES256 signature as a DER `ECDSA-Sig-Value`; see [`ecdsa_signature_der`].
pub fn es256_signature_der(raw: &[u8]) -> Result<Vec<u8>, EcdsaSignatureError> {
    ecdsa_signature_der(Algorithm::Es256, raw)
}

/// A JWS ECDSA signature (RFC 7518 §3.4: `r ‖ s`, each as long as the group order:
/// 32, 48 or 66 bytes, big-endian) as the DER `ECDSA-Sig-Value` X.509 libraries verify.
/// Scalars outside `[1, n-1]` are refused here (the curve crates check the range), so no
/// backend ever sees a signature that has two encodings.
pub fn ecdsa_signature_der(alg: Algorithm, raw: &[u8]) -> Result<Vec<u8>, EcdsaSignatureError> {
    let size = match alg {
        Algorithm::Es256 => 32,
        Algorithm::Es384 => 48,
        Algorithm::Es512 => 66,
        _ => return Err(EcdsaSignatureError::NotEcdsa { alg: alg.name() }),
    };
    let expected = size * 2;
    if raw.len() != expected {
        return Err(EcdsaSignatureError::Length {
            alg: alg.name(),
            len: raw.len(),
            expected,
        });
    }
    let der = match alg {
        Algorithm::Es256 => {
            p256::ecdsa::Signature::from_slice(raw).map(|s| s.to_der().as_bytes().to_vec())
        }
        Algorithm::Es384 => {
            p384::ecdsa::Signature::from_slice(raw).map(|s| s.to_der().as_bytes().to_vec())
        }
        _ => p521::ecdsa::Signature::from_slice(raw).map(|s| s.to_der().as_bytes().to_vec()),
    };
    der.map_err(|_| EcdsaSignatureError::NonCanonical { alg: alg.name() })
}
