//! Errors of the fixtures: a test that gets one should fail with its message.

use std::path::PathBuf;

use jwt_compact::jwk::JwkError;

/// Signing a test token failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("no test key is called `{name}`")]
    UnknownKey { name: String },
    #[error("the test signer has no algorithm `{alg}`")]
    UnknownAlg { alg: String },
    #[error("the key cannot sign `{alg}`")]
    Key {
        alg: String,
        #[source]
        source: JwkError,
    },
    #[error("the key is not a JWK")]
    NotAJwk {
        #[source]
        source: serde_json::Error,
    },
    #[error("the key has no usable private scalar `d` for `{alg}`")]
    Scalar { alg: String },
}

/// A token did not verify (jwt-compact's errors as text: they are not `Error` types).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("not a token: {detail}")]
    Token { detail: String },
    #[error("the key is not a JWK")]
    NotAJwk {
        #[source]
        source: serde_json::Error,
    },
    #[error("the checker has no algorithm `{alg}`")]
    UnknownAlg { alg: String },
    #[error("the key cannot verify `{alg}`: {detail}")]
    Key { alg: String, detail: String },
    #[error("the `{alg}` signature does not verify: {detail}")]
    Signature { alg: String, detail: String },
}

/// Reading or running the decision corpus failed (not a case that disagrees: those are
/// reported as problems of the case).
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a valid corpus file")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no corpus files in `{dir}`")]
    NoCorpusFiles { dir: PathBuf },
    #[error("minting a token: {source}")]
    Sign {
        #[from]
        source: SignError,
    },
    #[error("`tamper` needs a signature of at least 11 characters")]
    TooShortToTamper,
    #[error("request header `{name}` has a value that is not a string")]
    HeaderNotString { name: String },
    #[error("the {target} runner: {source}")]
    Target {
        target: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the {target} runner answered {got} requests of {sent}")]
    Answers {
        target: &'static str,
        sent: usize,
        got: usize,
    },
}
