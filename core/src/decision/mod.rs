//! Stage 4, the answer. Takes the compiled policy, a [`Request`](crate::request::Request),
//! the keys, the token cache, the catalog and the time; gives a [`Verdict`]: allow or deny
//! with a code, the deciding rule, the principal and what the filter should do next.
//!
//! [`authorize::decide`] is the one entry and runs stages 1 to 3; [`evaluate`] walks the
//! rules in order; [`explain`] puts rule outcomes in words; [`headers`] plans the header
//! changes of an allowed request; [`log`] writes the decision log line.

pub mod authorize;
pub mod evaluate;
pub mod explain;
pub mod headers;
pub mod log;
pub mod verdict;

pub use verdict::{
    AllowCode, Decision, DecisionBuilder, DenyCode, Diagnostics, Effect, KeysWanted, MissingKeys,
    ProviderId, ShadowOutcome, Verdict,
};
