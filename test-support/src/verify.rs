//! A token checker for tests of token minters: the signature against one public JWK, with
//! the algorithm the token names. It checks no claim (expiry included): tests compare the
//! claims themselves.

use jwt_compact::alg::{Ed25519, Es256, Rsa, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm, AlgorithmExt as _, Token, UntrustedToken};
use serde_json::{Map, Value};

use crate::VerifyError;

/// A token whose signature checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The header's `alg` and `kid`.
    pub alg: String,
    pub kid: Option<String>,
    /// Every claim, the registered times (`iat`, `exp`, `nbf`) included as Unix seconds.
    pub claims: Map<String, Value>,
}

/// Checks `token`'s signature with the public JWK `jwk` (RS*/PS*, ES256 or EdDSA).
pub fn verify(token: &str, jwk: &Value) -> Result<Verified, VerifyError> {
    let untrusted = UntrustedToken::new(token).map_err(|e| VerifyError::Token {
        detail: e.to_string(),
    })?;
    let jwk: JsonWebKey<'_> =
        serde_json::from_value(jwk.clone()).map_err(|source| VerifyError::NotAJwk { source })?;
    let alg = untrusted.algorithm().to_owned();
    let key_err = |e: jwt_compact::jwk::JwkError| VerifyError::Key {
        alg: alg.clone(),
        detail: e.to_string(),
    };
    let invalid = |e: jwt_compact::ValidationError| VerifyError::Signature {
        alg: alg.clone(),
        detail: e.to_string(),
    };
    let verified: Token<Map<String, Value>> = match alg.as_str() {
        "ES256" => {
            let key = <Es256 as Algorithm>::VerifyingKey::try_from(&jwk).map_err(key_err)?;
            Es256
                .validator(&key)
                .validate(&untrusted)
                .map_err(invalid)?
        }
        "EdDSA" => {
            let key = <Ed25519 as Algorithm>::VerifyingKey::try_from(&jwk).map_err(key_err)?;
            Ed25519
                .validator(&key)
                .validate(&untrusted)
                .map_err(invalid)?
        }
        name => {
            let rsa: Rsa = name
                .parse()
                .map_err(|_| VerifyError::UnknownAlg { alg: alg.clone() })?;
            let key = RsaPublicKey::try_from(&jwk).map_err(key_err)?;
            rsa.validator(&key).validate(&untrusted).map_err(invalid)?
        }
    };
    let kid = verified.header().key_id.clone();
    let registered = verified.claims();
    let mut claims = registered.custom.clone();
    // jwt-compact lifts the registered times out of the custom map: put them back.
    for (name, time) in [
        ("iat", registered.issued_at),
        ("exp", registered.expiration),
        ("nbf", registered.not_before),
    ] {
        if let Some(time) = time {
            claims.insert(name.into(), time.timestamp().into());
        }
    }
    Ok(Verified { alg, kid, claims })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::keys::{ec_private, ed25519_private, public_jwk, rsa_private};
    use crate::sign::sign;

    #[test]
    fn signed_tokens_verify_with_their_key_only() {
        let claims = json!({"sub": "alice", "exp": 1_700_000_600});
        for (alg, key) in [
            ("RS256", rsa_private()),
            ("PS384", rsa_private()),
            ("ES256", ec_private()),
            ("EdDSA", ed25519_private()),
        ] {
            let token = sign(alg, &key, &json!({"alg": alg, "kid": "k"}), &claims).unwrap();
            let verified = verify(&token, &public_jwk(&key, "k", None)).unwrap();
            assert_eq!(verified.alg, alg);
            assert_eq!(verified.kid.as_deref(), Some("k"));
            assert_eq!(Value::Object(verified.claims), claims, "{alg}");
            let other = if alg == "ES256" {
                rsa_private()
            } else {
                ec_private()
            };
            assert!(
                verify(&token, &public_jwk(&other, "o", None)).is_err(),
                "{alg}"
            );
        }
        let tampered = sign("RS256", &rsa_private(), &json!({"alg": "RS256"}), &claims)
            .unwrap()
            .replacen('.', ".e30", 1);
        assert!(matches!(
            verify(&tampered, &public_jwk(&rsa_private(), "k", None)),
            Err(VerifyError::Signature { .. } | VerifyError::Token { .. })
        ));
    }
}
