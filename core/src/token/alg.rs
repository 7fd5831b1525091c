//! The JWS algorithms meshgate verifies. `none` and anything unlisted is not an algorithm.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
    EdDsa,
    Hs256,
    Hs384,
    Hs512,
}

impl Algorithm {
    pub const ALL: [Algorithm; 13] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::Es512,
        Algorithm::EdDsa,
        Algorithm::Hs256,
        Algorithm::Hs384,
        Algorithm::Hs512,
    ];

    /// Exact, case-sensitive match on the JWS name (RFC 7518): `none`, `None`, `rs256` are not algorithms.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|alg| alg.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::Es512 => "ES512",
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
        }
    }

    /// A one-element slice with this algorithm, for keys pinned by their `alg`.
    pub fn as_slice(self) -> &'static [Algorithm] {
        match self {
            Algorithm::Rs256 => &[Algorithm::Rs256],
            Algorithm::Rs384 => &[Algorithm::Rs384],
            Algorithm::Rs512 => &[Algorithm::Rs512],
            Algorithm::Ps256 => &[Algorithm::Ps256],
            Algorithm::Ps384 => &[Algorithm::Ps384],
            Algorithm::Ps512 => &[Algorithm::Ps512],
            Algorithm::Es256 => &[Algorithm::Es256],
            Algorithm::Es384 => &[Algorithm::Es384],
            Algorithm::Es512 => &[Algorithm::Es512],
            Algorithm::EdDsa => &[Algorithm::EdDsa],
            Algorithm::Hs256 => &[Algorithm::Hs256],
            Algorithm::Hs384 => &[Algorithm::Hs384],
            Algorithm::Hs512 => &[Algorithm::Hs512],
        }
    }

    pub fn is_hmac(self) -> bool {
        matches!(self, Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512)
    }

    /// RFC 7518 §3.2: the key must be at least as long as the hash output.
    pub fn min_hmac_key_bytes(self) -> usize {
        match self {
            Algorithm::Hs384 => 48,
            Algorithm::Hs512 => 64,
            _ => 32,
        }
    }
}
