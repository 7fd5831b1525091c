//! `KeySet::parse` on arbitrary bytes, as a remote and as a local document. Never panics;
//! a returned set has keys, each pinned to algorithms that fit its material; a remote set
//! never holds a symmetric key; whatever a remote parse accepts, a local parse accepts too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshgate_core::alg::Algorithm;
use meshgate_core::jwks::{KeyMaterial, KeyOrigin, KeySet, VerificationKey};

fn check_key(key: &VerificationKey) {
    assert!(
        !key.algorithms.is_empty(),
        "key {:?} verifies nothing",
        key.kid
    );
    let fits = |alg: &Algorithm| match &key.material {
        KeyMaterial::Rsa(_) => matches!(
            alg,
            Algorithm::Rs256
                | Algorithm::Rs384
                | Algorithm::Rs512
                | Algorithm::Ps256
                | Algorithm::Ps384
                | Algorithm::Ps512
        ),
        KeyMaterial::P256(_) => *alg == Algorithm::Es256,
        KeyMaterial::P384(_) => *alg == Algorithm::Es384,
        KeyMaterial::P521(_) => *alg == Algorithm::Es512,
        KeyMaterial::Ed25519(_) => *alg == Algorithm::EdDsa,
        KeyMaterial::Hs256(_) => *alg == Algorithm::Hs256,
        KeyMaterial::Hs384(_) => *alg == Algorithm::Hs384,
        KeyMaterial::Hs512(_) => *alg == Algorithm::Hs512,
    };
    assert!(
        key.algorithms.iter().all(fits),
        "key {:?} ({:?}) pinned to {:?}",
        key.kid,
        key.material,
        key.algorithms
    );
}

fuzz_target!(|data: &[u8]| {
    let remote = KeySet::parse(data, KeyOrigin::Remote);
    let local = KeySet::parse(data, KeyOrigin::Local);

    if let Ok(set) = &remote {
        assert!(!set.keys.is_empty());
        for key in &set.keys {
            check_key(key);
            assert!(
                !matches!(
                    key.material,
                    KeyMaterial::Hs256(_) | KeyMaterial::Hs384(_) | KeyMaterial::Hs512(_)
                ) && !key.algorithms.iter().any(|a| a.is_hmac()),
                "remote JWKS yielded symmetric key {:?}",
                key.kid
            );
        }
        let local = local
            .as_ref()
            .expect("a local parse accepts what a remote one does");
        assert!(local.keys.len() >= set.keys.len());
    }
    if let Ok(set) = &local {
        assert!(!set.keys.is_empty());
        set.keys.iter().for_each(check_key);
    }
});
