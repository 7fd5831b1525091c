//! TODO: envoy
