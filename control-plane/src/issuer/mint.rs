//! Minting tokens, including deliberately flawed ones (expired, not yet valid, wrong issuer,
//! unknown kid) for tests of the verifier.

use jwt_compact::alg::RsaPrivateKey;
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key, Rsa};
use jwt_compact::{AlgorithmExt as _, Claims, Header};
use serde_json::{Map, Value};

use super::alg::KeyFamily;
use super::err::MintError;
use super::keyset::{Ed25519SigningKey, IssuerKey, KeySet, P256SigningKey};

type Payload = Map<String, Value>;

/// What to put in a token and how to sign it.
///
/// Times are unix seconds relative to `now`, which the caller supplies.
#[derive(Debug, Clone, PartialEq)]
pub struct MintRequest {
    /// `sub`; omitted when empty.
    pub sub: String,
    /// `groups`; omitted when empty.
    pub groups: Vec<String>,
    /// `aud`: a string for one audience, an array for several, omitted for none.
    pub audiences: Vec<String>,
    /// RS256, RS384, RS512, PS256, PS384, PS512, ES256, EdDSA, or HS256/HS384/HS512 with
    /// `hs_secret`.
    pub alg: String,
    /// Lifetime: `exp = iat + ttl_s` unless `exp_offset_s` is set.
    pub ttl_s: i64,
    /// `iat = now + iat_offset_s`.
    pub iat_offset_s: i64,
    /// `nbf = now + nbf_offset_s`; no `nbf` when `None`.
    pub nbf_offset_s: Option<i64>,
    /// `exp = now + exp_offset_s`, overriding `ttl_s`.
    pub exp_offset_s: Option<i64>,
    /// Leave `exp` out entirely.
    pub no_exp: bool,
    /// `iss` instead of the key set's issuer; `Some("")` leaves `iss` out.
    pub issuer_override: Option<String>,
    /// Header `kid` instead of the signing key's kid (the signature still uses the real key).
    pub kid_override: Option<String>,
    /// Sign with the newest unpublished key of the algorithm's family.
    pub use_unpublished_key: bool,
    pub email: Option<String>,
    /// Added last, so they replace standard claims of the same name (e.g. a malformed `exp`).
    pub extra_claims: Map<String, Value>,
    /// Shared secret for HS256/HS384/HS512.
    pub hs_secret: Option<Vec<u8>>,
    /// Current unix time in seconds.
    pub now: i64,
}

impl MintRequest {
    /// An RS256 token for `sub`, valid for an hour from `now`, with no audience or groups.
    pub fn new(sub: impl Into<String>, now: i64) -> MintRequest {
        MintRequest {
            sub: sub.into(),
            groups: Vec::new(),
            audiences: Vec::new(),
            alg: "RS256".to_owned(),
            ttl_s: 3600,
            iat_offset_s: 0,
            nbf_offset_s: None,
            exp_offset_s: None,
            no_exp: false,
            issuer_override: None,
            kid_override: None,
            use_unpublished_key: false,
            email: None,
            extra_claims: Map::new(),
            hs_secret: None,
            now,
        }
    }
}

impl KeySet {
    /// A signed compact JWT with header `{"alg", "kid", "typ": "JWT"}`.
    pub fn mint(&self, req: &MintRequest) -> Result<String, MintError> {
        let claims = Claims::new(self.payload(req)?);
        let alg = req.alg.as_str();
        if let Some(secret) = hmac_secret(req)? {
            // Locally configured secrets have no key id unless the test asks for one.
            let header = header(req.kid_override.as_deref());
            return match alg {
                "HS256" => encode(Hs256.token(&header, &claims, &Hs256Key::new(secret))),
                "HS384" => encode(Hs384.token(&header, &claims, &Hs384Key::new(secret))),
                _ => encode(Hs512.token(&header, &claims, &Hs512Key::new(secret))),
            };
        }
        let family = KeyFamily::of(alg).ok_or_else(|| MintError::UnsupportedAlg {
            alg: alg.to_owned(),
        })?;
        let key = self
            .signing_key(alg, req.use_unpublished_key)
            .ok_or_else(|| {
                let alg = alg.to_owned();
                if req.use_unpublished_key {
                    MintError::NoUnpublishedKey { alg }
                } else {
                    MintError::NoActiveKey { alg }
                }
            })?;
        let header = header(Some(req.kid_override.as_deref().unwrap_or(&key.kid)));
        match family {
            KeyFamily::Rsa => {
                let rsa: Rsa = alg.parse().map_err(|_| MintError::UnsupportedAlg {
                    alg: alg.to_owned(),
                })?;
                let private: RsaPrivateKey = decode_key(key)?;
                encode(rsa.token(&header, &claims, &private))
            }
            KeyFamily::P256 => {
                let private: P256SigningKey = decode_key(key)?;
                encode(Es256.token(&header, &claims, &private))
            }
            KeyFamily::Ed25519 => {
                let private: Ed25519SigningKey = decode_key(key)?;
                encode(Ed25519.token(&header, &claims, &private))
            }
        }
    }

    fn payload(&self, req: &MintRequest) -> Result<Payload, MintError> {
        let mut claims = Payload::new();
        let iss = req.issuer_override.as_deref().unwrap_or(self.issuer());
        if !iss.is_empty() {
            claims.insert("iss".into(), iss.into());
        }
        if !req.sub.is_empty() {
            claims.insert("sub".into(), req.sub.clone().into());
        }
        match req.audiences.as_slice() {
            [] => {}
            [one] => {
                claims.insert("aud".into(), one.clone().into());
            }
            many => {
                claims.insert("aud".into(), many.to_vec().into());
            }
        }
        let iat = add(req.now, req.iat_offset_s)?;
        claims.insert("iat".into(), iat.into());
        if !req.no_exp {
            let exp = match req.exp_offset_s {
                Some(offset) => add(req.now, offset)?,
                None => add(iat, req.ttl_s)?,
            };
            claims.insert("exp".into(), exp.into());
        }
        if let Some(offset) = req.nbf_offset_s {
            claims.insert("nbf".into(), add(req.now, offset)?.into());
        }
        if !req.groups.is_empty() {
            claims.insert("groups".into(), req.groups.clone().into());
        }
        if let Some(email) = &req.email {
            claims.insert("email".into(), email.clone().into());
        }
        claims.extend(req.extra_claims.clone());
        Ok(claims)
    }
}

/// The shared secret when `alg` is an HMAC algorithm, `None` for asymmetric ones.
fn hmac_secret(req: &MintRequest) -> Result<Option<&[u8]>, MintError> {
    if !matches!(req.alg.as_str(), "HS256" | "HS384" | "HS512") {
        return Ok(None);
    }
    req.hs_secret
        .as_deref()
        .map(Some)
        .ok_or_else(|| MintError::MissingHsSecret {
            alg: req.alg.clone(),
        })
}

fn header(kid: Option<&str>) -> Header {
    let header = Header::empty().with_token_type("JWT");
    match kid {
        Some(kid) => header.with_key_id(kid),
        None => header,
    }
}

fn decode_key<K>(key: &IssuerKey) -> Result<K, MintError>
where
    K: for<'a> TryFrom<&'a jwt_compact::jwk::JsonWebKey<'a>, Error = jwt_compact::jwk::JwkError>,
{
    K::try_from(&key.private_jwk).map_err(|source| MintError::BadKey {
        kid: key.kid.clone(),
        source,
    })
}

fn encode(token: Result<String, jwt_compact::CreationError>) -> Result<String, MintError> {
    token.map_err(|source| MintError::Encode { source })
}

fn add(now: i64, offset: i64) -> Result<i64, MintError> {
    now.checked_add(offset)
        .ok_or(MintError::TimeOverflow { now, offset })
}

#[cfg(test)]
mod tests {
    use jwt_compact::alg::RsaPublicKey;
    use jwt_compact::jwk::JsonWebKey;
    use jwt_compact::{Token, UntrustedToken};
    use serde_json::json;

    use super::*;
    use crate::issuer::test_keys::{shared_keyset, TEST_ISSUER};
    use crate::issuer::UNPUBLISHED_RS256_KID;

    const NOW: i64 = 1_700_000_000;

    fn jwk_of(set: &KeySet, kid: &str) -> JsonWebKey<'static> {
        set.verifying_jwk(kid).unwrap()
    }

    /// Verifies `token` against the public JWK `kid` and returns header kid and claims.
    fn verify(set: &KeySet, token: &str, kid: &str) -> (Option<String>, Payload) {
        let untrusted = UntrustedToken::new(token).unwrap();
        assert_eq!(untrusted.header().token_type.as_deref(), Some("JWT"));
        let jwk = serde_json::to_value(jwk_of(set, kid)).unwrap();
        let verified = meshgate_test_support::verify::verify(token, &jwk).unwrap();
        (verified.kid, verified.claims)
    }

    #[test]
    fn every_algorithm_verifies_against_the_public_jwk() {
        let set = shared_keyset();
        for (alg, kid) in [
            ("RS256", "rs256-1"),
            ("RS384", "rs256-1"),
            ("RS512", "rs256-1"),
            ("PS256", "rs256-1"),
            ("PS384", "rs256-1"),
            ("PS512", "rs256-1"),
            ("ES256", "es256-1"),
            ("EdDSA", "eddsa-1"),
        ] {
            let req = MintRequest {
                alg: alg.into(),
                ..MintRequest::new("alice", NOW)
            };
            let token = set.mint(&req).unwrap();
            let untrusted = UntrustedToken::new(&token).unwrap();
            assert_eq!(untrusted.algorithm(), alg);
            let (header_kid, claims) = verify(&set, &token, kid);
            assert_eq!(header_kid.as_deref(), Some(kid), "{alg}");
            assert_eq!(claims["sub"], "alice");
        }
    }

    #[test]
    fn a_token_from_one_key_does_not_verify_with_another() {
        let set = shared_keyset();
        let token = set.mint(&MintRequest::new("alice", NOW)).unwrap();
        let untrusted = UntrustedToken::new(&token).unwrap();
        let other = RsaPublicKey::try_from(&jwk_of(&set, UNPUBLISHED_RS256_KID)).unwrap();
        let result: Result<Token<Payload>, _> = Rsa::rs256().validator(&other).validate(&untrusted);
        assert!(result.is_err());
    }

    #[test]
    fn payload_carries_the_requested_claims() {
        let set = shared_keyset();
        let mut extra = Map::new();
        extra.insert("tenant".into(), json!("acme"));
        let req = MintRequest {
            groups: vec!["data-eng".into(), "admins".into()],
            audiences: vec!["meshgate-demo".into()],
            email: Some("alice@example.com".into()),
            nbf_offset_s: Some(-5),
            iat_offset_s: -10,
            ttl_s: 600,
            extra_claims: extra,
            ..MintRequest::new("alice", NOW)
        };
        let (_, claims) = verify(&set, &set.mint(&req).unwrap(), "rs256-1");
        assert_eq!(
            Value::Object(claims),
            json!({
                "iss": TEST_ISSUER,
                "sub": "alice",
                "aud": "meshgate-demo",
                "iat": NOW - 10,
                "exp": NOW - 10 + 600,
                "nbf": NOW - 5,
                "groups": ["data-eng", "admins"],
                "email": "alice@example.com",
                "tenant": "acme",
            })
        );
    }

    #[test]
    fn several_audiences_become_an_array_and_overrides_apply() {
        let set = shared_keyset();
        let mut extra = Map::new();
        extra.insert("exp".into(), json!("soon"));
        let req = MintRequest {
            audiences: vec!["a".into(), "b".into()],
            exp_offset_s: Some(-60),
            issuer_override: Some("https://evil.example".into()),
            kid_override: Some("made-up".into()),
            extra_claims: extra.clone(),
            ..MintRequest::new("", NOW)
        };
        let token = set.mint(&req).unwrap();
        let untrusted = UntrustedToken::new(&token).unwrap();
        assert_eq!(untrusted.header().key_id.as_deref(), Some("made-up"));
        let claims = untrusted.deserialize_claims_unchecked::<Value>();
        // `exp` is not a number, so read the raw payload instead.
        assert!(claims.is_err());
        let payload = raw_payload(&token);
        assert_eq!(payload["aud"], json!(["a", "b"]));
        assert_eq!(payload["iss"], "https://evil.example");
        assert_eq!(payload["exp"], "soon");
        assert!(payload.get("sub").is_none());

        let expired = MintRequest {
            exp_offset_s: Some(-60),
            ..MintRequest::new("bob", NOW)
        };
        assert_eq!(raw_payload(&set.mint(&expired).unwrap())["exp"], NOW - 60);
        let forever = MintRequest {
            no_exp: true,
            issuer_override: Some(String::new()),
            ..MintRequest::new("bob", NOW)
        };
        let payload = raw_payload(&set.mint(&forever).unwrap());
        assert!(payload.get("exp").is_none() && payload.get("iss").is_none());
    }

    fn raw_payload(token: &str) -> Value {
        use base64::Engine as _;
        let part = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn unpublished_key_signs_with_its_own_kid() {
        let set = shared_keyset();
        let req = MintRequest {
            use_unpublished_key: true,
            ..MintRequest::new("mallory", NOW)
        };
        let token = set.mint(&req).unwrap();
        let (kid, _) = verify(&set, &token, UNPUBLISHED_RS256_KID);
        assert_eq!(kid.as_deref(), Some(UNPUBLISHED_RS256_KID));
        let ec = MintRequest {
            alg: "ES256".into(),
            ..req
        };
        assert!(matches!(
            set.mint(&ec),
            Err(MintError::NoUnpublishedKey { .. })
        ));
    }

    #[test]
    fn minting_after_rotation_uses_the_new_key() {
        let mut set = shared_keyset();
        let kid = set.rotate("EdDSA").unwrap();
        let req = MintRequest {
            alg: "EdDSA".into(),
            ..MintRequest::new("alice", NOW)
        };
        let (header_kid, _) = verify(&set, &set.mint(&req).unwrap(), &kid);
        assert_eq!(header_kid, Some(kid));
    }

    #[test]
    fn hmac_tokens_use_the_given_secret() {
        let set = shared_keyset();
        let secret = b"0123456789abcdef0123456789abcdef".to_vec();
        let req = MintRequest {
            alg: "HS256".into(),
            hs_secret: Some(secret.clone()),
            ..MintRequest::new("svc", NOW)
        };
        let token = set.mint(&req).unwrap();
        let untrusted = UntrustedToken::new(&token).unwrap();
        assert_eq!(untrusted.header().key_id, None);
        let verified: Token<Payload> = Hs256
            .validator(&Hs256Key::new(&secret))
            .validate(&untrusted)
            .unwrap();
        assert_eq!(verified.claims().custom["sub"], "svc");
        let wrong: Result<Token<Payload>, _> = Hs256
            .validator(&Hs256Key::new(b"another secret"))
            .validate(&untrusted);
        assert!(wrong.is_err());

        let no_secret = MintRequest {
            hs_secret: None,
            ..req
        };
        assert!(matches!(
            set.mint(&no_secret),
            Err(MintError::MissingHsSecret { .. })
        ));
    }

    #[test]
    fn unsupported_algorithms_and_overflow_are_errors() {
        let set = shared_keyset();
        let none = MintRequest {
            alg: "none".into(),
            ..MintRequest::new("alice", NOW)
        };
        assert!(matches!(
            set.mint(&none),
            Err(MintError::UnsupportedAlg { .. })
        ));
        let overflow = MintRequest {
            ttl_s: i64::MAX,
            ..MintRequest::new("alice", NOW)
        };
        assert!(matches!(
            set.mint(&overflow),
            Err(MintError::TimeOverflow { .. })
        ));
    }
}
