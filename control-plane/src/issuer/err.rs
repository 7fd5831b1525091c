//! Errors of the demo issuer.

use std::path::PathBuf;

/// Loading, saving or changing a key set failed.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    #[error("cannot read key file `{}`", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file `{}` is not a valid key set", .path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write key file `{}`", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the key set")]
    Encode { source: serde_json::Error },
    #[error("key `{kid}` in key file `{}` has unsupported algorithm `{alg}`", .path.display())]
    StoredAlg {
        path: PathBuf,
        kid: String,
        alg: String,
    },
    #[error("algorithm `{alg}` has no key family; expected one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, EdDSA")]
    UnsupportedAlg { alg: String },
    #[error("no key with kid `{kid}`")]
    UnknownKid { kid: String },
    /// The `rsa` crate's error implements `std::error::Error` only with its `std` feature, which
    /// jwt-compact leaves off, so its message is kept instead.
    #[error("cannot generate an RSA key: {detail}")]
    GenerateRsa { detail: String },
    #[error("cannot convert a generated `{alg}` key to a JWK")]
    ConvertKey {
        alg: String,
        source: serde_json::Error,
    },
}

/// A token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("algorithm `{alg}` is not supported for minting")]
    UnsupportedAlg { alg: String },
    #[error("no active published key signs `{alg}`; rotate one in first")]
    NoActiveKey { alg: String },
    #[error("no unpublished key signs `{alg}`")]
    NoUnpublishedKey { alg: String },
    #[error("algorithm `{alg}` needs a shared secret")]
    MissingHsSecret { alg: String },
    #[error("stored key `{kid}` cannot sign")]
    BadKey {
        kid: String,
        source: jwt_compact::jwk::JwkError,
    },
    #[error("time claims overflow: now `{now}` with offset `{offset}`")]
    TimeOverflow { now: i64, offset: i64 },
    #[error("cannot encode the token")]
    Encode { source: jwt_compact::CreationError },
}
