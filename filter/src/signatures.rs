//! Who verifies token signatures in this VM. Envoy's own BoringSSL, reached through the
//! `verify_signature` foreign function, checks RS256/384/512 and ES256/384/512 several times
//! faster than Rust compiled to Wasm. It is used only if it passes a known-answer
//! self-test when the VM starts (`meshgate_core::token::self_test`); otherwise, and
//! for the other algorithms, Rust verifies. Decided once per VM, logged once.

use std::cell::RefCell;

use meshgate_core::signature::{
    decode_verify_result, encode_verify_arguments, BackendError, SignatureBackend, SignatureCheck,
    SignatureChecks, VERIFY_SIGNATURE,
};
use meshgate_core::token::self_test::self_test;

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
        Err(e) => {
            host.log(
                LogLevel::Info,
                &format!(
                    "meshgate: signatures are verified in Rust: Envoy's `verify_signature` \
                     is not used because {e}"
                ),
            );
            Verifier::Rust
        }
    }
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
