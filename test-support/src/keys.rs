//! The test keys: published example keys from the RFCs (public data), kept as private JWKs in
//! `testdata/keys/` where other tools read them too, and a P-384 key of meshgate's own.
//!
//! Corpus files and fixtures name four of them: `rsa`, `ec`, `ed` and `hs` ([`private_key`]).

use serde_json::{json, Value};

use crate::SignError;

/// The members of a private JWK that [`public_jwk`] leaves out.
const PRIVATE_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

/// A JWK file embedded at build time; `null` if it were not JSON, which the test
/// `every_key_file_is_a_jwk` rules out (a `null` key then fails to sign, by name).
fn key_file(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_default()
}

/// RFC 7515 Appendix A.2.1: a 2048-bit RSA key (`testdata/keys/rsa.json`).
pub fn rsa_private() -> Value {
    key_file(include_str!("../../testdata/keys/rsa.json"))
}

/// RFC 7517 Appendix A.1: another 2048-bit RSA public key (no private half needed).
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

/// RFC 7515 Appendix A.1.1: the 64-byte HMAC key (`testdata/keys/hs.json`, `kty: oct`).
pub fn hs_secret() -> Value {
    key_file(include_str!("../../testdata/keys/hs.json"))
}

/// The HMAC key as a key set entry: `kid` and `alg` added.
pub fn hs_jwk(kid: &str, alg: &str) -> Value {
    with_members(hs_secret(), kid, Some(alg))
}

/// The private key a fixture names: `rsa`, `ec`, `ed` or `hs`.
pub fn private_key(name: &str) -> Result<Value, SignError> {
    match name {
        "rsa" => Ok(rsa_private()),
        "ec" => Ok(ec_private()),
        "ed" => Ok(ed25519_private()),
        "hs" => Ok(hs_secret()),
        other => Err(SignError::UnknownKey {
            name: other.to_owned(),
        }),
    }
}

/// The public half of a private JWK, with `kid` and (optionally) `alg` added.
pub fn public_jwk(private: &Value, kid: &str, alg: Option<&str>) -> Value {
    let mut public = private.clone();
    if let Some(obj) = public.as_object_mut() {
        for member in PRIVATE_MEMBERS {
            obj.remove(member);
        }
    }
    with_members(public, kid, alg)
}

fn with_members(mut jwk: Value, kid: &str, alg: Option<&str>) -> Value {
    if let Some(obj) = jwk.as_object_mut() {
        obj.insert("kid".into(), json!(kid));
        if let Some(alg) = alg {
            obj.insert("alg".into(), json!(alg));
        }
    }
    jwk
}

/// What a corpus file's `"$JWKS"` stands for (see `core/tests/cases/README.md`): the public
/// keys `rsa` (RS256), `ec` (ES256), `ed` (EdDSA) and the HMAC key `hs` (HS256).
pub fn corpus_jwks() -> Value {
    json!({"keys": [
        public_jwk(&rsa_private(), "rsa", Some("RS256")),
        public_jwk(&ec_private(), "ec", Some("ES256")),
        public_jwk(&ed25519_private(), "ed", Some("EdDSA")),
        hs_jwk("hs", "HS256"),
    ]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_file_is_a_jwk() {
        for (name, key) in [
            ("rsa", rsa_private()),
            ("ec", ec_private()),
            ("ed", ed25519_private()),
            ("hs", hs_secret()),
        ] {
            assert!(key["kty"].is_string(), "{name}: {key}");
            assert_eq!(private_key(name).unwrap(), key);
        }
        assert!(matches!(
            private_key("nope"),
            Err(SignError::UnknownKey { .. })
        ));
    }

    #[test]
    fn public_halves_have_no_private_members() {
        let public = public_jwk(&rsa_private(), "rsa", Some("RS256"));
        for member in PRIVATE_MEMBERS {
            assert!(public.get(member).is_none(), "{member}");
        }
        assert_eq!(public["kid"], "rsa");
        assert_eq!(public["alg"], "RS256");
        assert_eq!(public["n"], rsa_private()["n"]);
        let jwks = corpus_jwks();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, ["rsa", "ec", "ed", "hs"]);
    }
}
