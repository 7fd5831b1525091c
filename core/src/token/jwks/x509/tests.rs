use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rsa::pkcs1::EncodeRsaPublicKey as _;
use serde_json::{json, Value};
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::der::asn1::{Any, BitString, ObjectIdentifier, UtcTime};
use x509_cert::der::Encode as _;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

use crate::testing::{ec384_private, ec521_private, ec_private, public_jwk, rsa_private, sign};
use crate::token::alg::Algorithm;
use crate::token::jwks::{JwksError, KeyOrigin, KeySet, KeySkipped, MAX_KEYS};
use crate::token::jws::{UnverifiedToken, DEFAULT_MAX_TOKEN_BYTES};

const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";

fn oid(text: &str) -> ObjectIdentifier {
    ObjectIdentifier::new(text).unwrap()
}

/// A certificate around `spki`. Its signature is not valid: meshgate reads only the
/// public key (the document's trust comes from where it is fetched), so none is needed.
fn certificate_pem(spki: SubjectPublicKeyInfoOwned) -> String {
    let at = |s: u64| {
        Time::UtcTime(UtcTime::from_unix_duration(std::time::Duration::from_secs(s)).unwrap())
    };
    let signature_algorithm = AlgorithmIdentifierOwned {
        oid: oid(SHA256_WITH_RSA),
        parameters: Some(Any::null()),
    };
    let certificate = Certificate {
        tbs_certificate: TbsCertificate {
            version: Version::V3,
            serial_number: SerialNumber::new(&[1]).unwrap(),
            signature: signature_algorithm.clone(),
            issuer: Name::default(),
            validity: Validity {
                not_before: at(1_700_000_000),
                not_after: at(1_800_000_000),
            },
            subject: Name::default(),
            subject_public_key_info: spki,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: None,
        },
        signature_algorithm,
        signature: BitString::from_bytes(&[0; 8]).unwrap(),
    };
    pem(&certificate.to_der().unwrap())
}

fn pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

fn rsa_spki(private: &Value) -> SubjectPublicKeyInfoOwned {
    let n = URL_SAFE_NO_PAD
        .decode(private["n"].as_str().unwrap())
        .unwrap();
    let e = URL_SAFE_NO_PAD
        .decode(private["e"].as_str().unwrap())
        .unwrap();
    let key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&n),
        rsa::BigUint::from_bytes_be(&e),
    )
    .unwrap();
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: oid(RSA_ENCRYPTION),
            parameters: Some(Any::null()),
        },
        subject_public_key: BitString::from_bytes(key.to_pkcs1_der().unwrap().as_bytes()).unwrap(),
    }
}

fn ec_spki(curve: &str, private: &Value) -> SubjectPublicKeyInfoOwned {
    let coordinate = |c: &str| {
        URL_SAFE_NO_PAD
            .decode(private[c].as_str().unwrap())
            .unwrap()
    };
    let point = [vec![0x04], coordinate("x"), coordinate("y")].concat();
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: oid(EC_PUBLIC_KEY),
            parameters: Some(Any::from(&oid(curve))),
        },
        subject_public_key: BitString::from_bytes(&point).unwrap(),
    }
}

fn parse(document: &Value) -> Result<KeySet, JwksError> {
    KeySet::parse(document.to_string().as_bytes(), KeyOrigin::Remote)
}

/// Certificates made here from the test keys: a token each key signs verifies with the
/// key read from its certificate, which is pinned by key type and curve.
#[test]
fn keys_from_certificates_verify_tokens_of_their_private_keys() {
    use Algorithm::*;
    let cases = [
        (
            "rsa-kid",
            rsa_spki(&rsa_private()),
            rsa_private(),
            "RS256",
            &[Rs256, Rs384, Rs512, Ps256, Ps384, Ps512][..],
        ),
        (
            "p256-kid",
            ec_spki("1.2.840.10045.3.1.7", &ec_private()),
            ec_private(),
            "ES256",
            &[Es256][..],
        ),
        (
            "p384-kid",
            ec_spki("1.3.132.0.34", &ec384_private()),
            ec384_private(),
            "ES384",
            &[Es384][..],
        ),
        (
            "p521-kid",
            ec_spki("1.3.132.0.35", &ec521_private()),
            ec521_private(),
            "ES512",
            &[Es512][..],
        ),
    ];
    let mut document = serde_json::Map::new();
    for (kid, spki, _, _, _) in &cases {
        document.insert((*kid).into(), json!(certificate_pem(spki.clone())));
    }
    let set = parse(&Value::Object(document)).unwrap();
    assert_eq!(set.keys.len(), 4);
    assert!(set.skipped.is_empty());
    for (kid, _, private, alg, pinned) in cases {
        let key = set.candidates(Some(kid)).next().unwrap();
        assert_eq!(key.algorithms, pinned, "{kid}");
        assert!(key.public_key_der.is_some(), "{kid}");
        let token = sign(
            alg,
            &private,
            &json!({"alg": alg, "kid": kid}),
            &json!({"iss": "g"}),
        );
        let parsed = UnverifiedToken::parse(&token, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        assert_eq!(parsed.verify(&set).unwrap().kid.as_deref(), Some(kid));
    }
}

/// Certificates as a real X.509 library writes them (Python's `cryptography`, self-signed
/// RSA-2048 and P-256), in the layout of Google's `securetoken` endpoint.
#[test]
fn checked_in_google_style_sample_parses() {
    let document = include_bytes!("../../../../tests/x509/google_style.json");
    let set = KeySet::parse(document, KeyOrigin::Remote).unwrap();
    let kids: Vec<&str> = set.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
    assert_eq!(
        kids,
        ["3f1a0c9e5d2b7a4c6e8f1d3b5a7c9e0f2d4b6a8c", "ec-p256-sample"]
    );
    assert!(set.keys[0].allows(Algorithm::Rs256));
    assert!(set.keys[1].allows(Algorithm::Es256));
}

#[test]
fn bad_certificates_are_skipped_with_their_kid_and_reason() {
    let good = certificate_pem(rsa_spki(&rsa_private()));
    let der = STANDARD
        .decode(
            good.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let small = {
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let public = key.to_public_key();
        SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: oid(RSA_ENCRYPTION),
                parameters: Some(Any::null()),
            },
            subject_public_key: BitString::from_bytes(public.to_pkcs1_der().unwrap().as_bytes())
                .unwrap(),
        }
    };
    let ed25519 = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: oid("1.3.101.112"),
            parameters: None,
        },
        subject_public_key: BitString::from_bytes(&[7; 32]).unwrap(),
    };
    let mut secp256k1 = ec_spki("1.3.132.0.10", &ec_private());
    secp256k1.algorithm.parameters = Some(Any::from(&oid("1.3.132.0.10")));
    let mut off_curve = ec_spki("1.2.840.10045.3.1.7", &ec_private());
    off_curve.subject_public_key =
        BitString::from_bytes(&[[4].as_slice(), &[1; 64]].concat()).unwrap();
    type Check = fn(&KeySkipped) -> bool;
    let unparseable: Check = |s| matches!(s, KeySkipped::Unparseable { .. });
    let unsupported: Check = |s| matches!(s, KeySkipped::UnsupportedKeyType { .. });
    let cases: Vec<(&str, String, Check)> = vec![
        ("empty", String::new(), unparseable),
        ("not-pem", String::from("MIIC7jCCAdagAwIBAgIU"), unparseable),
        (
            "truncated-pem",
            good[..good.len() / 2].to_owned(),
            unparseable,
        ),
        ("two-blocks", format!("{good}{good}"), unparseable),
        ("bad-base64", good.replacen("MII", "M!I", 1), unparseable),
        ("truncated-der", pem(&der[..der.len() - 10]), unparseable),
        (
            "trailing-der",
            pem(&[der.as_slice(), &[0]].concat()),
            unparseable,
        ),
        (
            "public-key-not-cert",
            good.replace("CERTIFICATE", "PUBLIC KEY"),
            unparseable,
        ),
        ("rsa-1024", certificate_pem(small), |s| {
            matches!(s, KeySkipped::RsaTooSmall { bits: 1024, .. })
        }),
        ("ed25519", certificate_pem(ed25519), unsupported),
        ("secp256k1", certificate_pem(secp256k1), unsupported),
        ("off-curve", certificate_pem(off_curve), unparseable),
    ];
    for (kid, value, check) in cases {
        let result = parse(&json!({ kid: value, "good": good }));
        let set = result.unwrap_or_else(|e| panic!("{kid}: {e}"));
        assert_eq!(set.keys.len(), 1, "{kid}");
        let [skipped] = set.skipped.as_slice() else {
            panic!("{kid}: {:?}", set.skipped)
        };
        assert!(check(skipped), "{kid}: {skipped:?}");
        assert!(
            skipped.to_string().contains(&format!("`{kid}`")),
            "{skipped}"
        );
    }
}

#[test]
fn document_shapes() {
    let good = certificate_pem(rsa_spki(&rsa_private()));
    let too_many: serde_json::Map<String, Value> = (0..=MAX_KEYS)
        .map(|i| (i.to_string(), json!(good)))
        .collect();
    type Check = fn(&Result<KeySet, JwksError>) -> bool;
    let cases: Vec<(String, Check)> = vec![
        (json!({"a": good, "b": 1}).to_string(), |r| {
            matches!(r, Err(JwksError::Malformed { .. }))
        }),
        (json!({"a": null}).to_string(), |r| {
            matches!(r, Err(JwksError::Malformed { .. }))
        }),
        (json!([good]).to_string(), |r| {
            matches!(r, Err(JwksError::Malformed { .. }))
        }),
        // A duplicate kid could mean either certificate: refused like duplicate claims.
        (format!("{{\"a\": {0}, \"a\": {0}}}", json!(good)), |r| {
            matches!(r, Err(JwksError::Malformed { .. }))
        }),
        (
            json!({"a": "x"}).to_string(),
            |r| matches!(r, Err(JwksError::NoUsableKeys { skipped }) if skipped.to_string().contains("key `a`")),
        ),
        (Value::Object(too_many).to_string(), |r| {
            matches!(r, Err(JwksError::TooManyKeys { .. }))
        }),
        // A JWKS that also has string members is still a JWKS.
        (
            json!({"keys": [public_jwk(&rsa_private(), "r", None)], "note": "x"}).to_string(),
            |r| r.is_ok(),
        ),
    ];
    for (document, check) in cases {
        let result = KeySet::parse(document.as_bytes(), KeyOrigin::Remote);
        assert!(
            check(&result),
            "{}: {result:?}",
            &document[..document.len().min(80)]
        );
    }
}
