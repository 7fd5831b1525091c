//! The decision corpus (`core/tests/cases/*.json`) through the filter over [`FakeHost`]: the
//! same runner, case schema and comparison as core, `meshgate check` and the real Envoy
//! (`meshgate_test_support::corpus`). This path exercises the glue itself: the request
//! headers as Envoy hands them over (pseudo-headers first), the local reply's status, body and
//! challenge, the headers upstream receives, and the decision log line, with the filter's own
//! token cache across the cold and the cached pass.

use std::collections::BTreeMap;

use meshgate_core::Policy;
use meshgate_test_support::corpus::{
    failures, missed_mutations, run_corpus, Decided, FileRun, Observed, Observes, Reply, Target,
    Upstream,
};
use serde_json::{json, Value};

use crate::fake::{FakeHost, ForeignFake};
use crate::filter::Filter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const MARKER: &str = "meshgate decision ";

struct FilterTarget;

impl Target for FilterTarget {
    fn name(&self) -> &'static str {
        "filter (FakeHost)"
    }

    fn observes(&self) -> Observes {
        Observes {
            mode_and_shadow: true,
            reply_body: true,
            upstream: true,
        }
    }

    fn run(&mut self, file: &FileRun<'_>) -> Result<Vec<Observed>, BoxError> {
        let mut config = file.config.clone();
        // Every decision logged: the runner reads decisions from the log, as from Envoy's.
        if let Some(root) = config.as_object_mut() {
            root.insert(
                "decision_log".into(),
                json!({"allow_sample_rate": 1.0, "deny_sample_rate": 1.0}),
            );
        }
        let policy = Policy::from_json(config.to_string().as_bytes())?;
        let mut filter = Filter::new(policy);
        let mut host = FakeHost::at(file.now);
        // Without the portable verifiers RS*/ES* are Envoy's: the fake host verifies them
        // as Envoy would, after the same self-test.
        if !crate::signatures::PORTABLE {
            host.foreign = ForeignFake::Verify;
            filter.verifier = crate::signatures::detect(&host);
            host.logs.borrow_mut().clear();
        }
        let mut observed = Vec::with_capacity(file.requests.len());
        for (sent, id) in file.requests.iter().zip(1u32..) {
            let logged_before = host.logs.borrow().len();
            host.new_request(id, sent.envoy_headers());
            filter.on_request_headers(&mut host, id);
            let seen = host.request(id);
            let reply = match seen.reply {
                Some(reply) => {
                    let body: Value = serde_json::from_str(&reply.body).unwrap_or_default();
                    Reply::Local {
                        status: reply.status,
                        code: body.get("code").and_then(Value::as_str).map(str::to_owned),
                        challenge: reply
                            .headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
                            .map(|(_, v)| v.clone()),
                    }
                }
                None => {
                    let path = seen
                        .headers
                        .iter()
                        .find(|(k, _)| k == ":path")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    let headers: BTreeMap<String, String> = seen
                        .headers
                        .iter()
                        .filter(|(k, _)| !k.starts_with(':'))
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                        .collect();
                    Reply::Upstream(Some(Upstream { path, headers }))
                }
            };
            let record = host
                .logs
                .borrow()
                .iter()
                .skip(logged_before)
                .rev()
                .filter_map(|(_, line)| line.split_once(MARKER))
                .find_map(|(_, json)| serde_json::from_str::<Value>(json).ok());
            let decision = record.as_ref().map(Decided::from_record);
            observed.push(Observed { reply, decision });
        }
        Ok(observed)
    }
}

#[test]
fn corpus_through_the_filter_over_a_fake_host() {
    let results = run_corpus(&mut FilterTarget).unwrap_or_else(|e| panic!("{e}"));
    if let Err(report) = failures("filter (FakeHost)", &results) {
        panic!("{report}");
    }
}

/// The runner is not vacuous for the filter: every changed expectation fails.
#[test]
fn changed_expectations_are_caught_through_the_filter() {
    let missed = missed_mutations(&mut FilterTarget, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        missed.is_empty(),
        "changed expectations not caught: {missed:?}"
    );
}
