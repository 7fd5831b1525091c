//! Self-service access through a real Envoy (two workers) polling a real control plane with
//! the access API on (the demo's access policy, a SQLite store): carol, who does not own
//! `etl_daily`, asks to trigger it; alice, in the owning data-eng, approves; carol's trigger
//! goes from 403 to 200, then back to 403 when the grant ends (by the sidecar's own clock) or
//! is revoked. Every step is an audit line, and the chain verifies.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions may panic"
)]

use std::time::{Duration, Instant};

use meshgate_test_harness::access_client;
use meshgate_test_harness::stack::{Stack, StackOptions};
use serde_json::{json, Value};

fn token(stack: &Stack, user: &str) -> String {
    stack.catalog_user_token(user)
}

fn trigger(stack: &Stack, token: &str) -> u16 {
    stack.trigger_etl(token).unwrap()
}

/// A call to the control plane's access API as the holder of `token`.
fn api(stack: &Stack, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let body = (!body.is_null()).then_some(&body);
    access_client::call(
        &agent,
        &stack.control_plane_url(),
        token,
        method,
        path,
        body,
    )
    .unwrap()
}

/// Polls `check` every 50 ms until it holds or `timeout` passes; how long it took.
fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn request_etl(stack: &Stack, token: &str, duration: &str) -> String {
    let (status, created) = api(
        stack,
        token,
        "POST",
        "/v1/access/requests",
        json!({"target": {"resource": {"kind": "airflow.dag", "id": "etl_daily"}},
               "duration": duration, "reason": "rerun the load after the warehouse outage"}),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "pending", "{created}");
    created["id"].as_str().unwrap().to_owned()
}

fn approve(stack: &Stack, token: &str, id: &str) -> (Value, Instant) {
    let (status, body) = api(
        stack,
        token,
        "POST",
        &format!("/v1/access/requests/{id}/approve"),
        json!({"comment": "ok for the rerun"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "approved", "{body}");
    (body, Instant::now())
}

#[test]
fn request_approve_allowed_expired_and_revoked_at_the_edge() {
    let stack = Stack::start(&StackOptions {
        access: true,
        ..StackOptions::default()
    })
    .unwrap();
    let carol = token(&stack, "carol");
    let alice = token(&stack, "alice");
    assert_eq!(trigger(&stack, &carol), 403, "carol owns nothing");
    assert_eq!(
        trigger(&stack, &alice),
        200,
        "alice's data-eng owns etl_daily"
    );

    // A five-second grant: approved, allowed within seconds, and over at not_after.
    let id = request_etl(&stack, &carol, "5s");
    let (status, body) = api(
        &stack,
        &carol,
        "POST",
        &format!("/v1/access/requests/{id}/approve"),
        Value::Null,
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("self_review"))
    );
    let (approved, at) = approve(&stack, &alice, &id);
    let enforced = wait_until(Duration::from_secs(10), || trigger(&stack, &carol) == 200)
        .expect("the approval never reached the edge");
    eprintln!(
        "approval -> allowed at the edge: {} ms",
        enforced.as_millis()
    );
    let not_after = approved["grant"]["not_after_ms"].to_string();
    wait_until(Duration::from_secs(15), || trigger(&stack, &carol) == 403)
        .expect("the grant never ended at the edge");
    eprintln!(
        "grant of 5 s (not_after_ms {not_after}) ended at the edge {} ms after the approval",
        (at.elapsed()).as_millis()
    );
    // Never early: the edge keeps a grant until not_after (rounded up to its second); the
    // grant started a moment before `approve` returned.
    assert!(at.elapsed() >= Duration::from_millis(4800), "ended early");
    assert!(
        stack
            .envoy
            .counter("wasmcustom.meshgate.allowed_by_grant")
            .unwrap_or(0)
            >= 1,
        "grant-based allows are counted"
    );
    assert!(
        stack.envoy.log().contains("\"grant\":{\"id\":"),
        "the decision log names the grant"
    );

    // An hour-long grant, revoked by the owner: denied again within seconds.
    let id = request_etl(&stack, &carol, "1h");
    let (approved, _) = approve(&stack, &alice, &id);
    wait_until(Duration::from_secs(10), || trigger(&stack, &carol) == 200)
        .expect("the second approval never reached the edge");
    let grant = approved["grant"]["id"].as_str().unwrap();
    let (status, body) = api(
        &stack,
        &alice,
        "POST",
        &format!("/v1/access/grants/{grant}/revoke"),
        json!({"comment": "rerun done"}),
    );
    assert_eq!(status, 200, "{body}");
    let revoked = wait_until(Duration::from_secs(10), || trigger(&stack, &carol) == 403)
        .expect("the revocation never reached the edge");
    eprintln!("revoke -> denied at the edge: {} ms", revoked.as_millis());

    // Each step is in the audit trail, and the chain holds.
    let audit = stack.access.as_ref().unwrap().audit.file.clone().unwrap();
    let text = std::fs::read(&audit).unwrap();
    let lines = String::from_utf8_lossy(&text);
    for event in ["requested", "approved", "granted", "revoked", "expired"] {
        assert!(
            lines.contains(&format!("\"event\":\"{event}\"")),
            "no `{event}` line in {lines}"
        );
    }
    let verified = meshgate_control_plane::audit::verify(&text).unwrap();
    assert!(verified.lines >= 8, "{verified:?}");
}
