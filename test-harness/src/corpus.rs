//! The decision corpus (`core/tests/cases/*.json`, format in its README) through a real
//! Envoy loading `dist/meshgate.wasm`: [`EnvoyTarget`] is the Envoy [`Target`] of the runner
//! every corpus target shares (`meshgate_test_support::corpus`, which holds the case schema,
//! the test keys, the token minting and the comparison).
//!
//! For each corpus file the target starts the harness's echo stub and an Envoy from
//! `configs/corpus.yaml` whose meshgate plugin configuration is the file's `config`, sends
//! each request with the raw client and reports what came back. Envoy's clock is real, so
//! tokens are minted at the current time, not the file's `now`; each file runs twice (cold,
//! then the same tokens again, which the filter's token cache then answers), on one Envoy
//! worker so the second pass meets the first pass's cache.
//!
//! What Envoy observes, per request:
//! - what the client sees: the request reached the echo stub, or a local reply with its status,
//!   its body `code` (meshgate's JSON) and its `www-authenticate` challenge;
//! - the `meshgate decision` log line of that request (found by the `x-request-id` the target
//!   sets): `decision`, `code`, `rule_id`, `mode` and `shadow` (the target turns decision log
//!   sampling up to every request, see [`log_every_decision`]);
//! - for requests that reached the stub, the path and headers it received.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshgate_test_support::corpus::{
    Decided, FileRun, Observed, Observes, Reply, Target, Upstream,
};
use meshgate_test_support::unix_now;
use serde_json::{json, Map, Value};

use crate::envoy::{Envoy, EnvoyError, EnvoyOptions};
use crate::http_client::{self, HttpError, Response};
use crate::ports::{free_port, HarnessError};
use crate::upstream::UpstreamServer;

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{{{{{name}}}}}` is left in the Envoy config template")]
    TemplateUnfilled { name: String },
    #[error("the Envoy config template has no `{{{{{name}}}}}`")]
    TemplateUnused { name: String },
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Harness(#[from] HarnessError),
}

/// Fills `{{NAME}}` placeholders (uppercase letters and `_`); every variable must be used
/// and every placeholder filled. Values are not scanned, so they may contain braces.
pub fn render_template(template: &str, vars: &[(&str, String)]) -> Result<String, CorpusError> {
    let mut out = String::with_capacity(template.len());
    let mut used = vec![false; vars.len()];
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let inner = after.get(2..).unwrap_or_default();
        let name_len = inner
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(inner.len());
        let name = inner.get(..name_len).unwrap_or_default();
        let closed = inner.get(name_len..).is_some_and(|t| t.starts_with("}}"));
        if name.is_empty() || !closed {
            // Not a placeholder: keep the braces as text.
            out.push_str("{{");
            rest = inner;
            continue;
        }
        let index = vars.iter().position(|(n, _)| *n == name).ok_or_else(|| {
            CorpusError::TemplateUnfilled {
                name: name.to_owned(),
            }
        })?;
        if let (Some((_, value)), Some(flag)) = (vars.get(index), used.get_mut(index)) {
            out.push_str(value);
            *flag = true;
        }
        rest = inner.get(name_len.saturating_add(2)..).unwrap_or_default();
    }
    out.push_str(rest);
    if let Some(((name, _), _)) = vars.iter().zip(&used).find(|(_, used)| !**used) {
        return Err(CorpusError::TemplateUnused {
            name: (*name).to_owned(),
        });
    }
    Ok(out)
}

/// A test-only Envoy config template from `test-harness/configs/`.
pub fn config_template(name: &str) -> Result<String, CorpusError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name);
    std::fs::read_to_string(&path).map_err(|source| CorpusError::Read { path, source })
}

// ---------------------------------------------------------------------------------------
// The corpus through Envoy
// ---------------------------------------------------------------------------------------

/// Envoy starts with one worker, so the second pass meets the first pass's cache.
const CORPUS_CONCURRENCY: u32 = 1;

/// The corpus runner's Envoy target: a fresh Envoy and echo stub per file, stopped when the
/// file is done.
#[derive(Debug, Default)]
pub struct EnvoyTarget;

impl Target for EnvoyTarget {
    fn name(&self) -> &'static str {
        "envoy"
    }

    fn observes(&self) -> Observes {
        Observes {
            mode_and_shadow: true,
            reply_body: true,
            upstream: true,
        }
    }

    /// Envoy's clock is the wall clock.
    fn clock(&self, _file_now: i64) -> i64 {
        unix_now()
    }

    fn run(
        &mut self,
        file: &FileRun<'_>,
    ) -> Result<Vec<Observed>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(run_file(file)?)
    }
}

fn run_file(file: &FileRun<'_>) -> Result<Vec<Observed>, CorpusError> {
    let config = log_every_decision(file.config.clone());
    let upstream = UpstreamServer::start("127.0.0.1:0")?;
    let (listen, admin) = (free_port()?, free_port()?);
    let yaml = render_template(
        &config_template("corpus.yaml")?,
        &[
            ("ADMIN_PORT", admin.to_string()),
            ("LISTEN_PORT", listen.to_string()),
            ("UPSTREAM_PORT", upstream.port().to_string()),
            // A JSON string is a valid YAML double-quoted scalar.
            (
                "PLUGIN_CONFIG",
                Value::String(config.to_string()).to_string(),
            ),
        ],
    )?;
    let mut opts = EnvoyOptions::new(yaml, admin);
    opts.concurrency = CORPUS_CONCURRENCY;
    // Builds that log allows do so at debug or info; their decision lines are compared too.
    opts.log_level = "debug".to_owned();
    let envoy = Envoy::start(opts)?;

    let mut sent = Vec::with_capacity(file.requests.len());
    for request in &file.requests {
        let request_id = format!("corpus-{}-{}", request.pass.name(), request.index);
        let spec = &request.case.request;
        let mut headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers.push(("x-request-id", &request_id));
        let response = http_client::send(listen, &spec.method, &spec.host, &spec.path, &headers)?;
        sent.push((request_id, response));
    }

    let records = decision_records(&envoy.log());
    Ok(sent
        .into_iter()
        .map(|(request_id, response)| observe(&response, records.get(&request_id)))
        .collect())
}

/// The config with decision log sampling turned up to every request, when this meshgate
/// knows `decision_log` (checked with `meshgate-core`, which the filter is built from): the
/// runner reads every decision from the log, and allowed requests are not logged by
/// default. Sampling changes what is logged, never a decision. A meshgate without
/// `decision_log` logs every decision anyway, and gets the config unchanged.
pub fn log_every_decision(config: Value) -> Value {
    let mut candidate = config.clone();
    let Some(root) = candidate.as_object_mut() else {
        return config;
    };
    let log = root
        .entry("decision_log")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(log) = log.as_object_mut() else {
        return config;
    };
    log.insert("allow_sample_rate".into(), json!(1.0));
    log.insert("deny_sample_rate".into(), json!(1.0));
    if meshgate_core::Policy::from_json(candidate.to_string().as_bytes()).is_ok() {
        candidate
    } else {
        config
    }
}

/// `meshgate decision {...}` records in an Envoy log, by `request_id`.
pub fn decision_records(log: &str) -> BTreeMap<String, Value> {
    const MARKER: &str = "meshgate decision ";
    log.lines()
        .filter_map(|line| {
            let start = line.find(MARKER)?.saturating_add(MARKER.len());
            let record: Value = serde_json::from_str(line.get(start..)?).ok()?;
            let id = record.get("request_id")?.as_str()?.to_owned();
            Some((id, record))
        })
        .collect()
}

fn observe(response: &Response, record: Option<&Value>) -> Observed {
    let body = response.json();
    let is_echo = body.get("headers").is_some_and(Value::is_object)
        && body.get("method").is_some_and(Value::is_string);
    let text =
        |value: &Value, name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    let reply = if is_echo {
        let headers: BTreeMap<String, String> = body
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_owned())))
            .collect();
        Reply::Upstream(Some(Upstream {
            path: text(&body, "path").unwrap_or_default(),
            headers,
        }))
    } else {
        Reply::Local {
            status: response.status,
            code: text(&body, "code"),
            challenge: response.header("www-authenticate").map(str::to_owned),
        }
    };
    let decision = record.map(Decided::from_record);
    Observed { reply, decision }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_must_be_filled_exactly() {
        let vars = [("A", "1".to_owned())];
        assert_eq!(
            render_template("x {{A}} {{A}} {{a}} {{", &vars).unwrap(),
            "x 1 1 {{a}} {{"
        );
        assert!(matches!(
            render_template("x", &vars),
            Err(CorpusError::TemplateUnused { .. })
        ));
        assert!(matches!(
            render_template("{{A}} {{B}}", &vars),
            Err(CorpusError::TemplateUnfilled { name }) if name == "B"
        ));
    }
}
