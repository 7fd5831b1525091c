//! `authorize::decide` over two fixed policies (strict, and everything relaxed) with
//! arbitrary requests. Never panics, and never lets bad input pass:
//! - an allow by rule or by default has a principal; a public or fail-open allow has none;
//! - the rule named in a decision exists and has the decision's action;
//! - every principal comes from one of the fixture tokens that is valid at `NOW`;
//! - `path_rejected` exactly when normalization fails; an allow carries the normalized path;
//! - a second decision through the warm token cache is the same.
//!
//! Input: UTF-8 lines `METHOD`, `AUTHORITY`, `PATH`, then `name: value` headers. `$T0` …
//! `$T9` anywhere stand for the fixture tokens (see `meshgate_fuzz::TOKENS`).
//!
//! `MESHGATE_FUZZ_VERBOSE=1` prints each decision (to see what seeds reach):
//! `fuzz/target/x86_64-unknown-linux-gnu/release/authorize -runs=0 fuzz/corpus/authorize`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use meshgate_core::config::FailureMode;
use meshgate_core::path::normalize;
use meshgate_core::rules::{Action, Rule};
use meshgate_core::{
    decide, headers, AllowCode, Credential, DenyCode, Effect, KeyStore, Policy, Request,
    TokenCache, UnixTime, Verdict,
};
use meshgate_fuzz::{
    lenient_policy_config, strict_policy_config, substitute_tokens, NOW, TOKENS, VALID_SUBJECTS,
};

static VERBOSE: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("MESHGATE_FUZZ_VERBOSE").is_some_and(|v| v == "1"));

struct Fixture {
    policy: Policy,
    keys: KeyStore,
}

static FIXTURES: LazyLock<[Fixture; 2]> = LazyLock::new(|| {
    LazyLock::force(&TOKENS);
    [strict_policy_config(), lenient_policy_config()].map(|config| {
        let policy = Policy::from_json(config.to_string().as_bytes()).expect("fixture policy");
        let keys = KeyStore::new(&policy);
        Fixture { policy, keys }
    })
});

fn rule<'p>(rules: &'p [Rule], id: Option<&str>) -> Option<&'p Rule> {
    rules.iter().find(|r| Some(r.id.as_str()) == id)
}

fn check(policy: &Policy, req: &Request<'_>, verdict: &Verdict) {
    let d = &verdict.decision;
    let ctx = || format!("{d:?} for {} {} {}", req.method, req.authority, req.path);
    let rule_id = d.rule_id.as_deref();
    match d.effect {
        Effect::Allow(AllowCode::RuleAllowed) => {
            assert!(
                d.principal.is_some(),
                "rule allow without principal: {}",
                ctx()
            );
            let r = rule(&policy.rules.allow, rule_id).unwrap_or_else(|| panic!("{}", ctx()));
            assert!(!r.public, "{}", ctx());
        }
        Effect::Allow(AllowCode::DefaultAllow) => {
            assert!(
                d.principal.is_some(),
                "default allow without principal: {}",
                ctx()
            );
            assert_eq!(policy.default_action, Action::Allow, "{}", ctx());
        }
        Effect::Allow(AllowCode::PublicRoute) => {
            let r = rule(&policy.rules.allow, rule_id).unwrap_or_else(|| panic!("{}", ctx()));
            assert!(r.public && d.principal.is_none(), "{}", ctx());
        }
        Effect::Allow(AllowCode::FailOpen) => {
            assert!(d.principal.is_none(), "{}", ctx());
            let by_rule = rule(&policy.rules.allow, rule_id).is_some_and(|r| r.fail_open);
            assert!(
                policy.failure_mode == FailureMode::Open || by_rule,
                "{}",
                ctx()
            );
        }
        Effect::Deny(DenyCode::RuleDenied) => {
            assert!(rule(&policy.rules.deny, rule_id).is_some(), "{}", ctx());
        }
        Effect::Deny(_) => {}
    }
    let normalized = normalize(req.path, policy.path_options);
    assert_eq!(
        d.effect == Effect::Deny(DenyCode::PathRejected),
        normalized.is_err(),
        "{}",
        ctx()
    );
    if d.is_allowed() {
        assert_eq!(
            d.normalized_path.as_ref(),
            normalized.as_ref().ok(),
            "{}",
            ctx()
        );
    }
    if let Some(p) = &d.principal {
        assert_eq!(
            d.provider.as_deref(),
            Some(p.provider.as_str()),
            "{}",
            ctx()
        );
        let subject = p.subject.as_deref().unwrap_or_default();
        assert!(
            VALID_SUBJECTS.contains(&subject),
            "bad token passed: {}",
            ctx()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let text = substitute_tokens(text);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or_default();
    let authority = lines.next().unwrap_or_default();
    let path = lines.next().unwrap_or_default();
    // As Envoy presents them: lowercase names, pseudo-headers first.
    let mut request_headers = vec![
        (":method".to_owned(), method.to_owned()),
        (":authority".to_owned(), authority.to_owned()),
        (":path".to_owned(), path.to_owned()),
    ];
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        request_headers.push((name.to_ascii_lowercase(), value.to_owned()));
    }
    let req = Request {
        method,
        authority,
        path,
        headers: &request_headers,
    };

    for Fixture { policy, keys } in FIXTURES.iter() {
        let mut cache = TokenCache::new(policy.jwt_cache_size.min(8));
        let cold = decide(
            policy,
            Credential::token(keys, &mut cache),
            meshgate_core::catalog::CatalogState::NotConfigured,
            &req,
            UnixTime::from_secs(NOW),
        );
        if *VERBOSE {
            let d = &cold.decision;
            eprintln!(
                "{} {} {}: {} rule={:?} provider={:?} ({})",
                req.method,
                req.authority,
                req.path.chars().take(60).collect::<String>(),
                d.code_str(),
                d.rule_id,
                d.provider,
                d.reason
            );
        }
        check(policy, &req, &cold);
        let warm = decide(
            policy,
            Credential::token(keys, &mut cache),
            meshgate_core::catalog::CatalogState::NotConfigured,
            &req,
            UnixTime::from_secs(NOW),
        );
        assert_eq!(
            cold.decision, warm.decision,
            "token cache changed the decision"
        );
        assert_eq!(cold.strip_token_header, warm.strip_token_header);
        assert_eq!(cold.diagnostics, warm.diagnostics);
        let _ = headers::plan(policy, &cold, &request_headers);
    }
});
