//! Native tests of the JSON boundary; `js/test/*.test.mjs` test the built package in Node.

use serde_json::{json, Value};

use super::*;

const NOW: i64 = 1_700_000_000;

fn fixed_clock() -> i64 {
    NOW
}

fn config() -> String {
    json!({
        "providers": {"idp": {"issuer": "https://idp", "audiences": ["tools"],
            "remote_jwks": {"cluster": "idp", "uri": "https://idp/keys"}}},
        "rules": [
            {"id": "health", "action": "allow", "public": true, "paths": ["/health"]},
            {"id": "block-admin", "action": "deny", "paths": ["/admin/**"]},
            {"id": "dags", "action": "allow", "hosts": ["airflow.internal"], "methods": ["GET"],
             "paths": ["/api/v1/dags"], "when": {"groups_any": ["data-eng"]}}
        ]
    })
    .to_string()
}

fn claims(groups: &[&str]) -> String {
    json!({"iss": "https://idp", "sub": "alice", "aud": "tools", "exp": NOW + 60, "groups": groups})
        .to_string()
}

fn run(claims: &str, request: Value) -> Value {
    explain_json(&config(), claims, &request.to_string(), fixed_clock)
}

#[test]
fn allow_with_a_url() {
    let e = run(
        &claims(&["data-eng"]),
        json!({"method": "get", "url": "https://Airflow.Internal:443/api/v1/dags?limit=5"}),
    );
    assert_eq!(e["decision"], "allow", "{e:#}");
    assert_eq!(e["code"], "rule_allowed");
    assert_eq!(e["rule_id"], "dags");
    assert_eq!(
        e["request"],
        json!({"method": "GET", "host": "airflow.internal", "path": "/api/v1/dags"})
    );
    assert_eq!(e["principal"]["groups"], json!(["data-eng"]));
}

#[test]
fn now_comes_from_the_request_or_the_clock() {
    let request = |now: Value| json!({"method": "GET", "host": "airflow.internal", "path": "/api/v1/dags", "now": now});
    // Past `exp` and the default 60 s of clock skew.
    let e = run(&claims(&["data-eng"]), request(json!(NOW + 60 + 61)));
    assert_eq!(e["code"], "token_expired", "{e:#}");
    let e = run(&claims(&["data-eng"]), request(json!(NOW as f64 + 0.5)));
    assert_eq!(e["code"], "rule_allowed", "{e:#}");
    // No `now`: the clock (fixed here).
    let e = run(&claims(&["data-eng"]), request(Value::Null));
    assert_eq!(e["code"], "rule_allowed", "{e:#}");
}

#[test]
fn paths_are_previewed_raw() {
    let e = run(
        &claims(&["data-eng"]),
        json!({"method": "GET", "url": "http://airflow.internal/x/../admin/users"}),
    );
    assert_eq!(e["code"], "rule_denied");
    assert_eq!(e["request"]["path"], "/admin/users");
    let e = run(
        &claims(&["data-eng"]),
        json!({"method": "GET", "url": "http://airflow.internal/admin%2Fusers"}),
    );
    assert_eq!(
        (e["code"].as_str(), e["status"].as_u64()),
        (Some("path_rejected"), Some(400))
    );
    // No path at all, or only a query: `/`.
    for url in ["http://airflow.internal", "http://airflow.internal?x=1"] {
        let e = run(&claims(&[]), json!({"method": "GET", "url": url}));
        assert_eq!(e["request"]["path"], "/", "{url}: {e:#}");
    }
}

fn error(v: &Value) -> (&str, &str) {
    (
        v["error"]["kind"].as_str().unwrap_or("(no error)"),
        v["error"]["path"].as_str().unwrap_or("(no path)"),
    )
}

#[test]
fn errors_name_the_input_and_field() {
    let get = json!({"method": "GET", "url": "https://h/"}).to_string();
    let bad_config = json!({"rules": [{"id": "x", "action": "allow", "paths": ["/a/{"]}]});
    let e = explain_json(&bad_config.to_string(), &claims(&[]), &get, fixed_clock);
    assert_eq!(error(&e), ("config", "rules[0].paths[0]"), "{e:#}");
    let e = explain_json("{", &claims(&[]), &get, fixed_clock);
    assert_eq!(error(&e).0, "config", "{e:#}");

    for bad in [
        "[]",
        "null",
        "{\"iss\": \"a\", \"iss\": \"b\"}",
        "not json",
        "",
    ] {
        let e = explain_json(&config(), bad, &get, fixed_clock);
        assert_eq!(error(&e), ("claims", "(root)"), "{bad}: {e:#}");
    }

    let c = claims(&[]);
    let cases = [
        (json!([]), "(root)"),
        (json!({"url": "https://h/"}), "method"),
        (json!({"method": "GET IT", "url": "https://h/"}), "method"),
        (json!({"method": 1, "url": "https://h/"}), "method"),
        (json!({"method": "GET"}), "(root)"),
        (json!({"method": "GET", "url": "ftp://h/"}), "url"),
        (json!({"method": "GET", "url": "/relative"}), "url"),
        (json!({"method": "GET", "url": "https:///x"}), "url"),
        (json!({"method": "GET", "url": "https://u:p@h/"}), "url"),
        (
            json!({"method": "GET", "url": "https://h/", "host": "h"}),
            "url",
        ),
        (json!({"method": "GET", "host": "h"}), "path"),
        (json!({"method": "GET", "host": "", "path": "/"}), "host"),
        (json!({"method": "GET", "host": "h", "path": 7}), "path"),
        (
            json!({"method": "GET", "url": "https://h/", "headers": []}),
            "headers",
        ),
        (
            json!({"method": "GET", "url": "https://h/", "headers": {"X-A": 1}}),
            "headers.X-A",
        ),
        (
            json!({"method": "GET", "url": "https://h/", "now": "soon"}),
            "now",
        ),
        (
            json!({"method": "GET", "url": "https://h/", "now": 1e300}),
            "now",
        ),
        (
            json!({"method": "GET", "url": "https://h/", "hots": "h"}),
            "hots",
        ),
    ];
    for (request, path) in cases {
        let e = explain_json(&config(), &c, &request.to_string(), fixed_clock);
        assert_eq!(error(&e), ("request", path), "{request}: {e:#}");
        assert!(e["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}

#[test]
fn validate_counts_or_names_the_field() {
    assert_eq!(
        validate_json(&config()),
        json!({"ok": true, "providers": 1, "rules": 3})
    );
    let v = validate_json(r#"{"rules": [{"id": "x", "action": "maybe"}]}"#);
    assert_eq!(v["ok"], false);
    assert_eq!(v["path"], "rules[0].action");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn the_exports_return_json_strings() {
    let out: Value = serde_json::from_str(&explain(
        &config(),
        &claims(&["data-eng"]),
        r#"{"method": "GET", "url": "https://airflow.internal/api/v1/dags"}"#,
    ))
    .unwrap();
    // The system clock is far past the claims' `exp`.
    assert_eq!(out["code"], "token_expired", "{out:#}");
    let out: Value = serde_json::from_str(&validate("{}")).unwrap();
    assert_eq!(out, json!({"ok": true, "providers": 0, "rules": 0}));
    assert_eq!(version(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn shadow_mode_and_shadow_rules_are_reported() {
    let config = json!({
        "providers": {"idp": {"issuer": "https://idp", "audiences": ["tools"],
            "remote_jwks": {"cluster": "idp", "uri": "https://idp/keys"}}},
        "rules": [
            {"id": "dags", "action": "allow", "paths": ["/api/**"], "when": {"groups_any": ["data-eng"]}},
            {"id": "try-analysts", "action": "allow", "mode": "shadow", "paths": ["/api/**"],
             "when": {"groups_any": ["analysts"]}}
        ],
        "mode_overrides": [{"hosts": ["new.internal"], "mode": "shadow"}]
    })
    .to_string();
    let run = |host: &str, groups: &[&str]| {
        let request = json!({"method": "GET", "host": host, "path": "/api/x"}).to_string();
        explain_json(&config, &claims(groups), &request, fixed_clock)
    };
    let e = run("old.internal", &["data-eng"]);
    assert_eq!(
        (&e["mode"], &e["shadow"]),
        (&json!("enforce"), &Value::Null),
        "{e:#}"
    );
    let e = run("new.internal", &["finance"]);
    assert_eq!(
        (&e["decision"], &e["mode"]),
        (&json!("deny"), &json!("shadow")),
        "{e:#}"
    );
    let e = run("old.internal", &["analysts"]);
    assert_eq!(e["code"], "no_rule_matched", "{e:#}");
    assert_eq!(
        e["shadow"],
        json!({"decision": "allow", "code": "rule_allowed", "rule_id": "try-analysts"}),
        "{e:#}"
    );
}
