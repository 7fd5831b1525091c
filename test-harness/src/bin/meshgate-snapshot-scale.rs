//! Prints what a large catalog costs at the edge: a signed snapshot of 100,000 users, 10,000
//! groups (nested) and 50,000 owned resources, loaded by a real Envoy (two workers) running
//! the demo configuration. Figures: snapshot size, time from the control plane answering to
//! every worker enforcing it, Envoy's RSS before and after, and the filter's own gauge of the
//! memory the snapshot takes per worker.
//!
//!   cargo run --release -p meshgate-test-harness --bin meshgate-snapshot-scale
//!
//! Needs dist/meshgate.wasm (./build.sh) and the Envoy from scripts/setup.sh.

use std::time::{Duration, Instant};

use meshgate_control_plane::snapshot::load_signing_key;
use meshgate_core::snapshot::{encode, GroupInput, OwnedInput, SnapshotInput, UserInput};
use meshgate_test_harness::envoy::repo_root;
use meshgate_test_harness::stack::{Stack, StackOptions, DEMO_CP_KEY};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

const USERS: usize = 100_000;
const GROUPS: usize = 10_000;
const OWNED: usize = 50_000;
const WORKERS: u64 = 2;

fn main() {
    if let Err(e) = run() {
        eprintln!("meshgate-snapshot-scale: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let key = load_signing_key(repo_root().join(DEMO_CP_KEY)).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let input = synthetic(7);
    let bytes = encode(&input, 1, 0, &key).map_err(|e| e.to_string())?;
    println!(
        "snapshot: {USERS} users, {GROUPS} groups (nested), {OWNED} owned: {} bytes ({:.2} MiB), built in {} ms",
        bytes.len(),
        bytes.len() as f64 / (1024.0 * 1024.0),
        started.elapsed().as_millis()
    );

    let stack = Stack::start(&StackOptions {
        control_plane_down_at_start: true,
        ..StackOptions::default()
    })
    .map_err(|e| e.to_string())?;
    // Let both workers settle (keys loaded, no snapshot yet).
    std::thread::sleep(Duration::from_secs(3));
    let before = rss_kib(stack.envoy.pid())?;
    let server = tiny_http::Server::http(("127.0.0.1", stack.control_plane_port))
        .map_err(|e| e.to_string())?;
    let served = Instant::now();
    let body = bytes.clone();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let _ = request.respond(tiny_http::Response::from_data(body.clone()));
        }
    });
    let loaded = loop {
        let count = stack
            .envoy
            .counter("wasmcustom.meshgate.snapshot.loaded")
            .unwrap_or(0);
        if count >= WORKERS {
            break served.elapsed();
        }
        if served.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "only {count} of {WORKERS} workers loaded the snapshot in 120 s; Envoy log:\n{}",
                stack.envoy.log()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_kib(stack.envoy.pid())?;
    let gauge = stack
        .envoy
        .counter("wasmcustom.meshgate.snapshot.memory_bytes")
        .unwrap_or(0);
    println!(
        "envoy --concurrency {WORKERS}: snapshot served → loaded by every worker in {} ms (fetch, verify, decode, publish; the second worker loads from shared data on its next 500 ms tick)",
        loaded.as_millis()
    );
    println!(
        "envoy RSS: {} MiB before, {} MiB after (+{} MiB for {WORKERS} workers and the shared copy); filter gauge meshgate.snapshot.memory_bytes: {:.1} MiB per worker",
        before / 1024,
        after / 1024,
        after.saturating_sub(before) / 1024,
        gauge as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

fn rss_kib(pid: u32) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| String::from("no VmRSS"))
}

fn word(rng: &mut StdRng, min: usize, max: usize) -> String {
    let len = rng.gen_range(min..=max);
    (0..len)
        .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
        .collect()
}

/// Groups in a forest (each group's parent is an earlier group, a third are roots); users in
/// 3-7 groups, closed upward; resources owned by 1-2 groups.
fn synthetic(seed: u64) -> SnapshotInput {
    let mut rng = StdRng::seed_from_u64(seed);
    let names: Vec<String> = (0..GROUPS)
        .map(|i| format!("group:default/{}-{i}", word(&mut rng, 4, 10)))
        .collect();
    let mut parent: Vec<Option<usize>> = Vec::with_capacity(GROUPS);
    for i in 0..GROUPS {
        parent.push((i > 0 && rng.gen_range(0..3) > 0).then(|| rng.gen_range(0..i)));
    }
    let ancestors = |mut g: usize| {
        let mut up = Vec::new();
        while let Some(p) = parent.get(g).copied().flatten() {
            up.push(p);
            g = p;
        }
        up
    };
    let groups: Vec<GroupInput> = (0..GROUPS)
        .map(|g| GroupInput {
            entity_ref: names.get(g).cloned().unwrap_or_default(),
            ancestors: ancestors(g)
                .into_iter()
                .filter_map(|a| names.get(a).cloned())
                .collect(),
        })
        .collect();
    let users = (0..USERS)
        .map(|i| {
            let name = format!("{}.{}{i}", word(&mut rng, 3, 8), word(&mut rng, 4, 10));
            let mut member: Vec<String> = Vec::new();
            for _ in 0..rng.gen_range(3..=7) {
                let g = rng.gen_range(0..GROUPS);
                member.extend(names.get(g).cloned());
                member.extend(
                    ancestors(g)
                        .into_iter()
                        .filter_map(|a| names.get(a).cloned()),
                );
            }
            UserInput {
                entity_ref: format!("user:default/{name}"),
                email: Some(format!("{name}@example.com")),
                groups: member,
            }
        })
        .collect();
    let kinds = ["airflow.dag", "buildkite.pipeline", "airbyte.connection"];
    let owned = (0..OWNED)
        .map(|i| OwnedInput {
            kind: kinds
                .get(i % kinds.len())
                .copied()
                .unwrap_or_default()
                .into(),
            id: format!("{}_{i}", word(&mut rng, 4, 12)),
            owners: (0..rng.gen_range(1..=2))
                .filter_map(|_| names.get(rng.gen_range(0..GROUPS)).cloned())
                .collect(),
        })
        .collect();
    SnapshotInput {
        users,
        owned,
        groups,
        rules: None,
    }
}
