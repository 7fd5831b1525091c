//! TODO: issuer_server
