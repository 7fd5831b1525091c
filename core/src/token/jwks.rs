//! Key sets: parse a JWKS document (RFC 7517), or the X.509 form some IdPs publish
//! (`{"<kid>": "-----BEGIN CERTIFICATE-----…"}`, see [`x509`]), into verification keys,
//! each pinned to the algorithms it may verify. The token's `alg` header only selects
//! among those.

use std::sync::Arc;

use jwt_compact::alg::{Hs256Key, Hs384Key, Hs512Key, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;

use crate::token::alg::Algorithm;
use crate::token::json::UniqueKeys;

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
    /// `{"keys": []}`: an IdP with no signing key yet (Backstage before its first
    /// sign-in), not a broken one.
    #[error("JWKS has no keys")]
    Empty,
    #[error("JWKS has no usable signing key ({skipped})")]
    NoUsableKeys { skipped: SkippedKeys },
}

/// The keys of a set that were skipped, each with its reason; displayed as one line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SkippedKeys(pub Vec<KeySkipped>);

impl std::fmt::Display for SkippedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} skipped", self.0.len())?;
        for (index, skipped) in self.0.iter().enumerate() {
            f.write_str(if index == 0 { ": " } else { "; " })?;
            write!(f, "{skipped}")?;
        }
        Ok(())
    }
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
    #[error("key `{kid}`: key type `{kty}` with curve `{crv}` is not supported")]
    UnsupportedKeyType {
        kid: String,
        kty: String,
        crv: String,
    },
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
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
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
            KeyMaterial::P384(_) => "P384",
            KeyMaterial::P521(_) => "P521",
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
    /// DER `SubjectPublicKeyInfo` of RSA and P-256/384/521 keys, computed once at parse
    /// time for signature backends (`signature`); `None` for other key types.
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
    /// Parses a JWKS (`{"keys": [...]}`) or the X.509 form (`{"<kid>": "<PEM>"}`). Keys
    /// that can't be used are skipped with a reason; a set without any usable key is an
    /// error, and an empty `keys` array is [`JwksError::Empty`].
    pub fn parse(document: &[u8], origin: KeyOrigin) -> Result<KeySet, JwksError> {
        if document.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge {
                len: document.len(),
                max: MAX_JWKS_BYTES,
            });
        }
        let members = serde_json::from_slice::<UniqueKeys>(document)
            .map_err(|e| JwksError::Malformed {
                detail: e.to_string(),
            })?
            .0;
        let form = document_form(members)?;
        let count = match &form {
            DocumentForm::Jwks(keys) => keys.len(),
            DocumentForm::X509(certificates) => certificates.len(),
        };
        if count > MAX_KEYS {
            return Err(JwksError::TooManyKeys {
                count,
                max: MAX_KEYS,
            });
        }
        if count == 0 {
            return Err(JwksError::Empty);
        }
        let mut set = KeySet {
            fingerprint: std::hash::BuildHasher::hash_one(
                &std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default(),
                document,
            ),
            ..KeySet::default()
        };
        let parsed: Vec<Result<Vec<VerificationKey>, KeySkipped>> = match form {
            DocumentForm::Jwks(keys) => {
                keys.into_iter().map(|raw| parse_key(raw, origin)).collect()
            }
            DocumentForm::X509(certificates) => certificates
                .into_iter()
                .map(|(kid, pem)| x509::parse_certificate(kid, &pem).map(|key| vec![key]))
                .collect(),
        };
        for result in parsed {
            match result {
                Ok(keys) => set.keys.extend(keys),
                Err(skipped) => set.skipped.push(skipped),
            }
        }
        if set.keys.is_empty() {
            return Err(JwksError::NoUsableKeys {
                skipped: SkippedKeys(set.skipped),
            });
        }
        Ok(set)
    }

    /// Keys that may verify a token with this `kid`, best first. With a `kid`: the keys
    /// carrying that `kid`, then the keys without one (RFC 7515 §4.1.4 makes `kid` a hint,
    /// and a JWK need not have one). Without a `kid`: every key.
    pub fn candidates<'a, 'k>(
        &'a self,
        kid: Option<&'k str>,
    ) -> impl Iterator<Item = &'a VerificationKey> + use<'a, 'k> {
        let named = self
            .keys
            .iter()
            .filter(move |key| kid.is_none() || key.kid.as_deref() == kid);
        let unnamed = self
            .keys
            .iter()
            .filter(move |key| kid.is_some() && key.kid.is_none());
        named.chain(unnamed)
    }
}

/// The two shapes of key set document IdPs publish.
enum DocumentForm {
    /// RFC 7517: `{"keys": [<JWK>, ...]}`.
    Jwks(Vec<serde_json::Value>),
    /// Google's and Firebase's `{"<kid>": "<PEM certificate>", ...}`.
    X509(Vec<(String, String)>),
}

/// Tells the forms apart: a `keys` member makes a JWKS; an object whose members are all
/// strings (and that has some) is the X.509 form; anything else is malformed.
fn document_form(
    mut members: serde_json::Map<String, serde_json::Value>,
) -> Result<DocumentForm, JwksError> {
    if let Some(keys) = members.remove("keys") {
        return match keys {
            serde_json::Value::Array(keys) => Ok(DocumentForm::Jwks(keys)),
            _ => Err(JwksError::Malformed {
                detail: String::from("`keys` is not an array"),
            }),
        };
    }
    if members.is_empty() {
        return Err(JwksError::Malformed {
            detail: String::from("no `keys` member"),
        });
    }
    members
        .into_iter()
        .map(|(kid, value)| match value {
            serde_json::Value::String(pem) => Ok((kid, pem)),
            _ => Err(JwksError::Malformed {
                detail: String::from(
                    "no `keys` member, and not a map of key ids to PEM certificates",
                ),
            }),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(DocumentForm::X509)
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

fn parse_key(
    raw: serde_json::Value,
    origin: KeyOrigin,
) -> Result<Vec<VerificationKey>, KeySkipped> {
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
    let family =
        key_family(&kty, meta.crv.as_deref()).ok_or_else(|| KeySkipped::UnsupportedKeyType {
            kid: kid_label.clone(),
            kty: kty.chars().take(32).collect(),
            crv: meta
                .crv
                .as_deref()
                .unwrap_or("(none)")
                .chars()
                .take(32)
                .collect(),
        })?;
    let mismatch = || KeySkipped::AlgorithmMismatch {
        kid: kid_label.clone(),
        alg: meta
            .alg
            .clone()
            .unwrap_or_default()
            .chars()
            .take(32)
            .collect(),
        kty: kty.clone(),
    };
    let algorithms = pin(family, kty == "oct", meta.alg.as_deref()).ok_or_else(mismatch)?;
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
    let material = match &jwk {
        JsonWebKey::Rsa { .. } => KeyMaterial::Rsa(Arc::new(
            RsaPublicKey::try_from(&jwk).map_err(|e| unparseable(e.to_string()))?,
        )),
        JsonWebKey::EllipticCurve { curve, x, y, .. } => {
            ec_material(curve, x, y).map_err(|detail| unparseable(detail.to_owned()))?
        }
        JsonWebKey::KeyPair { .. } => KeyMaterial::Ed25519(
            Ed25519PublicKey::try_from(&jwk).map_err(|e| unparseable(e.to_string()))?,
        ),
        JsonWebKey::Symmetric { secret } => {
            return hmac_keys(meta.kid, kid_label, secret, algorithms);
        }
        _ => return Err(mismatch()),
    };
    verification_key(meta.kid, kid_label, algorithms, material).map(|key| vec![key])
}

/// A key from its decoded material, with the checks every key form shares: RSA moduli of
/// at least [`MIN_RSA_BITS`], and the DER form backends verify with.
pub(crate) fn verification_key(
    kid: Option<String>,
    kid_label: String,
    algorithms: &'static [Algorithm],
    material: KeyMaterial,
) -> Result<VerificationKey, KeySkipped> {
    if let KeyMaterial::Rsa(key) = &material {
        let bits = key.size().saturating_mul(8);
        if bits < MIN_RSA_BITS {
            return Err(KeySkipped::RsaTooSmall {
                kid: kid_label,
                bits,
            });
        }
    }
    Ok(VerificationKey {
        kid,
        algorithms,
        public_key_der: public_key_der(&material),
        material,
    })
}

/// The DER `SubjectPublicKeyInfo` of the key types a signature backend verifies (RSA,
/// P-256/384/521), as the `rsa` and curve crates encode it.
fn public_key_der(material: &KeyMaterial) -> Option<Vec<u8>> {
    use p256::pkcs8::EncodePublicKey as _;
    let document = match material {
        KeyMaterial::Rsa(key) => key.to_public_key_der(),
        KeyMaterial::P256(key) => p256::PublicKey::from_affine(*key.as_affine())
            .ok()?
            .to_public_key_der(),
        KeyMaterial::P384(key) => p384::PublicKey::from_affine(*key.as_affine())
            .ok()?
            .to_public_key_der(),
        KeyMaterial::P521(key) => p521::PublicKey::from_affine(*key.as_affine())
            .ok()?
            .to_public_key_der(),
        _ => return None,
    };
    document.ok().map(|der| der.into_vec())
}

/// A P-256/384/521 public key from its JWK coordinates (RFC 7518 §6.2.1: each exactly
/// the field size, big-endian).
fn ec_material(curve: &str, x: &[u8], y: &[u8]) -> Result<KeyMaterial, &'static str> {
    let size = match curve {
        "P-256" => 32,
        "P-384" => 48,
        "P-521" => 66,
        _ => return Err("unsupported curve"),
    };
    if x.len() != size || y.len() != size {
        return Err("`x` and `y` must each be as long as the curve's field elements");
    }
    let mut point = Vec::with_capacity(size.saturating_mul(2).saturating_add(1));
    point.push(0x04);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    ec_point_material(curve, &point)
}

/// A P-256/384/521 public key from a SEC1 point (`0x04 ‖ x ‖ y`), refused when not on
/// the curve.
pub(crate) fn ec_point_material(curve: &str, point: &[u8]) -> Result<KeyMaterial, &'static str> {
    const NOT_ON_CURVE: &str = "the point is not a valid public key on its curve";
    match curve {
        "P-256" => P256VerifyingKey::from_sec1_bytes(point)
            .map(KeyMaterial::P256)
            .map_err(|_| NOT_ON_CURVE),
        "P-384" => p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .map(KeyMaterial::P384)
            .map_err(|_| NOT_ON_CURVE),
        "P-521" => p521::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .map(KeyMaterial::P521)
            .map_err(|_| NOT_ON_CURVE),
        _ => Err("unsupported curve"),
    }
}

/// An HMAC secret becomes one key per algorithm it may verify: the one its `alg` names,
/// or without `alg` each of HS256/384/512 the secret is long enough for (RFC 7518 §3.2).
fn hmac_keys(
    kid: Option<String>,
    kid_label: String,
    secret: &[u8],
    algorithms: &'static [Algorithm],
) -> Result<Vec<VerificationKey>, KeySkipped> {
    let usable: Vec<Algorithm> = algorithms
        .iter()
        .copied()
        .filter(|alg| secret.len() >= alg.min_hmac_key_bytes())
        .collect();
    let Some(_) = usable.first() else {
        let weakest = algorithms.first().copied().unwrap_or(Algorithm::Hs256);
        return Err(KeySkipped::HmacTooShort {
            kid: kid_label,
            len: secret.len(),
            min: weakest.min_hmac_key_bytes(),
            alg: weakest.name(),
        });
    };
    Ok(usable
        .into_iter()
        .filter_map(|alg| {
            let material = match alg {
                Algorithm::Hs256 => KeyMaterial::Hs256(Hs256Key::new(secret)),
                Algorithm::Hs384 => KeyMaterial::Hs384(Hs384Key::new(secret)),
                Algorithm::Hs512 => KeyMaterial::Hs512(Hs512Key::new(secret)),
                _ => return None,
            };
            Some(VerificationKey {
                kid: kid.clone(),
                algorithms: alg.as_slice(),
                public_key_der: None,
                material,
            })
        })
        .collect())
}

/// The algorithms a key type may verify, from its `kty` and `crv`. `None` when meshgate
/// does not support the key type or curve.
fn key_family(kty: &str, crv: Option<&str>) -> Option<&'static [Algorithm]> {
    use Algorithm::*;
    Some(match (kty, crv) {
        ("RSA", None) => RSA_FAMILY,
        ("EC", Some("P-256")) => &[Es256],
        ("EC", Some("P-384")) => &[Es384],
        ("EC", Some("P-521")) => &[Es512],
        ("OKP", Some("Ed25519")) => &[EdDsa],
        ("oct", None) => &[Hs256, Hs384, Hs512],
        _ => return None,
    })
}

/// Every algorithm an RSA key may verify when nothing pins it further.
pub(crate) const RSA_FAMILY: &[Algorithm] = &[
    Algorithm::Rs256,
    Algorithm::Rs384,
    Algorithm::Rs512,
    Algorithm::Ps256,
    Algorithm::Ps384,
    Algorithm::Ps512,
];

/// The algorithms a key is pinned to: its `alg` when it has one (which must belong to its
/// family), else its whole family. `None` for an `alg` that doesn't fit.
fn pin(
    family: &'static [Algorithm],
    symmetric: bool,
    alg: Option<&str>,
) -> Option<&'static [Algorithm]> {
    match alg {
        None => Some(family),
        Some(name) => {
            let alg = Algorithm::from_name(name)?;
            let fits = family.contains(&alg) && alg.is_hmac() == symmetric;
            fits.then_some(alg.as_slice())
        }
    }
}

mod x509;

#[cfg(test)]
mod tests;
