//! JWS compact tokens: strict parsing, then signature verification against keys pinned to
//! their algorithms. Claims are checked by `provider`, after the signature.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_compact::alg::{Ed25519, Hs256, Hs384, Hs512};
use jwt_compact::AlgorithmSignature;
use serde::Deserialize;

use crate::token::alg::Algorithm;
use crate::token::json::UniqueKeys;
use crate::token::jwks::{KeyMaterial, KeySet, VerificationKey};
use crate::token::signature::{
    host_form, HostForm, SignatureBackend, SignatureCheck, SignatureChecks,
};

/// Default limit on a token's length, before any decoding.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("token is not a JWS in compact form (expected 3 dot-separated parts, found {parts})")]
    NotCompactJws { parts: usize },
    #[error("token {part} is not unpadded base64url")]
    BadBase64 { part: TokenPart },
    #[error("token {part} is not a JSON object: {detail}")]
    BadJson { part: TokenPart, detail: String },
    #[error("token header `alg` `{alg}` is not an accepted algorithm")]
    AlgorithmNotAccepted { alg: String },
    #[error("token header marks `{name}` critical, which meshgate does not understand")]
    UnknownCritical { name: String },
    /// RFC 7515 §4.1.11: `crit` must not be an empty list.
    #[error("token header has an empty `crit` list")]
    EmptyCritical,
    /// RFC 7516 §4.1.3: `zip` belongs to encrypted tokens (JWE); a signed one must not
    /// carry it.
    #[error("token header has `zip`, which only an encrypted token (JWE) may carry")]
    CompressionOnJws,
    #[error("no key with kid `{kid}`")]
    UnknownKid { kid: String },
    #[error("no key accepts algorithm `{alg}`")]
    NoKeyForAlgorithm { alg: &'static str },
    #[error("key `{kid}` is pinned to other algorithms than `{alg}`")]
    AlgorithmNotPinned { kid: String, alg: &'static str },
    #[error("signature does not verify")]
    BadSignature,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPart {
    Header,
    Payload,
    Signature,
}

impl std::fmt::Display for TokenPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenPart::Header => "header",
            TokenPart::Payload => "payload",
            TokenPart::Signature => "signature",
        })
    }
}

/// The JOSE header members meshgate reads. Others (`jku`, `x5u`, `jwk`, ...) are ignored:
/// keys only ever come from the provider's configured key set.
#[derive(Debug, Clone, Deserialize)]
pub struct JoseHeader {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub crit: Option<Vec<String>>,
}

/// A parsed but not yet verified token.
#[derive(Debug, Clone)]
pub struct UnverifiedToken<'t> {
    pub header: JoseHeader,
    pub algorithm: Algorithm,
    /// The decoded payload JSON object.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'t str,
    signature: Vec<u8>,
}

impl<'t> UnverifiedToken<'t> {
    pub fn parse(token: &'t str, max_bytes: usize) -> Result<Self, TokenError> {
        if token.len() > max_bytes {
            return Err(TokenError::TooLarge {
                len: token.len(),
                max: max_bytes,
            });
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::NotCompactJws {
                parts: token.split('.').count(),
            });
        };
        // Splitting at the last dot gives exactly `header.payload` (3 parts checked above).
        let signing_input = token
            .rsplit_once('.')
            .map(|(input, _)| input)
            .ok_or(TokenError::NotCompactJws { parts: 1 })?;

        let header = parse_header(&decode_part(header_b64, TokenPart::Header)?)?;
        let algorithm =
            Algorithm::from_name(&header.alg).ok_or_else(|| TokenError::AlgorithmNotAccepted {
                alg: header.alg.chars().take(32).collect(),
            })?;
        let payload = decode_part(payload_b64, TokenPart::Payload)?;
        let claims = serde_json::from_slice::<UniqueKeys>(&payload)
            .map_err(|e| TokenError::BadJson {
                part: TokenPart::Payload,
                detail: e.to_string(),
            })?
            .0;
        let signature = decode_part(signature_b64, TokenPart::Signature)?;
        Ok(UnverifiedToken {
            header,
            algorithm,
            claims,
            signing_input,
            signature,
        })
    }

    /// `header.payload`, the bytes the signature covers.
    #[cfg(test)]
    pub(crate) fn signing_input(&self) -> &'t str {
        self.signing_input
    }

    /// The decoded signature bytes.
    #[cfg(test)]
    pub(crate) fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Verifies the signature with the keys of `set` that match the token's `kid` and
    /// are pinned to its algorithm, in Rust. Returns the key that verified it.
    pub fn verify<'k>(&self, set: &'k KeySet) -> Result<&'k VerificationKey, TokenError> {
        self.verify_using(set, None, &mut SignatureChecks::default())
    }

    /// [`verify`](Self::verify), with `backend` checking the signatures it can (RS256/384/512,
    /// ES256/384/512). A check the backend fails to answer is done in Rust; its `false` is final.
    /// `checks` counts who checked what.
    pub fn verify_using<'k>(
        &self,
        set: &'k KeySet,
        backend: Option<&dyn SignatureBackend>,
        checks: &mut SignatureChecks,
    ) -> Result<&'k VerificationKey, TokenError> {
        let kid = self.header.kid.as_deref();
        // Keys carrying the token's `kid` (every key when it has none) come first; with a
        // `kid`, keys without one follow (`KeySet::candidates`).
        let mut named_key = false;
        let mut named_tried = false;
        for key in set.candidates(kid) {
            let named = kid.is_none() || key.kid.is_some();
            named_key |= named;
            if !key.allows(self.algorithm) {
                continue;
            }
            named_tried |= named;
            if self.check_signature(key, backend, checks) {
                return Ok(key);
            }
        }
        match (kid, named_key, named_tried) {
            (_, _, true) => Err(TokenError::BadSignature),
            (None, _, false) => Err(TokenError::NoKeyForAlgorithm {
                alg: self.algorithm.name(),
            }),
            (Some(kid), true, false) => Err(TokenError::AlgorithmNotPinned {
                kid: kid.chars().take(64).collect(),
                alg: self.algorithm.name(),
            }),
            // No key carries this `kid` (keys without one may have been tried and failed):
            // it may be a new key, which is what a refetch on an unknown `kid` is for.
            (Some(kid), false, _) => Err(TokenError::UnknownKid {
                kid: kid.chars().take(64).collect(),
            }),
        }
    }

    /// One key, one signature: the backend when it does this algorithm, else Rust.
    fn check_signature(
        &self,
        key: &VerificationKey,
        backend: Option<&dyn SignatureBackend>,
        checks: &mut SignatureChecks,
    ) -> bool {
        if let Some(backend) = backend {
            match host_form(self.algorithm, key, &self.signature) {
                HostForm::NotHandled => {}
                HostForm::Malformed => {
                    checks.rust = checks.rust.saturating_add(1);
                    return false;
                }
                HostForm::Check {
                    hash,
                    public_key,
                    signature,
                } => {
                    let check = SignatureCheck {
                        hash,
                        public_key,
                        signature: &signature,
                        message: self.signing_input.as_bytes(),
                    };
                    match backend.verify(&check) {
                        Ok(valid) => {
                            checks.foreign = checks.foreign.saturating_add(1);
                            return valid;
                        }
                        // No answer is no verdict: the Rust check below decides.
                        Err(_) => checks.foreign_failed = checks.foreign_failed.saturating_add(1),
                    }
                }
            }
        }
        checks.rust = checks.rust.saturating_add(1);
        verify_with(
            self.algorithm,
            &key.material,
            self.signing_input,
            &self.signature,
        )
    }
}

/// The protected header: a JSON object (RFC 7515 §4: an array is not a header, though a
/// struct deserializer would read one by position) with unique members, without `zip`,
/// and without `crit` (meshgate understands no extension, and an empty list is invalid).
fn parse_header(bytes: &[u8]) -> Result<JoseHeader, TokenError> {
    let bad_json = |e: serde_json::Error| TokenError::BadJson {
        part: TokenPart::Header,
        detail: e.to_string(),
    };
    let members = serde_json::from_slice::<UniqueKeys>(bytes)
        .map_err(bad_json)?
        .0;
    if members.contains_key("zip") {
        return Err(TokenError::CompressionOnJws);
    }
    let header: JoseHeader =
        serde_json::from_value(serde_json::Value::Object(members)).map_err(bad_json)?;
    match header.crit.as_deref() {
        None => Ok(header),
        Some([]) => Err(TokenError::EmptyCritical),
        // RFC 7515 §4.1.11: a recipient must reject extensions it does not understand.
        Some([name, ..]) => Err(TokenError::UnknownCritical {
            name: name.chars().take(64).collect(),
        }),
    }
}

fn decode_part(part: &str, which: TokenPart) -> Result<Vec<u8>, TokenError> {
    // URL_SAFE_NO_PAD rejects padding, `+`/`/`, whitespace and non-canonical trailing bits.
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::BadBase64 { part: which })
}

/// One signature checked in Rust. RS*, PS* and ES* need the `portable-crypto` feature;
/// without it they are Envoy's alone and never verify here.
pub(crate) fn verify_with(
    alg: Algorithm,
    key: &KeyMaterial,
    message: &str,
    signature: &[u8],
) -> bool {
    let message = message.as_bytes();
    match (alg, key) {
        (Algorithm::EdDsa, KeyMaterial::Ed25519(k)) => verify_alg(&Ed25519, k, message, signature),
        (Algorithm::Hs256, KeyMaterial::Hs256(k)) => verify_alg(&Hs256, k, message, signature),
        (Algorithm::Hs384, KeyMaterial::Hs384(k)) => verify_alg(&Hs384, k, message, signature),
        (Algorithm::Hs512, KeyMaterial::Hs512(k)) => verify_alg(&Hs512, k, message, signature),
        #[cfg(feature = "portable-crypto")]
        (alg, key) => portable::verify(alg, key, message, signature),
        // Key pinning already excludes other pairs; refusing here too keeps it true by
        // construction.
        #[cfg(not(feature = "portable-crypto"))]
        _ => false,
    }
}

/// RSA and ECDSA in Rust: the fallback for hosts without `verify_signature`, and PS*.
#[cfg(feature = "portable-crypto")]
mod portable {
    use jwt_compact::alg::{Es256, Rsa};
    use p384::ecdsa::signature::Verifier as _;

    use super::verify_alg;
    use crate::token::alg::Algorithm;
    use crate::token::jwks::KeyMaterial;

    pub(super) fn verify(
        alg: Algorithm,
        key: &KeyMaterial,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let rsa =
            |alg: Rsa, k: &jwt_compact::alg::RsaPublicKey| verify_alg(&alg, k, message, signature);
        match (alg, key) {
            (Algorithm::Rs256, KeyMaterial::Rsa(k)) => rsa(Rsa::rs256(), &k.rust),
            (Algorithm::Rs384, KeyMaterial::Rsa(k)) => rsa(Rsa::rs384(), &k.rust),
            (Algorithm::Rs512, KeyMaterial::Rsa(k)) => rsa(Rsa::rs512(), &k.rust),
            (Algorithm::Ps256, KeyMaterial::Rsa(k)) => rsa(Rsa::ps256(), &k.rust),
            (Algorithm::Ps384, KeyMaterial::Rsa(k)) => rsa(Rsa::ps384(), &k.rust),
            (Algorithm::Ps512, KeyMaterial::Rsa(k)) => rsa(Rsa::ps512(), &k.rust),
            (Algorithm::Es256, KeyMaterial::P256(k)) => verify_alg(&Es256, k, message, signature),
            (Algorithm::Es384, KeyMaterial::P384(k)) => {
                p384::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|sig| k.verify(message, &sig).is_ok())
            }
            (Algorithm::Es512, KeyMaterial::P521(k)) => {
                p521::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|sig| k.verify(message, &sig).is_ok())
            }
            _ => false,
        }
    }
}

fn verify_alg<A: jwt_compact::Algorithm>(
    alg: &A,
    key: &A::VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> bool {
    if let Some(expected) = A::Signature::LENGTH {
        if signature.len() != expected.get() {
            return false;
        }
    }
    match A::Signature::try_from_slice(signature) {
        Ok(sig) => alg.verify_signature(&sig, key, message),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests;
