//! JSON Web Key Sets: parse a JWKS document into verification keys, each pinned to the
//! algorithms it may verify. The token's `alg` header only selects among those.

use std::sync::Arc;

use jwt_compact::alg::{Hs256Key, Hs384Key, Hs512Key, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;

use crate::alg::Algorithm;

/// RSA keys below this size are refused (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;
/// A JWKS document larger than this is refused before parsing.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// More keys than this in one set is refused.
pub const MAX_KEYS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS document is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("JWKS document is not valid JSON with a `keys` array: {detail}")]
    Malformed { detail: String },
    #[error("JWKS has {count} keys, more than the {max} allowed")]
    TooManyKeys { count: usize, max: usize },
    #[error("JWKS has no usable signing key ({skipped} skipped)")]
    NoUsableKeys { skipped: usize },
}

/// Where a key set came from decides which key types it may hold: a symmetric secret
/// published over HTTP is no secret, so `oct` keys are only accepted from local config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    Local,
    Remote,
}

/// Why one key of a set was skipped (the rest of the set is still used).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySkipped {
    #[error("key `{kid}`: `use` is `{key_use}`, not `sig`")]
    NotForSignatures { kid: String, key_use: String },
    #[error("key `{kid}`: RSA modulus is {bits} bits, fewer than {MIN_RSA_BITS}")]
    RsaTooSmall { kid: String, bits: usize },
    #[error("key `{kid}`: `alg` `{alg}` is not supported or does not fit key type `{kty}`")]
    AlgorithmMismatch {
        kid: String,
        alg: String,
        kty: String,
    },
    #[error("key `{kid}`: symmetric keys are only accepted from `local_jwks`")]
    SymmetricFromRemote { kid: String },
    #[error("key `{kid}`: HMAC secret is {len} bytes, fewer than the {min} that `{alg}` needs")]
    HmacTooShort {
        kid: String,
        len: usize,
        min: usize,
        alg: &'static str,
    },
    #[error("key `{kid}`: {detail}")]
    Unparseable { kid: String, detail: String },
}

/// Key material, already decoded so verification does no parsing.
#[derive(Clone)]
pub enum KeyMaterial {
    Rsa(Arc<RsaPublicKey>),
    P256(P256VerifyingKey),
    Ed25519(Ed25519PublicKey),
    Hs256(Hs256Key),
    Hs384(Hs384Key),
    Hs512(Hs512Key),
}

// jwt-compact exposes these key types through its algorithms; naming them this way keeps
// the exact versions jwt-compact was built with.
type P256VerifyingKey = <jwt_compact::alg::Es256 as jwt_compact::Algorithm>::VerifyingKey;
type Ed25519PublicKey = <jwt_compact::alg::Ed25519 as jwt_compact::Algorithm>::VerifyingKey;

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets; the type is enough to debug.
        f.write_str(match self {
            KeyMaterial::Rsa(_) => "Rsa",
            KeyMaterial::P256(_) => "P256",
            KeyMaterial::Ed25519(_) => "Ed25519",
            KeyMaterial::Hs256(_) => "Hs256(..)",
            KeyMaterial::Hs384(_) => "Hs384(..)",
            KeyMaterial::Hs512(_) => "Hs512(..)",
        })
    }
}

/// One verification key and the algorithms it is pinned to.
#[derive(Debug, Clone)]
pub struct VerificationKey {
    pub kid: Option<String>,
    pub algorithms: &'static [Algorithm],
    pub material: KeyMaterial,
    /// DER `SubjectPublicKeyInfo` of RSA and P-256 keys, computed once at parse time for
    /// signature backends (`signature`); `None` for other key types.
    pub public_key_der: Option<Vec<u8>>,
}

impl VerificationKey {
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg)
    }
}

/// A parsed key set, plus what was skipped and why (for logs).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<VerificationKey>,
    pub skipped: Vec<KeySkipped>,
    /// A hash of the document the set was parsed from: tells a refresh that changed the
    /// keys from one that didn't (not a security property).
    pub fingerprint: u64,
}

impl KeySet {
    pub fn parse(document: &[u8], origin: KeyOrigin) -> Result<KeySet, JwksError> {
        if document.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge {
                len: document.len(),
                max: MAX_JWKS_BYTES,
            });
        }
        let doc: JwksDocument =
            serde_json::from_slice(document).map_err(|e| JwksError::Malformed {
                detail: e.to_string(),
            })?;
        if doc.keys.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys {
                count: doc.keys.len(),
                max: MAX_KEYS,
            });
        }
        let mut set = KeySet {
            fingerprint: std::hash::BuildHasher::hash_one(
                &std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default(),
                document,
            ),
            ..KeySet::default()
        };
        for raw in doc.keys {
            match parse_key(raw, origin) {
                Ok(key) => set.keys.push(key),
                Err(skipped) => set.skipped.push(skipped),
            }
        }
        if set.keys.is_empty() {
            return Err(JwksError::NoUsableKeys {
                skipped: set.skipped.len(),
            });
        }
        Ok(set)
    }

    /// Keys that may verify a token with this `kid` (if any) and algorithm.
    pub fn candidates<'a, 'k>(
        &'a self,
        kid: Option<&'k str>,
    ) -> impl Iterator<Item = &'a VerificationKey> + use<'a, 'k> {
        self.keys
            .iter()
            .filter(move |key| kid.is_none() || key.kid.as_deref() == kid)
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// The JWK members that pin a key, read before the key material itself.
#[derive(Deserialize)]
struct JwkMeta {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    crv: Option<String>,
}

fn parse_key(raw: serde_json::Value, origin: KeyOrigin) -> Result<VerificationKey, KeySkipped> {
    let meta: JwkMeta =
        serde_json::from_value(raw.clone()).map_err(|e| KeySkipped::Unparseable {
            kid: String::from("?"),
            detail: e.to_string(),
        })?;
    let kid_label = meta.kid.clone().unwrap_or_else(|| String::from("(no kid)"));
    if let Some(key_use) = meta.key_use.as_deref() {
        if key_use != "sig" {
            return Err(KeySkipped::NotForSignatures {
                kid: kid_label,
                key_use: key_use.to_owned(),
            });
        }
    }
    let kty = meta.kty.clone().unwrap_or_default();
    let mismatch = || KeySkipped::AlgorithmMismatch {
        kid: kid_label.clone(),
        alg: meta.alg.clone().unwrap_or_default(),
        kty: kty.clone(),
    };
    let algorithms =
        pinned_algorithms(&kty, meta.crv.as_deref(), meta.alg.as_deref()).ok_or_else(mismatch)?;
    if kty == "oct" && origin == KeyOrigin::Remote {
        return Err(KeySkipped::SymmetricFromRemote { kid: kid_label });
    }
    let jwk: JsonWebKey<'_> = serde_json::from_value(raw).map_err(|e| KeySkipped::Unparseable {
        kid: kid_label.clone(),
        detail: e.to_string(),
    })?;
    let unparseable = |detail: String| KeySkipped::Unparseable {
        kid: kid_label.clone(),
        detail,
    };
    let material = match (&jwk, algorithms.first()) {
        (JsonWebKey::Rsa { .. }, _) => {
            let key = RsaPublicKey::try_from(&jwk).map_err(|e| unparseable(e.to_string()))?;
            let bits = key.size().saturating_mul(8);
            if bits < MIN_RSA_BITS {
                return Err(KeySkipped::RsaTooSmall {
                    kid: kid_label,
                    bits,
                });
            }
            KeyMaterial::Rsa(Arc::new(key))
        }
        (JsonWebKey::EllipticCurve { .. }, _) => KeyMaterial::P256(
            P256VerifyingKey::try_from(&jwk).map_err(|e| unparseable(e.to_string()))?,
        ),
        (JsonWebKey::KeyPair { .. }, _) => KeyMaterial::Ed25519(
            Ed25519PublicKey::try_from(&jwk).map_err(|e| unparseable(e.to_string()))?,
        ),
        (JsonWebKey::Symmetric { secret }, Some(alg)) => {
            let min = alg.min_hmac_key_bytes();
            if secret.len() < min {
                return Err(KeySkipped::HmacTooShort {
                    kid: kid_label,
                    len: secret.len(),
                    min,
                    alg: alg.name(),
                });
            }
            match alg {
                Algorithm::Hs256 => KeyMaterial::Hs256(Hs256Key::new(secret)),
                Algorithm::Hs384 => KeyMaterial::Hs384(Hs384Key::new(secret)),
                Algorithm::Hs512 => KeyMaterial::Hs512(Hs512Key::new(secret)),
                _ => return Err(mismatch()),
            }
        }
        _ => return Err(mismatch()),
    };
    Ok(VerificationKey {
        kid: meta.kid,
        algorithms,
        public_key_der: crate::signature::public_key_der(&material),
        material,
    })
}

/// The algorithms a key may verify, from its `kty`, `crv` and `alg`. `None` when the
/// combination is unsupported or inconsistent (e.g. `alg: RS256` on an EC key).
fn pinned_algorithms(
    kty: &str,
    crv: Option<&str>,
    alg: Option<&str>,
) -> Option<&'static [Algorithm]> {
    use Algorithm::*;
    let family: &'static [Algorithm] = match (kty, crv) {
        ("RSA", None) => &[Rs256, Rs384, Rs512, Ps256, Ps384, Ps512],
        ("EC", Some("P-256")) => &[Es256],
        ("OKP", Some("Ed25519")) => &[EdDsa],
        // A symmetric key must name its algorithm: its length alone doesn't say.
        ("oct", None) => &[],
        _ => return None,
    };
    match alg {
        None if family.is_empty() => None,
        None => Some(family),
        Some(name) => {
            let alg = Algorithm::from_name(name)?;
            let pinned = alg.as_slice();
            let fits = family.contains(&alg) || (kty == "oct" && alg.is_hmac());
            fits.then_some(pinned)
        }
    }
}

#[cfg(test)]
mod tests;
