//! The decision corpus (`core/tests/cases/*.json`, format in its README) and its one runner.
//!
//! A corpus file is a plugin configuration plus requests with the decision meshgate must
//! reach. [`run_file`] mints every case's token, builds its request, hands the whole file to a
//! [`Target`] (core called directly, `meshgate check`, the filter in a real Envoy) and compares
//! what the target observed with the case's `expect`. A target says what it can observe
//! ([`Observes`]); everything it observes is compared, the same way for every target:
//!
//! - whether the request went upstream (expected for `status` 200: allowed, or denied in
//!   shadow mode) or got a local reply with `status`; for targets that see the reply body, its
//!   `code`, and on a 401 the `Bearer realm="meshgate"` challenge;
//! - the decision (`decision`, `code`, and `rule_id` when the case names one), and `mode` and
//!   `shadow` when the case names them and the target reports them;
//! - for requests that went upstream, on targets that see what upstream received:
//!   `expect.headers` (`null` = absent; `:path` is the path upstream received, and `null`
//!   there means the path as sent), `removed` (absent upstream) and `kept` (present).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::keys::{corpus_jwks, hs_jwk, private_key};
use crate::sign::{b64, sign};
use crate::CorpusError;

/// The challenge every 401 of meshgate carries.
const CHALLENGE: &str = "Bearer realm=\"meshgate\"";

// ---------------------------------------------------------------------------------------
// The case schema
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusFile {
    pub description: String,
    /// The fixed clock (Unix seconds). Targets with a real clock (Envoy) mint at their own.
    pub now: i64,
    /// The plugin configuration; `"$JWKS"` anywhere stands for [`corpus_jwks`].
    pub config: Value,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub description: String,
    #[serde(default)]
    pub token: Option<TokenSpec>,
    pub request: RequestSpec,
    pub expect: Expect,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TokenSpec {
    /// Sent as written.
    Raw(String),
    /// Signed at test time; claim strings `now+N` / `now-N` become times relative to the clock.
    Minted {
        alg: String,
        /// `rsa`, `ec`, `ed` or `hs` (the HMAC key as HS256).
        key: String,
        /// Defaults to `{"alg": alg, "kid": key}`.
        #[serde(default)]
        header: Option<Value>,
        claims: Map<String, Value>,
        /// Flip the signature's 11th character between `A` and `B`.
        #[serde(default)]
        tamper: bool,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    pub method: String,
    pub host: String,
    pub path: String,
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// `authorization` (default), `authorization-lowercase`, `authorization-twice`, `none`,
    /// or the name of the header that carries the bare token.
    #[serde(default)]
    pub token_in: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `allow` or `deny`.
    pub decision: String,
    pub code: String,
    /// What the client gets: 200 when the request goes upstream (shadow mode included).
    pub status: u16,
    #[serde(default)]
    pub rule_id: Option<String>,
    /// Headers upstream receives (`null`: absent); `:path` is the path upstream receives.
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default)]
    pub removed: Vec<String>,
    #[serde(default)]
    pub kept: Vec<String>,
    /// `"enforce"` or `"shadow"`: the mode the request is decided in.
    #[serde(default)]
    pub mode: Option<String>,
    /// What shadow rules would have decided, `{"decision", "rule_id"}`, or `null` for no
    /// shadow outcome. Absent: not checked; an explicit `null` is checked.
    #[serde(default, deserialize_with = "present")]
    pub shadow: Option<Value>,
}

/// `Some(value)` for a present field, `null` included (`Option<Value>` alone reads `null` as
/// `None`, which would make `"shadow": null` an expectation nobody checks).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------------------
// Loading, minting, requests
// ---------------------------------------------------------------------------------------

/// `core/tests/cases`.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/cases")
}

/// The corpus files, sorted.
pub fn corpus_files() -> Result<Vec<PathBuf>, CorpusError> {
    let dir = corpus_dir();
    let read_err = |source| CorpusError::Read {
        path: dir.clone(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(CorpusError::NoCorpusFiles { dir });
    }
    Ok(files)
}

pub fn load_file(path: &Path) -> Result<CorpusFile, CorpusError> {
    let bytes = std::fs::read(path).map_err(|source| CorpusError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| CorpusError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces every `"$JWKS"` string in `value` with `jwks`.
pub fn substitute_jwks(value: &mut Value, jwks: &Value) {
    match value {
        Value::String(s) if s == "$JWKS" => *value = jwks.clone(),
        Value::Array(items) => items.iter_mut().for_each(|v| substitute_jwks(v, jwks)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute_jwks(v, jwks)),
        _ => {}
    }
}

/// The file's configuration with `"$JWKS"` replaced by the test keys.
pub fn file_config(corpus: &CorpusFile) -> Value {
    let mut config = corpus.config.clone();
    substitute_jwks(&mut config, &corpus_jwks());
    config
}

/// Claim strings `now+N` / `now-N` become numbers relative to `now` (top-level claims only).
pub fn relative_times(claims: &mut Map<String, Value>, now: i64) {
    for value in claims.values_mut() {
        let Some(s) = value.as_str() else { continue };
        let offset = if let Some(n) = s.strip_prefix("now+") {
            n.parse::<i64>().ok()
        } else if let Some(n) = s.strip_prefix("now-") {
            n.parse::<i64>().ok().map(i64::saturating_neg)
        } else {
            None
        };
        if let Some(offset) = offset {
            *value = json!(now.saturating_add(offset));
        }
    }
}

/// The token of a case at clock `now`.
pub fn mint(spec: &TokenSpec, now: i64) -> Result<String, CorpusError> {
    let (alg, key, header, claims, tamper) = match spec {
        TokenSpec::Raw(s) => return Ok(s.clone()),
        TokenSpec::Minted {
            alg,
            key,
            header,
            claims,
            tamper,
        } => (alg, key, header, claims, *tamper),
    };
    let mut claims = claims.clone();
    relative_times(&mut claims, now);
    let header = header
        .clone()
        .unwrap_or_else(|| json!({"alg": alg, "kid": key}));
    let claims = Value::Object(claims);
    let token = if alg == "none" {
        format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        )
    } else {
        let key = if key == "hs" {
            hs_jwk("hs", "HS256")
        } else {
            private_key(key)?
        };
        sign(alg, &key, &header, &claims)?
    };
    if !tamper {
        return Ok(token);
    }
    let (input, sig) = token
        .rsplit_once('.')
        .ok_or(CorpusError::TooShortToTamper)?;
    let mut sig: Vec<char> = sig.chars().collect();
    let c = sig.get_mut(10).ok_or(CorpusError::TooShortToTamper)?;
    *c = if *c == 'A' { 'B' } else { 'A' };
    Ok(format!("{input}.{}", sig.into_iter().collect::<String>()))
}

/// The request headers besides the pseudo-headers: the case's, then the token as `token_in`
/// says.
pub fn request_headers(
    spec: &RequestSpec,
    token: Option<&str>,
) -> Result<Vec<(String, String)>, CorpusError> {
    let mut headers = Vec::new();
    for (name, value) in &spec.headers {
        let value = value
            .as_str()
            .ok_or_else(|| CorpusError::HeaderNotString { name: name.clone() })?;
        headers.push((name.clone(), value.to_owned()));
    }
    if let Some(token) = token {
        let bearer = || ("authorization".to_owned(), format!("Bearer {token}"));
        match spec.token_in.as_deref().unwrap_or("authorization") {
            "none" => {}
            "authorization" => headers.push(bearer()),
            "authorization-lowercase" => {
                headers.push(("authorization".into(), format!("bearer {token}")));
            }
            "authorization-twice" => headers.extend([bearer(), bearer()]),
            other => headers.push((other.to_owned(), token.to_owned())),
        }
    }
    Ok(headers)
}

// ---------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------

/// The passes over a file: the second sends the first pass's tokens again, so a target with a
/// token cache answers them from it; that must not change any answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Cold,
    Cached,
}

impl Pass {
    pub fn name(self) -> &'static str {
        match self {
            Pass::Cold => "cold",
            Pass::Cached => "cached",
        }
    }
}

/// One request as the runner sends it.
#[derive(Debug, Clone)]
pub struct Sent<'a> {
    pub pass: Pass,
    /// The case's place in its file.
    pub index: usize,
    pub case: &'a Case,
    /// [`request_headers`]: no pseudo-headers.
    pub headers: Vec<(String, String)>,
}

/// One file as a target gets it.
#[derive(Debug, Clone)]
pub struct FileRun<'a> {
    /// The file name, e.g. `vertical_slice.json`.
    pub name: &'a str,
    /// The plugin configuration, `"$JWKS"` substituted.
    pub config: Value,
    /// The clock the tokens were minted at ([`Target::clock`]).
    pub now: i64,
    /// Every case in every pass, in order.
    pub requests: Vec<Sent<'a>>,
}

/// What a target can see besides the decision and whether the request went upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observes {
    /// The decision's `mode` and `shadow` outcome.
    pub mode_and_shadow: bool,
    /// The body `code` and challenge of local replies.
    pub reply_body: bool,
    /// What upstream received (headers and path).
    pub upstream: bool,
}

/// A way to run meshgate: core called directly, `meshgate check`, the filter in Envoy.
pub trait Target {
    /// For reports: `core`, `meshgate check`, `envoy`.
    fn name(&self) -> &'static str;
    fn observes(&self) -> Observes;
    /// The passes this target runs.
    fn passes(&self) -> &'static [Pass] {
        &[Pass::Cold, Pass::Cached]
    }
    /// The clock to mint a file's tokens at: the file's own `now` unless the target has a
    /// real clock.
    fn clock(&self, file_now: i64) -> i64 {
        file_now
    }
    /// Decides every request of one file, in order: one observation per request.
    fn run(
        &mut self,
        file: &FileRun<'_>,
    ) -> Result<Vec<Observed>, Box<dyn std::error::Error + Send + Sync>>;
}

/// What a target saw of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub reply: Reply,
    /// The decision meshgate reported; `None` if the target saw none (Envoy answered itself,
    /// or no decision was logged).
    pub decision: Option<Decided>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The request went upstream: what upstream received, for targets that see it.
    Upstream(Option<Upstream>),
    /// A local reply; `code` and `challenge` for targets that see the reply body.
    Local {
        status: u16,
        code: Option<String>,
        challenge: Option<String>,
    },
}

/// What upstream received.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Upstream {
    pub path: String,
    /// Lowercase names.
    pub headers: BTreeMap<String, String>,
}

/// A decision as a target reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    /// `allow` or `deny`.
    pub decision: String,
    pub code: String,
    pub rule_id: Option<String>,
    /// `enforce` or `shadow`, for targets that report it.
    pub mode: Option<String>,
    /// The shadow outcome as the decision log writes it (`null` for none).
    pub shadow: Value,
    /// Why, for failure messages.
    pub reason: String,
}

impl Sent<'_> {
    /// The request's headers as Envoy hands them to a filter: `:method`, `:authority` and
    /// `:path` first, then [`Sent::headers`].
    pub fn envoy_headers(&self) -> Vec<(String, String)> {
        let request = &self.case.request;
        let mut headers = vec![
            (":method".to_owned(), request.method.clone()),
            (":authority".to_owned(), request.host.clone()),
            (":path".to_owned(), request.path.clone()),
        ];
        headers.extend(self.headers.iter().cloned());
        headers
    }
}

impl Decided {
    /// A `meshgate decision {...}` log record (`core`'s `decision_record`).
    pub fn from_record(record: &Value) -> Decided {
        let text = |name: &str| record.get(name).and_then(Value::as_str).map(str::to_owned);
        Decided {
            decision: text("decision").unwrap_or_default(),
            code: text("code").unwrap_or_default(),
            rule_id: text("rule_id"),
            mode: text("mode"),
            shadow: record.get("shadow").cloned().unwrap_or_default(),
            reason: text("reason").unwrap_or_default(),
        }
    }
}

impl Observed {
    /// One line for failure messages.
    pub fn summary(&self) -> String {
        let decided = self.decision.as_ref().map_or_else(
            || "no decision seen".to_owned(),
            |d| {
                format!(
                    "decided {}/{} rule {} ({})",
                    d.decision,
                    d.code,
                    d.rule_id.as_deref().unwrap_or("-"),
                    d.reason
                )
            },
        );
        match &self.reply {
            Reply::Upstream(_) => format!("went upstream, {decided}"),
            Reply::Local { status, code, .. } => format!(
                "local reply {status} code {}, {decided}",
                code.as_deref().unwrap_or("(none)")
            ),
        }
    }
}

/// The outcome of one case in one pass.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub file: String,
    pub pass: Pass,
    pub description: String,
    pub observed: Observed,
    /// Differences from `expect`; empty when the target agrees with the corpus.
    pub problems: Vec<String>,
}

impl CaseResult {
    pub fn report_line(&self) -> String {
        format!(
            "{} [{}] {}: {} — observed: {}",
            self.file,
            self.pass.name(),
            self.description,
            self.problems.join("; "),
            self.observed.summary()
        )
    }
}

/// Every corpus file through `target`.
pub fn run_corpus(target: &mut dyn Target) -> Result<Vec<CaseResult>, CorpusError> {
    let mut results = Vec::new();
    for path in corpus_files()? {
        let corpus = load_file(&path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        results.extend(run_file(target, &name, &corpus)?);
    }
    Ok(results)
}

/// One corpus file through `target`: tokens minted once at the target's clock and sent in
/// every pass.
pub fn run_file(
    target: &mut dyn Target,
    name: &str,
    corpus: &CorpusFile,
) -> Result<Vec<CaseResult>, CorpusError> {
    let now = target.clock(corpus.now);
    let mut prepared = Vec::with_capacity(corpus.cases.len());
    for case in &corpus.cases {
        let token = case.token.as_ref().map(|t| mint(t, now)).transpose()?;
        prepared.push(request_headers(&case.request, token.as_deref())?);
    }
    let requests: Vec<Sent<'_>> =
        target
            .passes()
            .iter()
            .flat_map(|&pass| {
                corpus.cases.iter().zip(&prepared).enumerate().map(
                    move |(index, (case, headers))| Sent {
                        pass,
                        index,
                        case,
                        headers: headers.clone(),
                    },
                )
            })
            .collect();
    let file = FileRun {
        name,
        config: file_config(corpus),
        now,
        requests,
    };
    let target_name = target.name();
    let observed = target.run(&file).map_err(|source| CorpusError::Target {
        target: target_name,
        source,
    })?;
    if observed.len() != file.requests.len() {
        return Err(CorpusError::Answers {
            target: target_name,
            sent: file.requests.len(),
            got: observed.len(),
        });
    }
    let observes = target.observes();
    Ok(file
        .requests
        .iter()
        .zip(observed)
        .map(|(sent, observed)| CaseResult {
            file: name.to_owned(),
            pass: sent.pass,
            description: sent.case.description.clone(),
            problems: compare(sent.case, observes, &observed),
            observed,
        })
        .collect())
}

/// The lines of `results` with problems, and a closing count: for a test's assertion.
pub fn failures(target: &str, results: &[CaseResult]) -> Result<(), String> {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.problems.is_empty())
        .map(CaseResult::report_line)
        .collect();
    if results.is_empty() {
        return Err(format!("{target}: the corpus ran no case"));
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} of {} corpus checks through {target} failed:\n{}",
        failed.len(),
        results.len(),
        failed.join("\n")
    ))
}

/// Everything `observes` covers, against the case's `expect`.
pub fn compare(case: &Case, observes: Observes, got: &Observed) -> Vec<String> {
    let expect = &case.expect;
    let mut problems = Vec::new();
    let passes = expect.status == 200;
    match &got.reply {
        Reply::Upstream(upstream) => {
            if !passes {
                problems.push(format!(
                    "went upstream, expected a local reply {}",
                    expect.status
                ));
            } else if observes.upstream {
                match upstream {
                    Some(upstream) => problems.extend(compare_upstream(case, upstream)),
                    None => problems.push("what upstream received is unknown".to_owned()),
                }
            }
        }
        Reply::Local {
            status,
            code,
            challenge,
        } => {
            if passes {
                problems.push(format!(
                    "local reply {status}, expected the request to go upstream"
                ));
            } else if *status != expect.status {
                problems.push(format!("expected status {}, got {status}", expect.status));
            }
            if observes.reply_body && code.as_deref() != Some(expect.code.as_str()) {
                problems.push(format!(
                    "expected body code {}, got {}",
                    expect.code,
                    code.as_deref().unwrap_or("(none)")
                ));
            }
            if observes.reply_body
                && *status == 401
                && challenge
                    .as_deref()
                    .is_none_or(|c| !c.starts_with(CHALLENGE))
            {
                problems.push(format!("401 without a `{CHALLENGE}` challenge"));
            }
        }
    }
    match &got.decision {
        None => problems.push("no decision seen for this request".to_owned()),
        Some(decided) => problems.extend(compare_decision(expect, observes, decided)),
    }
    problems
}

fn compare_decision(expect: &Expect, observes: Observes, got: &Decided) -> Vec<String> {
    let mut problems = Vec::new();
    if got.decision != expect.decision || got.code != expect.code {
        problems.push(format!(
            "decided {}/{}, expected {}/{}",
            got.decision, got.code, expect.decision, expect.code
        ));
    }
    if let Some(rule) = &expect.rule_id {
        if got.rule_id.as_ref() != Some(rule) {
            problems.push(format!("rule {:?}, expected {rule}", got.rule_id));
        }
    }
    if !observes.mode_and_shadow {
        return problems;
    }
    if let Some(mode) = &expect.mode {
        if got.mode.as_ref() != Some(mode) {
            problems.push(format!("mode {:?}, expected {mode}", got.mode));
        }
    }
    if let Some(shadow) = &expect.shadow {
        // Only the members the corpus names are compared (the log also carries `code`).
        let matches = match (shadow.as_object(), got.shadow.as_object()) {
            (None, None) => shadow.is_null() && got.shadow.is_null(),
            (Some(want), Some(have)) => want.iter().all(|(k, v)| have.get(k) == Some(v)),
            _ => false,
        };
        if !matches {
            problems.push(format!("shadow {}, expected {shadow}", got.shadow));
        }
    }
    problems
}

/// `expect.headers`, `removed` and `kept` against what upstream received.
fn compare_upstream(case: &Case, upstream: &Upstream) -> Vec<String> {
    let mut problems = Vec::new();
    let received = |name: &str| upstream.headers.get(&name.to_ascii_lowercase());
    for (name, want) in &case.expect.headers {
        if name == ":path" {
            // `null`: meshgate did not rewrite the path, so it went upstream as sent.
            let want = want.as_str().unwrap_or(case.request.path.as_str());
            if upstream.path != want {
                problems.push(format!(
                    "upstream path {:?}, expected {want:?}",
                    upstream.path
                ));
            }
        } else if received(name).map(String::as_str) != want.as_str() {
            problems.push(format!(
                "upstream header {name} = {:?}, expected {want}",
                received(name)
            ));
        }
    }
    for name in &case.expect.removed {
        if let Some(value) = received(name) {
            problems.push(format!(
                "{name} reached upstream ({value}), expected removed"
            ));
        }
    }
    for name in &case.expect.kept {
        if received(name).is_none() {
            problems.push(format!("{name} did not reach upstream, expected kept"));
        }
    }
    problems
}

/// A copy of a corpus file with expectations changed, and the changed cases' descriptions:
/// a denial's code, a rule id, an allow turned into a deny, and what the target observes
/// besides: an allow's identity header upstream, and where the file has them a `mode` and a
/// `shadow` outcome. A runner that lets any changed case pass compares nothing. Cases in
/// `skip` are not changed. `None` when the file lacks a case for one of the changes that do
/// not depend on the file (all but `mode` and `shadow`).
pub fn mutated(
    corpus: &CorpusFile,
    observes: Observes,
    skip: &[&str],
) -> Option<(CorpusFile, BTreeSet<String>)> {
    let mut corpus = corpus.clone();
    let mut taken: Vec<usize> = Vec::new();
    let cases = &mut corpus.cases;
    let mut pick = |cases: &[Case], want: &dyn Fn(&Expect) -> bool| {
        let i = cases.iter().enumerate().position(|(i, c)| {
            !taken.contains(&i) && want(&c.expect) && !skip.contains(&c.description.as_str())
        })?;
        taken.push(i);
        Some(i)
    };
    let is_identity = |k: &String| k.starts_with("x-meshgate-");
    let header = if observes.upstream {
        Some(pick(cases, &|e| e.headers.keys().any(is_identity))?)
    } else {
        None
    };
    let code = pick(cases, &|e| e.decision == "deny")?;
    let rule = pick(cases, &|e| e.rule_id.is_some())?;
    let flipped = pick(cases, &|e| e.decision == "allow")?;
    let (mode, shadow) = if observes.mode_and_shadow {
        (
            pick(cases, &|e| e.mode.is_some()),
            pick(cases, &|e| e.shadow.is_some()),
        )
    } else {
        (None, None)
    };

    cases.get_mut(code)?.expect.code = "mutated_code".to_owned();
    cases.get_mut(rule)?.expect.rule_id = Some("mutated-rule".to_owned());
    let expect = &mut cases.get_mut(flipped)?.expect;
    expect.decision = "deny".to_owned();
    expect.code = "no_rule_matched".to_owned();
    expect.status = 403;
    let mut changed = vec![code, rule, flipped];
    if let Some(i) = header {
        let expect = &mut cases.get_mut(i)?.expect;
        let name = expect.headers.keys().find(|k| is_identity(k))?.clone();
        expect.headers.insert(name, json!("mutated"));
        changed.push(i);
    }
    if let Some(i) = mode {
        let expect = &mut cases.get_mut(i)?.expect;
        let other = if expect.mode.as_deref() == Some("shadow") {
            "enforce"
        } else {
            "shadow"
        };
        expect.mode = Some(other.to_owned());
        changed.push(i);
    }
    if let Some(i) = shadow {
        let expect = &mut cases.get_mut(i)?.expect;
        expect.shadow = Some(match &expect.shadow {
            Some(Value::Null) => json!({"decision": "deny", "rule_id": "mutated-rule"}),
            _ => Value::Null,
        });
        changed.push(i);
    }
    let changed = changed
        .iter()
        .map(|i| cases.get(*i).map(|c| c.description.clone()))
        .collect::<Option<BTreeSet<String>>>()?;
    Some((corpus, changed))
}

/// The file [`mutated`] changes the most cases of, with those cases.
pub fn most_mutable(
    observes: Observes,
    skip: &[&str],
) -> Result<Option<(CorpusFile, BTreeSet<String>)>, CorpusError> {
    let mut best: Option<(CorpusFile, BTreeSet<String>)> = None;
    for path in corpus_files()? {
        if let Some((file, changed)) = mutated(&load_file(&path)?, observes, skip) {
            if best.as_ref().is_none_or(|(_, b)| changed.len() > b.len()) {
                best = Some((file, changed));
            }
        }
    }
    Ok(best)
}

/// Runs [`most_mutable`] through `target`: the changed cases that did not fail, in each pass
/// (empty when the runner catches every change).
pub fn missed_mutations(
    target: &mut dyn Target,
    skip: &[&str],
) -> Result<Vec<(String, &'static str)>, CorpusError> {
    let Some((corpus, changed)) = most_mutable(target.observes(), skip)? else {
        return Err(CorpusError::NoCorpusFiles { dir: corpus_dir() });
    };
    let failing: BTreeSet<(String, &'static str)> = run_file(target, "mutated.json", &corpus)?
        .into_iter()
        .filter(|r| !r.problems.is_empty())
        .map(|r| (r.description, r.pass.name()))
        .collect();
    let passes = target.passes();
    Ok(changed
        .iter()
        .flat_map(|d| passes.iter().map(move |p| (d.clone(), p.name())))
        .filter(|case| !failing.contains(case))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_replace_top_level_strings_only() {
        let mut claims = json!({"exp": "now+5", "nbf": "now-5", "sub": "now", "o": {"x": "now+1"}});
        relative_times(claims.as_object_mut().unwrap(), 100);
        assert_eq!(
            claims,
            json!({"exp": 105, "nbf": 95, "sub": "now", "o": {"x": "now+1"}})
        );
    }

    #[test]
    fn every_corpus_file_loads_and_mints() {
        for path in corpus_files().unwrap() {
            let corpus = load_file(&path).unwrap();
            assert!(!corpus.cases.is_empty(), "{}", path.display());
            for case in &corpus.cases {
                let token = case.token.as_ref().map(|t| mint(t, corpus.now).unwrap());
                request_headers(&case.request, token.as_deref()).unwrap();
            }
        }
    }

    #[test]
    fn explicit_null_shadow_is_an_expectation() {
        let expect: Expect = serde_json::from_value(
            json!({"decision": "allow", "code": "x", "status": 200, "shadow": null}),
        )
        .unwrap();
        assert_eq!(expect.shadow, Some(Value::Null));
    }

    #[test]
    fn tokens_go_where_token_in_says() {
        let spec = |token_in: Option<&str>| RequestSpec {
            method: "GET".into(),
            host: "h".into(),
            path: "/".into(),
            headers: Map::new(),
            token_in: token_in.map(str::to_owned),
        };
        let names = |token_in| {
            request_headers(&spec(token_in), Some("t"))
                .unwrap()
                .into_iter()
                .map(|(n, v)| format!("{n}: {v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(None), ["authorization: Bearer t"]);
        assert_eq!(
            names(Some("authorization-lowercase")),
            ["authorization: bearer t"]
        );
        assert_eq!(names(Some("authorization-twice")).len(), 2);
        assert!(names(Some("none")).is_empty());
        assert_eq!(names(Some("x-token")), ["x-token: t"]);
    }

    /// A target that answers every request as its case expects: the comparison passes it,
    /// and fails it on every mutated case.
    struct Oracle;

    impl Target for Oracle {
        fn name(&self) -> &'static str {
            "oracle"
        }
        fn observes(&self) -> Observes {
            Observes {
                mode_and_shadow: true,
                reply_body: true,
                upstream: true,
            }
        }
        fn run(
            &mut self,
            file: &FileRun<'_>,
        ) -> Result<Vec<Observed>, Box<dyn std::error::Error + Send + Sync>> {
            Ok(file.requests.iter().map(|s| oracle(s.case)).collect())
        }
    }

    fn oracle(case: &Case) -> Observed {
        let e = &case.expect;
        let reply = if e.status == 200 {
            let mut upstream = Upstream {
                path: case.request.path.clone(),
                ..Upstream::default()
            };
            for name in &e.kept {
                upstream.headers.insert(name.clone(), "kept".into());
            }
            for (name, value) in &e.headers {
                match (name.as_str(), value.as_str()) {
                    (":path", Some(path)) => upstream.path = path.to_owned(),
                    (_, Some(v)) => {
                        upstream.headers.insert(name.clone(), v.to_owned());
                    }
                    _ => {}
                }
            }
            Reply::Upstream(Some(upstream))
        } else {
            Reply::Local {
                status: e.status,
                code: Some(e.code.clone()),
                challenge: Some(CHALLENGE.to_owned()),
            }
        };
        let shadow = e.shadow.clone().unwrap_or_default();
        Observed {
            reply,
            decision: Some(Decided {
                decision: e.decision.clone(),
                code: e.code.clone(),
                rule_id: e.rule_id.clone(),
                mode: e.mode.clone(),
                shadow,
                reason: String::new(),
            }),
        }
    }

    #[test]
    fn the_comparison_passes_the_expected_and_catches_every_change() {
        let results = run_corpus(&mut Oracle).unwrap();
        failures("oracle", &results).unwrap();
        // The oracle answers what the mutated file expects, so compare it against the
        // original expectations instead: every changed case must differ.
        let (corpus, changed) = most_mutable(Oracle.observes(), &[]).unwrap().unwrap();
        assert!(changed.len() >= 6, "{changed:?}");
        let originals: Vec<Case> = corpus_files()
            .unwrap()
            .iter()
            .flat_map(|p| load_file(p).unwrap().cases)
            .collect();
        for case in corpus
            .cases
            .iter()
            .filter(|c| changed.contains(&c.description))
        {
            let original = originals
                .iter()
                .find(|o| o.description == case.description)
                .unwrap();
            let problems = compare(original, Oracle.observes(), &oracle(case));
            assert!(!problems.is_empty(), "{} not caught", case.description);
        }
    }
}
