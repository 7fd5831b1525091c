//! meshgate-core: the decision engine of the meshgate filter, with no proxy-wasm
//! dependency. Time, keys, caches and I/O come in as arguments.
//!
//! The request path is [`authorize::decide`]: normalize the path, check public routes,
//! extract and verify the token, build the principal, evaluate rules (`evaluate`, each rule
//! by [`rules::Rule::evaluate`]), return a [`decision::Verdict`].

pub mod alg;
pub mod authorize;
pub mod backstage;
pub mod cache;
pub mod caller;
pub mod catalog;
pub mod claims;
pub mod config;
pub mod decision;
pub mod evaluate;
pub mod explain;
pub mod extract;
pub mod groupref;
pub mod headers;
pub mod jwks;
pub mod keystore;
pub mod log;
pub mod path;
pub mod pattern;
pub mod principal;
pub mod provider;
pub mod request;
pub mod rules;
pub mod signature;
pub mod snapshot;
pub mod token;

#[cfg(test)]
pub(crate) mod testing;

pub use authorize::{decide, Credential};
pub use cache::TokenCache;
pub use config::{ConfigError, Mode, Policy};
pub use decision::{AllowCode, Decision, DenyCode, Effect, Verdict};
pub use keystore::KeyStore;
pub use request::{Request, UnixTime};
