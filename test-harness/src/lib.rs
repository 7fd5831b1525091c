//! End-to-end harness for meshgate: a mock OIDC issuer, tool-shaped upstream stubs,
//! supervision of a real Envoy process loading the built filter, and a raw HTTP client.

pub mod access_client;
pub mod backstage;
pub mod backstage_auth;
pub mod corpus;
pub mod envoy;
pub mod http_client;
pub mod issuer_server;
pub mod orggen;
pub mod ports;
pub mod scale_probe;
pub mod stack;
pub mod text;
pub mod upstream;
