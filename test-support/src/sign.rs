//! A token signer for tests: it signs any header and claims with any test key, and checks
//! neither, so a test can forge exactly the token it needs (a header that lies about its
//! algorithm, a key id nobody publishes, claims of the wrong type).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs384, Hs512, Rsa, RsaPrivateKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm, AlgorithmSignature};
use serde_json::Value;

use crate::SignError;

/// The RSA and RSA-PSS algorithms (`Rsa::with_name` takes only these).
const RSA_ALGS: [&str; 6] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];

/// Base64url without padding, as JWS uses it.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.claims.signature`: both JSON values serialized as given, signed with `alg` and the
/// private JWK `key`. `alg` picks the operation; the header is not checked.
pub fn sign(alg: &str, key: &Value, header: &Value, claims: &Value) -> Result<String, SignError> {
    sign_raw(
        alg,
        key,
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
}

/// [`sign`] over raw header and payload bytes (which need not be JSON).
pub fn sign_raw(
    alg: &str,
    key: &Value,
    header: &[u8],
    payload: &[u8],
) -> Result<String, SignError> {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = sign_bytes(alg, key, input.as_bytes())?;
    Ok(format!("{input}.{}", b64(&signature)))
}

/// The raw JWS signature of `message`: `r || s` for ECDSA, deterministic for every
/// algorithm but PS* (random salt).
pub fn sign_bytes(alg: &str, key: &Value, message: &[u8]) -> Result<Vec<u8>, SignError> {
    match alg {
        "ES384" => return es384(key, message),
        "ES512" => return es512(key, message),
        _ => {}
    }
    let jwk: JsonWebKey<'_> =
        serde_json::from_value(key.clone()).map_err(|source| SignError::NotAJwk { source })?;
    let key_err = |source| SignError::Key {
        alg: alg.to_owned(),
        source,
    };
    let signature = match alg {
        _ if RSA_ALGS.contains(&alg) => {
            let sk = RsaPrivateKey::try_from(&jwk).map_err(key_err)?;
            Rsa::with_name(alg).sign(&sk, message).as_bytes().to_vec()
        }
        "ES256" => {
            let sk = <Es256 as Algorithm>::SigningKey::try_from(&jwk).map_err(key_err)?;
            Es256.sign(&sk, message).as_bytes().to_vec()
        }
        "EdDSA" => {
            let sk = <Ed25519 as Algorithm>::SigningKey::try_from(&jwk).map_err(key_err)?;
            Ed25519.sign(&sk, message).as_bytes().to_vec()
        }
        "HS256" => {
            let sk = <Hs256 as Algorithm>::SigningKey::try_from(&jwk).map_err(key_err)?;
            Hs256.sign(&sk, message).as_bytes().to_vec()
        }
        "HS384" => {
            let sk = <Hs384 as Algorithm>::SigningKey::try_from(&jwk).map_err(key_err)?;
            Hs384.sign(&sk, message).as_bytes().to_vec()
        }
        "HS512" => {
            let sk = <Hs512 as Algorithm>::SigningKey::try_from(&jwk).map_err(key_err)?;
            Hs512.sign(&sk, message).as_bytes().to_vec()
        }
        other => {
            return Err(SignError::UnknownAlg {
                alg: other.to_owned(),
            })
        }
    };
    Ok(signature)
}

/// The private scalar `d` of an EC JWK.
fn scalar(key: &Value, alg: &str) -> Result<Vec<u8>, SignError> {
    key.get("d")
        .and_then(Value::as_str)
        .and_then(|d| URL_SAFE_NO_PAD.decode(d).ok())
        .ok_or_else(|| SignError::Scalar {
            alg: alg.to_owned(),
        })
}

/// RFC 6979 deterministic signatures: the same input always signs the same.
fn es384(key: &Value, message: &[u8]) -> Result<Vec<u8>, SignError> {
    use p384::ecdsa::signature::Signer as _;
    let sk = p384::ecdsa::SigningKey::from_slice(&scalar(key, "ES384")?).map_err(|_| {
        SignError::Scalar {
            alg: "ES384".to_owned(),
        }
    })?;
    let signature: p384::ecdsa::Signature = sk.sign(message);
    Ok(signature.to_bytes().to_vec())
}

/// p521 0.13 signs with a random nonce only: a seeded one keeps tokens fixed.
fn es512(key: &Value, message: &[u8]) -> Result<Vec<u8>, SignError> {
    use p521::ecdsa::signature::RandomizedSigner as _;
    use rand::SeedableRng as _;
    let sk = p521::ecdsa::SigningKey::from_slice(&scalar(key, "ES512")?).map_err(|_| {
        SignError::Scalar {
            alg: "ES512".to_owned(),
        }
    })?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(521);
    let signature: p521::ecdsa::Signature = sk.sign_with_rng(&mut rng, message);
    Ok(signature.to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::keys::{ec384_private, ec521_private, ec_private, ed25519_private, private_key};

    #[test]
    fn the_test_keys_sign_every_algorithm() {
        let claims = json!({"sub": "x"});
        for (alg, key) in [
            ("RS256", "rsa"),
            ("RS512", "rsa"),
            ("PS512", "rsa"),
            ("ES256", "ec"),
            ("EdDSA", "ed"),
            ("HS256", "hs"),
            ("HS384", "hs"),
            ("HS512", "hs"),
        ] {
            let token = sign(
                alg,
                &private_key(key).unwrap(),
                &json!({"alg": alg}),
                &claims,
            );
            assert_eq!(token.unwrap().split('.').count(), 3, "{alg}");
        }
        // Signature sizes: raw `r || s` for ECDSA, 64 bytes for Ed25519.
        for (alg, key, len) in [
            ("ES256", ec_private(), 64),
            ("ES384", ec384_private(), 96),
            ("ES512", ec521_private(), 132),
            ("EdDSA", ed25519_private(), 64),
        ] {
            assert_eq!(sign_bytes(alg, &key, b"m").unwrap().len(), len, "{alg}");
        }
        // Fixed ES512 tokens: the seeded nonce signs the same input the same way.
        assert_eq!(
            sign_bytes("ES512", &ec521_private(), b"m").unwrap(),
            sign_bytes("ES512", &ec521_private(), b"m").unwrap()
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let claims = json!({});
        assert!(matches!(
            sign("XS1", &ec_private(), &json!({}), &claims),
            Err(SignError::UnknownAlg { .. })
        ));
        assert!(matches!(
            sign("RS256", &ec_private(), &json!({}), &claims),
            Err(SignError::Key { .. })
        ));
        assert!(matches!(
            sign("RS256", &json!(1), &json!({}), &claims),
            Err(SignError::NotAJwk { .. })
        ));
        assert!(matches!(
            sign("ES384", &json!({}), &json!({}), &claims),
            Err(SignError::Scalar { .. })
        ));
    }
}
