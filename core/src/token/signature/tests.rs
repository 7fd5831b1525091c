use std::cell::RefCell;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_compact::alg::{Es256, Rsa, RsaPublicKey};
use jwt_compact::{Algorithm as _, AlgorithmSignature as _};
use rsa::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use serde_json::json;

use super::*;
use crate::testing::{
    ec384_private, ec521_private, ec_private, ed25519_private, hs_key_jwk, other_rsa_public,
    public_jwk, rsa_private, sign,
};
use crate::token::der::{ecdsa_signature_der, es256_signature_der, EcdsaSignatureError};
use crate::token::jwks::{KeyOrigin, KeySet};
use crate::token::jws::{TokenError, UnverifiedToken, DEFAULT_MAX_TOKEN_BYTES};
use crate::token::self_test::{
    self_test, SelfTestError, ES384_TEST_KEY, RFC7515_A2, RFC7515_A3, RFC7520_4_3, RS384_A2_KEY,
    RS512_A2_KEY,
};

const NO_CATALOG: crate::policy::catalog::CatalogState<'static> =
    crate::policy::catalog::CatalogState::NotConfigured;

type EcSignature = <Es256 as jwt_compact::Algorithm>::Signature;
type EcVerifyingKey = <Es256 as jwt_compact::Algorithm>::VerifyingKey;

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// `openssl rsa -RSAPublicKey_in -pubout -outform DER` of the RFC 7515 A.2 key (its n and e
/// written as an `RSAPublicKey` with `openssl asn1parse -genconf`).
const OPENSSL_RSA_SPKI: &str = "30820122300d06092a864886f70d01010105000382010f003082010a0282010100a1f8160ae2e3c9b465ce8d2d656263362b927dbe29e1f02477fc1625cc90a136e38bd93497c5b6ea63dd7711e67c7429f956b0fb8a8f089adc4b69893cc1333f53edd019b87784252fec914fe4857769594bea4280d32c0f55bf62944f130396bc6e9bdf6ebdd2bda3678eeca0c668f701b38dbffb38c8342ce2fe6d27fade4a5a4874979dd4b9cf9adec4c75b05852c2c0f5ef8a5c1750392f944e8ed64c110c6b647609aa4783aeb9c6c9ad755313050638b83665c6f6f7a82a396702a1f641b82d3ebf2392219491fb686872c5716f50af8358d9a8b9d17c340728f7f87d89a18d8fcab67ad84590c2ecf759339363c07034d6f606f9e21e05456cae5e9a10203010001";

/// `openssl ec -pubout -outform DER` of the RFC 7515 A.3 key (built from its `d`).
const OPENSSL_P256_SPKI: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200047fcdce2770f6c45d4183cbee6fdb4b7b580733357be9ef13bacf6e3c7bd15445c7f144cd1bbd9b7e872cdfedb9eeb9f4b3695d6ea90b24ad8a4623288588e5ad";

fn key_set(keys: serde_json::Value, origin: KeyOrigin) -> KeySet {
    KeySet::parse(json!({ "keys": keys }).to_string().as_bytes(), origin).unwrap()
}

/// A backend that checks the way Envoy does, with other code than meshgate's: the DER
/// public key through the `rsa` crate's SPKI parser or as a SEC1 point, the ECDSA
/// signature through `ecdsa`'s DER parser. It records every call.
#[derive(Default)]
struct Reference {
    calls: RefCell<Vec<(HashFunction, usize)>>,
}

impl Reference {
    fn check(check: &SignatureCheck<'_>) -> bool {
        if let Ok(key) = RsaPublicKey::from_public_key_der(check.public_key) {
            let alg = match check.hash {
                HashFunction::Sha256 => Rsa::rs256(),
                HashFunction::Sha384 => Rsa::rs384(),
                HashFunction::Sha512 => Rsa::rs512(),
            };
            let Ok(signature) =
                <Rsa as jwt_compact::Algorithm>::Signature::try_from_slice(check.signature)
            else {
                return false;
            };
            return alg.verify_signature(&signature, &key, check.message);
        }
        if let Some(valid) = Reference::check_p384_p521(check) {
            return valid;
        }
        let prefix = hex(&OPENSSL_P256_SPKI[..52]);
        let Some(point) = check.public_key.strip_prefix(prefix.as_slice()) else {
            return false;
        };
        let key = EcVerifyingKey::from_sec1_bytes(point).unwrap();
        let Ok(signature) = EcSignature::from_der(check.signature) else {
            return false;
        };
        check.hash == HashFunction::Sha256
            && Es256.verify_signature(&signature, &key, check.message)
    }
}

impl Reference {
    /// P-384 and P-521 keys through the `spki` crate's parser and the curve crates' DER
    /// signature parsers; `None` for other keys.
    fn check_p384_p521(check: &SignatureCheck<'_>) -> Option<bool> {
        use p384::ecdsa::signature::Verifier as _;
        use x509_cert::der::{asn1::ObjectIdentifier, Decode as _};
        let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(check.public_key).ok()?;
        let curve: ObjectIdentifier = spki.algorithm.parameters?.decode_as().ok()?;
        let point = spki.subject_public_key.raw_bytes();
        Some(match curve.to_string().as_str() {
            "1.3.132.0.34" => {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
                check.hash == HashFunction::Sha384
                    && p384::ecdsa::Signature::from_der(check.signature)
                        .is_ok_and(|sig| key.verify(check.message, &sig).is_ok())
            }
            "1.3.132.0.35" => {
                let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
                check.hash == HashFunction::Sha512
                    && p521::ecdsa::Signature::from_der(check.signature)
                        .is_ok_and(|sig| key.verify(check.message, &sig).is_ok())
            }
            _ => return None,
        })
    }
}

impl SignatureBackend for Reference {
    fn verify(&self, check: &SignatureCheck<'_>) -> Result<bool, BackendError> {
        self.calls
            .borrow_mut()
            .push((check.hash, check.signature.len()));
        Ok(Reference::check(check))
    }
}

/// A backend with a fixed answer.
struct Fixed(Result<bool, BackendError>);

impl SignatureBackend for Fixed {
    fn verify(&self, _: &SignatureCheck<'_>) -> Result<bool, BackendError> {
        self.0.clone()
    }
}

fn call_failed() -> BackendError {
    BackendError::Call {
        function: VERIFY_SIGNATURE,
        status: "InternalFailure".into(),
    }
}

/// A backend that always hashes with SHA-256, whatever it is asked.
struct Sha256Only;

impl SignatureBackend for Sha256Only {
    fn verify(&self, check: &SignatureCheck<'_>) -> Result<bool, BackendError> {
        Ok(Reference::check(&SignatureCheck {
            hash: HashFunction::Sha256,
            ..*check
        }))
    }
}

#[test]
fn verify_arguments_encode_to_exact_bytes() {
    let long = vec![0x61; 200];
    let cases: [(SignatureCheck<'_>, Vec<u8>); 3] = [
        (
            SignatureCheck {
                hash: HashFunction::Sha256,
                public_key: &[0x30, 0x01],
                signature: &[0xff],
                message: b"a.b",
            },
            [
                &[0x0a, 0x06][..],
                b"sha256",
                &[0x12, 0x02, 0x30, 0x01],
                &[0x1a, 0x01, 0xff],
                &[0x22, 0x03],
                b"a.b",
            ]
            .concat(),
        ),
        (
            // A length of 200 takes a two-byte varint (0xc8 0x01).
            SignatureCheck {
                hash: HashFunction::Sha512,
                public_key: &[0x01],
                signature: &[0x02],
                message: &long,
            },
            [
                &[0x0a, 0x06][..],
                b"sha512",
                &[0x12, 0x01, 0x01, 0x1a, 0x01, 0x02, 0x22, 0xc8, 0x01],
                &long,
            ]
            .concat(),
        ),
        (
            // proto3 leaves empty fields out.
            SignatureCheck {
                hash: HashFunction::Sha384,
                public_key: &[],
                signature: &[],
                message: &[],
            },
            [&[0x0a, 0x06][..], b"sha384"].concat(),
        ),
    ];
    for (check, expected) in cases {
        assert_eq!(encode_verify_arguments(&check), expected, "{check:?}");
    }
}

#[test]
fn varints_encode_minimally() {
    let cases: [(u64, &[u8]); 6] = [
        (0, &[0x00]),
        (1, &[0x01]),
        (127, &[0x7f]),
        (128, &[0x80, 0x01]),
        (300, &[0xac, 0x02]),
        (
            u64::MAX,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
    ];
    for (value, expected) in cases {
        let mut out = Vec::new();
        put_varint(value, &mut out);
        assert_eq!(out, expected, "{value}");
        let mut input = out.as_slice();
        assert_eq!(take_varint(&mut input), Ok(value));
        assert!(input.is_empty());
    }
}

#[test]
fn verify_results_decode() {
    let ok = |valid: bool, error: &str| {
        Ok(VerifyResult {
            valid,
            error: error.to_owned(),
        })
    };
    let cases: Vec<(&[u8], Result<VerifyResult, ProtobufError>)> = vec![
        // What Envoy sends for a good signature: `result: true`, empty error left out.
        (&[0x08, 0x01], ok(true, "")),
        // An empty message is all defaults: `result: false`.
        (&[], ok(false, "")),
        (b"\x12\x05nope!", ok(false, "nope!")),
        (b"\x08\x00\x12\x03abc", ok(false, "abc")),
        // Field order doesn't matter; any non-zero varint is true.
        (b"\x12\x01x\x08\x02", ok(true, "x")),
        // The last occurrence wins.
        (&[0x08, 0x01, 0x08, 0x00], ok(false, "")),
        // Unknown fields of every wire type are skipped.
        (
            &[
                0x18, 0x96, 0x01, // field 3, varint
                0x21, 1, 2, 3, 4, 5, 6, 7, 8, // field 4, fixed64
                0x2a, 0x02, 0xaa, 0xbb, // field 5, bytes
                0x35, 1, 2, 3, 4, // field 6, fixed32
                0x08, 0x01,
            ],
            ok(true, ""),
        ),
        // Truncated and malformed messages are errors, never a verdict.
        (&[0x08], Err(ProtobufError::Truncated)),
        (b"\x12\x05ab", Err(ProtobufError::Truncated)),
        (&[0x21, 1, 2, 3], Err(ProtobufError::Truncated)),
        (&[0x08, 0x80], Err(ProtobufError::Truncated)),
        (
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            Err(ProtobufError::VarintTooLong),
        ),
        (
            &[0x0b, 0x0c],
            Err(ProtobufError::WireType {
                field: 1,
                wire_type: 3,
            }),
        ),
        // `result` with the wrong wire type is not a result.
        (
            &[0x0f],
            Err(ProtobufError::WireType {
                field: 1,
                wire_type: 7,
            }),
        ),
        // A length beyond the buffer (or usize) is truncation, not a panic.
        (
            &[
                0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            Err(ProtobufError::Truncated),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(decode_verify_result(bytes), expected, "{bytes:02x?}");
    }
}

#[test]
fn rsa_spki_matches_openssl_and_the_rsa_crate() {
    let set = key_set(
        json!([
            public_jwk(&rsa_private(), "rfc7515", None),
            other_rsa_public()
        ]),
        KeyOrigin::Remote,
    );
    let ours: Vec<&[u8]> = set
        .keys
        .iter()
        .map(|k| k.public_key_der.as_deref().unwrap())
        .collect();
    assert_eq!(ours[0], hex(OPENSSL_RSA_SPKI));
    for (key, der) in set.keys.iter().zip(ours) {
        let KeyMaterial::Rsa(rsa) = &key.material else {
            panic!("not RSA")
        };
        assert_eq!(
            der,
            rsa.rust.to_public_key_der().unwrap().as_bytes(),
            "{key:?}"
        );
    }
}

#[test]
fn p256_spki_matches_openssl() {
    let set = key_set(
        json!([public_jwk(&ec_private(), "ec", None)]),
        KeyOrigin::Remote,
    );
    assert_eq!(
        set.keys[0].public_key_der.as_deref(),
        Some(hex(OPENSSL_P256_SPKI).as_slice())
    );
}

#[test]
fn only_rsa_and_p256_keys_get_a_der_form() {
    let set = key_set(
        json!([
            public_jwk(&rsa_private(), "rsa", None),
            public_jwk(&ec_private(), "ec", None),
            public_jwk(&ed25519_private(), "ed", None),
            hs_key_jwk("HS256"),
        ]),
        KeyOrigin::Local,
    );
    let has_der: Vec<bool> = set
        .keys
        .iter()
        .map(|k| k.public_key_der.is_some())
        .collect();
    assert_eq!(has_der, [true, true, false, false]);
}

/// The order n of the P-256 group, big-endian.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

fn n_minus(k: u8) -> [u8; 32] {
    let mut out = N;
    out[31] -= k;
    out
}

fn raw(r: &[u8], s: &[u8]) -> Vec<u8> {
    [r, s].concat()
}

#[test]
fn es256_signatures_convert_to_der() {
    let mut small = [0u8; 32];
    small[31] = 0x05;
    // 0x00 0x80 ...: the zero stays, as the sign byte.
    let mut zero_then_high = [0u8; 32];
    zero_then_high[1] = 0x80;
    // 0x00 0x00 0x80 ...: one zero goes, one stays.
    let mut zeros_then_high = [0u8; 32];
    zeros_then_high[2] = 0x80;
    let mut low = [0x11u8; 32];
    low[0] = 0x7f;
    type Case = (Vec<u8>, Result<Vec<u8>, EcdsaSignatureError>);
    let cases: Vec<Case> = vec![
        // Both high bits set: each INTEGER gets a zero byte.
        (
            raw(&n_minus(1), &n_minus(2)),
            Ok([
                &[0x30, 0x46, 0x02, 0x21, 0x00][..],
                &n_minus(1),
                &[0x02, 0x21, 0x00],
                &n_minus(2),
            ]
            .concat()),
        ),
        // High bit clear: no padding.
        (
            raw(&low, &low),
            Ok([&[0x30, 0x44, 0x02, 0x20][..], &low, &[0x02, 0x20], &low].concat()),
        ),
        // Leading zeros are stripped.
        (
            raw(&small, &low),
            Ok([&[0x30, 0x25, 0x02, 0x01, 0x05, 0x02, 0x20][..], &low].concat()),
        ),
        (
            raw(&low, &zero_then_high),
            Ok([
                &[0x30, 0x44, 0x02, 0x20][..],
                &low,
                &[0x02, 0x20],
                &zero_then_high,
            ]
            .concat()),
        ),
        (
            raw(&zeros_then_high, &low),
            Ok([
                &[0x30, 0x43, 0x02, 0x1f][..],
                &zeros_then_high[1..],
                &[0x02, 0x20],
                &low,
            ]
            .concat()),
        ),
        // Not in [1, n-1]: refused, never converted.
        (
            raw(&[0; 32], &low),
            Err(EcdsaSignatureError::NonCanonical { alg: "ES256" }),
        ),
        (
            raw(&low, &[0; 32]),
            Err(EcdsaSignatureError::NonCanonical { alg: "ES256" }),
        ),
        (
            raw(&N, &low),
            Err(EcdsaSignatureError::NonCanonical { alg: "ES256" }),
        ),
        (
            raw(&low, &N),
            Err(EcdsaSignatureError::NonCanonical { alg: "ES256" }),
        ),
        (
            raw(&[0xff; 32], &low),
            Err(EcdsaSignatureError::NonCanonical { alg: "ES256" }),
        ),
        (
            raw(&low, &[0xff; 32]),
            Err(EcdsaSignatureError::NonCanonical { alg: "ES256" }),
        ),
        // Wrong sizes (a DER signature where raw belongs, too).
        (
            low.to_vec(),
            Err(EcdsaSignatureError::Length {
                alg: "ES256",
                len: 32,
                expected: 64,
            }),
        ),
        (
            vec![],
            Err(EcdsaSignatureError::Length {
                alg: "ES256",
                len: 0,
                expected: 64,
            }),
        ),
        (
            raw(&low, &low[..31]),
            Err(EcdsaSignatureError::Length {
                alg: "ES256",
                len: 63,
                expected: 64,
            }),
        ),
        (
            [&low[..], &low, &[1]].concat(),
            Err(EcdsaSignatureError::Length {
                alg: "ES256",
                len: 65,
                expected: 64,
            }),
        ),
        (
            vec![0x30; 72],
            Err(EcdsaSignatureError::Length {
                alg: "ES256",
                len: 72,
                expected: 64,
            }),
        ),
    ];
    for (input, expected) in cases {
        let got = es256_signature_der(&input);
        assert_eq!(got, expected, "{input:02x?}");
    }
}

#[test]
fn embedded_vectors_verify_in_rust() {
    let set = key_set(
        json!([
            public_jwk(&rsa_private(), "rsa", None),
            public_jwk(&ec_private(), "ec", None)
        ]),
        KeyOrigin::Remote,
    );
    let cases = [
        (RFC7515_A2, "RS256"),
        (RS384_A2_KEY, "RS384"),
        (RS512_A2_KEY, "RS512"),
        (RFC7515_A3, "ES256"),
    ];
    for (token, alg) in cases {
        let parsed = UnverifiedToken::parse(token, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        assert_eq!(parsed.algorithm.name(), alg);
        parsed.verify(&set).unwrap();
        // And in the form a backend gets.
        let key = set
            .candidates(None)
            .find(|k| k.allows(parsed.algorithm))
            .unwrap();
        let HostForm::Check {
            hash,
            public_key,
            signature,
        } = host_form(parsed.algorithm, key, parsed.signature())
        else {
            panic!("{alg} not handled")
        };
        assert!(Reference::check(&SignatureCheck {
            hash,
            public_key,
            signature: &signature,
            message: parsed.signing_input().as_bytes(),
        }));
    }
}

#[test]
fn self_test_trusts_only_a_backend_that_gets_it_right() {
    let (reference, yes, no, failing) = (
        Reference::default(),
        Fixed(Ok(true)),
        Fixed(Ok(false)),
        Fixed(Err(call_failed())),
    );
    let cases: Vec<(&dyn SignatureBackend, Result<(), SelfTestError>)> = vec![
        (&reference, Ok(())),
        (&yes, Err(SelfTestError::AcceptsInvalid { alg: "RS256" })),
        (&no, Err(SelfTestError::RejectsValid { alg: "RS256" })),
        (&failing, Err(SelfTestError::Unavailable(call_failed()))),
        (
            &Sha256Only,
            Err(SelfTestError::RejectsValid { alg: "RS384" }),
        ),
    ];
    for (backend, expected) in cases {
        assert_eq!(self_test(backend), expected);
    }
    // Ten calls: six valid signatures, four of them tampered with as well.
    let reference = Reference::default();
    self_test(&reference).unwrap();
    let hashes: Vec<HashFunction> = reference.calls.borrow().iter().map(|c| c.0).collect();
    use HashFunction::*;
    assert_eq!(
        hashes,
        [Sha256, Sha256, Sha384, Sha512, Sha256, Sha256, Sha384, Sha384, Sha512, Sha512]
    );
}

fn b64_decode(part: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(part).unwrap()
}

#[test]
fn backend_checks_rs_and_es256_and_rust_the_rest() {
    let set = key_set(
        json!([
            public_jwk(&rsa_private(), "rsa", None),
            public_jwk(&ec_private(), "ec", None),
            public_jwk(&ed25519_private(), "ed", None),
            hs_key_jwk("HS256"),
        ]),
        KeyOrigin::Local,
    );
    let claims = json!({"iss": "i", "sub": "s"});
    let cases = [
        ("RS256", "rsa", Some((HashFunction::Sha256, 256))),
        ("RS384", "rsa", Some((HashFunction::Sha384, 256))),
        ("RS512", "rsa", Some((HashFunction::Sha512, 256))),
        // DER: 6 to 8 bytes of framing around two 32-byte scalars (shorter with leading zeros).
        ("ES256", "ec", Some((HashFunction::Sha256, 0))),
        ("PS256", "rsa", None),
        ("PS512", "rsa", None),
        ("EdDSA", "ed", None),
        ("HS256", "hs", None),
    ];
    let key = |kid: &str| match kid {
        "rsa" => rsa_private(),
        "ec" => ec_private(),
        "ed" => ed25519_private(),
        _ => hs_key_jwk("HS256"),
    };
    for (alg, kid, foreign) in cases {
        let token = sign(alg, &key(kid), &json!({"alg": alg, "kid": kid}), &claims);
        let parsed = UnverifiedToken::parse(&token, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        let backend = Reference::default();
        let mut checks = SignatureChecks::default();
        let verified = parsed.verify_using(&set, Some(&backend), &mut checks);
        assert_eq!(verified.unwrap().kid.as_deref(), Some(kid), "{alg}");
        let calls = backend.calls.borrow().clone();
        match foreign {
            Some((hash, len)) => {
                assert_eq!(calls.len(), 1, "{alg}");
                assert_eq!(calls[0].0, hash, "{alg}");
                if len > 0 {
                    assert_eq!(calls[0].1, len, "{alg}");
                } else {
                    assert!((8..=72).contains(&calls[0].1), "{alg}: {}", calls[0].1);
                }
                let expected = SignatureChecks {
                    foreign: 1,
                    ..Default::default()
                };
                assert_eq!(checks, expected, "{alg}");
            }
            None => {
                assert!(calls.is_empty(), "{alg} went to the backend");
                let expected = SignatureChecks {
                    rust: 1,
                    ..Default::default()
                };
                assert_eq!(checks, expected, "{alg}");
            }
        }
    }
}

#[test]
fn backend_answers_and_failures() {
    let set = key_set(
        json!([
            public_jwk(&rsa_private(), "rsa", None),
            public_jwk(&ec_private(), "ec", None)
        ]),
        KeyOrigin::Remote,
    );
    let claims = json!({"iss": "i"});
    let rs = sign(
        "RS256",
        &rsa_private(),
        &json!({"alg": "RS256", "kid": "rsa"}),
        &claims,
    );
    let es = sign(
        "ES256",
        &ec_private(),
        &json!({"alg": "ES256", "kid": "ec"}),
        &claims,
    );
    let tamper = |token: &str| {
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut sig = b64_decode(sig);
        sig[5] ^= 0x01;
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    };
    let checks = |foreign, rust, foreign_failed| SignatureChecks {
        foreign,
        rust,
        foreign_failed,
    };
    type Case<'a> = (
        &'a str,
        String,
        Fixed,
        Result<(), TokenError>,
        SignatureChecks,
    );
    let cases: Vec<Case<'_>> = vec![
        // The backend's "no" is final, even for a signature Rust would accept.
        (
            "rs no",
            rs.clone(),
            Fixed(Ok(false)),
            Err(TokenError::BadSignature),
            checks(1, 0, 0),
        ),
        (
            "es no",
            es.clone(),
            Fixed(Ok(false)),
            Err(TokenError::BadSignature),
            checks(1, 0, 0),
        ),
        (
            "rs yes",
            rs.clone(),
            Fixed(Ok(true)),
            Ok(()),
            checks(1, 0, 0),
        ),
        // A failed call is no answer: Rust decides, both ways.
        (
            "rs failed, good",
            rs.clone(),
            Fixed(Err(call_failed())),
            Ok(()),
            checks(0, 1, 1),
        ),
        (
            "es failed, good",
            es.clone(),
            Fixed(Err(call_failed())),
            Ok(()),
            checks(0, 1, 1),
        ),
        (
            "rs failed, tampered",
            tamper(&rs),
            Fixed(Err(call_failed())),
            Err(TokenError::BadSignature),
            checks(0, 1, 1),
        ),
        (
            "es failed, tampered",
            tamper(&es),
            Fixed(Err(call_failed())),
            Err(TokenError::BadSignature),
            checks(0, 1, 1),
        ),
    ];
    for (name, token, backend, expected, expected_checks) in cases {
        let parsed = UnverifiedToken::parse(&token, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        let mut got = SignatureChecks::default();
        let result = parsed
            .verify_using(&set, Some(&backend), &mut got)
            .map(|_| ());
        assert_eq!(result, expected, "{name}");
        assert_eq!(got, expected_checks, "{name}");
    }
}

#[test]
fn malformed_signatures_never_reach_the_backend() {
    let set = key_set(
        json!([
            public_jwk(&rsa_private(), "rsa", None),
            public_jwk(&ec_private(), "ec", None)
        ]),
        KeyOrigin::Remote,
    );
    let claims = json!({"iss": "i"});
    let rs = sign(
        "RS256",
        &rsa_private(),
        &json!({"alg": "RS256", "kid": "rsa"}),
        &claims,
    );
    let es = sign(
        "ES256",
        &ec_private(),
        &json!({"alg": "ES256", "kid": "ec"}),
        &claims,
    );
    let with_signature = |token: &str, signature: &[u8]| {
        let (input, _) = token.rsplit_once('.').unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    };
    let es_sig = b64_decode(es.rsplit_once('.').unwrap().1);
    let rs_sig = b64_decode(rs.rsplit_once('.').unwrap().1);
    let cases = [
        // s replaced by s + n is the same signature to naive modular code: refused.
        ("ES256 s = n", with_signature(&es, &raw(&es_sig[..32], &N))),
        (
            "ES256 r = 0",
            with_signature(&es, &raw(&[0; 32], &es_sig[32..])),
        ),
        (
            "ES256 DER",
            with_signature(
                &es,
                EcSignature::try_from(es_sig.as_slice())
                    .unwrap()
                    .to_der()
                    .as_bytes(),
            ),
        ),
        ("ES256 short", with_signature(&es, &es_sig[..63])),
        ("RS256 short", with_signature(&rs, &rs_sig[1..])),
        (
            "RS256 long",
            with_signature(&rs, &[&[0][..], &rs_sig].concat()),
        ),
    ];
    for (name, token) in cases {
        let parsed = UnverifiedToken::parse(&token, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        let backend = Fixed(Ok(true));
        let mut checks = SignatureChecks::default();
        let result = parsed.verify_using(&set, Some(&backend), &mut checks);
        assert_eq!(result.unwrap_err(), TokenError::BadSignature, "{name}");
        let expected = SignatureChecks {
            rust: 1,
            ..Default::default()
        };
        assert_eq!(
            checks, expected,
            "{name}: the backend (which says yes to all) was asked"
        );
    }
}

#[test]
fn decisions_report_who_checked() {
    use crate::decision::authorize::{decide, Credential};
    use crate::{DenyCode, KeyStore, Policy, Request, TokenCache, UnixTime};

    let policy = Policy::from_json(
        json!({
            "providers": {"idp": {"issuer": "https://idp", "local_jwks": {"inline": {"keys": [public_jwk(&rsa_private(), "rsa", None)]}}}},
            "rules": [{"id": "all", "action": "allow", "paths": ["/**"]}]
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let keys = KeyStore::new(&policy);
    let token = sign(
        "RS256",
        &rsa_private(),
        &json!({"alg": "RS256", "kid": "rsa"}),
        &json!({"iss": "https://idp", "sub": "a", "exp": 2_000_000_000}),
    );
    let headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
    let req = Request {
        method: "GET",
        authority: "h",
        path: "/x",
        headers: &headers,
    };
    let now = 1_700_000_000;

    let rust = decide(
        &policy,
        Credential::token(&keys, &mut TokenCache::new(0)),
        NO_CATALOG,
        &req,
        UnixTime::from_secs(now),
    );
    assert!(rust.decision.is_allowed());
    assert_eq!(rust.signature_checks.rust, 1);

    let reference = Reference::default();
    let mut cache = TokenCache::new(16);
    let foreign = decide(
        &policy,
        Credential::token_using(&keys, &mut cache, &reference),
        NO_CATALOG,
        &req,
        UnixTime::from_secs(now),
    );
    assert!(foreign.decision.is_allowed());
    assert_eq!(foreign.signature_checks.foreign, 1);
    // A cache hit checks nothing.
    let again = decide(
        &policy,
        Credential::token_using(&keys, &mut cache, &reference),
        NO_CATALOG,
        &req,
        UnixTime::from_secs(now),
    );
    assert_eq!(again.cache_hit, Some(true));
    assert_eq!(again.signature_checks, SignatureChecks::default());

    let no = Fixed(Ok(false));
    let denied = decide(
        &policy,
        Credential::token_using(&keys, &mut TokenCache::new(0), &no),
        NO_CATALOG,
        &req,
        UnixTime::from_secs(now),
    );
    assert_eq!(
        denied.decision.deny_code(),
        Some(DenyCode::SignatureInvalid)
    );
    assert_eq!(denied.signature_checks.foreign, 1);
}

#[test]
fn es384_and_es512_vectors_verify_in_rust_and_in_the_backend_form() {
    let set = key_set(
        json!([
            public_jwk(&ec384_private(), "ec384", None),
            public_jwk(&ec521_private(), "bilbo.baggins@hobbiton.example", None)
        ]),
        KeyOrigin::Remote,
    );
    for (token, alg) in [
        (ES384_TEST_KEY, Algorithm::Es384),
        (RFC7520_4_3, Algorithm::Es512),
    ] {
        let (message, signature) = token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let key = set.candidates(None).find(|k| k.allows(alg)).unwrap();
        assert!(crate::token::jws::verify_with(
            alg,
            &key.material,
            message,
            &signature
        ));
        let mut tampered = message.to_owned();
        tampered.push('x');
        assert!(!crate::token::jws::verify_with(
            alg,
            &key.material,
            &tampered,
            &signature
        ));
        let HostForm::Check {
            hash,
            public_key,
            signature: der,
        } = host_form(alg, key, &signature)
        else {
            panic!("{alg:?} not handled")
        };
        assert!(Reference::check(&SignatureCheck {
            hash,
            public_key,
            signature: &der,
            message: message.as_bytes(),
        }));
    }
}

#[test]
fn es384_and_es512_tokens_signed_here_verify_only_with_their_key() {
    let set = key_set(
        json!([
            public_jwk(&ec384_private(), "p384", None),
            public_jwk(&ec521_private(), "p521", None),
            public_jwk(&ec_private(), "p256", None)
        ]),
        KeyOrigin::Remote,
    );
    let claims = json!({"iss": "joe", "exp": 4_102_444_800_i64});
    for (alg, private, kid) in [
        ("ES384", ec384_private(), "p384"),
        ("ES512", ec521_private(), "p521"),
    ] {
        let token = sign(alg, &private, &json!({"alg": alg, "kid": kid}), &claims);
        let parsed = UnverifiedToken::parse(&token, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        assert_eq!(parsed.verify(&set).unwrap().kid.as_deref(), Some(kid));
        // Through the backend (Envoy's form): one foreign check, no Rust.
        let mut checks = SignatureChecks::default();
        parsed
            .verify_using(&set, Some(&Reference::default()), &mut checks)
            .unwrap();
        assert_eq!((checks.foreign, checks.rust), (1, 0), "{alg}");
        // The other curve's key under the same kid is pinned away.
        let wrong = sign(alg, &private, &json!({"alg": alg, "kid": "p256"}), &claims);
        let parsed = UnverifiedToken::parse(&wrong, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        assert!(matches!(
            parsed.verify(&set),
            Err(TokenError::AlgorithmNotPinned { .. })
        ));
    }
}

#[test]
fn ecdsa_signatures_of_every_curve_are_refused_when_malformed() {
    for (alg, size) in [
        (Algorithm::Es256, 32),
        (Algorithm::Es384, 48),
        (Algorithm::Es512, 66),
    ] {
        let expected = size * 2;
        for len in [0, expected - 1, expected + 1, 72] {
            assert_eq!(
                ecdsa_signature_der(alg, &vec![1; len]),
                Err(EcdsaSignatureError::Length {
                    alg: alg.name(),
                    len,
                    expected
                })
            );
        }
        let zero = [vec![0; size], vec![1; size]].concat();
        let high = [vec![1; size], vec![0xff; size]].concat();
        for raw in [zero, high] {
            assert_eq!(
                ecdsa_signature_der(alg, &raw),
                Err(EcdsaSignatureError::NonCanonical { alg: alg.name() })
            );
        }
        assert!(ecdsa_signature_der(alg, &vec![1; expected]).is_ok());
    }
    assert!(matches!(
        ecdsa_signature_der(Algorithm::Rs256, &[1; 64]),
        Err(EcdsaSignatureError::NotEcdsa { .. })
    ));
}
