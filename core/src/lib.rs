//! meshgate-core: the decision engine of the meshgate filter, with no proxy-wasm
//! dependency. Time, keys, caches and I/O come in as arguments.
//!
//! The request path is [`decide`], in four stages, each a directory whose `mod.rs` says
//! what it takes and gives: [`token`] (find, parse and verify the token), [`identity`]
//! (from claims to the caller), [`policy`] (the compiled configuration and its rules),
//! [`decision`] (evaluate the rules, return a [`Verdict`]). Next to them: [`request`],
//! what a decision is asked about, and [`snapshot`], the signed catalog snapshot format.
//! Off the request path: [`access`], the self-service access policy and its decisions.

pub mod access;
pub mod decision;
pub mod identity;
pub mod policy;
pub mod request;
pub mod snapshot;
pub mod token;

// The module paths from before the grouping by stage (`meshgate_core::jwks::KeySet`): the
// other crates use them.
pub use decision::{authorize, evaluate, explain, headers, log};
pub use identity::{backstage, cache, caller, claims, groupref, principal, provider};
pub use policy::{catalog, config, keystore, path, pattern, rules};
pub use token::{alg, extract, jwks, signature};

#[cfg(test)]
pub(crate) mod testing;

pub use decision::authorize::{decide, Credential};
pub use decision::verdict::{AllowCode, Decision, DenyCode, Effect, Verdict};
pub use identity::cache::TokenCache;
pub use policy::config::{ConfigError, Mode, Policy};
pub use policy::keystore::KeyStore;
pub use request::{Request, UnixTime};
