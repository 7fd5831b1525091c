//! The key set: generation, rotation, retirement, the public JWKS, and the key file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_compact::alg::{Ed25519, Es256, ModulusBits, Rsa};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::Algorithm;
use rand::rngs::OsRng;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::alg::KeyFamily;
use super::err::KeySetError;

/// Kid of the RSA key that signs correctly but is never published, so that tokens signed with
/// it exercise the "unknown kid" path of a verifier.
pub const UNPUBLISHED_RS256_KID: &str = "rs256-unpublished";

/// The P-256 signing key type, named through jwt-compact so the crate needs no direct `p256`
/// dependency that could drift from the version jwt-compact signs with.
pub(super) type P256SigningKey = <Es256 as Algorithm>::SigningKey;
pub(super) type Ed25519SigningKey = <Ed25519 as Algorithm>::SigningKey;

/// One signing key of the issuer, with its private parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerKey {
    pub kid: String,
    /// The algorithm the key is published for (`RS256`, `ES256`, `EdDSA`, ...).
    pub alg: String,
    /// Listed in the public JWKS.
    pub published: bool,
    /// Chosen for minting tokens of its algorithm.
    pub active: bool,
    pub private_jwk: JsonWebKey<'static>,
}

impl IssuerKey {
    fn family(&self) -> Option<KeyFamily> {
        KeyFamily::of(&self.alg)
    }

    /// The public half of the key as a JWKS entry with `kid`, `alg` and `use`.
    fn public_entry(&self) -> Option<Value> {
        let b64 = |bytes: &[u8]| Value::String(URL_SAFE_NO_PAD.encode(bytes));
        let mut entry = Map::new();
        match &self.private_jwk {
            JsonWebKey::Rsa {
                modulus,
                public_exponent,
                ..
            } => {
                entry.insert("kty".into(), "RSA".into());
                entry.insert("n".into(), b64(modulus));
                entry.insert("e".into(), b64(public_exponent));
            }
            JsonWebKey::EllipticCurve { curve, x, y, .. } => {
                entry.insert("kty".into(), "EC".into());
                entry.insert("crv".into(), curve.as_ref().into());
                entry.insert("x".into(), b64(x));
                entry.insert("y".into(), b64(y));
            }
            JsonWebKey::KeyPair { curve, x, .. } => {
                entry.insert("kty".into(), "OKP".into());
                entry.insert("crv".into(), curve.as_ref().into());
                entry.insert("x".into(), b64(x));
            }
            // Symmetric keys are never stored here, and a JWKS must not carry them anyway.
            _ => return None,
        }
        entry.insert("kid".into(), self.kid.clone().into());
        entry.insert("alg".into(), self.alg.clone().into());
        entry.insert("use".into(), "sig".into());
        Some(Value::Object(entry))
    }
}

/// The issuer URL and its keys, as stored in the key file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySet {
    issuer: String,
    keys: Vec<IssuerKey>,
}

impl KeySet {
    /// A fresh key set: one active, published key for each of RS256, ES256 and EdDSA, plus the
    /// unpublished RS256 key [`UNPUBLISHED_RS256_KID`].
    pub fn generate(issuer: &str) -> Result<KeySet, KeySetError> {
        Self::generate_with_rng(issuer, &mut OsRng)
    }

    pub fn generate_with_rng<R: CryptoRng + RngCore>(
        issuer: &str,
        rng: &mut R,
    ) -> Result<KeySet, KeySetError> {
        let plan = [
            ("rs256-1", "RS256", true),
            ("es256-1", "ES256", true),
            ("eddsa-1", "EdDSA", true),
            (UNPUBLISHED_RS256_KID, "RS256", false),
        ];
        let mut keys = Vec::with_capacity(plan.len());
        for (kid, alg, published) in plan {
            keys.push(IssuerKey {
                kid: kid.to_owned(),
                alg: alg.to_owned(),
                published,
                // The unpublished key is inactive so that it is used only when asked for.
                active: published,
                private_jwk: generate_jwk(alg, rng)?,
            });
        }
        Ok(KeySet {
            issuer: issuer.to_owned(),
            keys,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn set_issuer(&mut self, issuer: impl Into<String>) {
        self.issuer = issuer.into();
    }

    pub fn keys(&self) -> &[IssuerKey] {
        &self.keys
    }

    pub fn key(&self, kid: &str) -> Option<&IssuerKey> {
        self.keys.iter().find(|key| key.kid == kid)
    }

    /// The public JWK of any key, published or not, for checking signatures in tests.
    pub fn verifying_jwk(&self, kid: &str) -> Option<JsonWebKey<'static>> {
        self.key(kid).map(|key| key.private_jwk.to_verifying_key())
    }

    /// `{"keys": [...]}` with the public halves of the published keys, in key-file order.
    pub fn public_jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter(|key| key.published)
            .filter_map(IssuerKey::public_entry)
            .collect();
        json!({ "keys": keys })
    }

    /// Adds a new published, active key for `alg` and returns its kid. The previously active key
    /// of that algorithm stays published, so tokens it signed still verify during the overlap.
    pub fn rotate(&mut self, alg: &str) -> Result<String, KeySetError> {
        self.rotate_with_rng(alg, &mut OsRng)
    }

    pub fn rotate_with_rng<R: CryptoRng + RngCore>(
        &mut self,
        alg: &str,
        rng: &mut R,
    ) -> Result<String, KeySetError> {
        let private_jwk = generate_jwk(alg, rng)?;
        let kid = self.next_kid(alg);
        for key in self.keys.iter_mut().filter(|key| key.alg == alg) {
            key.active = false;
        }
        self.keys.push(IssuerKey {
            kid: kid.clone(),
            alg: alg.to_owned(),
            published: true,
            active: true,
            private_jwk,
        });
        Ok(kid)
    }

    /// Takes a key out of the JWKS and out of use. Tokens it signed stop verifying once
    /// verifiers refetch the JWKS.
    pub fn retire(&mut self, kid: &str) -> Result<(), KeySetError> {
        let key = self
            .keys
            .iter_mut()
            .find(|key| key.kid == kid)
            .ok_or_else(|| KeySetError::UnknownKid {
                kid: kid.to_owned(),
            })?;
        key.published = false;
        key.active = false;
        Ok(())
    }

    /// The key that signs `alg`: an active, published key made for exactly `alg`, else one of
    /// the same family (so RS384 or PS256 tokens use the RS256 key, as with most providers).
    /// With `unpublished`, the newest unpublished key of the family instead.
    pub(super) fn signing_key(&self, alg: &str, unpublished: bool) -> Option<&IssuerKey> {
        let family = KeyFamily::of(alg)?;
        let in_family = |key: &&IssuerKey| key.family() == Some(family);
        if unpublished {
            return self
                .keys
                .iter()
                .filter(in_family)
                .rfind(|key| !key.published);
        }
        let usable = |key: &&IssuerKey| key.active && key.published;
        self.keys
            .iter()
            .filter(usable)
            .find(|key| key.alg == alg)
            .or_else(|| self.keys.iter().filter(usable).find(in_family))
    }

    /// `rs256-<n>` with `n` one past the highest number in use, so retired kids are not reused.
    fn next_kid(&self, alg: &str) -> String {
        let prefix = format!("{}-", alg.to_ascii_lowercase());
        let highest = self
            .keys
            .iter()
            .filter_map(|key| key.kid.strip_prefix(&prefix))
            .filter_map(|n| n.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        format!("{prefix}{}", highest.saturating_add(1))
    }

    pub fn load(path: impl AsRef<Path>) -> Result<KeySet, KeySetError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| KeySetError::Read {
            path: path.to_owned(),
            source,
        })?;
        let set: KeySet = serde_json::from_str(&text).map_err(|source| KeySetError::Parse {
            path: path.to_owned(),
            source,
        })?;
        if let Some(key) = set.keys.iter().find(|key| key.family().is_none()) {
            return Err(KeySetError::StoredAlg {
                path: path.to_owned(),
                kid: key.kid.clone(),
                alg: key.alg.clone(),
            });
        }
        Ok(set)
    }

    /// Writes the key file through a temporary file and a rename, so a CLI reading it while
    /// the issuer server rotates never sees half a file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), KeySetError> {
        let path = path.as_ref();
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| KeySetError::Encode { source })?;
        text.push('\n');
        let write_err = |source| KeySetError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let tmp = temp_path(path);
        let written =
            write_private_file(&tmp, text.as_bytes()).and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            // Best effort: the error that matters is the one being returned.
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(write_err)
    }

    /// Loads the key file, or generates a key set for `issuer` and saves it when there is none.
    pub fn load_or_generate(path: impl AsRef<Path>, issuer: &str) -> Result<KeySet, KeySetError> {
        let path = path.as_ref();
        if path.exists() {
            return Self::load(path);
        }
        let set = Self::generate(issuer)?;
        set.save(path)?;
        Ok(set)
    }
}

fn generate_jwk<R: CryptoRng + RngCore>(
    alg: &str,
    rng: &mut R,
) -> Result<JsonWebKey<'static>, KeySetError> {
    let family = KeyFamily::of(alg).ok_or_else(|| KeySetError::UnsupportedAlg {
        alg: alg.to_owned(),
    })?;
    // The conversions below borrow the generated key; a JSON round trip gives an owned JWK.
    let borrowed = match family {
        KeyFamily::Rsa => {
            let (private, _) = Rsa::generate(rng, ModulusBits::TwoKibibytes).map_err(|err| {
                KeySetError::GenerateRsa {
                    detail: err.to_string(),
                }
            })?;
            serde_json::to_value(JsonWebKey::from(private.as_ref()))
        }
        KeyFamily::P256 => {
            let private = P256SigningKey::random(rng);
            serde_json::to_value(JsonWebKey::from(&private))
        }
        KeyFamily::Ed25519 => {
            let (private, _) = Ed25519::generate(rng);
            serde_json::to_value(JsonWebKey::from(&private))
        }
    };
    borrowed
        .and_then(serde_json::from_value)
        .map_err(|source| KeySetError::ConvertKey {
            alg: alg.to_owned(),
            source,
        })
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// The file holds private keys: readable by the owner only.
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::test_keys::shared_keyset;

    fn published_kids(set: &KeySet) -> Vec<String> {
        set.public_jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn generated_set_publishes_one_key_per_family() {
        let set = shared_keyset();
        assert_eq!(published_kids(&set), ["rs256-1", "es256-1", "eddsa-1"]);
        let unpublished = set.key(UNPUBLISHED_RS256_KID).unwrap();
        assert!(!unpublished.published && !unpublished.active);
    }

    #[test]
    fn public_jwks_has_only_public_parts() {
        let jwks = shared_keyset().public_jwks();
        let keys = jwks["keys"].as_array().unwrap();
        let rsa = &keys[0];
        assert_eq!(rsa["kty"], "RSA");
        assert_eq!(rsa["alg"], "RS256");
        assert_eq!(rsa["use"], "sig");
        assert!(rsa["n"].is_string() && rsa["e"] == "AQAB");
        let ec = &keys[1];
        assert_eq!((&ec["kty"], &ec["crv"]), (&json!("EC"), &json!("P-256")));
        assert!(ec["x"].is_string() && ec["y"].is_string());
        let okp = &keys[2];
        assert_eq!(
            (&okp["kty"], &okp["crv"]),
            (&json!("OKP"), &json!("Ed25519"))
        );
        assert!(okp["x"].is_string());
        for key in keys {
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(key.get(private).is_none(), "{private} leaked in {key}");
            }
        }
    }

    #[test]
    fn rotation_keeps_the_previous_key_published_but_inactive() {
        let mut set = shared_keyset();
        let kid = set.rotate("ES256").unwrap();
        assert_eq!(kid, "es256-2");
        assert_eq!(
            published_kids(&set),
            ["rs256-1", "es256-1", "eddsa-1", "es256-2"]
        );
        assert!(!set.key("es256-1").unwrap().active);
        assert_eq!(set.signing_key("ES256", false).unwrap().kid, "es256-2");
        assert_eq!(set.rotate("ES256").unwrap(), "es256-3");
    }

    #[test]
    fn retired_key_leaves_the_jwks_and_its_number_is_not_reused() {
        let mut set = shared_keyset();
        set.rotate("EdDSA").unwrap();
        set.retire("eddsa-2").unwrap();
        assert_eq!(published_kids(&set), ["rs256-1", "es256-1", "eddsa-1"]);
        assert!(set.signing_key("EdDSA", false).is_none());
        assert_eq!(set.rotate("EdDSA").unwrap(), "eddsa-3");
        assert!(matches!(
            set.retire("nope"),
            Err(KeySetError::UnknownKid { .. })
        ));
    }

    #[test]
    fn rsa_algorithms_share_the_rs256_key_unless_they_have_their_own() {
        let set = shared_keyset();
        for alg in ["RS256", "RS512", "PS384"] {
            assert_eq!(set.signing_key(alg, false).unwrap().kid, "rs256-1");
        }
        assert_eq!(
            set.signing_key("RS256", true).unwrap().kid,
            UNPUBLISHED_RS256_KID
        );
        assert!(set.signing_key("ES256", true).is_none());
        assert!(set.signing_key("HS256", false).is_none());
    }

    #[test]
    fn rotating_an_unknown_alg_fails() {
        let mut set = shared_keyset();
        assert!(matches!(
            set.rotate("HS256"),
            Err(KeySetError::UnsupportedAlg { .. })
        ));
        assert_eq!(set, shared_keyset());
    }

    #[test]
    fn key_file_round_trips() {
        let dir = crate::issuer::test_keys::temp_dir("round-trip");
        let path = dir.join("nested/issuer-keys.json");
        let set = shared_keyset();
        set.save(&path).unwrap();
        assert_eq!(KeySet::load(&path).unwrap(), set);
        assert_eq!(
            KeySet::load_or_generate(&path, "http://ignored").unwrap(),
            set
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["issuer-keys.json"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn load_reports_the_path_of_a_bad_file() {
        let dir = crate::issuer::test_keys::temp_dir("bad-file");
        let path = dir.join("keys.json");
        std::fs::write(&path, "{\"issuer\": 1}").unwrap();
        let err = KeySet::load(&path).unwrap_err();
        assert!(matches!(err, KeySetError::Parse { .. }));
        assert!(err.to_string().contains("keys.json"), "{err}");
        let missing = KeySet::load(dir.join("absent.json")).unwrap_err();
        assert!(matches!(missing, KeySetError::Read { .. }));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
