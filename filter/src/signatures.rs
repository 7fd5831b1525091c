//! Who verifies token signatures in this VM. Envoy's own BoringSSL, reached through the
//! `verify_signature` foreign function, checks RS256/384/512 and ES256/384/512 several times
//! faster than Rust compiled to Wasm. It is used only if it passes a known-answer
//! self-test when the VM starts (`meshgate_core::token::self_test`); otherwise, and
//! for the other algorithms, Rust verifies. Decided once per VM, logged once.
//!
//! Rust verifies RS*/PS*/ES* only in the portable artifact (`dist/meshgate-portable.wasm`,
//! the `portable-crypto` feature). The default `dist/meshgate.wasm` verifies EdDSA and HS*
//! in Rust and the rest through Envoy alone: without a working `verify_signature` it
//! refuses a configuration whose providers may need RS*/ES* ([`ready`]).

use std::cell::RefCell;

use meshgate_core::provider::KeySource;
use meshgate_core::signature::{
    decode_verify_result, encode_verify_arguments, BackendError, SignatureBackend, SignatureCheck,
    SignatureChecks, VERIFY_SIGNATURE,
};
use meshgate_core::token::self_test::self_test;
use meshgate_core::Policy;

use crate::host::{Host, LogLevel, Metric};

/// The verifier a VM uses for the algorithms Envoy can do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Verifier {
    /// meshgate's Rust code, for every algorithm.
    #[default]
    Rust,
    /// Envoy's `verify_signature` for RS256/384/512 and ES256/384/512; Rust for the rest.
    Envoy,
}

/// Envoy's `verify_signature` through the host. Remembers the last failed call so the
/// filter can report it.
pub struct EnvoyVerifier<'h, H: Host> {
    host: &'h H,
    failure: RefCell<Option<BackendError>>,
}

impl<'h, H: Host> EnvoyVerifier<'h, H> {
    pub fn new(host: &'h H) -> EnvoyVerifier<'h, H> {
        EnvoyVerifier {
            host,
            failure: RefCell::new(None),
        }
    }

    /// The last call that failed, if any.
    pub fn take_failure(&self) -> Option<BackendError> {
        self.failure.borrow_mut().take()
    }

    fn call(&self, check: &SignatureCheck<'_>) -> Result<bool, BackendError> {
        let answer = self
            .host
            .call_foreign_function(VERIFY_SIGNATURE, &encode_verify_arguments(check))
            .map_err(|e| BackendError::Call {
                function: VERIFY_SIGNATURE,
                status: e.status.to_string(),
            })?;
        let result =
            decode_verify_result(answer.as_deref().unwrap_or_default()).map_err(|error| {
                BackendError::Answer {
                    function: VERIFY_SIGNATURE,
                    error,
                }
            })?;
        Ok(result.valid)
    }
}

impl<H: Host> SignatureBackend for EnvoyVerifier<'_, H> {
    fn verify(&self, check: &SignatureCheck<'_>) -> Result<bool, BackendError> {
        let result = self.call(check);
        if let Err(e) = &result {
            *self.failure.borrow_mut() = Some(e.clone());
        }
        result
    }
}

/// Tries Envoy's verifier on known answers and says which verifier this VM will use.
/// Absent (`NotFound`), failing or wrong: Rust, for the VM's lifetime.
pub fn detect<H: Host>(host: &H) -> Verifier {
    match self_test(&EnvoyVerifier::new(host)) {
        Ok(()) => {
            host.log(
                LogLevel::Info,
                "meshgate: RS256/RS384/RS512/ES256/ES384/ES512 signatures are verified by Envoy \
                 (`verify_signature` foreign function); other algorithms in Rust",
            );
            Verifier::Envoy
        }
        Err(e) if PORTABLE => {
            host.log(
                LogLevel::Info,
                &format!(
                    "meshgate: signatures are verified in Rust: Envoy's `verify_signature` \
                     is not used because {e}"
                ),
            );
            Verifier::Rust
        }
        Err(e) => {
            host.log(
                LogLevel::Warn,
                &format!(
                    "meshgate: only EdDSA and HS256/384/512 signatures can be verified: Envoy's \
                     `verify_signature` is not used because {e}, and this build has no Rust \
                     RSA/ECDSA ({PORTABLE_ARTIFACT} has)"
                ),
            );
            Verifier::Rust
        }
    }
}

/// Whether this artifact verifies RS*/PS*/ES* in Rust: what meshgate-core was built with (the
/// filter's `portable-crypto` feature turns it on; so does any other crate of a build that
/// unifies features, such as a workspace test run).
pub const PORTABLE: bool = meshgate_core::token::RUST_RSA_ECDSA;

/// The artifact with the Rust RSA/ECDSA verifiers, named in the line that refuses a
/// configuration the default one cannot verify.
pub const PORTABLE_ARTIFACT: &str = "dist/meshgate-portable.wasm";

/// Providers whose tokens may need RS*/ES* verification: every remote key set (its keys
/// are not known when the configuration is read: Backstage's are ES256, most IdPs' RSA)
/// and local key sets holding an RSA or EC key.
pub fn rsa_or_ec_providers(policy: &Policy) -> Vec<&str> {
    policy
        .providers
        .iter()
        .filter(|provider| match &provider.keys {
            KeySource::Remote(_) => true,
            KeySource::Local(set) => set.keys.iter().any(|key| key.public_key_der.is_some()),
        })
        .map(|provider| provider.name.as_str())
        .collect()
}

/// Whether this VM can verify every provider of `policy`. Only the default artifact with a
/// `verify_signature` that failed its self-test cannot, when some provider may use RS*/ES*
/// keys: then one error line says so and names the portable artifact.
pub fn ready<H: Host>(host: &H, verifier: Verifier, policy: &Policy) -> bool {
    if PORTABLE || verifier == Verifier::Envoy {
        return true;
    }
    let providers = rsa_or_ec_providers(policy);
    if providers.is_empty() {
        return true;
    }
    host.log(
        LogLevel::Error,
        &format!(
            "meshgate: configuration rejected: providers `{}` may use RS*/ES* keys, which this \
             build verifies only through Envoy's `verify_signature`, and that failed its \
             self-test at VM start; use {PORTABLE_ARTIFACT}, which verifies them in Rust",
            providers.join("`, `")
        ),
    );
    false
}

/// Counts one decision's signature checks.
pub fn count<H: Host>(host: &mut H, checks: SignatureChecks) {
    for (metric, n) in [
        (Metric::VerifyForeign, checks.foreign),
        (Metric::VerifyRust, checks.rust),
        (Metric::VerifyForeignFailed, checks.foreign_failed),
    ] {
        for _ in 0..n {
            host.increment(metric.clone());
        }
    }
}

#[cfg(test)]
mod tests;
