//! The decision corpus (`core/tests/cases/*.json`) through a real Envoy loading
//! `dist/meshgate.wasm` (`./build.sh` builds it). Every case of every file is sent twice
//! (cold, then answered from the token cache) and must reach the decision, status, body
//! code, logged rule and upstream headers the corpus expects of `core`; see
//! `meshgate_test_harness::corpus` for what is compared and how tokens are minted.
//!
//! Cases Envoy itself answers before meshgate runs are listed in `NOT_REPRODUCIBLE` with
//! the reason and what Envoy does instead; the test fails if such a case starts reaching
//! meshgate (the entry is stale) or if a listed case disappears from the corpus.

#![expect(
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions index JSON values"
)]

use std::collections::BTreeSet;

use meshgate_test_harness::corpus::{corpus_files, run_file, CaseResult, TestKeys};
use meshgate_test_harness::envoy::repo_root;
use serde_json::{json, Value};

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
    let keys = TestKeys::load().unwrap();
    let mut failures = Vec::new();
    let mut checks = 0;
    let mut seen_listed = BTreeSet::new();
    for file in corpus_files().unwrap() {
        let results = run_file(&file, &keys).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for result in results {
            checks += 1;
            let Some(entry) = listed(&result) else {
                if !result.problems.is_empty() {
                    failures.push(result.report_line());
                }
                continue;
            };
            seen_listed.insert((entry.file, entry.case));
            let o = &result.observed;
            let as_listed = !o.reached_upstream
                && o.status == entry.envoy_status
                && o.code.is_none()
                && o.decision_log.is_none();
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
    }
    for entry in NOT_REPRODUCIBLE {
        if !seen_listed.contains(&(entry.file, entry.case)) {
            failures.push(format!(
                "{}: `{}` is listed as not reproducible but is not in the corpus",
                entry.file, entry.case
            ));
        }
    }
    assert!(checks > 0, "the corpus is empty");
    assert!(
        failures.is_empty(),
        "{} of {checks} corpus checks through Envoy failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The runner is not vacuous: in a copy of a corpus file with expectations changed (an
/// allow's upstream header, a denial's code, a rule id, an allow turned into a deny, and
/// where the file has them a `mode` and a `shadow` outcome) each changed case must fail, in
/// both passes. (Whether the others pass is
/// `corpus_through_envoy`'s business.)
#[test]
fn changed_expectations_are_caught() {
    let keys = TestKeys::load().unwrap();
    // The file that allows the most kinds of change.
    let (corpus, wanted) = corpus_files()
        .unwrap()
        .iter()
        .filter_map(|file| mutate(serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()))
        .max_by_key(|(_, changed)| changed.len())
        .expect("no corpus file has cases to mutate");

    let dir = repo_root().join("target/corpus-mutants");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.json", std::process::id()));
    std::fs::write(&path, corpus.to_string()).unwrap();
    let results = run_file(&path, &keys);
    std::fs::remove_file(&path).unwrap();

    let failing: BTreeSet<(String, &str)> = results
        .unwrap()
        .into_iter()
        .filter(|r| !r.problems.is_empty())
        .map(|r| (r.description, r.pass.name()))
        .collect();
    let missed: Vec<_> = wanted
        .iter()
        .flat_map(|d| [(d.clone(), "cold"), (d.clone(), "cached")])
        .filter(|case| !failing.contains(case))
        .collect();
    assert!(
        missed.is_empty(),
        "changed expectations not caught: {missed:?}"
    );
}

/// The corpus with expectations changed, and the changed cases' descriptions; `None` when
/// the file lacks a case for one of the first four changes.
fn mutate(mut corpus: Value) -> Option<(Value, BTreeSet<String>)> {
    let cases = corpus["cases"].as_array_mut()?;
    let mut taken: Vec<usize> = Vec::new();
    let mut pick = |cases: &[Value], want: &dyn Fn(&Value) -> bool| {
        let i = (0..cases.len()).find(|i| {
            !taken.contains(i)
                && want(&cases[*i])
                && cases[*i]["description"]
                    .as_str()
                    .is_some_and(|d| listed_case(d).is_none())
        })?;
        taken.push(i);
        Some(i)
    };
    let is_identity = |k: &String| k.starts_with("x-meshgate-");
    let header = pick(cases, &|c| {
        c["expect"]["headers"]
            .as_object()
            .is_some_and(|h| h.keys().any(is_identity))
    })?;
    let code = pick(cases, &|c| c["expect"]["decision"] == "deny")?;
    let rule = pick(cases, &|c| c["expect"]["rule_id"].is_string())?;
    let flipped = pick(cases, &|c| c["expect"]["decision"] == "allow")?;

    let headers = cases[header]["expect"]["headers"].as_object_mut()?;
    let name = headers.keys().find(|k| is_identity(k))?.clone();
    headers.insert(name, json!("mutated"));
    cases[code]["expect"]["code"] = json!("mutated_code");
    cases[rule]["expect"]["rule_id"] = json!("mutated-rule");
    let expect = &mut cases[flipped]["expect"];
    expect["decision"] = json!("deny");
    expect["code"] = json!("no_rule_matched");
    expect["status"] = json!(403);
    let mut changed = vec![header, code, rule, flipped];
    // Where the file has them: a mode and a shadow outcome (an explicit `null` included).
    if let Some(mode) = pick(cases, &|c| c["expect"]["mode"].is_string()) {
        let flipped = if cases[mode]["expect"]["mode"] == "shadow" {
            "enforce"
        } else {
            "shadow"
        };
        cases[mode]["expect"]["mode"] = json!(flipped);
        changed.push(mode);
    }
    if let Some(shadow) = pick(cases, &|c| c["expect"].get("shadow").is_some()) {
        cases[shadow]["expect"]["shadow"] = if cases[shadow]["expect"]["shadow"].is_null() {
            json!({"decision": "deny", "rule_id": "mutated-rule"})
        } else {
            Value::Null
        };
        changed.push(shadow);
    }
    let changed = changed
        .iter()
        .map(|i| cases[*i]["description"].as_str().map(str::to_owned))
        .collect::<Option<BTreeSet<String>>>()?;
    Some((corpus, changed))
}

fn listed_case(description: &str) -> Option<&'static NotReproducible> {
    NOT_REPRODUCIBLE.iter().find(|n| n.case == description)
}
