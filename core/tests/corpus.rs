//! The decision corpus (`core/tests/cases/*.json`) through `meshgate_core` called directly,
//! with the runner every target shares (`meshgate_test_support::corpus`). Each file runs
//! twice: cold, then with the same tokens through the same token cache, which must not
//! change any answer. Core observes everything but the reply body: the decision with its
//! mode and shadow outcome, and what upstream would receive (the request's headers with the
//! header plan applied).

use std::collections::BTreeMap;

use meshgate_core::catalog::CatalogState;
use meshgate_core::config::Mode;
use meshgate_core::{decide, headers, Credential, KeyStore, Policy, Request, TokenCache, UnixTime};
use meshgate_test_support::corpus::{
    failures, missed_mutations, run_corpus, Decided, FileRun, Observed, Observes, Reply, Target,
    Upstream,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Core;

impl Target for Core {
    fn name(&self) -> &'static str {
        "core"
    }

    fn observes(&self) -> Observes {
        Observes {
            mode_and_shadow: true,
            reply_body: false,
            upstream: true,
        }
    }

    fn run(&mut self, file: &FileRun<'_>) -> Result<Vec<Observed>, BoxError> {
        let policy = Policy::from_json(file.config.to_string().as_bytes())?;
        let keys = KeyStore::new(&policy);
        let mut cache = TokenCache::new(64);
        let mut observed = Vec::with_capacity(file.requests.len());
        for sent in &file.requests {
            let request = &sent.case.request;
            let headers = sent.envoy_headers();
            let req = Request {
                method: &request.method,
                authority: &request.host,
                path: &request.path,
                headers: &headers,
            };
            let verdict = decide(
                &policy,
                Credential::token(&keys, &mut cache),
                CatalogState::NotConfigured,
                &req,
                UnixTime::from_secs(file.now),
            );
            let d = &verdict.decision;
            let reply = match (d.deny_code(), d.mode) {
                (Some(code), Mode::Enforce) => Reply::Local {
                    status: code.http_status(),
                    code: None,
                    challenge: None,
                },
                _ => {
                    let plan = headers::plan(&policy, &verdict, &headers);
                    Reply::Upstream(Some(upstream(&headers, &plan)))
                }
            };
            observed.push(Observed {
                reply,
                decision: Some(Decided {
                    decision: if d.is_allowed() { "allow" } else { "deny" }.to_owned(),
                    code: d.code_str().to_owned(),
                    rule_id: d.rule_id.clone(),
                    mode: Some(
                        match d.mode {
                            Mode::Enforce => "enforce",
                            Mode::Shadow => "shadow",
                        }
                        .to_owned(),
                    ),
                    shadow: d
                        .shadow
                        .as_ref()
                        .map_or(serde_json::Value::Null, meshgate_core::log::shadow_json),
                    reason: d.reason.clone(),
                }),
            });
        }
        Ok(observed)
    }
}

/// What upstream would receive: the request's headers less those the plan removes, with
/// those it sets (`:path` among them when meshgate forwards the normalized path).
fn upstream(headers: &[(String, String)], plan: &headers::HeaderPlan) -> Upstream {
    let mut received = BTreeMap::new();
    let mut path = String::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if name == ":path" {
            path.clone_from(value);
        } else if !name.starts_with(':') && !plan.remove.contains(&name) {
            received.entry(name).or_insert_with(|| value.clone());
        }
    }
    for (name, value) in &plan.set {
        if name == ":path" {
            path.clone_from(value);
        } else {
            received.insert(name.to_ascii_lowercase(), value.clone());
        }
    }
    Upstream {
        path,
        headers: received,
    }
}

#[test]
fn corpus_through_core() {
    let results = run_corpus(&mut Core).unwrap_or_else(|e| panic!("{e}"));
    if let Err(report) = failures("core", &results) {
        panic!("{report}");
    }
}

/// The runner is not vacuous for core: every changed expectation fails, in both passes.
#[test]
fn changed_expectations_are_caught_through_core() {
    let missed = missed_mutations(&mut Core, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        missed.is_empty(),
        "changed expectations not caught: {missed:?}"
    );
}
