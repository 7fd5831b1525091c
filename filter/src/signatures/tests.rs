//! Envoy's `verify_signature` over the fake host: detection, use, counting, fallback.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use meshgate_test_support::keys;
use meshgate_test_support::sign::sign;
use serde_json::{json, Value};

use super::*;
use crate::fake::{FakeHost, ForeignFake};
use crate::filter::{Filter, Next};
use meshgate_core::Policy;

const NOW: i64 = 1_700_000_000;
const ISSUER: &str = "https://idp.test";

/// The RFC 7515 / 8037 keys every test runner shares (`meshgate-test-support`).
fn private_key(kid: &str) -> Value {
    keys::private_key(kid).unwrap()
}

fn public_key(kid: &str) -> Value {
    keys::public_jwk(&private_key(kid), kid, None)
}

fn kid_for(alg: &str) -> &'static str {
    match alg {
        "ES256" => "ec",
        "EdDSA" => "ed",
        _ => "rsa",
    }
}

fn token(alg: &str) -> String {
    let kid = kid_for(alg);
    let claims = json!({"iss": ISSUER, "sub": "alice", "aud": "tools", "exp": NOW + 600});
    sign(
        alg,
        &private_key(kid),
        &json!({"alg": alg, "kid": kid}),
        &claims,
    )
    .unwrap()
}

fn tampered(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    signature[7] ^= 0x01;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn filter(verifier: Verifier) -> Filter {
    let config = json!({
        "providers": {"idp": {"issuer": ISSUER, "audiences": ["tools"], "local_jwks": {"inline": {"keys": [
            public_key("rsa"), public_key("ec"), public_key("ed")
        ]}}}},
        "rules": [{"id": "all", "action": "allow", "paths": ["/**"]}],
        // Every request verifies its signature.
        "jwt_cache_config": {"jwt_cache_size": 0}
    });
    let mut filter = Filter::new(Policy::from_json(config.to_string().as_bytes()).unwrap());
    filter.verifier = verifier;
    filter
}

fn request(foreign: ForeignFake, token: &str) -> FakeHost {
    FakeHost::at(NOW)
        .with_foreign(foreign)
        .with_request("GET", "tool.internal", "/x")
        .with_header("authorization", &format!("Bearer {token}"))
}

#[test]
fn only_a_host_that_passes_the_self_test_verifies() {
    let cases = [
        (ForeignFake::Absent, Verifier::Rust, "NotFound"),
        (ForeignFake::Verify, Verifier::Envoy, "verified by Envoy"),
        (
            ForeignFake::Answer(true),
            Verifier::Rust,
            "accepts a wrong RS256",
        ),
        (
            ForeignFake::Answer(false),
            Verifier::Rust,
            "rejects a valid RS256",
        ),
        (ForeignFake::Fail, Verifier::Rust, "InternalFailure"),
        (ForeignFake::Garbage, Verifier::Rust, "not a result"),
    ];
    for (foreign, expected, log) in cases {
        let host = FakeHost::at(NOW).with_foreign(foreign);
        assert_eq!(detect(&host), expected, "{foreign:?}");
        let logs = host.logs.borrow();
        assert_eq!(logs.len(), 1, "{foreign:?}: one line, {logs:?}");
        assert!(logs[0].1.contains(log), "{foreign:?}: {logs:?}");
    }
}

/// Whether this build verifies `alg` in Rust: EdDSA always; RS*/PS*/ES* only when portable.
fn rust_verifies(alg: &str) -> bool {
    PORTABLE || alg == "EdDSA"
}

#[test]
fn envoy_verifies_rs_and_es256_and_rust_the_rest() {
    // (alg, checked by Envoy?)
    let cases = [
        ("RS256", true),
        ("RS384", true),
        ("RS512", true),
        ("ES256", true),
        ("PS256", false),
        ("PS384", false),
        ("EdDSA", false),
    ];
    for (alg, by_envoy) in cases {
        for verifier in [Verifier::Envoy, Verifier::Rust] {
            let foreign = by_envoy && verifier == Verifier::Envoy;
            let context = format!("{alg} with {verifier:?}, portable {PORTABLE}");
            let mut f = filter(verifier);
            let mut host = request(ForeignFake::Verify, &token(alg));
            let next = f.on_request_headers(&mut host, 1);
            if !(foreign || rust_verifies(alg)) {
                // Nobody here can verify it: denied, never let through.
                assert_eq!(next, Next::Stop, "{context}");
                assert_eq!(host.reply.as_ref().unwrap().status, 401, "{context}");
                assert_eq!(host.foreign_calls.get(), 0, "{context}");
                continue;
            }
            assert_eq!(next, Next::Continue, "{context}");
            assert_eq!(host.header("x-meshgate-subject"), Some("alice"));
            assert_eq!(host.foreign_calls.get(), u32::from(foreign), "{context}");
            assert_eq!(
                host.counter("meshgate.verify.foreign"),
                u64::from(foreign),
                "{context}"
            );
            assert_eq!(
                host.counter("meshgate.verify.rust"),
                u64::from(!foreign),
                "{context}"
            );
            assert_eq!(
                host.counter("meshgate.verify.foreign_failed"),
                0,
                "{context}"
            );

            // A wrong signature is denied, by whoever checks it.
            let mut host = request(ForeignFake::Verify, &tampered(&token(alg)));
            assert_eq!(f.on_request_headers(&mut host, 2), Next::Stop, "{context}");
            assert_eq!(host.reply.as_ref().unwrap().status, 401);
            assert_eq!(
                host.counter("meshgate.denied.signature_invalid"),
                1,
                "{context}"
            );
            assert_eq!(
                host.counter("meshgate.verify.foreign"),
                u64::from(foreign),
                "{context}"
            );
        }
    }
}

#[test]
fn envoys_no_is_a_bad_signature() {
    // Detection passed; later Envoy says no, even to a signature Rust would accept.
    let mut f = filter(Verifier::Envoy);
    for alg in ["RS256", "ES256"] {
        let mut host = request(ForeignFake::Answer(false), &token(alg));
        assert_eq!(f.on_request_headers(&mut host, 1), Next::Stop, "{alg}");
        let reply = host.reply.as_ref().unwrap();
        assert_eq!(reply.status, 401, "{alg}");
        assert!(
            reply.body.contains("signature_invalid"),
            "{alg}: {}",
            reply.body
        );
        assert_eq!(host.counter("meshgate.denied.signature_invalid"), 1);
        assert_eq!(host.counter("meshgate.verify.foreign"), 1);
        assert_eq!(host.counter("meshgate.verify.rust"), 0);
    }
}

#[test]
fn a_failed_call_is_decided_in_rust_for_that_request() {
    let mut f = filter(Verifier::Envoy);
    // (foreign behaviour, token, allowed by Rust?): without the portable verifiers Rust
    // can't check RS*/ES*, and the request is denied.
    let cases = [
        (ForeignFake::Fail, token("RS256"), true),
        (ForeignFake::Fail, tampered(&token("RS256")), false),
        (ForeignFake::Garbage, token("ES256"), true),
        (ForeignFake::Garbage, tampered(&token("ES256")), false),
        // Not registered any more (say, a host that changed under us): same.
        (ForeignFake::Absent, token("RS512"), true),
    ];
    let logged = if PORTABLE {
        "verified in Rust instead"
    } else {
        "the token is refused: this build has no Rust RSA/ECDSA"
    };
    for (i, (foreign, token, valid)) in cases.into_iter().enumerate() {
        let allowed = valid && PORTABLE;
        let mut host = request(foreign, &token);
        let next = f.on_request_headers(&mut host, 1);
        let context = format!("case {i}: {foreign:?}, allowed {allowed}");
        assert_eq!(next == Next::Continue, allowed, "{context}");
        if !allowed {
            assert_eq!(
                host.counter("meshgate.denied.signature_invalid"),
                1,
                "{context}"
            );
        }
        assert_eq!(
            host.counter("meshgate.verify.foreign_failed"),
            1,
            "{context}"
        );
        assert_eq!(host.counter("meshgate.verify.rust"), 1, "{context}");
        assert_eq!(host.counter("meshgate.verify.foreign"), 0, "{context}");
        // Logged the first time only.
        assert_eq!(host.logged(logged), i == 0, "{context}: {:?}", host.logs);
    }
}

#[test]
fn without_rust_rsa_ecdsa_a_configuration_envoy_cannot_verify_is_refused() {
    let remote = json!({"issuer": "https://remote.test", "remote_jwks": {"cluster": "idp", "uri": "https://remote.test/keys"}});
    let local = |kids: &[&str]| {
        let keys: Vec<Value> = kids.iter().map(|kid| public_key(kid)).collect();
        json!({"issuer": ISSUER, "local_jwks": {"inline": {"keys": keys}}})
    };
    // (Envoy's verify_signature, providers, refused by the default build?)
    let cases = [
        (ForeignFake::Absent, json!({"a": local(&["rsa"])}), true),
        (ForeignFake::Absent, json!({"a": local(&["ec"])}), true),
        (
            ForeignFake::Absent,
            json!({"a": local(&["ed", "rsa"])}),
            true,
        ),
        (ForeignFake::Absent, json!({"a": remote.clone()}), true),
        (
            ForeignFake::Answer(true),
            json!({"a": local(&["ec"])}),
            true,
        ),
        (
            ForeignFake::Fail,
            json!({"a": local(&["ed"]), "b": remote.clone()}),
            true,
        ),
        // Only EdDSA keys: Rust verifies them in every build.
        (ForeignFake::Absent, json!({"a": local(&["ed"])}), false),
        // Envoy passed its self-test: it verifies RS*/ES*.
        (
            ForeignFake::Verify,
            json!({"a": local(&["rsa"]), "b": remote}),
            false,
        ),
    ];
    for (foreign, providers, refused_by_default) in cases {
        let config = json!({
            "providers": providers,
            "rules": [{"id": "all", "action": "allow", "paths": ["/**"]}]
        });
        let policy = Policy::from_json(config.to_string().as_bytes()).unwrap();
        let host = FakeHost::at(NOW).with_foreign(foreign);
        let verifier = detect(&host);
        host.logs.borrow_mut().clear();
        let refused = refused_by_default && !PORTABLE;
        let context = format!("{foreign:?} {providers}, portable {PORTABLE}");
        assert_eq!(ready(&host, verifier, &policy), !refused, "{context}");
        let logs = host.logs.borrow();
        if refused {
            assert_eq!(logs.len(), 1, "{context}: one line, {logs:?}");
            assert_eq!(logs[0].0, LogLevel::Error, "{context}");
            assert!(logs[0].1.contains(PORTABLE_ARTIFACT), "{context}: {logs:?}");
            assert!(
                logs[0].1.contains("may use RS*/ES* keys"),
                "{context}: {logs:?}"
            );
        } else {
            assert!(logs.is_empty(), "{context}: {logs:?}");
        }
    }
}

#[test]
fn malformed_es256_signatures_are_refused_before_any_call() {
    let mut f = filter(Verifier::Envoy);
    let good = token("ES256");
    let (input, signature) = good.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    // s + n: the same point arithmetic mod n, a different encoding. Never sent to Envoy.
    let order: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let bad = [
        [&signature[..32], &order[..]].concat(),
        [&[0u8; 32][..], &signature[32..]].concat(),
        signature[..48].to_vec(),
    ];
    for sig in bad {
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
        let mut host = request(ForeignFake::Answer(true), &token);
        assert_eq!(f.on_request_headers(&mut host, 1), Next::Stop, "{sig:02x?}");
        assert_eq!(host.foreign_calls.get(), 0, "{sig:02x?}");
        assert_eq!(host.counter("meshgate.denied.signature_invalid"), 1);
    }
}
