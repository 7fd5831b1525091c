//! Which key family signs which JWS algorithm.

/// Asymmetric algorithms the demo issuer can sign with, in the order advertised by discovery.
pub const SIGNING_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "EdDSA",
];

/// The kind of key pair behind an algorithm. One RSA key serves all six RSA algorithms, the
/// way most identity providers publish a single RSA key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    Rsa,
    P256,
    Ed25519,
}

impl KeyFamily {
    /// The family that signs `alg`, or `None` for symmetric or unknown algorithms.
    pub fn of(alg: &str) -> Option<KeyFamily> {
        match alg {
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => Some(KeyFamily::Rsa),
            "ES256" => Some(KeyFamily::P256),
            "EdDSA" => Some(KeyFamily::Ed25519),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_alg_has_a_family() {
        for alg in SIGNING_ALGS {
            assert!(KeyFamily::of(alg).is_some(), "{alg}");
        }
        assert_eq!(KeyFamily::of("HS256"), None);
        assert_eq!(KeyFamily::of("rs256"), None);
    }
}
