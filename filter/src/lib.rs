//! meshgate-filter: thin proxy-wasm glue. On each request it reads attributes, asks
//! `meshgate_core` for a decision and applies it; all decisions are made in core.
//! Host access is behind [`host::Host`], so the glue is tested natively over a fake host.

pub mod filter;
pub mod host;
pub mod jwks_refresh;
pub mod reply;
mod shared;
pub mod signatures;
pub mod snapshot_sync;

#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
