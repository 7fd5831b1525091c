//! End-to-end harness for meshgate: a mock OIDC issuer, tool-shaped upstream stubs,
//! and supervision of a real Envoy process loading the built filter.

pub mod envoy;
pub mod issuer_server;
pub mod ports;
pub mod upstream;
