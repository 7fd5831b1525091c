//! The catalog at the edge, through a real Envoy (two workers) polling a real control plane
//! (`meshgate serve`, in process) that reads a copy of the sample catalog:
//! nested groups, ownership, a catalog change reaching the edge without a restart, the control
//! plane going away, snapshots that must be refused, and no snapshot at start.
//!
//! The sample catalog (test-harness/catalog): data-eng ⊃ analytics; alice in data-eng, bob in
//! analytics, carol in ci-admins, erin in no group. The DAG `etl_daily` is owned by data-eng,
//! `marketing_report` by analytics. Tokens below carry no groups unless a case says so: the
//! catalog (user found by email) decides.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions may panic"
)]

use std::time::{Duration, Instant};

use meshgate_control_plane::snapshot::{write_new_signing_key, SigningKey};
use meshgate_test_harness::http_client::Response;
use meshgate_test_harness::stack::{Stack, StackOptions, DEMO_CP_KEY, TRIGGER_ETL};

fn token(stack: &Stack, email: &str, groups: &[&str]) -> String {
    let user = email.split('@').next().unwrap_or_default().to_owned();
    stack.mint(|req| {
        req.sub = format!("idp-{user}");
        req.email = Some(email.to_owned());
        req.groups = groups.iter().map(|g| (*g).to_owned()).collect();
    })
}

fn send(stack: &Stack, method: &str, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    stack
        .send(method, "airflow.internal", path, &headers)
        .unwrap()
}

/// The status and, for denials, the code.
fn outcome(response: &Response) -> (u16, String) {
    let code = if response.status == 200 {
        String::new()
    } else {
        let body = response.json();
        body.get("code")
            .and_then(|c| c.as_str())
            .unwrap_or("?")
            .to_owned()
    };
    (response.status, code)
}

fn counter(stack: &Stack, name: &str) -> u64 {
    stack
        .envoy
        .counter(&format!("wasmcustom.meshgate.{name}"))
        .unwrap_or(0)
}

/// Polls `check` every 100 ms until it holds or `timeout` passes; how long it took.
fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

const TRIGGER_MARKETING: &str = "/api/v1/dags/marketing_report/dagRuns";
const LIST: &str = "/api/v1/dags";

#[test]
fn catalog_groups_and_ownership_decide_at_the_edge() {
    let stack = Stack::start(&StackOptions::default()).unwrap();
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [&'a str],
        &'a str,
        &'a str,
        u16,
        &'a str,
    );
    let cases: &[Case<'_>] = &[
        // (name, email, token groups, method, path, status, code)
        (
            "nested group from the catalog",
            "bob@example.com",
            &[],
            "GET",
            LIST,
            200,
            "",
        ),
        (
            "direct group from the catalog",
            "alice@example.com",
            &[],
            "GET",
            LIST,
            200,
            "",
        ),
        (
            "catalog user in no group",
            "erin@example.com",
            &[],
            "GET",
            LIST,
            403,
            "no_rule_matched",
        ),
        (
            "unknown user, no groups",
            "mallory@example.com",
            &[],
            "GET",
            LIST,
            403,
            "no_rule_matched",
        ),
        (
            "token group closed through the catalog",
            "mallory@example.com",
            &["analytics"],
            "GET",
            LIST,
            200,
            "",
        ),
        (
            "owner team triggers its DAG",
            "alice@example.com",
            &[],
            "POST",
            TRIGGER_ETL,
            200,
            "",
        ),
        (
            "owner through nesting",
            "bob@example.com",
            &[],
            "POST",
            TRIGGER_ETL,
            200,
            "",
        ),
        (
            "parent team does not own the child's DAG",
            "alice@example.com",
            &[],
            "POST",
            TRIGGER_MARKETING,
            403,
            "no_rule_matched",
        ),
        (
            "child team owns its DAG",
            "bob@example.com",
            &[],
            "POST",
            TRIGGER_MARKETING,
            200,
            "",
        ),
        (
            "another team may not trigger",
            "carol@example.com",
            &[],
            "POST",
            TRIGGER_ETL,
            403,
            "no_rule_matched",
        ),
        (
            "a DAG the catalog doesn't know",
            "alice@example.com",
            &[],
            "POST",
            "/api/v1/dags/unknown/dagRuns",
            403,
            "no_rule_matched",
        ),
        (
            "token group owns through the catalog",
            "mallory@example.com",
            &["data-eng"],
            "POST",
            TRIGGER_ETL,
            200,
            "",
        ),
    ];
    let mut failures = Vec::new();
    for (name, email, groups, method, path, status, code) in cases {
        let token = token(&stack, email, groups);
        let got = outcome(&send(&stack, method, path, Some(&token)));
        if got != (*status, (*code).to_owned()) {
            failures.push(format!("{name}: got {got:?}, want ({status}, {code:?})"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The upstream learns who the catalog says the caller is.
    let bob = token(&stack, "bob@example.com", &[]);
    let echoed = send(&stack, "GET", LIST, Some(&bob)).json();
    let header = |name: &str| echoed.get("headers").and_then(|h| h.get(name)).cloned();
    assert_eq!(header("x-meshgate-user"), Some("user:default/bob".into()));
    assert_eq!(
        header("x-meshgate-catalog-groups"),
        Some("group:default/analytics,group:default/data-eng".into())
    );
    assert!(counter(&stack, "snapshot.loaded") >= 1);
    let version = stack.control_plane.as_ref().unwrap().current_version();
    assert_eq!(
        stack.envoy.counter("wasmcustom.meshgate.snapshot.version"),
        version,
        "the filter enforces the control plane's current version"
    );
}

#[test]
fn moving_a_user_out_of_a_group_denies_them_within_seconds() {
    let stack = Stack::start(&StackOptions::default()).unwrap();
    let bob = token(&stack, "bob@example.com", &[]);
    assert_eq!(outcome(&send(&stack, "GET", LIST, Some(&bob))).0, 200);

    // Take bob out of analytics in the catalog; nothing is restarted or triggered: the
    // control plane re-reads the catalog on its interval and the filter polls.
    let org = stack.catalog_dir.join("org.yaml");
    let text = std::fs::read_to_string(&org).unwrap();
    assert!(
        text.contains("members: [bob]"),
        "the sample catalog changed"
    );
    std::fs::write(&org, text.replace("members: [bob]", "members: []")).unwrap();
    let changed = Instant::now();

    let took = wait_until(Duration::from_secs(20), || {
        send(&stack, "GET", LIST, Some(&bob)).status == 403
    });
    let took = took.unwrap_or_else(|| panic!("bob still allowed 20 s after the catalog change"));
    println!(
        "catalog change to enforced decision: {} ms (control plane resync 1 s, filter poll 2 s)",
        changed.elapsed().as_millis().min(took.as_millis() + 100)
    );
    // Every worker enforces it within a tick (500 ms), not just the one that polled.
    let mut denied_in_a_row = 0;
    let everywhere = wait_until(Duration::from_secs(3), || {
        if outcome(&send(&stack, "GET", LIST, Some(&bob))) == (403, "no_rule_matched".to_owned()) {
            denied_in_a_row += 1;
        } else {
            denied_in_a_row = 0;
        }
        denied_in_a_row >= 10
    });
    assert!(
        everywhere.is_some(),
        "not every worker enforces the new snapshot"
    );
    // And back.
    std::fs::write(&org, text).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || {
            send(&stack, "GET", LIST, Some(&bob)).status == 200
        })
        .is_some(),
        "bob not allowed again after the catalog was restored"
    );
}

#[test]
fn the_last_good_snapshot_survives_outages_and_bad_snapshots() {
    let mut stack = Stack::start(&StackOptions::default()).unwrap();
    let bob = token(&stack, "bob@example.com", &[]);
    let allowed = |stack: &Stack| send(stack, "GET", LIST, Some(&bob)).status == 200;
    assert!(allowed(&stack));

    // Unchanged catalog: polls are answered 304.
    assert!(
        wait_until(Duration::from_secs(30), || counter(
            &stack,
            "snapshot.not_modified"
        ) >= 1)
        .is_some(),
        "no 304 seen"
    );

    // Control plane down: failed polls, the last good snapshot still decides.
    stack.stop_control_plane();
    assert!(
        wait_until(Duration::from_secs(30), || counter(
            &stack,
            "snapshot.fetch_failed"
        ) >= 2)
        .is_some(),
        "failed polls not counted; stats:\n{}\nlog:\n{}",
        stack.envoy.stats().unwrap_or_default(),
        stack.envoy.log()
    );
    assert!(
        allowed(&stack),
        "last good snapshot dropped while the control plane is down"
    );

    // Back with a key the filter doesn't trust, and a changed catalog (bob out): refused.
    let org = stack.catalog_dir.join("org.yaml");
    let text = std::fs::read_to_string(&org).unwrap();
    std::fs::write(&org, text.replace("members: [bob]", "members: []")).unwrap();
    let rogue_key = stack.catalog_dir.with_file_name("rogue-key.json");
    let rogue = SigningKey::from_seed("meshgate-demo", [42; 32]).unwrap();
    write_new_signing_key(&rogue, &rogue_key).unwrap();
    stack.start_control_plane(&rogue_key).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || counter(
            &stack,
            "snapshot.rejected"
        ) >= 1)
        .is_some(),
        "a snapshot signed by an untrusted key was not refused"
    );
    assert!(allowed(&stack), "a wrongly signed snapshot took effect");
    assert!(stack
        .envoy
        .log()
        .contains("snapshot refused, keeping the current one"));

    // Tampered in transit: a proxy flips one content byte of a correctly signed snapshot.
    stack.start_control_plane(&repo_key()).unwrap();
    let good = stack
        .control_plane
        .as_ref()
        .unwrap()
        .current()
        .unwrap()
        .bytes
        .to_vec();
    stack.stop_control_plane();
    let rejected_before = counter(&stack, "snapshot.rejected");
    let tampered = {
        let mut bytes = good.clone();
        let at = meshgate_core::snapshot::HEADER_BYTES + 2;
        bytes[at] ^= 0x20;
        bytes
    };
    let server = serve_bytes(stack.control_plane_port, tampered);
    assert!(
        wait_until(Duration::from_secs(30), || {
            counter(&stack, "snapshot.rejected") > rejected_before
        })
        .is_some(),
        "a tampered snapshot was not refused"
    );
    assert!(allowed(&stack), "a tampered snapshot took effect");
    server.unblock();
    drop(server);
    // The serving thread lets go of the port when it sees the unblock.
    std::thread::sleep(Duration::from_millis(500));

    // The real control plane again: the newer, correctly signed snapshot takes effect.
    stack.start_control_plane(&repo_key()).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || !allowed(&stack)).is_some(),
        "the good snapshot without bob's group never took effect; log:\n{}",
        stack.envoy.log()
    );
}

#[test]
fn no_snapshot_at_start_follows_failure_mode() {
    let mut stack = Stack::start(&StackOptions {
        control_plane_down_at_start: true,
        ..StackOptions::default()
    })
    .unwrap();
    let alice = token(&stack, "alice@example.com", &["data-eng"]);
    // Keys load; the snapshot can't: authenticated requests fail closed, public ones pass.
    let took = wait_until(Duration::from_secs(30), || {
        outcome(&send(&stack, "GET", LIST, Some(&alice)))
            == (503, "snapshot_unavailable".to_owned())
    });
    assert!(
        took.is_some(),
        "no snapshot_unavailable while the control plane is down"
    );
    assert_eq!(send(&stack, "GET", "/health", None).status, 200);
    assert_eq!(
        send(&stack, "GET", LIST, None).status,
        401,
        "401 still comes first"
    );

    stack.start_control_plane(&repo_key()).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || {
            send(&stack, "GET", LIST, Some(&alice)).status == 200
        })
        .is_some(),
        "the first snapshot never took effect"
    );
}

fn repo_key() -> std::path::PathBuf {
    meshgate_test_harness::envoy::repo_root().join(DEMO_CP_KEY)
}

/// Serves `bytes` for any GET on `port` until unblocked (stands in for a tampering proxy).
fn serve_bytes(port: u16, bytes: Vec<u8>) -> std::sync::Arc<tiny_http::Server> {
    let server = std::sync::Arc::new(tiny_http::Server::http(("127.0.0.1", port)).unwrap());
    let serving = std::sync::Arc::clone(&server);
    std::thread::spawn(move || {
        for request in serving.incoming_requests() {
            let response = tiny_http::Response::from_data(bytes.clone())
                .with_header(tiny_http::Header::from_bytes("etag", "\"tampered\"").unwrap());
            let _ = request.respond(response);
        }
    });
    server
}
