//! The decision corpus (`core/tests/cases/*.json`, format in its README) through a real
//! Envoy loading `dist/meshgate.wasm`, and the test keys and token signer that runners
//! outside `meshgate-core` share.
//!
//! For each corpus file the runner starts the harness's echo stub and an Envoy from
//! `configs/corpus.yaml` whose meshgate plugin configuration is the file's `config`, mints
//! every case's token exactly as `core/src/corpus.rs` does (from the private JWKs in
//! `testdata/keys/`), sends each request with the raw client and compares what comes back
//! with the case's `expect`. Two things differ from the core runner, because Envoy's clock is
//! real: `now` is the current time, not the file's `now`, and each file is run twice (cold,
//! then again with the same tokens, which the filter's token cache then answers).
//!
//! What is compared, per case:
//! - what the client sees: a case whose `status` is 200 must reach the echo stub (allowed,
//!   or denied in shadow mode); any other must get a local reply with that status and the
//!   expected body `code` (a 401 must also carry the `Bearer realm="meshgate"` challenge);
//! - the `meshgate decision` log line of that request (found by the `x-request-id` the runner
//!   sets): its `decision` and `code`, and `rule_id`, `mode` and `shadow` when the case
//!   names them (the runner turns decision log sampling up to every request, see
//!   `log_every_decision`);
//! - for requests that reached the stub, the headers it received: `expect.headers` (`null`
//!   = absent; `:path` is the stub's `path`, and `null` there means the path went upstream
//!   as sent), `removed` (absent upstream) and `kept` (present upstream).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs384, Hs512, Rsa, RsaPrivateKey};
use jwt_compact::jwk::{JsonWebKey, JwkError};
use jwt_compact::{Algorithm, AlgorithmSignature};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::envoy::{repo_root, Envoy, EnvoyError, EnvoyOptions};
use crate::http_client::{self, HttpError, Response};
use crate::ports::{free_port, HarnessError};
use crate::stack::unix_now;
use crate::upstream::UpstreamServer;

/// RSA and RSA-PSS algorithms the signer knows (`Rsa::with_name` takes only these).
const RSA_ALGS: [&str; 6] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a valid corpus or key file")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no corpus files in `{dir}`")]
    NoCorpusFiles { dir: PathBuf },
    #[error("the corpus names unknown key `{name}`")]
    UnknownKey { name: String },
    #[error("the test signer has no algorithm `{alg}`")]
    UnknownAlg { alg: String },
    #[error("the key cannot sign `{alg}`")]
    Key {
        alg: String,
        #[source]
        source: JwkError,
    },
    #[error("the key is not a JWK")]
    NotAJwk {
        #[source]
        source: serde_json::Error,
    },
    #[error("`tamper` needs a signature of at least 11 characters")]
    TooShortToTamper,
    #[error("request header `{name}` has a value that is not a string")]
    HeaderNotString { name: String },
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

// ---------------------------------------------------------------------------------------
// Test keys and signer
// ---------------------------------------------------------------------------------------

/// The RFC test keys as private JWKs, from `testdata/keys/` (the same files
/// `core/src/testing.rs` embeds).
#[derive(Debug, Clone)]
pub struct TestKeys {
    /// RFC 7515 A.2: 2048-bit RSA.
    pub rsa: Value,
    /// RFC 7515 A.3: P-256.
    pub ec: Value,
    /// RFC 8037 A.1: Ed25519.
    pub ed25519: Value,
    /// RFC 7515 A.1: a 64-byte HMAC key (`kty: oct`).
    pub hs: Value,
}

impl TestKeys {
    pub fn load() -> Result<TestKeys, CorpusError> {
        let dir = repo_root().join("testdata/keys");
        Ok(TestKeys {
            rsa: read_json(&dir.join("rsa.json"))?,
            ec: read_json(&dir.join("ec.json"))?,
            ed25519: read_json(&dir.join("ed25519.json"))?,
            hs: read_json(&dir.join("hs.json"))?,
        })
    }

    /// The private key a corpus `token.key` names: `rsa`, `ec`, `ed` or `hs` (as an HS256
    /// JWK with `kid: hs`, which is how `core/src/testing.rs` hands it to the signer).
    pub fn corpus_signing_key(&self, name: &str) -> Result<Value, CorpusError> {
        match name {
            "rsa" => Ok(self.rsa.clone()),
            "ec" => Ok(self.ec.clone()),
            "ed" => Ok(self.ed25519.clone()),
            "hs" => Ok(self.hs_jwk("HS256")),
            other => Err(CorpusError::UnknownKey {
                name: other.to_owned(),
            }),
        }
    }

    /// The HMAC key with `alg` and `kid: hs`, as configured locally.
    pub fn hs_jwk(&self, alg: &str) -> Value {
        let mut jwk = self.hs.clone();
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("alg".into(), json!(alg));
            obj.insert("kid".into(), json!("hs"));
        }
        jwk
    }

    /// What a corpus file's `"$JWKS"` stands for: the public keys `rsa` (RS256), `ec`
    /// (ES256), `ed` (EdDSA) and the HMAC key `hs` (HS256).
    pub fn corpus_jwks(&self) -> Value {
        json!({"keys": [
            public_jwk(&self.rsa, "rsa", Some("RS256")),
            public_jwk(&self.ec, "ec", Some("ES256")),
            public_jwk(&self.ed25519, "ed", Some("EdDSA")),
            self.hs_jwk("HS256"),
        ]})
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CorpusError> {
    let bytes = std::fs::read(path).map_err(|source| CorpusError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| CorpusError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// The public half of a private JWK, with `kid` and (optionally) `alg` added.
pub fn public_jwk(private: &Value, kid: &str, alg: Option<&str>) -> Value {
    let mut public = private.clone();
    if let Some(obj) = public.as_object_mut() {
        for member in ["d", "p", "q", "dp", "dq", "qi"] {
            obj.remove(member);
        }
        obj.insert("kid".into(), json!(kid));
        if let Some(alg) = alg {
            obj.insert("alg".into(), json!(alg));
        }
    }
    public
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `header.claims` (both serialized as given) with `alg` and the private JWK `key`.
/// `alg` picks the operation; the header is not checked, so tests can lie in it.
pub fn sign(alg: &str, key: &Value, header: &Value, claims: &Value) -> Result<String, CorpusError> {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign_bytes(alg, key, input.as_bytes())?;
    Ok(format!("{input}.{}", b64(&sig)))
}

/// The raw signature of `message` (JWS form: `r || s` for ES256).
pub fn sign_bytes(alg: &str, key: &Value, message: &[u8]) -> Result<Vec<u8>, CorpusError> {
    let jwk: JsonWebKey<'_> =
        serde_json::from_value(key.clone()).map_err(|source| CorpusError::NotAJwk { source })?;
    let key_err = |source| CorpusError::Key {
        alg: alg.to_owned(),
        source,
    };
    let sig = match alg {
        _ if RSA_ALGS.contains(&alg) => {
            let sk = RsaPrivateKey::try_from(&jwk).map_err(key_err)?;
            Rsa::with_name(alg).sign(&sk, message).as_bytes().to_vec()
        }
        "ES256" => {
            let sk = <Es256 as Algorithm>::SigningKey::try_from(&jwk).map_err(key_err)?;
            Es256.sign(&sk, message).as_bytes().to_vec()
        }
        "EdDSA" => {
            let sk = <Ed25519 as Algorithm>::SigningKey::try_from(&jwk).map_err(key_err)?;
            Ed25519.sign(&sk, message).as_bytes().to_vec()
        }
        "HS256" => {
            let sk = <Hs256 as Algorithm>::SigningKey::try_from(&jwk).map_err(key_err)?;
            Hs256.sign(&sk, message).as_bytes().to_vec()
        }
        "HS384" => {
            let sk = <Hs384 as Algorithm>::SigningKey::try_from(&jwk).map_err(key_err)?;
            Hs384.sign(&sk, message).as_bytes().to_vec()
        }
        "HS512" => {
            let sk = <Hs512 as Algorithm>::SigningKey::try_from(&jwk).map_err(key_err)?;
            Hs512.sign(&sk, message).as_bytes().to_vec()
        }
        other => {
            return Err(CorpusError::UnknownAlg {
                alg: other.to_owned(),
            })
        }
    };
    Ok(sig)
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
// Corpus files
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusFile {
    pub description: String,
    /// The core runner's fixed clock; through Envoy the clock is real and this is unused.
    pub now: i64,
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
    Raw(String),
    Minted {
        alg: String,
        key: String,
        #[serde(default)]
        header: Option<Value>,
        claims: Map<String, Value>,
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
    #[serde(default)]
    pub token_in: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub decision: String,
    pub code: String,
    pub status: u16,
    #[serde(default)]
    pub rule_id: Option<String>,
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default)]
    pub removed: Vec<String>,
    #[serde(default)]
    pub kept: Vec<String>,
    /// `"enforce"` or `"shadow"`: the mode the request is decided in (compared with the
    /// decision log's `mode`).
    #[serde(default)]
    pub mode: Option<String>,
    /// What shadow rules would have decided, `{"decision", "rule_id"}`, or `null` for no
    /// shadow outcome (compared with the decision log's `shadow`). Absent: not checked; an
    /// explicit `null` is checked.
    #[serde(default, deserialize_with = "present")]
    pub shadow: Option<Value>,
}

/// `Some(value)` for a present field, `null` included (`Option<Value>` alone reads `null` as
/// `None`, which would make `"shadow": null` an expectation nobody checks).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `core/tests/cases/*.json`, sorted.
pub fn corpus_files() -> Result<Vec<PathBuf>, CorpusError> {
    let dir = repo_root().join("core/tests/cases");
    let entries = std::fs::read_dir(&dir).map_err(|source| CorpusError::Read {
        path: dir.clone(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| CorpusError::Read {
                path: dir.clone(),
                source,
            })?
            .path();
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

pub fn load_corpus_file(path: &Path) -> Result<CorpusFile, CorpusError> {
    read_json(path)
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

/// Claim strings `now+N` / `now-N` become numbers relative to `now` (top-level claims only,
/// as in the core runner).
pub fn relative_times(claims: &mut Map<String, Value>, now: i64) {
    for value in claims.values_mut() {
        let Some(s) = value.as_str() else { continue };
        let offset = if let Some(n) = s.strip_prefix("now+") {
            n.parse::<i64>().ok()
        } else if let Some(n) = s.strip_prefix("now-") {
            n.parse::<i64>().ok().map(|n| n.saturating_neg())
        } else {
            None
        };
        if let Some(offset) = offset {
            *value = json!(now.saturating_add(offset));
        }
    }
}

/// The token of a case, minted as `core/src/corpus.rs` mints it.
pub fn mint(spec: &TokenSpec, now: i64, keys: &TestKeys) -> Result<String, CorpusError> {
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
        sign(alg, &keys.corpus_signing_key(key)?, &header, &claims)?
    };
    if !tamper {
        return Ok(token);
    }
    // The core runner's tampering: flip the signature's 11th character between A and B.
    let (input, sig) = token
        .rsplit_once('.')
        .ok_or(CorpusError::TooShortToTamper)?;
    let mut sig: Vec<char> = sig.chars().collect();
    let c = sig.get_mut(10).ok_or(CorpusError::TooShortToTamper)?;
    *c = if *c == 'A' { 'B' } else { 'A' };
    Ok(format!("{input}.{}", sig.into_iter().collect::<String>()))
}

/// The headers the raw client sends besides `host`: the case's, then the token as
/// `token_in` says (`authorization` by default, `authorization-lowercase`,
/// `authorization-twice`, `none`, or a header name).
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
        match spec.token_in.as_deref().unwrap_or("authorization") {
            "none" => {}
            "authorization" => headers.push(("authorization".into(), format!("Bearer {token}"))),
            "authorization-lowercase" => {
                headers.push(("authorization".into(), format!("bearer {token}")));
            }
            "authorization-twice" => {
                headers.push(("authorization".into(), format!("Bearer {token}")));
                headers.push(("authorization".into(), format!("Bearer {token}")));
            }
            other => headers.push((other.to_owned(), token.to_owned())),
        }
    }
    Ok(headers)
}

// ---------------------------------------------------------------------------------------
// Running a file through Envoy
// ---------------------------------------------------------------------------------------

/// The two passes over a file: the second reuses the first pass's tokens, so the filter's
/// token cache answers them; it must not change any answer.
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

/// What came back for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub status: u16,
    /// The echo stub answered (so meshgate let the request through).
    pub reached_upstream: bool,
    /// For local replies: the body's `code`, when the body is meshgate's JSON.
    pub code: Option<String>,
    /// This request's `meshgate decision` log record, if the filter ran.
    pub decision_log: Option<Value>,
    /// For requests that reached upstream: the stub's echo (`path`, `headers`, ...).
    pub echo: Option<Value>,
}

impl Observed {
    /// One line for failure messages.
    pub fn summary(&self) -> String {
        let logged = self.decision_log.as_ref().map_or_else(
            || "no decision logged".to_owned(),
            |r| {
                format!(
                    "logged {}/{} rule {} ({})",
                    r["decision"].as_str().unwrap_or("?"),
                    r["code"].as_str().unwrap_or("?"),
                    r["rule_id"],
                    r["reason"].as_str().unwrap_or("")
                )
            },
        );
        if self.reached_upstream {
            format!("reached upstream (stub status {}), {logged}", self.status)
        } else {
            format!(
                "local reply {} code {}, {logged}",
                self.status,
                self.code.as_deref().unwrap_or("(none)")
            )
        }
    }
}

/// The outcome of one case in one pass.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The corpus file's name, e.g. `vertical_slice.json`.
    pub file: String,
    pub pass: Pass,
    pub description: String,
    pub observed: Observed,
    /// Differences from `expect`; empty when Envoy + meshgate agree with the corpus.
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

/// Envoy starts with one worker, so the second pass meets the first pass's cache.
const CORPUS_CONCURRENCY: u32 = 1;

/// Runs one corpus file through a fresh Envoy; the Envoy and the stub are stopped on return.
pub fn run_file(path: &Path, keys: &TestKeys) -> Result<Vec<CaseResult>, CorpusError> {
    let corpus = load_corpus_file(path)?;
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut config = corpus.config.clone();
    substitute_jwks(&mut config, &keys.corpus_jwks());
    let config = log_every_decision(config);

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

    // Real time: Envoy's clock is the wall clock. Tokens are minted once and sent in both
    // passes, so the second pass is answered from the filter's token cache.
    let now = unix_now();
    let mut tokens = Vec::with_capacity(corpus.cases.len());
    for case in &corpus.cases {
        tokens.push(
            case.token
                .as_ref()
                .map(|t| mint(t, now, keys))
                .transpose()?,
        );
    }

    let mut sent = Vec::new();
    for pass in [Pass::Cold, Pass::Cached] {
        for (index, (case, token)) in corpus.cases.iter().zip(&tokens).enumerate() {
            let request_id = format!("corpus-{}-{index}", pass.name());
            let mut headers = request_headers(&case.request, token.as_deref())?;
            headers.push(("x-request-id".into(), request_id.clone()));
            let borrowed: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let response = http_client::send(
                listen,
                &case.request.method,
                &case.request.host,
                &case.request.path,
                &borrowed,
            )?;
            sent.push((pass, case, request_id, response));
        }
    }

    let log = envoy.log();
    let records = decision_records(&log);
    Ok(sent
        .into_iter()
        .map(|(pass, case, request_id, response)| {
            let observed = observe(&response, records.get(&request_id).cloned());
            let problems = compare(case, &observed, &response);
            CaseResult {
                file: file.clone(),
                pass,
                description: case.description.clone(),
                observed,
                problems,
            }
        })
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

fn observe(response: &Response, decision_log: Option<Value>) -> Observed {
    let body = response.json();
    let is_echo = body.get("headers").is_some_and(Value::is_object)
        && body.get("method").is_some_and(Value::is_string);
    Observed {
        status: response.status,
        reached_upstream: is_echo,
        code: if is_echo {
            None
        } else {
            body.get("code").and_then(Value::as_str).map(str::to_owned)
        },
        decision_log,
        echo: is_echo.then_some(body),
    }
}

fn compare(case: &Case, got: &Observed, response: &Response) -> Vec<String> {
    let expect = &case.expect;
    let mut problems = Vec::new();
    // Whether the request goes upstream is what the client sees: allowed, or denied in
    // shadow mode (status 200 in the corpus). The decision itself is read from the log.
    let passed = got.reached_upstream;
    if passed != (expect.status == 200) {
        problems.push(if passed {
            "reached upstream, expected a local reply".to_owned()
        } else {
            "local reply, expected the request to reach upstream".to_owned()
        });
    }
    // A passed request's status is the stub's, not meshgate's: compare the decision's.
    let status = if passed { 200 } else { got.status };
    if status != expect.status {
        problems.push(format!("expected status {}, got {status}", expect.status));
    }
    if !passed && got.code.as_deref() != Some(expect.code.as_str()) {
        problems.push(format!(
            "expected body code {}, got {}",
            expect.code,
            got.code.as_deref().unwrap_or("(none)")
        ));
    }
    if !passed
        && got.status == 401
        && response
            .header("www-authenticate")
            .is_none_or(|v| !v.starts_with("Bearer realm=\"meshgate\""))
    {
        problems.push("401 without a `Bearer realm=\"meshgate\"` challenge".to_owned());
    }
    match &got.decision_log {
        None => problems.push("no `meshgate decision` log line for this request".to_owned()),
        Some(record) => problems.extend(compare_record(expect, record)),
    }
    if let Some(echo) = &got.echo {
        problems.extend(compare_upstream(case, echo));
    }
    problems
}

/// The decision log record against `decision`, `code`, `rule_id`, `mode` and `shadow`.
fn compare_record(expect: &Expect, record: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if record["decision"].as_str() != Some(expect.decision.as_str())
        || record["code"].as_str() != Some(expect.code.as_str())
    {
        problems.push(format!(
            "logged {}/{}, expected {}/{}",
            record["decision"], record["code"], expect.decision, expect.code
        ));
    }
    if let Some(rule) = &expect.rule_id {
        if record["rule_id"].as_str() != Some(rule.as_str()) {
            problems.push(format!(
                "logged rule {}, expected {rule}",
                record["rule_id"]
            ));
        }
    }
    if let Some(mode) = &expect.mode {
        if record["mode"].as_str() != Some(mode.as_str()) {
            problems.push(format!("logged mode {}, expected {mode}", record["mode"]));
        }
    }
    if let Some(shadow) = &expect.shadow {
        let logged = &record["shadow"];
        // Only the members the corpus names are compared (the log also carries `code`).
        let matches = match (shadow.as_object(), logged.as_object()) {
            (None, None) => shadow.is_null() && logged.is_null(),
            (Some(want), Some(got)) => want.iter().all(|(k, v)| got.get(k) == Some(v)),
            _ => false,
        };
        if !matches {
            problems.push(format!("logged shadow {logged}, expected {shadow}"));
        }
    }
    problems
}

/// `expect.headers`, `removed` and `kept` against what the echo stub received.
fn compare_upstream(case: &Case, echo: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let seen = &echo["headers"];
    for (name, want) in &case.expect.headers {
        if name == ":path" {
            // `null`: meshgate did not rewrite the path, so it went upstream as sent.
            let want = want.as_str().unwrap_or(case.request.path.as_str());
            if echo["path"].as_str() != Some(want) {
                problems.push(format!("upstream path {}, expected {want:?}", echo["path"]));
            }
        } else if seen[name.as_str()].as_str() != want.as_str() {
            problems.push(format!(
                "upstream header {name} = {}, expected {want}",
                seen[name.as_str()]
            ));
        }
    }
    for name in &case.expect.removed {
        if !seen[name.as_str()].is_null() {
            problems.push(format!(
                "{name} reached upstream ({}), expected removed",
                seen[name.as_str()]
            ));
        }
    }
    for name in &case.expect.kept {
        if seen[name.as_str()].is_null() {
            problems.push(format!("{name} did not reach upstream, expected kept"));
        }
    }
    problems
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
    fn the_test_keys_sign_every_algorithm() {
        let keys = TestKeys::load().unwrap();
        let claims = json!({"sub": "x"});
        for (alg, key) in [
            ("RS256", "rsa"),
            ("PS512", "rsa"),
            ("ES256", "ec"),
            ("EdDSA", "ed"),
            ("HS256", "hs"),
        ] {
            let header = json!({"alg": alg});
            let token = sign(
                alg,
                &keys.corpus_signing_key(key).unwrap(),
                &header,
                &claims,
            )
            .unwrap();
            assert_eq!(token.split('.').count(), 3, "{alg}");
        }
        assert!(matches!(
            sign("XS1", &keys.rsa, &json!({}), &claims),
            Err(CorpusError::UnknownAlg { .. })
        ));
        // Signature sizes: raw `r || s` for ES256, 64 bytes for Ed25519.
        for (alg, key, len) in [("ES256", &keys.ec, 64), ("EdDSA", &keys.ed25519, 64)] {
            assert_eq!(sign_bytes(alg, key, b"m").unwrap().len(), len, "{alg}");
        }
    }
}
