//! Snapshot signing on the control plane: the signing key file, the public key line that goes
//! into the filter configuration, and [`build`], which encodes and signs what the catalog sync
//! computed (with `meshgate-core`'s encoder, so the filter reads exactly what is written).
//!
//! The key file is JSON, written with mode 0600:
//! `{"kid": "…", "private_key": "<base64url of the 64-byte Ed25519 secret: seed ‖ public key>"}`.
//! The public key line is `{"kid": "…", "public_key": "<base64url of 32 bytes>"}`.

use std::path::{Path, PathBuf};

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

pub use meshgate_core::snapshot::{
    EncodeError, IndexedInput, KeyError, OwnedInput, PublicKeySpec, SigningKey, SnapshotInput,
    TrustedKey, UserInput,
};

/// Encodes and signs a snapshot. The same input (in any order), version, time and key give
/// the same bytes on every replica.
pub fn build(
    input: &IndexedInput,
    version: u64,
    generated_at: i64,
    signing_key: &SigningKey,
) -> Result<Vec<u8>, EncodeError> {
    meshgate_core::snapshot::encode_indexed(input, version, generated_at, signing_key)
}

/// A signing key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read signing key file `{}`", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signing key file `{}` is not JSON of the form {{\"kid\": …, \"private_key\": …}}", .path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("signing key file `{}` holds an unusable key", .path.display())]
    Key { path: PathBuf, source: KeyError },
    #[error("signing key file `{}` already exists; a signing key is never replaced", .path.display())]
    Exists { path: PathBuf },
    #[error("cannot write signing key file `{}`", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    kid: String,
    private_key: String,
}

/// A new signing key from `rng`. Without a `kid`, the key id is `snapshot-` and the first
/// eight characters of the public key, so that keys made on different days differ.
pub fn generate_signing_key<R: RngCore + CryptoRng>(
    kid: Option<&str>,
    rng: &mut R,
) -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let key = SigningKey::from_seed(kid.unwrap_or("snapshot"), seed)?;
    match kid {
        Some(_) => Ok(key),
        None => {
            let public = key.trusted_key().to_spec().public_key;
            let short: String = public.chars().take(8).collect();
            SigningKey::from_seed(&format!("snapshot-{short}"), seed)
        }
    }
}

/// Reads a key file written by [`write_new_signing_key`] (or by hand in the same format).
pub fn load_signing_key(path: impl AsRef<Path>) -> Result<SigningKey, KeyFileError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file: KeyFile = serde_json::from_str(&text).map_err(|source| KeyFileError::Parse {
        path: path.to_owned(),
        source,
    })?;
    SigningKey::from_base64url(&file.kid, &file.private_key).map_err(|source| KeyFileError::Key {
        path: path.to_owned(),
        source,
    })
}

/// Writes a key file readable only by its owner, creating parent directories. An existing
/// file is never replaced: snapshots already published and filters already configured depend
/// on the key in it.
pub fn write_new_signing_key(key: &SigningKey, path: impl AsRef<Path>) -> Result<(), KeyFileError> {
    use std::io::Write as _;

    let path = path.as_ref();
    let write_err = |source| KeyFileError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let mut text = serde_json::to_string_pretty(&KeyFile {
        kid: key.kid().to_owned(),
        private_key: key.private_key_base64url(),
    })
    .map_err(|source| write_err(std::io::Error::other(source)))?;
    text.push('\n');
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists {
                path: path.to_owned(),
            }
        } else {
            write_err(source)
        }
    })?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(source) = written {
        // Best effort: a half-written key file is worse than none.
        let _ = std::fs::remove_file(path);
        return Err(write_err(source));
    }
    Ok(())
}

/// The public key as one line of JSON, `{"kid":"…","public_key":"…"}`: what the filter
/// configuration lists as a trusted snapshot key.
pub fn public_key_line(key: &SigningKey) -> String {
    let spec = key.trusted_key().to_spec();
    serde_json::json!({"kid": spec.kid, "public_key": spec.public_key}).to_string()
}

#[cfg(test)]
mod tests {
    use meshgate_core::snapshot::{DecodeLimits, Snapshot};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::issuer::test_keys::temp_dir;

    fn input() -> SnapshotInput {
        SnapshotInput {
            users: vec![UserInput {
                entity_ref: "user:default/alice".into(),
                email: Some("alice@example.com".into()),
                groups: vec!["group:default/data-eng".into()],
            }],
            owned: vec![OwnedInput {
                kind: "airflow.dag".into(),
                id: "etl_daily".into(),
                owners: vec!["group:default/data-eng".into()],
            }],
            ..SnapshotInput::default()
        }
    }

    #[test]
    fn built_snapshots_verify_with_the_printed_public_key() {
        let key = generate_signing_key(Some("cp-test"), &mut StdRng::seed_from_u64(1)).unwrap();
        let bytes = build(&input().interned(), 3, 1_700_000_000, &key).unwrap();
        let spec: PublicKeySpec = serde_json::from_str(&public_key_line(&key)).unwrap();
        let trusted = TrustedKey::from_spec(&spec).unwrap();
        let snap = Snapshot::decode(&bytes, &[trusted], &DecodeLimits::default()).unwrap();
        assert_eq!((snap.version(), snap.key_id()), (3, "cp-test"));
        let alice = snap.user_by_email("alice@example.com").unwrap();
        let owners = snap.owners_of("airflow.dag", "etl_daily").unwrap();
        assert!(alice.groups.intersects(&owners));
        // Replicas with the same key and input publish the same bytes.
        assert_eq!(
            build(&input().interned(), 3, 1_700_000_000, &key).unwrap(),
            bytes
        );
    }

    #[test]
    fn key_files_round_trip_and_are_private() {
        let dir = temp_dir("snapshot-key");
        let path = dir.join("keys/signing.json");
        let key = generate_signing_key(None, &mut StdRng::seed_from_u64(2)).unwrap();
        assert!(
            key.kid().starts_with("snapshot-") && key.kid().len() == 17,
            "{key:?}"
        );
        write_new_signing_key(&key, &path).unwrap();
        let loaded = load_signing_key(&path).unwrap();
        assert_eq!(loaded.kid(), key.kid());
        assert_eq!(public_key_line(&loaded), public_key_line(&key));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let before = std::fs::read(&path).unwrap();
        let other = generate_signing_key(None, &mut StdRng::seed_from_u64(3)).unwrap();
        let err = write_new_signing_key(&other, &path).unwrap_err();
        assert!(matches!(err, KeyFileError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_key_files_name_the_file() {
        let dir = temp_dir("snapshot-bad-key");
        let cases = [
            ("missing.json", None, "cannot read"),
            ("text.json", Some("not json"), "is not JSON"),
            (
                "extra.json",
                Some(r#"{"kid": "k", "private_key": "", "public_key": ""}"#),
                "is not JSON",
            ),
            (
                "short.json",
                Some(r#"{"kid": "k", "private_key": "AAAA"}"#),
                "unusable key",
            ),
            (
                "kid.json",
                Some(r#"{"kid": "bad kid", "private_key": "AAAA"}"#),
                "unusable key",
            ),
        ];
        for (name, content, expected) in cases {
            let path = dir.join(name);
            if let Some(content) = content {
                std::fs::write(&path, content).unwrap();
            }
            let err = load_signing_key(&path).unwrap_err().to_string();
            assert!(
                err.contains(expected) && err.contains(name),
                "{name}: {err}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn invalid_input_is_an_error_not_a_panic() {
        let key = generate_signing_key(Some("k"), &mut StdRng::seed_from_u64(4)).unwrap();
        let mut twice = input();
        twice.users.extend(input().users);
        assert!(matches!(
            build(&twice.interned(), 1, 0, &key),
            Err(EncodeError::DuplicateUser { .. })
        ));
    }
}
