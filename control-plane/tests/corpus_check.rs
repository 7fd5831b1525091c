//! The decision corpus (`core/tests/cases/*.json`) through `meshgate check`, in process: the
//! command line's own entry ([`meshgate_control_plane::cli::run`]) with `--config` (the file's
//! configuration, written out), `--url`, `--method`, every request header as `--header` (the
//! token among them, where `token_in` puts it), `--now` (the file's clock) and `--json`.
//!
//! `meshgate check` reports the decision, its code and rule, the mode and the shadow
//! outcome, and the status; it has no token cache (one pass), no reply body and no upstream,
//! so what upstream would receive is not compared here (core's and Envoy's runners do).

use std::path::PathBuf;

use meshgate_control_plane::cli::{run, CliEnv};
use meshgate_test_support::corpus::{
    failures, missed_mutations, run_corpus, Decided, FileRun, Observed, Observes, Pass, Reply,
    Target,
};
use serde_json::Value;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Check {
    dir: PathBuf,
}

impl Check {
    fn new() -> Check {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("corpus-check-{}", std::process::id()));
        Check { dir }
    }
}

impl Target for Check {
    fn name(&self) -> &'static str {
        "meshgate check"
    }

    fn observes(&self) -> Observes {
        Observes {
            mode_and_shadow: true,
            reply_body: false,
            upstream: false,
        }
    }

    fn passes(&self) -> &'static [Pass] {
        &[Pass::Cold]
    }

    fn run(&mut self, file: &FileRun<'_>) -> Result<Vec<Observed>, BoxError> {
        std::fs::create_dir_all(&self.dir)?;
        let config = self.dir.join(file.name);
        std::fs::write(&config, file.config.to_string())?;
        let config = config.to_string_lossy().into_owned();
        let env = CliEnv {
            now: file.now,
            demo_dir: None,
        };
        let mut observed = Vec::with_capacity(file.requests.len());
        for sent in &file.requests {
            let request = &sent.case.request;
            let mut args = vec![
                "check".to_owned(),
                "--config".to_owned(),
                config.clone(),
                "--url".to_owned(),
                format!("http://{}{}", request.host, request.path),
                "--method".to_owned(),
                request.method.clone(),
                "--now".to_owned(),
                file.now.to_string(),
                "--json".to_owned(),
            ];
            for (name, value) in &sent.headers {
                args.extend(["--header".to_owned(), format!("{name}:{value}")]);
            }
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let status = run(&args, &env, &mut out, &mut err);
            let json: Value = serde_json::from_slice(&out).map_err(|e| {
                format!(
                    "`{}`: exit status {status}, {e}: {}",
                    sent.case.description,
                    String::from_utf8_lossy(&err)
                )
            })?;
            observed.push(observation(&json, status)?);
        }
        Ok(observed)
    }
}

/// `meshgate check --json` output (and its exit status: 0 allowed, 1 denied) as an
/// observation. A denial in shadow mode goes upstream.
fn observation(json: &Value, exit: u8) -> Result<Observed, BoxError> {
    let text = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_owned);
    let decision = text("decision").ok_or("no `decision` in the output")?;
    if exit != u8::from(decision != "allow") {
        return Err(format!("decision {decision} with exit status {exit}").into());
    }
    let mode = text("mode");
    let status = json.get("status").and_then(Value::as_u64).unwrap_or(0);
    let reply = if decision == "deny" && mode.as_deref() == Some("enforce") {
        Reply::Local {
            status: u16::try_from(status)?,
            code: None,
            challenge: None,
        }
    } else {
        Reply::Upstream(None)
    };
    Ok(Observed {
        reply,
        decision: Some(Decided {
            decision,
            code: text("code").unwrap_or_default(),
            rule_id: text("rule_id"),
            mode,
            shadow: json.get("shadow").cloned().unwrap_or_default(),
            reason: text("reason").unwrap_or_default(),
        }),
    })
}

#[test]
fn corpus_through_meshgate_check() {
    let results = run_corpus(&mut Check::new()).unwrap_or_else(|e| panic!("{e}"));
    if let Err(report) = failures("meshgate check", &results) {
        panic!("{report}");
    }
}

/// The runner is not vacuous for `meshgate check`: every changed expectation fails.
#[test]
fn changed_expectations_are_caught_through_meshgate_check() {
    let missed = missed_mutations(&mut Check::new(), &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        missed.is_empty(),
        "changed expectations not caught: {missed:?}"
    );
}
