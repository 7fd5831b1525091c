//! Stage 3, what the rules are. Takes the plugin configuration (JSON) and a catalog
//! snapshot's rules; gives a compiled [`config::Policy`]: providers, [`rules`] with their
//! host, method and [`pattern`] conditions, and the [`catalog`] rules next to them.
//!
//! [`path`] is the one canonical form of a request path that patterns match. [`keystore`]
//! holds each configured provider's current keys (local from config, remote as fetched).
//! A configuration either compiles whole or is refused with one line naming the field.

pub mod catalog;
pub mod config;
pub mod keystore;
pub mod path;
pub mod pattern;
pub mod rules;
