use serde_json::json;

use super::*;
use crate::testing::{self, b64, ec_private, ed25519_private, public_jwk, rsa_private, sign};
use crate::token::jwks::{KeyOrigin, KeySet};
use crate::token::self_test::{RFC7515_A2, RFC7515_A3};

/// RFC 7515 Appendix A.1: the HS256 example.
const RFC7515_A1: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// RFC 8037 Appendix A.4/A.5: the Ed25519 example (its payload is text, not JSON).
const RFC8037_INPUT: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
const RFC8037_SIG: &str =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

fn set(keys: serde_json::Value, origin: KeyOrigin) -> KeySet {
    KeySet::parse(json!({ "keys": keys }).to_string().as_bytes(), origin).unwrap()
}

#[test]
fn rfc_vectors_verify() {
    let cases = [
        (
            RFC7515_A2,
            public_jwk(&rsa_private(), "rsa", None),
            KeyOrigin::Remote,
        ),
        (
            RFC7515_A3,
            public_jwk(&ec_private(), "ec", None),
            KeyOrigin::Remote,
        ),
        (RFC7515_A1, testing::hs_key_jwk("HS256"), KeyOrigin::Local),
    ];
    for (token, key, origin) in cases {
        let keys = set(json!([key]), origin);
        let parsed = UnverifiedToken::parse(token, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        assert_eq!(parsed.claims["iss"], "joe");
        assert_eq!(parsed.claims["exp"], 1_300_819_380);
        parsed.verify(&keys).unwrap();
    }
}

#[test]
fn rfc8037_ed25519_signature() {
    // The RFC's payload is not a JSON object, so check the signature layer directly.
    // (jwt-compact's Ed25519 signer adds noise, so re-signing can't reproduce the RFC bytes.)
    let keys = set(
        json!([public_jwk(&ed25519_private(), "ed", None)]),
        KeyOrigin::Remote,
    );
    let key = keys.keys.first().unwrap();
    let signature = base64::Engine::decode(&URL_SAFE_NO_PAD, RFC8037_SIG).unwrap();
    assert!(verify_with(
        Algorithm::EdDsa,
        &key.material,
        RFC8037_INPUT,
        &signature
    ));
    assert!(!verify_with(
        Algorithm::EdDsa,
        &key.material,
        "eyJhbGciOiJFZERTQSJ9.eA",
        &signature
    ));
    let ours = testing::sign_bytes("EdDSA", &ed25519_private(), RFC8037_INPUT.as_bytes());
    assert!(verify_with(
        Algorithm::EdDsa,
        &key.material,
        RFC8037_INPUT,
        &ours
    ));
}

#[test]
fn tampered_rfc_vectors_fail() {
    let keys = set(
        json!([public_jwk(&rsa_private(), "rsa", None)]),
        KeyOrigin::Remote,
    );
    // Change one claim byte: the signature no longer covers it.
    let (_, rest) = RFC7515_A2.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let forged = format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.{sig}",
        b64(br#"{"iss":"joe","exp":1300819380,"http://example.com/is_root":false}"#)
    );
    let parsed = UnverifiedToken::parse(&forged, DEFAULT_MAX_TOKEN_BYTES).unwrap();
    assert_eq!(parsed.verify(&keys).unwrap_err(), TokenError::BadSignature);
}

/// Every way a token can be wrong, and what meshgate must say about it.
#[test]
fn adversarial_tokens() {
    let rsa = rsa_private();
    let claims = json!({"iss": "https://issuer", "sub": "alice", "exp": 2_000_000_000});
    let rs_header = json!({"alg": "RS256", "kid": "rsa"});
    let good = sign("RS256", &rsa, &rs_header, &claims);
    let (good_input, good_sig) = good.rsplit_once('.').unwrap();
    let rsa_public_jwk = public_jwk(&rsa, "rsa", Some("RS256"));
    // HS256 keyed with the RSA public key's JSON: the classic confusion attack.
    let confusion_key =
        json!({"kty": "oct", "k": b64(rsa_public_jwk.to_string().as_bytes()), "alg": "HS256"});
    let unsigned_none = |alg: &str| {
        format!(
            "{}.{}.",
            b64(json!({"alg": alg}).to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        )
    };
    let keys = set(
        json!([
            rsa_public_jwk,
            public_jwk(&ec_private(), "ec", Some("ES256"))
        ]),
        KeyOrigin::Remote,
    );

    type Check = fn(&TokenError) -> bool;
    let cases: Vec<(&str, String, Check)> = vec![
        ("alg none", unsigned_none("none"), |e| {
            matches!(e, TokenError::AlgorithmNotAccepted { .. })
        }),
        ("alg None", unsigned_none("None"), |e| {
            matches!(e, TokenError::AlgorithmNotAccepted { .. })
        }),
        ("alg NONE", unsigned_none("NONE"), |e| {
            matches!(e, TokenError::AlgorithmNotAccepted { .. })
        }),
        (
            "lowercase alg",
            sign(
                "RS256",
                &rsa,
                &json!({"alg": "rs256", "kid": "rsa"}),
                &claims,
            ),
            |e| matches!(e, TokenError::AlgorithmNotAccepted { .. }),
        ),
        (
            "HS256 signed with the RSA public key",
            sign(
                "HS256",
                &confusion_key,
                &json!({"alg": "HS256", "kid": "rsa"}),
                &claims,
            ),
            |e| matches!(e, TokenError::AlgorithmNotPinned { .. }),
        ),
        (
            "HS256 without kid",
            sign("HS256", &confusion_key, &json!({"alg": "HS256"}), &claims),
            |e| matches!(e, TokenError::NoKeyForAlgorithm { .. }),
        ),
        (
            "RS256 claiming the EC key",
            sign(
                "RS256",
                &rsa,
                &json!({"alg": "RS256", "kid": "ec"}),
                &claims,
            ),
            |e| matches!(e, TokenError::AlgorithmNotPinned { .. }),
        ),
        (
            "PS256 on a key pinned to RS256",
            sign(
                "PS256",
                &rsa,
                &json!({"alg": "PS256", "kid": "rsa"}),
                &claims,
            ),
            |e| matches!(e, TokenError::AlgorithmNotPinned { .. }),
        ),
        (
            "unknown kid",
            sign(
                "RS256",
                &rsa,
                &json!({"alg": "RS256", "kid": "nope"}),
                &claims,
            ),
            |e| matches!(e, TokenError::UnknownKid { .. }),
        ),
        (
            "kid with path characters",
            sign(
                "RS256",
                &rsa,
                &json!({"alg": "RS256", "kid": "../../etc/passwd"}),
                &claims,
            ),
            |e| matches!(e, TokenError::UnknownKid { .. }),
        ),
        (
            "kid with SQL",
            sign(
                "RS256",
                &rsa,
                &json!({"alg": "RS256", "kid": "' OR 1=1 --"}),
                &claims,
            ),
            |e| matches!(e, TokenError::UnknownKid { .. }),
        ),
        (
            "crit header",
            sign(
                "RS256",
                &rsa,
                &json!({"alg": "RS256", "kid": "rsa", "crit": ["exp"], "exp": 1}),
                &claims,
            ),
            |e| matches!(e, TokenError::UnknownCritical { .. }),
        ),
        (
            "signature of another token",
            format!(
                "{}.{good_sig}",
                sign(
                    "RS256",
                    &rsa,
                    &rs_header,
                    &json!({"iss": "https://issuer", "sub": "mallory"})
                )
                .rsplit_once('.')
                .unwrap()
                .0
            ),
            |e| *e == TokenError::BadSignature,
        ),
        ("empty signature", format!("{good_input}."), |e| {
            *e == TokenError::BadSignature
        }),
        ("two parts", good_input.to_owned(), |e| {
            matches!(e, TokenError::NotCompactJws { parts: 2 })
        }),
        ("extra dot", format!("{good}."), |e| {
            matches!(e, TokenError::NotCompactJws { parts: 4 })
        }),
        ("JWE shape", "a.b.c.d.e".to_owned(), |e| {
            matches!(e, TokenError::NotCompactJws { parts: 5 })
        }),
        ("padding", format!("{good_input}.{good_sig}=="), |e| {
            matches!(
                e,
                TokenError::BadBase64 {
                    part: TokenPart::Signature
                }
            )
        }),
        (
            "standard base64 chars",
            format!("{good_input}.{}", good_sig.replace('-', "+")),
            |e| matches!(e, TokenError::BadBase64 { .. }) || *e == TokenError::BadSignature,
        ),
        ("whitespace inside", format!("{} ", good), |e| {
            matches!(e, TokenError::BadBase64 { .. })
        }),
        (
            "header not JSON",
            format!(
                "{}.{}.{good_sig}",
                b64(b"not json"),
                b64(claims.to_string().as_bytes())
            ),
            |e| {
                matches!(
                    e,
                    TokenError::BadJson {
                        part: TokenPart::Header,
                        ..
                    }
                )
            },
        ),
        (
            "header alg not a string",
            format!(
                "{}.{}.{good_sig}",
                b64(br#"{"alg":1}"#),
                b64(claims.to_string().as_bytes())
            ),
            |e| {
                matches!(
                    e,
                    TokenError::BadJson {
                        part: TokenPart::Header,
                        ..
                    }
                )
            },
        ),
        (
            "payload not an object",
            sign("RS256", &rsa, &rs_header, &json!(["iss"])),
            |e| {
                matches!(
                    e,
                    TokenError::BadJson {
                        part: TokenPart::Payload,
                        ..
                    }
                )
            },
        ),
        (
            "deeply nested payload",
            format!(
                "{}.{}.{good_sig}",
                b64(rs_header.to_string().as_bytes()),
                b64(("[".repeat(2000) + &"]".repeat(2000)).as_bytes())
            ),
            |e| matches!(e, TokenError::BadJson { .. }),
        ),
        (
            "oversized",
            format!(
                "{good_input}{}.{good_sig}",
                "A".repeat(DEFAULT_MAX_TOKEN_BYTES)
            ),
            |e| matches!(e, TokenError::TooLarge { .. }),
        ),
        ("empty", String::new(), |e| {
            matches!(
                e,
                TokenError::NotCompactJws { .. } | TokenError::BadBase64 { .. }
            )
        }),
    ];
    for (name, token, check) in cases {
        let result = UnverifiedToken::parse(&token, DEFAULT_MAX_TOKEN_BYTES)
            .and_then(|t| t.verify(&keys).map(|_| ()));
        match result {
            Ok(()) => panic!("{name}: accepted"),
            Err(e) => assert!(check(&e), "{name}: unexpected error {e:?}"),
        }
    }
    // The untouched token still verifies, so the cases above fail for their own reason.
    UnverifiedToken::parse(&good, DEFAULT_MAX_TOKEN_BYTES)
        .unwrap()
        .verify(&keys)
        .unwrap();
}

#[test]
fn es256_signature_in_der_is_rejected() {
    let ec = ec_private();
    let keys = set(
        json!([public_jwk(&ec, "ec", Some("ES256"))]),
        KeyOrigin::Remote,
    );
    let token = sign(
        "ES256",
        &ec,
        &json!({"alg": "ES256", "kid": "ec"}),
        &json!({"iss": "x"}),
    );
    let (input, sig) = token.rsplit_once('.').unwrap();
    let raw = base64::Engine::decode(&URL_SAFE_NO_PAD, sig).unwrap();
    let (r, s) = raw.split_at(32);
    // Minimal DER: SEQUENCE { INTEGER r, INTEGER s }, with a leading zero when the high bit is set.
    let int = |v: &[u8]| {
        let mut out = vec![0x02];
        let pad = v[0] & 0x80 != 0;
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let body = [int(r), int(s)].concat();
    let der = [vec![0x30, body.len() as u8], body].concat();
    let der_token = format!("{input}.{}", b64(&der));
    let parsed = UnverifiedToken::parse(&der_token, DEFAULT_MAX_TOKEN_BYTES).unwrap();
    assert_eq!(parsed.verify(&keys).unwrap_err(), TokenError::BadSignature);
    UnverifiedToken::parse(&token, DEFAULT_MAX_TOKEN_BYTES)
        .unwrap()
        .verify(&keys)
        .unwrap();
}

#[test]
fn every_algorithm_round_trips_and_stays_in_its_family() {
    let rsa = rsa_private();
    let ec = ec_private();
    let ed = ed25519_private();
    let keys = set(
        json!([
            public_jwk(&rsa, "rsa", None),
            public_jwk(&ec, "ec", None),
            public_jwk(&ed, "ed", None),
            testing::hs_key_jwk("HS256"),
        ]),
        KeyOrigin::Local,
    );
    let claims = json!({"iss": "x"});
    let cases = [
        ("RS256", &rsa, "rsa"),
        ("RS384", &rsa, "rsa"),
        ("RS512", &rsa, "rsa"),
        ("PS256", &rsa, "rsa"),
        ("PS384", &rsa, "rsa"),
        ("PS512", &rsa, "rsa"),
        ("ES256", &ec, "ec"),
        ("EdDSA", &ed, "ed"),
    ];
    for (alg, key, kid) in cases {
        // With kid, and without kid (keys of the matching type are tried).
        for header in [json!({"alg": alg, "kid": kid}), json!({"alg": alg})] {
            let token = sign(alg, key, &header, &claims);
            let parsed = UnverifiedToken::parse(&token, DEFAULT_MAX_TOKEN_BYTES).unwrap();
            let used = parsed
                .verify(&keys)
                .unwrap_or_else(|e| panic!("{alg} {header}: {e}"));
            assert_eq!(used.kid.as_deref(), Some(kid));
        }
    }
    let hs = sign(
        "HS256",
        &testing::hs_key_jwk("HS256"),
        &json!({"alg": "HS256", "kid": "hs"}),
        &claims,
    );
    UnverifiedToken::parse(&hs, DEFAULT_MAX_TOKEN_BYTES)
        .unwrap()
        .verify(&keys)
        .unwrap();
}

#[test]
fn a_one_megabyte_token_is_refused_before_any_decoding() {
    let huge = format!(
        "{}.{}.{}",
        "e".repeat(400_000),
        "e".repeat(400_000),
        "e".repeat(248_576)
    );
    assert_eq!(huge.len(), 1_048_578);
    assert_eq!(
        UnverifiedToken::parse(&huge, DEFAULT_MAX_TOKEN_BYTES).unwrap_err(),
        TokenError::TooLarge {
            len: 1_048_578,
            max: DEFAULT_MAX_TOKEN_BYTES
        }
    );
}

/// RFC 7515 §4: the protected header is a JSON object; §4.1.11: `crit` is a non-empty
/// list of understood names; RFC 7516 §4.1.3: `zip` is for JWE only.
#[test]
fn strict_protected_headers() {
    let claims = json!({"iss": "joe"});
    let signed = |header: &str| {
        let input = format!(
            "{}.{}",
            b64(header.as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        format!("{input}.{}", b64(&[0; 32]))
    };
    type Check = fn(&TokenError) -> bool;
    let bad_header: Check = |e| {
        matches!(
            e,
            TokenError::BadJson {
                part: TokenPart::Header,
                ..
            }
        )
    };
    let cases: Vec<(&str, Check)> = vec![
        (r#"["HS256", "hs"]"#, bad_header),
        (r#"["HS256"]"#, bad_header),
        ("[]", bad_header),
        ("\"HS256\"", bad_header),
        ("null", bad_header),
        ("", bad_header),
        (r#"{"alg": "HS256""#, bad_header),
        (r#"{"alg": "HS256", "alg": "HS256"}"#, bad_header),
        (r#"{"alg": "HS256", "crit": []}"#, |e| {
            matches!(e, TokenError::EmptyCritical)
        }),
        (
            r#"{"alg": "HS256", "crit": ["exp"]}"#,
            |e| matches!(e, TokenError::UnknownCritical { name } if name == "exp"),
        ),
        (r#"{"alg": "HS256", "crit": "exp"}"#, bad_header),
        (r#"{"alg": "HS256", "zip": "DEF"}"#, |e| {
            matches!(e, TokenError::CompressionOnJws)
        }),
        (r#"{"alg": "HS256", "zip": null}"#, |e| {
            matches!(e, TokenError::CompressionOnJws)
        }),
    ];
    for (header, check) in cases {
        let err = UnverifiedToken::parse(&signed(header), DEFAULT_MAX_TOKEN_BYTES).unwrap_err();
        assert!(check(&err), "{header}: {err:?}");
    }
    // The same header as an object parses.
    assert!(UnverifiedToken::parse(
        &signed(r#"{"alg": "HS256", "kid": "hs"}"#),
        DEFAULT_MAX_TOKEN_BYTES
    )
    .is_ok());
}

/// RFC 7515 §4.1.4: `kid` is a hint. A key without `kid` is a candidate for a token with
/// one, after the keys carrying that `kid`; a token whose `kid` no key carries is still
/// `UnknownKid` when the keys without one don't verify it (so a refetch can find it).
#[test]
fn keys_without_kid_are_candidates_for_tokens_with_one() {
    let claims = json!({"iss": "joe"});
    let mut unnamed = public_jwk(&rsa_private(), "x", None);
    unnamed.as_object_mut().unwrap().remove("kid");
    let set_unnamed = set(json!([unnamed.clone()]), KeyOrigin::Remote);
    let token = sign(
        "RS256",
        &rsa_private(),
        &json!({"alg": "RS256", "kid": "rotated-1"}),
        &claims,
    );
    let parsed = UnverifiedToken::parse(&token, DEFAULT_MAX_TOKEN_BYTES).unwrap();
    assert_eq!(parsed.verify(&set_unnamed).unwrap().kid, None);

    // Named keys come first: with the right named key present, it is the one that verifies.
    let both = set(
        json!([
            unnamed.clone(),
            public_jwk(&rsa_private(), "rotated-1", None)
        ]),
        KeyOrigin::Remote,
    );
    let order: Vec<Option<&str>> = both
        .candidates(Some("rotated-1"))
        .map(|k| k.kid.as_deref())
        .collect();
    assert_eq!(order, [Some("rotated-1"), None]);
    assert_eq!(
        parsed.verify(&both).unwrap().kid.as_deref(),
        Some("rotated-1")
    );

    // Another key's token: the unnamed key is tried and fails; the kid is unknown.
    let other = sign(
        "ES256",
        &ec_private(),
        &json!({"alg": "ES256", "kid": "new"}),
        &claims,
    );
    let mut unnamed_ec = public_jwk(&ec_private(), "x", None);
    unnamed_ec.as_object_mut().unwrap().remove("kid");
    let forged = sign(
        "RS256",
        &rsa_private(),
        &json!({"alg": "RS256", "kid": "new"}),
        &claims,
    );
    let parsed_forged = UnverifiedToken::parse(&forged, DEFAULT_MAX_TOKEN_BYTES).unwrap();
    let ec_only = set(json!([unnamed_ec]), KeyOrigin::Remote);
    assert!(matches!(
        parsed_forged.verify(&ec_only),
        Err(TokenError::UnknownKid { .. })
    ));
    let parsed_other = UnverifiedToken::parse(&other, DEFAULT_MAX_TOKEN_BYTES).unwrap();
    assert!(matches!(
        parsed_other.verify(&set_unnamed),
        Err(TokenError::UnknownKid { .. })
    ));
    // A tampered token whose kid is named: a bad signature, as before.
    let named = set(
        json!([public_jwk(&rsa_private(), "rotated-1", None), unnamed]),
        KeyOrigin::Remote,
    );
    let other_claims = sign(
        "RS256",
        &rsa_private(),
        &json!({"alg": "RS256", "kid": "rotated-1"}),
        &json!({"iss": "eve"}),
    );
    let (input, _) = token.rsplit_once('.').unwrap();
    let (_, other_signature) = other_claims.rsplit_once('.').unwrap();
    let tampered = format!("{input}.{other_signature}");
    let parsed = UnverifiedToken::parse(&tampered, DEFAULT_MAX_TOKEN_BYTES).unwrap();
    assert_eq!(parsed.verify(&named).unwrap_err(), TokenError::BadSignature);
}

/// An `oct` key without `alg` verifies the HS algorithms its length allows.
#[test]
fn hmac_key_without_alg_verifies_hs256_hs384_hs512() {
    let mut jwk = testing::hs_key_jwk("HS256");
    jwk.as_object_mut().unwrap().remove("alg");
    let keys = set(json!([jwk.clone()]), KeyOrigin::Local);
    for alg in ["HS256", "HS384", "HS512"] {
        let token = sign(
            alg,
            &jwk,
            &json!({"alg": alg, "kid": "hs"}),
            &json!({"iss": "joe"}),
        );
        let parsed = UnverifiedToken::parse(&token, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        assert!(
            parsed.verify(&keys).unwrap().allows(parsed.algorithm),
            "{alg}"
        );
    }
}
