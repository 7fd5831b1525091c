//! Test fixtures every meshgate test runner shares, so there is one copy of each:
//!
//! - [`keys`]: the RFC 7515 / 7517 / 7520 / 8037 example keys (RSA, P-256, P-384, P-521,
//!   Ed25519, HMAC) as private JWKs, and their public halves;
//! - [`sign`]: a token signer that signs whatever header and claims a test gives it, and
//!   [`verify`], a signature check for tests of token minters;
//! - [`corpus`]: the decision corpus in `core/tests/cases/` (its case schema, loader and token
//!   minting) and the one runner that feeds it to any [`corpus::Target`]: core, `meshgate
//!   check`, and the filter in a real Envoy each implement it in their own tests.
//!
//! Nothing here depends on a meshgate crate, so core's own unit tests can use it too.

pub mod corpus;
mod err;
pub mod keys;
pub mod sign;
pub mod verify;

use std::time::{SystemTime, UNIX_EPOCH};

pub use err::{CorpusError, SignError, VerifyError};

/// The wall clock in Unix seconds, for runners whose system under test has a real clock
/// (Envoy); 0 if the clock is before 1970.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}
