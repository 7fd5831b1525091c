use serde_json::{json, Value};

use super::*;
use crate::testing::{
    b64, ec_private, ed25519_private, hs_key_jwk, other_rsa_public, public_jwk, rsa_private,
};

fn parse(keys: Value, origin: KeyOrigin) -> Result<KeySet, JwksError> {
    KeySet::parse(json!({ "keys": keys }).to_string().as_bytes(), origin)
}

fn small_rsa_public() -> Value {
    // A 1024-bit modulus: too small, whatever else is right about it.
    let key = jwt_compact::alg::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
    let public = key.to_public_key();
    let mut v = serde_json::to_value(JsonWebKey::from(&public)).unwrap();
    v["kid"] = json!("small");
    v
}

#[test]
fn pinning_by_kty_crv_alg() {
    use Algorithm::*;
    let cases: Vec<(Value, Option<&[Algorithm]>)> = vec![
        (
            public_jwk(&rsa_private(), "a", None),
            Some(&[Rs256, Rs384, Rs512, Ps256, Ps384, Ps512]),
        ),
        (
            public_jwk(&rsa_private(), "a", Some("RS256")),
            Some(&[Rs256]),
        ),
        (
            public_jwk(&rsa_private(), "a", Some("PS384")),
            Some(&[Ps384]),
        ),
        (public_jwk(&rsa_private(), "a", Some("ES256")), None),
        (public_jwk(&rsa_private(), "a", Some("HS256")), None),
        (public_jwk(&rsa_private(), "a", Some("none")), None),
        (public_jwk(&ec_private(), "a", None), Some(&[Es256])),
        (public_jwk(&ec_private(), "a", Some("RS256")), None),
        (public_jwk(&ed25519_private(), "a", None), Some(&[EdDsa])),
        (
            public_jwk(&ed25519_private(), "a", Some("EdDSA")),
            Some(&[EdDsa]),
        ),
        (
            json!({"kty": "EC", "crv": "P-384", "x": b64(&[1; 48]), "y": b64(&[1; 48]), "kid": "a"}),
            None,
        ),
        (
            json!({"kty": "OKP", "crv": "X25519", "x": b64(&[1; 32]), "kid": "a"}),
            None,
        ),
    ];
    for (jwk, expected) in cases {
        let result = parse(json!([jwk.clone()]), KeyOrigin::Remote);
        match expected {
            Some(algs) => assert_eq!(result.unwrap().keys[0].algorithms, algs, "{jwk}"),
            None => assert!(
                matches!(&result, Err(JwksError::NoUsableKeys { skipped }) if skipped.0.len() == 1),
                "{jwk}"
            ),
        }
    }
}

#[test]
fn skipped_keys_do_not_spoil_the_set() {
    let set = parse(
        json!([
            small_rsa_public(),
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": other_rsa_public()["n"], "e": "AQAB"},
            hs_key_jwk("HS256"),
            {"kty": "RSA", "kid": "garbage", "n": "!!", "e": "AQAB"},
            public_jwk(&rsa_private(), "good", Some("RS256")),
        ]),
        KeyOrigin::Remote,
    )
    .unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.keys[0].kid.as_deref(), Some("good"));
    assert_eq!(set.skipped.len(), 4);
    assert!(set
        .skipped
        .iter()
        .any(|s| matches!(s, KeySkipped::RsaTooSmall { bits: 1024, .. })));
    assert!(set
        .skipped
        .iter()
        .any(|s| matches!(s, KeySkipped::NotForSignatures { .. })));
    assert!(set
        .skipped
        .iter()
        .any(|s| matches!(s, KeySkipped::SymmetricFromRemote { .. })));
    assert!(set
        .skipped
        .iter()
        .any(|s| matches!(s, KeySkipped::Unparseable { .. })));
}

#[test]
fn hmac_keys_only_locally_and_long_enough() {
    assert!(parse(json!([hs_key_jwk("HS256")]), KeyOrigin::Local).is_ok());
    assert!(parse(json!([hs_key_jwk("HS512")]), KeyOrigin::Local).is_ok());
    assert!(parse(json!([hs_key_jwk("HS256")]), KeyOrigin::Remote).is_err());
    let short = json!({"kty": "oct", "k": b64(b"too-short"), "alg": "HS256"});
    assert!(matches!(
        parse(json!([short]), KeyOrigin::Local),
        Err(JwksError::NoUsableKeys { .. })
    ));
}

/// An `oct` key without `alg` verifies each HS algorithm its length allows (RFC 7518
/// §3.2), like an RSA key without `alg` verifies every RS/PS algorithm.
#[test]
fn hmac_keys_without_alg_take_every_algorithm_their_length_allows() {
    use Algorithm::*;
    type Expected = Result<Vec<Algorithm>, ()>;
    let cases: Vec<(usize, Expected)> = vec![
        (64, Ok(vec![Hs256, Hs384, Hs512])),
        (100, Ok(vec![Hs256, Hs384, Hs512])),
        (63, Ok(vec![Hs256, Hs384])),
        (48, Ok(vec![Hs256, Hs384])),
        (32, Ok(vec![Hs256])),
        (31, Err(())),
        (0, Err(())),
    ];
    for (len, expected) in cases {
        let jwk = json!({"kty": "oct", "kid": "k", "k": b64(&vec![7; len])});
        let result = parse(json!([jwk]), KeyOrigin::Local);
        match expected {
            Ok(algs) => {
                let set = result.unwrap();
                let got: Vec<Algorithm> = set
                    .keys
                    .iter()
                    .flat_map(|k| k.algorithms.iter().copied())
                    .collect();
                assert_eq!(got, algs, "{len} bytes");
                assert!(set.keys.iter().all(|k| k.kid.as_deref() == Some("k")));
            }
            Err(()) => assert!(
                matches!(&result, Err(JwksError::NoUsableKeys { skipped })
                    if matches!(skipped.0.as_slice(), [KeySkipped::HmacTooShort { min: 32, .. }])),
                "{len} bytes: {result:?}"
            ),
        }
    }
    // Still never from a remote set, with or without `alg`.
    let remote = json!({"kty": "oct", "k": b64(&[7; 64])});
    assert!(parse(json!([remote]), KeyOrigin::Remote).is_err());
    // And an `alg` that is not HMAC doesn't fit a symmetric key.
    let wrong = json!({"kty": "oct", "k": b64(&[7; 64]), "alg": "RS256"});
    assert!(parse(json!([wrong]), KeyOrigin::Local).is_err());
}

#[test]
fn malformed_documents() {
    let too_many: Vec<Value> = (0..=MAX_KEYS)
        .map(|i| public_jwk(&rsa_private(), &i.to_string(), None))
        .collect();
    type Check = fn(&JwksError) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (b"not json".to_vec(), |e| {
            matches!(e, JwksError::Malformed { .. })
        }),
        (b"{}".to_vec(), |e| matches!(e, JwksError::Malformed { .. })),
        (br#"{"keys": {}}"#.to_vec(), |e| {
            matches!(e, JwksError::Malformed { .. })
        }),
        (br#"{"keys": []}"#.to_vec(), |e| {
            matches!(e, JwksError::Empty)
        }),
        (
            br#"{"keys": [1, "x", null]}"#.to_vec(),
            |e| matches!(e, JwksError::NoUsableKeys { skipped } if skipped.0.len() == 3),
        ),
        (vec![b' '; MAX_JWKS_BYTES + 1], |e| {
            matches!(e, JwksError::TooLarge { .. })
        }),
        (json!({"keys": too_many}).to_string().into_bytes(), |e| {
            matches!(e, JwksError::TooManyKeys { .. })
        }),
    ];
    for (doc, check) in cases {
        let err = KeySet::parse(&doc, KeyOrigin::Remote).unwrap_err();
        assert!(check(&err), "{err:?}");
    }
}
