//! Key sets: parse a JWKS document (RFC 7517), or the X.509 form some IdPs publish
//! (`{"<kid>": "-----BEGIN CERTIFICATE-----…"}`, see [`x509`]), into verification keys,
//! each pinned to the algorithms it may verify. The token's `alg` header only selects
//! among those.

use std::sync::Arc;

use jwt_compact::alg::{Hs256Key, Hs384Key, Hs512Key};
use jwt_compact::jwk::JsonWebKey;
use serde::Deserialize;

use crate::token::alg::Algorithm;
use crate::token::der::{ec_public_key_der, rsa_public_key_der, Curve};
use crate::token::json::UniqueKeys;

/// RSA keys below this size are refused (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;
/// RSA keys above this size are refused (the `rsa` crate's limit, kept in every build).
pub const MAX_RSA_BITS: usize = 4096;
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
    Rsa(Arc<RsaKey>),
    P256(P256Key),
    P384(P384Key),
    P521(P521Key),
    Ed25519(Ed25519PublicKey),
    Hs256(Hs256Key),
    Hs384(Hs384Key),
    Hs512(Hs512Key),
}

/// An RSA public key: its modulus length (a PKCS#1 signature is exactly that long) and,
/// with the `portable-crypto` feature, the key Rust verifies with. Its DER form, which
/// Envoy verifies with, is [`VerificationKey::public_key_der`].
#[derive(Clone)]
pub struct RsaKey {
    /// Bytes of the modulus, without leading zeros.
    pub modulus_bytes: usize,
    #[cfg(feature = "portable-crypto")]
    pub rust: jwt_compact::alg::RsaPublicKey,
}

// jwt-compact exposes these key types through its algorithms; naming them this way keeps
// the exact versions jwt-compact was built with.
type Ed25519PublicKey = <jwt_compact::alg::Ed25519 as jwt_compact::Algorithm>::VerifyingKey;
#[cfg(feature = "portable-crypto")]
pub type P256Key = <jwt_compact::alg::Es256 as jwt_compact::Algorithm>::VerifyingKey;
#[cfg(feature = "portable-crypto")]
pub type P384Key = p384::ecdsa::VerifyingKey;
#[cfg(feature = "portable-crypto")]
pub type P521Key = p521::ecdsa::VerifyingKey;

/// Without the `portable-crypto` feature an EC key is only its DER form
/// ([`VerificationKey::public_key_der`]), verified by the host. Whether the point is on
/// its curve is then the host's check too: BoringSSL refuses such a key when it parses it.
#[cfg(not(feature = "portable-crypto"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostOnly;
#[cfg(not(feature = "portable-crypto"))]
pub type P256Key = HostOnly;
#[cfg(not(feature = "portable-crypto"))]
pub type P384Key = HostOnly;
#[cfg(not(feature = "portable-crypto"))]
pub type P521Key = HostOnly;

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
    let (material, der) = match &jwk {
        JsonWebKey::Rsa {
            modulus,
            public_exponent,
            ..
        } => rsa_material(modulus, public_exponent)
            .map(|(material, der)| (material, Some(der)))
            .map_err(|e| unparseable(e.to_string()))?,
        JsonWebKey::EllipticCurve { curve, x, y, .. } => ec_material(curve, x, y)
            .map(|(material, der)| (material, Some(der)))
            .map_err(|detail| unparseable(detail.to_owned()))?,
        JsonWebKey::KeyPair { .. } => (
            KeyMaterial::Ed25519(
                Ed25519PublicKey::try_from(&jwk).map_err(|e| unparseable(e.to_string()))?,
            ),
            None,
        ),
        JsonWebKey::Symmetric { secret } => {
            return hmac_keys(meta.kid, kid_label, secret, algorithms);
        }
        _ => return Err(mismatch()),
    };
    verification_key(meta.kid, kid_label, algorithms, material, der).map(|key| vec![key])
}

/// A key from its decoded material and DER form, with the checks every key form shares:
/// RSA moduli of at least [`MIN_RSA_BITS`].
pub(crate) fn verification_key(
    kid: Option<String>,
    kid_label: String,
    algorithms: &'static [Algorithm],
    material: KeyMaterial,
    public_key_der: Option<Vec<u8>>,
) -> Result<VerificationKey, KeySkipped> {
    if let KeyMaterial::Rsa(key) = &material {
        let bits = key.modulus_bytes.saturating_mul(8);
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
        public_key_der,
        material,
    })
}

/// Why an RSA public key is refused: the checks of the `rsa` crate's `RsaPublicKey::new`
/// (same order, same words), done on the bytes so that every build refuses the same keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RsaKeyError {
    #[error("modulus too large")]
    ModulusTooLarge,
    #[error("public exponent too large")]
    ExponentTooLarge,
    #[error("invalid modulus")]
    InvalidModulus,
    #[error("invalid exponent")]
    InvalidExponent,
    #[error("public exponent too small")]
    ExponentTooSmall,
}

/// Big-endian bytes without their leading zeros.
fn significant(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

/// An RSA public key from its modulus and exponent (unsigned big-endian, as in a JWK or
/// PKCS#1), and its DER `SubjectPublicKeyInfo`.
pub(crate) fn rsa_material(
    modulus: &[u8],
    exponent: &[u8],
) -> Result<(KeyMaterial, Vec<u8>), RsaKeyError> {
    let n = significant(modulus);
    let e = significant(exponent);
    let top_bits = n.first().map_or(0, |&b| 8 - b.leading_zeros());
    let bits = n
        .len()
        .saturating_sub(1)
        .saturating_mul(8)
        .saturating_add(usize::try_from(top_bits).unwrap_or(0));
    if bits > MAX_RSA_BITS {
        return Err(RsaKeyError::ModulusTooLarge);
    }
    if e.len() > 8 {
        return Err(RsaKeyError::ExponentTooLarge);
    }
    let e_value = e.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    // Equal-length big-endian numbers compare byte-wise.
    let e_at_least_n = e.len() > n.len() || (e.len() == n.len() && e >= n);
    let odd = |x: &[u8]| x.last().is_some_and(|b| b & 1 == 1);
    if e_at_least_n || !odd(n) {
        return Err(RsaKeyError::InvalidModulus);
    }
    if !odd(e) {
        return Err(RsaKeyError::InvalidExponent);
    }
    if e_value < 2 {
        return Err(RsaKeyError::ExponentTooSmall);
    }
    if e_value > (1 << 33) - 1 {
        return Err(RsaKeyError::ExponentTooLarge);
    }
    let key = RsaKey {
        modulus_bytes: n.len(),
        #[cfg(feature = "portable-crypto")]
        rust: jwt_compact::alg::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(n),
            rsa::BigUint::from_bytes_be(e),
        )
        .map_err(|_| RsaKeyError::InvalidModulus)?,
    };
    Ok((KeyMaterial::Rsa(Arc::new(key)), rsa_public_key_der(n, e)))
}

/// A P-256/384/521 public key from its JWK coordinates (RFC 7518 §6.2.1: each exactly
/// the field size, big-endian).
fn ec_material(curve: &str, x: &[u8], y: &[u8]) -> Result<(KeyMaterial, Vec<u8>), &'static str> {
    let size = Curve::from_jwk_name(curve)
        .ok_or("unsupported curve")?
        .size();
    if x.len() != size || y.len() != size {
        return Err("`x` and `y` must each be as long as the curve's field elements");
    }
    let mut point = Vec::with_capacity(size.saturating_mul(2).saturating_add(1));
    point.push(0x04);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    ec_point_material(curve, &point)
}

/// A P-256/384/521 public key from a SEC1 point, and its DER `SubjectPublicKeyInfo`
/// (which always carries the uncompressed point). With `portable-crypto` a point not on
/// the curve is refused here and a compressed one is accepted; without, only the
/// uncompressed form (`0x04 ‖ x ‖ y`) is accepted and the host checks the point.
pub(crate) fn ec_point_material(
    curve: &str,
    point: &[u8],
) -> Result<(KeyMaterial, Vec<u8>), &'static str> {
    let curve = Curve::from_jwk_name(curve).ok_or("unsupported curve")?;
    ec_key(curve, point)
}

#[cfg(feature = "portable-crypto")]
fn ec_key(curve: Curve, point: &[u8]) -> Result<(KeyMaterial, Vec<u8>), &'static str> {
    const NOT_ON_CURVE: &str = "the point is not a valid public key on its curve";
    let (material, uncompressed) = match curve {
        Curve::P256 => P256Key::from_sec1_bytes(point).map(|k| {
            (
                k.to_encoded_point(false).as_bytes().to_vec(),
                KeyMaterial::P256(k),
            )
        }),
        Curve::P384 => P384Key::from_sec1_bytes(point).map(|k| {
            (
                k.to_encoded_point(false).as_bytes().to_vec(),
                KeyMaterial::P384(k),
            )
        }),
        Curve::P521 => P521Key::from_sec1_bytes(point).map(|k| {
            (
                k.to_encoded_point(false).as_bytes().to_vec(),
                KeyMaterial::P521(k),
            )
        }),
    }
    .map(|(point, material)| (material, point))
    .map_err(|_| NOT_ON_CURVE)?;
    Ok((material, ec_public_key_der(curve, &uncompressed)))
}

#[cfg(not(feature = "portable-crypto"))]
fn ec_key(curve: Curve, point: &[u8]) -> Result<(KeyMaterial, Vec<u8>), &'static str> {
    let uncompressed = point.first() == Some(&0x04)
        && point.len() == curve.size().saturating_mul(2).saturating_add(1);
    if !uncompressed {
        return Err("the point is not in uncompressed form (0x04, x, y)");
    }
    let material = match curve {
        Curve::P256 => KeyMaterial::P256(HostOnly),
        Curve::P384 => KeyMaterial::P384(HostOnly),
        Curve::P521 => KeyMaterial::P521(HostOnly),
    };
    Ok((material, ec_public_key_der(curve, point)))
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
#[cfg(feature = "portable-crypto")]
pub(crate) const RSA_FAMILY: &[Algorithm] = &[
    Algorithm::Rs256,
    Algorithm::Rs384,
    Algorithm::Rs512,
    Algorithm::Ps256,
    Algorithm::Ps384,
    Algorithm::Ps512,
];
/// Without `portable-crypto`, RSA keys verify only what Envoy's `verify_signature` does
/// (PKCS#1 v1.5): an RSA JWK pinned to PS256/384/512 is skipped as not supported, and a
/// PS* token finds no key for its algorithm.
#[cfg(not(feature = "portable-crypto"))]
pub(crate) const RSA_FAMILY: &[Algorithm] = &[Algorithm::Rs256, Algorithm::Rs384, Algorithm::Rs512];

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
