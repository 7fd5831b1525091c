//! Test fixtures: the RFC 7515 / RFC 8037 example keys (public data from the RFCs, kept as
//! private JWKs in `testdata/keys/` so every runner signs with the same ones) and a signer
//! that builds tokens with any header, so tests can forge exactly what they need.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs384, Hs512, Rsa, RsaPrivateKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm, AlgorithmSignature};
use serde_json::{json, Value};

/// RFC 7515 Appendix A.2.1: a 2048-bit RSA key (`testdata/keys/rsa.json`).
pub fn rsa_private() -> Value {
    key_file(include_str!("../../testdata/keys/rsa.json"))
}

/// RFC 7517 Appendix A.1: another 2048-bit RSA public key (no private part needed).
pub fn other_rsa_public() -> Value {
    json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB"
    })
}

/// RFC 7515 Appendix A.3.1: a P-256 key (`testdata/keys/ec.json`).
pub fn ec_private() -> Value {
    key_file(include_str!("../../testdata/keys/ec.json"))
}

/// meshgate's P-384 test key (no RFC has one): the scalar is SHA-512 of
/// `meshgate test key P-384`, reduced; generated once with Python's `cryptography`.
pub fn ec384_private() -> Value {
    json!({
        "kty": "EC", "crv": "P-384",
        "x": "G-0VCQebNFg-D0Gw4zK2OzCtBhZXRTyCmXzUQaddeS9pmLwE1iCZhaplwXrBa3n8",
        "y": "Q9a--ydchrxxngl0KspVsxmY2fQsdgyZkWfiJK02gkLch5o3S7AvMMtbRGqWLeoN",
        "d": "AFBLZq3pObDUE88c54c-vHPzySMaXyKgrGQiGYBw3urR1kAxip7gvi4heEfGYikB"
    })
}

/// RFC 7520 §3.2: the P-521 key of the JOSE cookbook.
pub fn ec521_private() -> Value {
    json!({
        "kty": "EC", "crv": "P-521",
        "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
        "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1",
        "d": "AAhRON2r9cqXX1hg-RoI6R1tX5p2rUAYdmpHZoC1XNM56KtscrX6zbKipQrCW9CGZH3T4ubpnoTKLDYJ_fF3_rJt"
    })
}

/// RFC 8037 Appendix A.1: an Ed25519 key (`testdata/keys/ed25519.json`).
pub fn ed25519_private() -> Value {
    key_file(include_str!("../../testdata/keys/ed25519.json"))
}

/// The public half of a private JWK, with `kid` and (optionally) `alg` added.
pub fn public_jwk(private: &Value, kid: &str, alg: Option<&str>) -> Value {
    let mut public = private.clone();
    let obj = public.as_object_mut().unwrap();
    for member in ["d", "p", "q", "dp", "dq", "qi"] {
        obj.remove(member);
    }
    obj.insert("kid".into(), json!(kid));
    if let Some(alg) = alg {
        obj.insert("alg".into(), json!(alg));
    }
    public
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `header.claims` (both JSON values, serialized as given) with `alg` and `key`.
/// `alg` picks the signing operation; the header is not checked, so tests can lie in it.
pub fn sign(alg: &str, key: &Value, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign_bytes(alg, key, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

pub fn sign_bytes(alg: &str, key: &Value, message: &[u8]) -> Vec<u8> {
    use p384::ecdsa::signature::Signer as _;
    let scalar = || URL_SAFE_NO_PAD.decode(key["d"].as_str().unwrap()).unwrap();
    match alg {
        // RFC 6979 deterministic signatures: the same input always signs the same.
        "ES384" => {
            let sk = p384::ecdsa::SigningKey::from_slice(&scalar()).unwrap();
            let sig: p384::ecdsa::Signature = sk.sign(message);
            return sig.to_bytes().to_vec();
        }
        "ES512" => {
            // p521 0.13 signs with a random nonce only: a seeded one keeps tokens fixed.
            use p521::ecdsa::signature::RandomizedSigner as _;
            use rand::SeedableRng as _;
            let sk = p521::ecdsa::SigningKey::from_slice(&scalar()).unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(521);
            let sig: p521::ecdsa::Signature = sk.sign_with_rng(&mut rng, message);
            return sig.to_bytes().to_vec();
        }
        _ => {}
    }
    let jwk: JsonWebKey<'_> = serde_json::from_value(key.clone()).unwrap();
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
            let sk = RsaPrivateKey::try_from(&jwk).unwrap();
            Rsa::with_name(alg).sign(&sk, message).as_bytes().to_vec()
        }
        "ES256" => {
            let sk = <Es256 as Algorithm>::SigningKey::try_from(&jwk).unwrap();
            Es256.sign(&sk, message).as_bytes().to_vec()
        }
        "EdDSA" => {
            let sk = <Ed25519 as Algorithm>::SigningKey::try_from(&jwk).unwrap();
            Ed25519.sign(&sk, message).as_bytes().to_vec()
        }
        "HS256" => Hs256
            .sign(
                &<Hs256 as Algorithm>::SigningKey::try_from(&jwk).unwrap(),
                message,
            )
            .as_bytes()
            .to_vec(),
        "HS384" => Hs384
            .sign(
                &<Hs384 as Algorithm>::SigningKey::try_from(&jwk).unwrap(),
                message,
            )
            .as_bytes()
            .to_vec(),
        "HS512" => Hs512
            .sign(
                &<Hs512 as Algorithm>::SigningKey::try_from(&jwk).unwrap(),
                message,
            )
            .as_bytes()
            .to_vec(),
        other => panic!("test signer has no algorithm {other}"),
    }
}

/// RFC 7515 Appendix A.1.1: the 64-byte HMAC key (`testdata/keys/hs.json`), with `alg`
/// and `kid: "hs"` added.
pub fn hs_key_jwk(alg: &str) -> Value {
    let mut jwk = key_file(include_str!("../../testdata/keys/hs.json"));
    let obj = jwk.as_object_mut().unwrap();
    obj.insert("alg".into(), json!(alg));
    obj.insert("kid".into(), json!("hs"));
    jwk
}

/// A private JWK from `testdata/keys/`, shared with the Envoy runners in `test-harness`.
fn key_file(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}
