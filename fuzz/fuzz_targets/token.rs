//! `UnverifiedToken::parse` then `verify` on arbitrary input, against a fixed key set with
//! every key type. Never panics; a token that verifies was verified by a key that is pinned
//! to the token's `alg` (and has its `kid`, when the token names one).
//!
//! Input: a compact token as UTF-8, or, when it starts with `{`, three parts separated by
//! newlines: header JSON, payload JSON, raw signature bytes. The harness base64url-encodes
//! those, so mutations reach the JSON parsers instead of dying in base64.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use meshgate_core::alg::Algorithm;
use meshgate_core::jwks::{KeyOrigin, KeySet};
use meshgate_core::token::{TokenError, UnverifiedToken, DEFAULT_MAX_TOKEN_BYTES};
use meshgate_fuzz::{b64, token_target_jwks};

static KEYS: LazyLock<KeySet> = LazyLock::new(|| {
    let doc = token_target_jwks().to_string();
    let set = KeySet::parse(doc.as_bytes(), KeyOrigin::Local).expect("fixture JWKS parses");
    assert_eq!(
        set.keys.len(),
        5,
        "every fixture key is usable: {:?}",
        set.skipped
    );
    set
});

fn structured(data: &[u8]) -> String {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let header = parts.next().unwrap_or_default();
    let payload = parts.next().unwrap_or_default();
    let signature = parts.next().unwrap_or_default();
    format!("{}.{}.{}", b64(header), b64(payload), b64(signature))
}

fuzz_target!(|data: &[u8]| {
    let token = if data.first() == Some(&b'{') {
        structured(data)
    } else {
        match std::str::from_utf8(data) {
            Ok(s) => s.to_owned(),
            Err(_) => return,
        }
    };

    // The size limit comes before any decoding.
    if let Some(smaller) = token.len().checked_sub(1) {
        assert!(matches!(
            UnverifiedToken::parse(&token, smaller),
            Err(TokenError::TooLarge { .. })
        ));
    }

    let Ok(parsed) = UnverifiedToken::parse(&token, DEFAULT_MAX_TOKEN_BYTES) else {
        return;
    };
    assert_eq!(
        Algorithm::from_name(&parsed.header.alg),
        Some(parsed.algorithm)
    );
    assert!(parsed.header.crit.as_ref().is_none_or(Vec::is_empty));

    if let Ok(key) = parsed.verify(&KEYS) {
        assert!(
            key.allows(parsed.algorithm),
            "key {:?} pinned to {:?} verified a {} token",
            key.kid,
            key.algorithms,
            parsed.algorithm.name()
        );
        if let Some(kid) = parsed.header.kid.as_deref() {
            assert_eq!(
                key.kid.as_deref(),
                Some(kid),
                "verified by a key with another kid"
            );
        }
    }
});
