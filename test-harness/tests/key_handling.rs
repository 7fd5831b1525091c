//! Key handling through a real Envoy (two workers): rotation under sustained load,
//! a JWKS outage, and the IdP being down before the first load.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions may panic"
)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use meshgate_test_harness::http_client;
use meshgate_test_harness::stack::{Stack, StackOptions};

const CLIENTS: usize = 4;

fn edits(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The issuer publishes a new key and starts signing with it, three times, and retires
/// the oldest keys, while clients send a steady stream of requests with tokens from the
/// current key. No request may be denied.
#[test]
fn key_rotation_under_load_denies_nothing() {
    // Rotations every 3 s need refetches closer together than the 30 s default.
    let opts = StackOptions {
        edits: edits(&[(
            r#""cache_duration_s": 300"#,
            r#""cache_duration_s": 300, "refetch_min_interval_s": 2"#,
        )]),
        ..StackOptions::default()
    };
    let stack = Stack::start(&opts).unwrap();
    let current = Arc::new(Mutex::new(stack.mint(|_| {})));
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let port = stack.listen_port;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (current, stop, tally) = (current.clone(), stop.clone(), tally.clone());
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let auth = format!("Bearer {}", current.lock().unwrap());
                    let response = http_client::send(
                        port,
                        "GET",
                        "airflow.internal",
                        "/api/v1/dags",
                        &[("authorization", &auth)],
                    );
                    tally.record(response);
                    // One connection per request: pace the clients so the loopback's
                    // ephemeral ports (TIME_WAIT) don't run out on a busy machine.
                    thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();

    let mut kids = vec![String::from("rs256-1")];
    for _ in 0..3 {
        thread::sleep(Duration::from_secs(3));
        let kid = stack.issuer.rotate("RS256").unwrap();
        *current.lock().unwrap() = stack.mint(|_| {});
        kids.push(kid);
        // The key before the previous one has signed nothing in flight for 3 s: retire it.
        if kids.len() >= 3 {
            stack.issuer.retire(&kids[kids.len() - 3]).unwrap();
        }
    }
    thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }

    let (sent, denied, transport) = (
        tally.sent.load(Ordering::Relaxed),
        tally.denied.load(Ordering::Relaxed),
        tally.transport.load(Ordering::Relaxed),
    );
    println!(
        "rotation under load: {sent} requests, {denied} not allowed, {transport} connect errors, 3 rotations, 2 retirements"
    );
    assert!(
        sent > 200,
        "too little load to mean anything: {sent} requests"
    );
    let shown: Vec<String> = tally.examples.lock().unwrap().clone();
    assert_eq!(
        denied, 0,
        "valid requests denied during rotation: {shown:?}"
    );
    // A connect error is not an answer from meshgate, but many would hide denials.
    assert!(
        transport * 100 <= sent,
        "too many connect errors ({transport}): {shown:?}"
    );
    let refetches = stack
        .envoy
        .counter("wasmcustom.meshgate.jwks.refetch_unknown_kid")
        .unwrap_or(0);
    assert!(
        refetches >= 3,
        "expected a refetch per rotation, saw {refetches}"
    );
    // One refetch per rotation for the whole Envoy, not one per worker.
    assert!(
        refetches <= 4,
        "refetch per worker instead of shared: {refetches}"
    );
}

/// Outcomes of the load clients' requests.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    /// HTTP answers other than 200.
    denied: AtomicU64,
    /// Requests that got no HTTP answer (connect or read errors).
    transport: AtomicU64,
    examples: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, response: Result<http_client::Response, http_client::HttpError>) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let example = match response {
            Ok(r) if r.status == 200 => return,
            Ok(r) => {
                self.denied.fetch_add(1, Ordering::Relaxed);
                format!("{} {}", r.status, r.text())
            }
            Err(e) => {
                self.transport.fetch_add(1, Ordering::Relaxed);
                e.to_string()
            }
        };
        let mut examples = self.examples.lock().unwrap();
        if examples.len() < 5 {
            examples.push(example);
        }
    }
}

/// The IdP's JWKS endpoint fails for several refreshes: the last good keys keep working.
#[test]
fn jwks_outage_keeps_the_last_good_keys() {
    let opts = StackOptions {
        edits: edits(&[(r#""cache_duration_s": 300"#, r#""cache_duration_s": 1"#)]),
        ..StackOptions::default()
    };
    let stack = Stack::start(&opts).unwrap();
    let token = stack.mint(|_| {});
    let auth = format!("Bearer {token}");
    let ok_before = stack
        .envoy
        .counter("wasmcustom.meshgate.jwks.fetch_ok")
        .unwrap_or(0);
    stack.issuer.set_jwks_failure(Some(503));
    thread::sleep(Duration::from_secs(4));
    for _ in 0..20 {
        let r = stack
            .send(
                "GET",
                "airflow.internal",
                "/api/v1/dags",
                &[("authorization", &auth)],
            )
            .unwrap();
        assert_eq!(r.status, 200, "denied during the outage: {}", r.text());
    }
    let failures = stack
        .envoy
        .counter("wasmcustom.meshgate.jwks.fetch_failed")
        .unwrap_or(0);
    assert!(
        failures >= 2,
        "the outage was never noticed: {failures} failed fetches"
    );
    assert!(stack.envoy.log().contains("keeping the current keys"));
    // Recovery: fetches succeed again.
    stack.issuer.set_jwks_failure(None);
    let started = Instant::now();
    while stack
        .envoy
        .counter("wasmcustom.meshgate.jwks.fetch_ok")
        .unwrap_or(0)
        <= ok_before
    {
        assert!(
            started.elapsed() < Duration::from_secs(70),
            "no successful fetch after recovery"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Keys never loaded: `failure_mode` decides, per route. Closed by default; the demo's
/// `/health` is public anyway; a route marked `failure_mode: open` passes and is counted.
#[test]
fn idp_down_at_start_follows_failure_mode() {
    let opts = StackOptions {
        jwks_down_at_start: true,
        edits: edits(&[(
            r#""paths": ["/items/{id}"], "when""#,
            r#""paths": ["/items/{id}"], "failure_mode": "open", "when""#,
        )]),
        ..StackOptions::default()
    };
    let stack = Stack::start(&opts).unwrap();
    let auth = format!("Bearer {}", stack.mint(|_| {}));
    let cases = [
        (
            "airflow.internal",
            "/api/v1/dags",
            401,
            Some("jwks_unavailable"),
        ),
        ("orders.svc.internal", "/items/7", 200, None),
        ("orders.svc.internal", "/health", 200, None),
    ];
    for (host, path, status, code) in cases {
        let r = stack
            .send(
                "GET",
                host,
                path,
                &[("authorization", &auth), ("x-meshgate-subject", "root")],
            )
            .unwrap();
        assert_eq!(r.status, status, "{host}{path}: {}", r.text());
        match code {
            Some(code) => assert_eq!(r.json()["code"], code),
            None => assert_eq!(
                r.json()["headers"]["x-meshgate-subject"],
                serde_json::Value::Null,
                "identity on a fail-open request"
            ),
        }
    }
    assert_eq!(
        stack.envoy.counter("wasmcustom.meshgate.fail_open"),
        Some(1)
    );
    // The IdP comes back: the same token is now verified normally.
    stack.issuer.set_jwks_failure(None);
    let started = Instant::now();
    loop {
        let r = stack
            .send(
                "GET",
                "airflow.internal",
                "/api/v1/dags",
                &[("authorization", &auth)],
            )
            .unwrap();
        if r.status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(70),
            "keys never loaded after the IdP came back"
        );
        thread::sleep(Duration::from_millis(200));
    }
}
