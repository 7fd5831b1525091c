//! Runs the decision corpus in `core/tests/cases/*.json` (format in its README).

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::authorize::{decide, Credential};
use crate::cache::TokenCache;
use crate::config::Policy;
use crate::headers;
use crate::keystore::KeyStore;
use crate::request::{Request, UnixTime};
use crate::testing::{self, b64, ec_private, ed25519_private, public_jwk, rsa_private, sign};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusFile {
    description: String,
    now: i64,
    config: Value,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    #[serde(default)]
    token: Option<TokenSpec>,
    request: RequestSpec,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TokenSpec {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    method: String,
    host: String,
    path: String,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    token_in: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    decision: String,
    code: String,
    status: u16,
    #[serde(default)]
    rule_id: Option<String>,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    removed: Vec<String>,
    #[serde(default)]
    kept: Vec<String>,
    /// `"enforce"` or `"shadow"`: the mode this request is in.
    #[serde(default)]
    mode: Option<String>,
    /// What shadow rules would have decided: `{"decision", "rule_id"}`, or null for none.
    #[serde(default)]
    shadow: Option<Value>,
}

fn test_jwks() -> Value {
    json!({"keys": [
        public_jwk(&rsa_private(), "rsa", Some("RS256")),
        public_jwk(&ec_private(), "ec", Some("ES256")),
        public_jwk(&ed25519_private(), "ed", Some("EdDSA")),
        testing::hs_key_jwk("HS256"),
    ]})
}

fn signing_key(name: &str) -> Value {
    match name {
        "rsa" => rsa_private(),
        "ec" => ec_private(),
        "ed" => ed25519_private(),
        "hs" => testing::hs_key_jwk("HS256"),
        other => panic!("corpus names unknown key `{other}`"),
    }
}

fn substitute_jwks(value: &mut Value) {
    match value {
        Value::String(s) if s == "$JWKS" => *value = test_jwks(),
        Value::Array(items) => items.iter_mut().for_each(substitute_jwks),
        Value::Object(map) => map.values_mut().for_each(substitute_jwks),
        _ => {}
    }
}

fn relative_times(claims: &mut Map<String, Value>, now: i64) {
    for value in claims.values_mut() {
        let Some(s) = value.as_str() else { continue };
        let offset = if let Some(n) = s.strip_prefix("now+") {
            n.parse::<i64>().ok()
        } else if let Some(n) = s.strip_prefix("now-") {
            n.parse::<i64>().ok().map(|n| -n)
        } else {
            None
        };
        if let Some(offset) = offset {
            *value = json!(now + offset);
        }
    }
}

fn mint(spec: &TokenSpec, now: i64) -> String {
    match spec {
        TokenSpec::Raw(s) => s.clone(),
        TokenSpec::Minted {
            alg,
            key,
            header,
            claims,
            tamper,
        } => {
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
                sign(alg, &signing_key(key), &header, &claims)
            };
            if *tamper {
                let (input, sig) = token.rsplit_once('.').unwrap();
                let mut sig: Vec<char> = sig.chars().collect();
                sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
                format!("{input}.{}", sig.into_iter().collect::<String>())
            } else {
                token
            }
        }
    }
}

fn request_headers(spec: &RequestSpec, token: Option<&str>) -> Vec<(String, String)> {
    // As Envoy presents them: pseudo-headers first.
    let mut headers: Vec<(String, String)> = vec![
        (":method".into(), spec.method.clone()),
        (":authority".into(), spec.host.clone()),
        (":path".into(), spec.path.clone()),
    ];
    headers.extend(
        spec.headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())),
    );
    if let Some(token) = token {
        match spec.token_in.as_deref().unwrap_or("authorization") {
            "none" => {}
            "authorization" => headers.push(("authorization".into(), format!("Bearer {token}"))),
            "authorization-lowercase" => {
                headers.push(("authorization".into(), format!("bearer {token}")))
            }
            "authorization-twice" => {
                headers.push(("authorization".into(), format!("Bearer {token}")));
                headers.push(("authorization".into(), format!("Bearer {token}")));
            }
            other => headers.push((other.to_owned(), token.to_owned())),
        }
    }
    headers
}

pub(crate) fn corpus_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    files
}

#[test]
fn corpus() {
    let mut failures = Vec::new();
    let mut count = 0;
    for file in corpus_files() {
        let corpus: CorpusFile = serde_json::from_slice(&std::fs::read(&file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut config = corpus.config.clone();
        substitute_jwks(&mut config);
        let policy = Policy::from_json(config.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{} ({}): config: {e}", file.display(), corpus.description));
        let keys = KeyStore::new(&policy);
        // Twice: once cold, once through the token cache, which must not change any answer.
        let mut cache = TokenCache::new(64);
        for pass in ["cold", "cached"] {
            for case in &corpus.cases {
                count += 1;
                let token = case.token.as_ref().map(|t| mint(t, corpus.now));
                let headers = request_headers(&case.request, token.as_deref());
                let req = Request {
                    method: &case.request.method,
                    authority: &case.request.host,
                    path: &case.request.path,
                    headers: &headers,
                };
                let verdict = decide(
                    &policy,
                    Credential::token(&keys, &mut cache),
                    crate::catalog::CatalogState::NotConfigured,
                    &req,
                    UnixTime::from_secs(corpus.now),
                );
                let d = &verdict.decision;
                let plan = headers::plan(&policy, &verdict, &headers);
                // The status the client sees: in shadow mode every request passes.
                let status = match (d.deny_code(), d.mode) {
                    (Some(code), crate::config::Mode::Enforce) => code.http_status(),
                    _ => 200,
                };
                let mut problems = Vec::new();
                let decision = if d.is_allowed() { "allow" } else { "deny" };
                if decision != case.expect.decision || d.code_str() != case.expect.code {
                    problems.push(format!("got {decision}/{} ({})", d.code_str(), d.reason));
                }
                if status != case.expect.status {
                    problems.push(format!("status {status}"));
                }
                if case.expect.rule_id.is_some() && d.rule_id != case.expect.rule_id {
                    problems.push(format!("rule {:?}", d.rule_id));
                }
                for (name, value) in &case.expect.headers {
                    let got = plan
                        .set
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.as_str());
                    if got != value.as_str() {
                        problems.push(format!("header {name} = {got:?}"));
                    }
                }
                for name in &case.expect.removed {
                    if !plan.remove.contains(name) {
                        problems.push(format!("{name} not removed (remove: {:?})", plan.remove));
                    }
                }
                if let Some(mode) = &case.expect.mode {
                    let got = match d.mode {
                        crate::config::Mode::Enforce => "enforce",
                        crate::config::Mode::Shadow => "shadow",
                    };
                    if got != mode {
                        problems.push(format!("mode {got}"));
                    }
                }
                if let Some(expected) = &case.expect.shadow {
                    let got = d.shadow.as_ref().map_or(Value::Null, |s| {
                        json!({
                            "decision": if matches!(s.effect, crate::decision::Effect::Allow(_)) { "allow" } else { "deny" },
                            "rule_id": s.rule_id,
                        })
                    });
                    if &got != expected {
                        problems.push(format!("shadow {got}"));
                    }
                }
                for name in &case.expect.kept {
                    if plan.remove.contains(name) {
                        problems.push(format!("{name} removed"));
                    }
                }
                if !problems.is_empty() {
                    failures.push(format!(
                        "{} [{pass}] {}: {}",
                        file.file_name().unwrap().to_string_lossy(),
                        case.description,
                        problems.join("; ")
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} corpus checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count > 0);
}
