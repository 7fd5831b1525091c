//! Demo issuer: a persisted set of signing keys that plays the part of an OIDC provider in the
//! demo and in end-to-end tests, and mints tokens with whatever flaws a test needs.
//!
//! Nothing here reads the clock or the network: the caller passes `now` and decides where the
//! key file lives. Randomness comes from the OS unless a `*_with_rng` variant is used.

mod alg;
mod err;
mod keyset;
mod mint;
#[cfg(test)]
pub(crate) mod test_keys;

pub use alg::{KeyFamily, SIGNING_ALGS};
pub use err::{KeySetError, MintError};
pub use keyset::{IssuerKey, KeySet, UNPUBLISHED_RS256_KID};
pub use mint::MintRequest;
