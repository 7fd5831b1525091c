//! End to end through a real Envoy: the shipped demo config, the built `dist/meshgate.wasm`,
//! the mock issuer (JWKS fetched through an Envoy cluster) and the tool stubs.
//! `./build.sh test` builds the filter first.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions may panic"
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use meshgate_test_harness::stack::{Stack, StackOptions};
use serde_json::Value;

type TokenFn = fn(&Stack) -> Option<String>;

struct Case {
    name: &'static str,
    method: &'static str,
    host: &'static str,
    path: &'static str,
    token: TokenFn,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    /// For denials: the body's `code`. For allows: the stub's `route` it reached.
    expect: &'static str,
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn alice(s: &Stack) -> Option<String> {
    Some(s.mint(|_| {}))
}

fn no_token(_: &Stack) -> Option<String> {
    None
}

fn tampered(s: &Stack) -> Option<String> {
    let token = s.mint(|_| {});
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[0] ^= 0x01;
    Some(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

fn alg_none(s: &Stack) -> Option<String> {
    let token = s.mint(|_| {});
    let payload = token.split('.').nth(1).unwrap();
    Some(format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
    ))
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "data engineer lists DAGs",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags",
            token: alice,
            headers: &[],
            status: 200,
            expect: "/api/v1/dags",
        },
        Case {
            name: "data engineer triggers a run",
            method: "POST",
            host: "airflow.internal",
            path: "/api/v1/dags/etl_daily/dagRuns",
            token: alice,
            headers: &[],
            status: 200,
            expect: "/api/v1/dags/{dag_id}/dagRuns",
        },
        Case {
            name: "ES256 token",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags",
            token: |s| Some(s.mint(|r| r.alg = "ES256".into())),
            headers: &[],
            status: 200,
            expect: "/api/v1/dags",
        },
        Case {
            name: "EdDSA token",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags",
            token: |s| Some(s.mint(|r| r.alg = "EdDSA".into())),
            headers: &[],
            status: 200,
            expect: "/api/v1/dags",
        },
        Case {
            name: "airbyte sync with both groups",
            method: "POST",
            host: "airbyte.internal",
            path: "/api/v1/connections/sync",
            token: |s| {
                Some(s.mint(|r| r.groups = vec!["data-eng".into(), "airbyte-operators".into()]))
            },
            headers: &[],
            status: 200,
            expect: "/api/v1/connections/sync",
        },
        Case {
            name: "airbyte sync with one group",
            method: "POST",
            host: "airbyte.internal",
            path: "/api/v1/connections/sync",
            token: alice,
            headers: &[],
            status: 403,
            expect: "no_rule_matched",
        },
        Case {
            name: "buildkite build from ci",
            method: "POST",
            host: "buildkite.internal",
            path: "/v2/organizations/acme/pipelines/deploy/builds",
            token: |s| Some(s.mint(|r| r.groups = vec!["ci".into()])),
            headers: &[],
            status: 200,
            expect: "/v2/organizations/{org}/pipelines/{pipeline}/builds",
        },
        Case {
            name: "fastapi item",
            method: "GET",
            host: "orders.svc.internal",
            path: "/items/42",
            token: alice,
            headers: &[],
            status: 200,
            expect: "/items/{id}",
        },
        Case {
            name: "public health route, no token",
            method: "GET",
            host: "orders.svc.internal",
            path: "/health",
            token: no_token,
            headers: &[],
            status: 200,
            expect: "/health",
        },
        Case {
            name: "no token",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags",
            token: no_token,
            headers: &[],
            status: 401,
            expect: "token_missing",
        },
        Case {
            name: "expired",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags",
            token: |s| Some(s.mint(|r| r.exp_offset_s = Some(-120))),
            headers: &[],
            status: 401,
            expect: "token_expired",
        },
        Case {
            name: "not yet valid",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags",
            token: |s| Some(s.mint(|r| r.nbf_offset_s = Some(600))),
            headers: &[],
            status: 401,
            expect: "token_not_yet_valid",
        },
        Case {
            name: "wrong audience",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags",
            token: |s| Some(s.mint(|r| r.audiences = vec!["another-service".into()])),
            headers: &[],
            status: 401,
            expect: "audience_mismatch",
        },
        Case {
            name: "unknown issuer",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags",
            token: |s| Some(s.mint(|r| r.issuer_override = Some("https://evil.example".into()))),
            headers: &[],
            status: 401,
            expect: "issuer_unknown",
        },
        Case {
            name: "unknown kid",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags",
            token: |s| Some(s.mint(|r| r.use_unpublished_key = true)),
            headers: &[],
            status: 401,
            expect: "key_unknown",
        },
        Case {
            name: "tampered signature",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags",
            token: tampered,
            headers: &[],
            status: 401,
            expect: "signature_invalid",
        },
        Case {
            name: "alg none",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags",
            token: alg_none,
            headers: &[],
            status: 401,
            expect: "algorithm_not_allowed",
        },
        Case {
            name: "garbage token",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags",
            token: |_| Some("not.a.jwt".into()),
            headers: &[],
            status: 401,
            expect: "token_invalid",
        },
        Case {
            name: "wrong group",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags",
            token: |s| Some(s.mint(|r| r.groups = vec!["finance".into()])),
            headers: &[],
            status: 403,
            expect: "no_rule_matched",
        },
        Case {
            name: "contractor may not trigger",
            method: "POST",
            host: "airflow.internal",
            path: "/api/v1/dags/etl_daily/dagRuns",
            token: |s| Some(s.mint(|r| r.groups = vec!["data-eng".into(), "contractors".into()])),
            headers: &[],
            status: 403,
            expect: "rule_denied",
        },
        Case {
            name: "admin denied",
            method: "GET",
            host: "airflow.internal",
            path: "/admin/users",
            token: alice,
            headers: &[],
            status: 403,
            expect: "rule_denied",
        },
    ]
}

fn run_cases(stack: &Stack, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let token = (case.token)(stack);
        let auth = token.as_deref().map(bearer);
        let mut headers: Vec<(&str, &str)> = case.headers.to_vec();
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        let response = match stack.send(case.method, case.host, case.path, &headers) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: {e}", case.name));
                continue;
            }
        };
        let body = response.json();
        let got = if response.status == 200 {
            &body["route"]
        } else {
            &body["code"]
        };
        if response.status != case.status || got.as_str() != Some(case.expect) {
            failures.push(format!(
                "{}: got {} {got} (body {})",
                case.name,
                response.status,
                response.text()
            ));
        }
        if response.status == 401
            && response
                .header("www-authenticate")
                .is_none_or(|v| !v.starts_with("Bearer realm=\"meshgate\""))
        {
            failures.push(format!("{}: 401 without a Bearer challenge", case.name));
        }
        if let Some(token) = &token {
            if response.text().contains(token.as_str()) && response.status != 200 {
                failures.push(format!("{}: denial echoes the token", case.name));
            }
        }
    }
    failures
}

#[test]
fn demo_stack_end_to_end() {
    let stack = Stack::start(&StackOptions::default()).unwrap();
    let failures = run_cases(&stack, &cases());
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Identity headers: incoming copies stripped, trusted ones injected, token not forwarded.
    let token = stack.mint(|r| r.email = Some("alice@example.com".into()));
    let response = stack
        .send(
            "GET",
            "airflow.internal",
            "/api/v1/dags",
            &[
                ("authorization", &bearer(&token)),
                ("x-meshgate-subject", "root"),
                ("x-meshgate-groups", "admins"),
                ("x-meshgate-debug", "1"),
                ("x-user-email", "root@example.com"),
            ],
        )
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = &response.json()["headers"];
    assert_eq!(seen["x-meshgate-subject"], "alice");
    assert_eq!(seen["x-meshgate-groups"], "data-eng");
    assert_eq!(seen["x-meshgate-provider"], "demo");
    assert_eq!(seen["x-meshgate-rule"], "airflow-read");
    assert_eq!(seen["x-user-email"], "alice@example.com");
    assert_eq!(seen["x-meshgate-debug"], Value::Null);
    assert_eq!(
        seen["authorization"],
        Value::Null,
        "token forwarded upstream"
    );

    // The same spoofing on a public route: stripped, nothing injected.
    let response = stack
        .send(
            "GET",
            "orders.svc.internal",
            "/health",
            &[("x-meshgate-subject", "root")],
        )
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json()["headers"]["x-meshgate-subject"],
        Value::Null
    );

    // The JWKS came through the Envoy cluster, not by some side door.
    assert!(stack.issuer.jwks_requests() >= 1);
    let through_cluster = stack
        .envoy
        .counter("cluster.demo_idp.upstream_rq_completed")
        .unwrap_or(0);
    assert!(
        through_cluster >= 1,
        "no JWKS request through cluster demo_idp"
    );

    // Decisions are counted in Envoy stats and logged as JSON, never with the token.
    assert!(
        stack
            .envoy
            .counter("wasmcustom.meshgate.allowed")
            .unwrap_or(0)
            >= 1
    );
    assert!(
        stack
            .envoy
            .counter("wasmcustom.meshgate.denied.token_expired")
            .unwrap_or(0)
            >= 1
    );
    assert!(
        stack
            .envoy
            .counter("wasmcustom.meshgate.denied.rule_denied")
            .unwrap_or(0)
            >= 2
    );
    // RS256 and ES256 signatures were checked by Envoy itself (`verify_signature`).
    assert!(
        stack
            .envoy
            .counter("wasmcustom.meshgate.verify.foreign")
            .unwrap_or(0)
            >= 1,
        "no signature verified through Envoy's verify_signature"
    );
    let log = stack.envoy.log();
    assert!(log.contains("meshgate decision {"), "no decision log line");
    assert!(log.contains(r#""code":"audience_mismatch""#));
    assert!(!log.contains(&token), "token in the Envoy log");
}

/// With Envoy's own path normalization off, every trick reaches meshgate as sent.
#[test]
fn path_tricks_are_caught_by_the_filter_itself() {
    let stack = Stack::start(&StackOptions {
        raw_paths: true,
        ..StackOptions::default()
    })
    .unwrap();
    let denied = |path: &'static str, status: u16, code: &'static str| Case {
        name: path,
        method: "GET",
        host: "airflow.internal",
        path,
        token: alice,
        headers: &[],
        status,
        expect: code,
    };
    let cases = vec![
        denied("//admin/users", 403, "rule_denied"),
        denied("/x/../admin/users", 403, "rule_denied"),
        denied("/%61dmin/users", 403, "rule_denied"),
        denied("/%2e%2e/admin/users", 403, "rule_denied"),
        denied("/api/v1/dags/../../../admin/users", 403, "rule_denied"),
        denied("/admin%2Fusers", 400, "path_rejected"),
        denied("/api/v1/dags%2F..%2F..%2Fadmin", 400, "path_rejected"),
        denied("/admin;jsessionid=1/users", 400, "path_rejected"),
        denied("/Admin/users", 403, "no_rule_matched"),
        Case {
            name: "query never matches rules",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/dags?next=/admin/users",
            token: alice,
            headers: &[],
            status: 200,
            expect: "/api/v1/dags",
        },
        Case {
            name: "dot segments resolve to an allowed route",
            method: "GET",
            host: "airflow.internal",
            path: "/api/v1/x/../dags",
            token: alice,
            headers: &[],
            status: 200,
            expect: "/api/v1/dags",
        },
    ];
    let failures = run_cases(&stack, &cases);
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn bad_plugin_config_is_refused_with_the_field_named() {
    let cases = [
        (
            r#"{"id": "health", "action": "allow", "public": true, "paths": ["/health"]}"#,
            r#"{"id": "health", "action": "allow", "public": true, "paths": ["/health/{x"]}"#,
            "`rules[0].paths[0]`",
        ),
        (
            r#""audiences": ["meshgate-demo"],"#,
            r#""audiences": ["meshgate-demo"], "audience": "typo","#,
            "`providers.demo.audience`",
        ),
        (
            r#""cache_duration_s": 300"#,
            r#""cache_duration_s": 0"#,
            "`providers.demo.remote_jwks.cache_duration_s`",
        ),
    ];
    for (find, replace, field) in cases {
        let opts = StackOptions {
            edits: vec![(find.into(), replace.into())],
            ..StackOptions::default()
        };
        let log = Stack::start_expecting_refusal(&opts).unwrap();
        let line = log
            .lines()
            .find(|l| l.contains("meshgate: configuration rejected:"))
            .unwrap_or_else(|| panic!("no rejection line for {field}; log:\n{log}"));
        assert!(
            line.contains(field),
            "rejection line doesn't name {field}: {line}"
        );
    }
}

/// With `decision_log.filter_state`, Envoy's access log can carry the decision record.
#[test]
fn decision_reaches_the_access_log_through_filter_state() {
    let log_path = meshgate_test_harness::envoy::repo_root()
        .join(format!("target/e2e/access-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log_path);
    let access_log = format!(
        "stat_prefix: edge\n                access_log:\n                  - name: envoy.access_loggers.file\n                    typed_config:\n                      \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n                      path: {}\n                      log_format:\n                        text_format_source:\n                          inline_string: \"%RESPONSE_CODE% %FILTER_STATE(wasm.meshgate_decision:PLAIN)%\\n\"",
        log_path.display()
    );
    let opts = StackOptions {
        edits: vec![
            ("stat_prefix: edge".into(), access_log),
            (
                r#""rules": ["#.into(),
                r#""decision_log": {"filter_state": true}, "rules": ["#.into(),
            ),
        ],
        ..StackOptions::default()
    };
    let stack = Stack::start(&opts).unwrap();
    let r = stack
        .send(
            "GET",
            "airflow.internal",
            "/api/v1/dags",
            &[("x-request-id", "access-log-probe")],
        )
        .unwrap();
    assert_eq!(r.status, 401);
    // The file sink flushes on its own schedule; wait for our line.
    let started = std::time::Instant::now();
    let line = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("access-log-probe")) {
            break line.to_owned();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "no access log line; log:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let (status, record) = line.split_once(' ').unwrap();
    assert_eq!(status, "401");
    let record: Value = serde_json::from_str(record).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(record["code"], "token_missing");
    assert_eq!(record["request_id"], "access-log-probe");
}
