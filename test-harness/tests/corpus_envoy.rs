//! The decision corpus (`core/tests/cases/*.json`) through a real Envoy loading
//! `dist/meshgate.wasm` (`./build.sh` builds it). Every case of every file is sent twice
//! (cold, then answered from the token cache) and must reach the decision, status, body
//! code, logged rule and upstream headers the corpus expects; `meshgate_test_harness::corpus`
//! says what Envoy observes, `meshgate_test_support::corpus` how tokens are minted and how
//! every target's observations are compared.
//!
//! Cases Envoy itself answers before meshgate runs are listed in `NOT_REPRODUCIBLE` with
//! the reason and what Envoy does instead; the test fails if such a case starts reaching
//! meshgate (the entry is stale) or if a listed case disappears from the corpus.

use std::collections::BTreeSet;

use meshgate_test_harness::corpus::EnvoyTarget;
use meshgate_test_support::corpus::{missed_mutations, run_corpus, CaseResult, Reply};

/// A corpus case that cannot go through Envoy as written.
struct NotReproducible {
    file: &'static str,
    case: &'static str,
    reason: &'static str,
    /// The status Envoy answers with itself: no meshgate body, no decision logged.
    envoy_status: u16,
}

const NOT_REPRODUCIBLE: &[NotReproducible] = &[NotReproducible {
    file: "vertical_slice.json",
    case: "the authorized path is what goes upstream",
    reason: "the request target `/api/v1/x/../dags?limit=5#frag` carries a fragment; Envoy \
             1.40's connection manager answers 400 with an empty body (response details \
             `path_normalization_failed`) before any HTTP filter runs, even with \
             `normalize_path` off, so meshgate never sees it",
    envoy_status: 400,
}];

fn listed(result: &CaseResult) -> Option<&'static NotReproducible> {
    NOT_REPRODUCIBLE
        .iter()
        .find(|n| n.file == result.file && n.case == result.description)
}

#[test]
fn corpus_through_envoy() {
    let results = run_corpus(&mut EnvoyTarget).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    let mut seen_listed = BTreeSet::new();
    for result in &results {
        let Some(entry) = listed(result) else {
            if !result.problems.is_empty() {
                failures.push(result.report_line());
            }
            continue;
        };
        seen_listed.insert((entry.file, entry.case));
        let o = &result.observed;
        let as_listed = matches!(
            &o.reply,
            Reply::Local { status, code: None, .. } if *status == entry.envoy_status
        ) && o.decision.is_none();
        if !as_listed {
            failures.push(format!(
                "{} [{}] {}: listed as not reproducible ({}), but observed: {}",
                result.file,
                result.pass.name(),
                result.description,
                entry.reason,
                o.summary()
            ));
        }
    }
    for entry in NOT_REPRODUCIBLE {
        if !seen_listed.contains(&(entry.file, entry.case)) {
            failures.push(format!(
                "{}: `{}` is listed as not reproducible but is not in the corpus",
                entry.file, entry.case
            ));
        }
    }
    assert!(!results.is_empty(), "the corpus is empty");
    assert!(
        failures.is_empty(),
        "{} of {} corpus checks through Envoy failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

/// The runner is not vacuous: in a copy of a corpus file with expectations changed (an
/// allow's upstream header, a denial's code, a rule id, an allow turned into a deny, and
/// where the file has them a `mode` and a `shadow` outcome) each changed case must fail, in
/// both passes. (Whether the others pass is `corpus_through_envoy`'s business.)
#[test]
fn changed_expectations_are_caught() {
    let skip: Vec<&str> = NOT_REPRODUCIBLE.iter().map(|n| n.case).collect();
    let missed = missed_mutations(&mut EnvoyTarget, &skip).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        missed.is_empty(),
        "changed expectations not caught: {missed:?}"
    );
}
