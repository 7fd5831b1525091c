//! `Policy::from_json` on arbitrary bytes. Never panics. A configuration that compiles is
//! then used: its key store is built and a few fixed requests (with the fixture tokens)
//! are decided, so a policy that compiles but can't be evaluated is found too.
//!
//! `MESHGATE_FUZZ_VERBOSE=1` prints why each input was refused, or the decisions:
//! `fuzz/target/…/release/config -runs=0 fuzz/corpus/config`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use meshgate_core::{decide, Credential, KeyStore, Policy, Request, TokenCache, UnixTime};
use meshgate_fuzz::{NOW, TOKENS};

static VERBOSE: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("MESHGATE_FUZZ_VERBOSE").is_some_and(|v| v == "1"));

fuzz_target!(|data: &[u8]| {
    let policy = match Policy::from_json(data) {
        Ok(policy) => policy,
        Err(e) => {
            if *VERBOSE {
                eprintln!("config refused: {e}");
            }
            return;
        }
    };
    let keys = KeyStore::new(&policy);
    let mut cache = TokenCache::new(policy.jwt_cache_size.min(16));
    let bearer = |i: usize| vec![("authorization".to_owned(), format!("Bearer {}", TOKENS[i]))];
    let requests = [
        ("GET", "airflow.internal", "/api/v1/dags", bearer(0)),
        (
            "POST",
            "a.svc.internal:8443",
            "/items/5/parts/x/?q=1",
            bearer(1),
        ),
        ("GET", "airflow.internal", "/health", Vec::new()),
        (
            "DELETE",
            "buildkite.internal",
            "/v2/organizations/acme/pipelines/p",
            bearer(2),
        ),
    ];
    for (method, authority, path, headers) in &requests {
        let req = Request {
            method,
            authority,
            path,
            headers,
        };
        let verdict = decide(
            &policy,
            Credential::token(&keys, &mut cache),
            meshgate_core::catalog::CatalogState::NotConfigured,
            &req,
            UnixTime::from_secs(NOW),
        );
        if *VERBOSE {
            let d = &verdict.decision;
            eprintln!(
                "{method} {authority} {path}: {} rule={:?}",
                d.code_str(),
                d.rule_id
            );
        }
        let _ = meshgate_core::headers::plan(&policy, &verdict, headers);
    }
});
