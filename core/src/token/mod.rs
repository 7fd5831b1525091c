//! Stage 1, the token. Takes the request headers and a provider's key set; gives a token
//! whose signature verified, or why not.
//!
//! [`extract`] finds the token (header, query parameter or cookie); [`jws`] parses it
//! strictly and verifies it against [`jwks`] key sets pinned to [`alg`]orithms, in Rust or
//! through a host's [`signature`] backend, which gets [`der`] forms and must first pass the
//! [`self_test`]. Claims are not read here: that is `identity`.

pub mod alg;
pub mod der;
pub mod extract;
mod json;
pub mod jwks;
pub mod jws;
pub mod self_test;
pub mod signature;

pub use jws::{JoseHeader, TokenError, TokenPart, UnverifiedToken, DEFAULT_MAX_TOKEN_BYTES};

/// Whether this build verifies RS*/PS*/ES* in Rust (the `portable-crypto` feature). Cargo
/// unifies features: a workspace build that includes the control plane has them even when
/// the filter did not ask, so callers read this rather than their own feature.
pub const RUST_RSA_ECDSA: bool = cfg!(feature = "portable-crypto");
