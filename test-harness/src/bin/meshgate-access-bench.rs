//! Measures self-service access (issue 16, "Measure"): how fast an approval and a revocation
//! reach a real Envoy, how many requests per second the access API sustains on SQLite and on
//! PostgreSQL, and what 10,000 active grants cost in snapshot bytes and memory.
//!
//!   cargo build --release -p meshgate-test-harness
//!   target/release/meshgate-access-bench [--cycles 10] [--clients 8] [--seconds 10]
//!       [--grants 10000] [--postgres-url URL] [--out FILE] [--skip-edge] [--skip-api]
//!       [--skip-grants]
//!
//! 1. Edge: the test stack (`Stack`, access API on, Envoy with two workers, the demo's 1 s
//!    snapshot poll). Each cycle carol asks to trigger `etl_daily`, alice approves; the time
//!    from the approve call returning to carol's first 200 through Envoy; then alice revokes,
//!    and the time to carol's first 403.
//! 2. API: the control plane in process over the sample catalog, C clients (keep-alive) for D
//!    seconds each creating requests, then approving the requests just created, then listing
//!    their own. On SQLite (a temp file) and, with `--postgres-url` or
//!    `MESHGATE_TEST_POSTGRES_URL`, on a fresh PostgreSQL database (dropped at the end).
//!    Tokens are minted before the clock starts.
//! 3. Grants: G grants written through the store into a fresh stack's database, published
//!    by the syncer; the snapshot's size, the decoded `Grants` index's heap, and Envoy's RSS
//!    against the no-grants baseline. The snapshot size is also given for the org-scale quick
//!    catalog (10,001 users), re-encoded with the same grants.
//!
//! Needs dist/meshgate.wasm (./build.sh) and the Envoy from scripts/setup.sh. Prints each
//! figure as it is measured; `--out` writes them all as JSON.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshgate_control_plane::access::{
    AccessSettings, AccessStore, AuditSettings, AuthSettings, StoreSettings,
};
use meshgate_control_plane::access_store::{
    AccessRequest, Grant as StoredGrant, RequestState, SqliteStore, StoreConfig, Target,
};
use meshgate_control_plane::serve::{no_log, CatalogSource, RunningServer, ServeConfig, Server};
use meshgate_control_plane::snapshot::{
    generate_signing_key, load_signing_key, public_key_line, write_new_signing_key,
};
use meshgate_core::snapshot::{
    encode_indexed, DecodeLimits, Grant, GrantTarget, Grants, UnverifiedSnapshot,
};
use meshgate_core::UnixTime;
use meshgate_test_harness::access_client::call;
use meshgate_test_harness::envoy::repo_root;
use meshgate_test_harness::orggen::{Org, OrgSpec};
use meshgate_test_harness::scale_probe::process_kib;
use meshgate_test_harness::stack::{Stack, StackOptions, DEMO_CP_KEY};
use meshgate_test_support::keys::{public_jwk, rsa_private};
use meshgate_test_support::sign::sign;
use serde_json::{json, Value};

const POSTGRES_URL: &str = "MESHGATE_TEST_POSTGRES_URL";
const ISSUER: &str = "https://idp.meshgate.test";
const AUDIENCE: &str = "meshgate";
const WORKERS: u64 = 2;
/// How often the edge is probed while waiting for a change: each probe is one request.
const PROBE: Duration = Duration::from_millis(10);

/// The API bench's policy: every airflow DAG requestable, reviewed by its owners, nothing
/// approves itself (so creates stay pending and become the approve phase's work).
const POLICY: &str = "\
version: 1
admins: [platform-team]
requestable:
  - name: airflow-dags
    target: {resource: {kind: airflow.dag}}
    max_duration: 8h
    reason: required
";

struct Args {
    cycles: usize,
    clients: usize,
    seconds: u64,
    grants: usize,
    postgres_url: Option<String>,
    out: Option<PathBuf>,
    edge: bool,
    api: bool,
    grant_costs: bool,
}

fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("meshgate-access-bench: {error}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(&args) {
        eprintln!("meshgate-access-bench: {error}");
        std::process::exit(1);
    }
}

fn parse_args(mut words: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        cycles: 10,
        clients: 8,
        seconds: 10,
        grants: 10_000,
        postgres_url: std::env::var(POSTGRES_URL)
            .ok()
            .filter(|url| !url.is_empty()),
        out: None,
        edge: true,
        api: true,
        grant_costs: true,
    };
    while let Some(word) = words.next() {
        let mut value = |name: &str| {
            words
                .next()
                .ok_or_else(|| format!("`{name}` needs a value"))
        };
        let number = |name: &str, text: String| {
            text.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{name}`: `{text}` is not a positive number"))
        };
        match word.as_str() {
            "--cycles" => args.cycles = number("--cycles", value("--cycles")?)?,
            "--clients" => args.clients = number("--clients", value("--clients")?)?,
            "--seconds" => {
                args.seconds = number("--seconds", value("--seconds")?)? as u64;
            }
            "--grants" => args.grants = number("--grants", value("--grants")?)?,
            "--postgres-url" => args.postgres_url = Some(value("--postgres-url")?),
            "--out" => args.out = Some(PathBuf::from(value("--out")?)),
            "--skip-edge" => args.edge = false,
            "--skip-api" => args.api = false,
            "--skip-grants" => args.grant_costs = false,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

fn run(args: &Args) -> Result<(), String> {
    let load = load_average();
    println!("load average at start: {load}");
    let mut report = serde_json::Map::new();
    for (key, value) in [
        ("load_average_at_start", json!(load)),
        ("cycles", json!(args.cycles)),
        ("clients", json!(args.clients)),
        ("seconds", json!(args.seconds)),
        ("grants", json!(args.grants)),
    ] {
        report.insert(key.into(), value);
    }
    if args.edge {
        report.insert("edge".into(), edge(args.cycles)?);
    }
    if args.api {
        let mut api = serde_json::Map::new();
        api.insert("sqlite".into(), api_bench(args, Backend::Sqlite)?);
        let postgres = match &args.postgres_url {
            Some(url) => api_bench(args, Backend::Postgres(url.clone()))?,
            None => {
                println!("api on postgresql: not measured: no PostgreSQL");
                json!("not measured: no PostgreSQL")
            }
        };
        api.insert("postgresql".into(), postgres);
        report.insert("api".into(), Value::Object(api));
    }
    if args.grant_costs {
        report.insert("grants_cost".into(), grant_costs(args.grants)?);
    }
    if let Some(out) = &args.out {
        let text =
            serde_json::to_string_pretty(&Value::Object(report)).map_err(|e| e.to_string())?;
        std::fs::write(out, text + "\n").map_err(|e| format!("{}: {e}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

// ---- figures ------------------------------------------------------------------------------

/// p50/p95/p99/max of `samples` in milliseconds (nearest rank).
fn summary(samples: &mut [Duration]) -> Value {
    samples.sort_unstable();
    let at = |q: f64| -> f64 {
        let rank = ((q * samples.len() as f64).ceil() as usize).max(1);
        samples
            .get(rank - 1)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    json!({
        "n": samples.len(),
        "p50_ms": round(at(0.50)),
        "p95_ms": round(at(0.95)),
        "p99_ms": round(at(0.99)),
        "max_ms": round(at(1.0)),
    })
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn ms(value: &Value, key: &str) -> String {
    format!(
        "{}",
        value.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
    )
}

// ---- 1. approval and revocation at the edge -----------------------------------------------

fn edge_token(stack: &Stack, user: &str) -> String {
    stack.catalog_user_token(user)
}

fn trigger(stack: &Stack, token: &str) -> Result<u16, String> {
    stack.trigger_etl(token).map_err(|e| e.to_string())
}

/// An agent for access API calls: each call gets an answer within 30 s or fails.
fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

fn expect(what: &str, got: (u16, Value), status: u16) -> Result<Value, String> {
    if got.0 == status {
        Ok(got.1)
    } else {
        Err(format!("{what}: {} {}", got.0, got.1))
    }
}

/// Probes until `status` comes back; how long after `since` that was.
fn until_status(
    stack: &Stack,
    token: &str,
    status: u16,
    since: Instant,
) -> Result<Duration, String> {
    while since.elapsed() < Duration::from_secs(30) {
        if trigger(stack, token)? == status {
            return Ok(since.elapsed());
        }
        std::thread::sleep(PROBE);
    }
    Err(format!("no {status} at the edge within 30 s"))
}

fn edge(cycles: usize) -> Result<Value, String> {
    let stack = Stack::start(&StackOptions {
        access: true,
        ..StackOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let base = format!("http://127.0.0.1:{}", stack.control_plane_port);
    let agent = agent();
    let carol = edge_token(&stack, "carol");
    let alice = edge_token(&stack, "alice");
    if trigger(&stack, &carol)? != 403 {
        return Err("carol is allowed before any grant".into());
    }
    let request = json!({"target": {"resource": {"kind": "airflow.dag", "id": "etl_daily"}},
                         "duration": "1h", "reason": "benchmark"});
    let (mut approvals, mut revocations) = (Vec::new(), Vec::new());
    for cycle in 0..cycles {
        let created = expect(
            "create",
            call(
                &agent,
                &base,
                &carol,
                "POST",
                "/v1/access/requests",
                Some(&request),
            )?,
            201,
        )?;
        let id = created
            .pointer("/id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let approved = expect(
            "approve",
            call(
                &agent,
                &base,
                &alice,
                "POST",
                &format!("/v1/access/requests/{id}/approve"),
                Some(&json!({})),
            )?,
            200,
        )?;
        let at = Instant::now();
        let allowed = until_status(&stack, &carol, 200, at)?;
        let grant = approved
            .pointer("/grant/id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        expect(
            "revoke",
            call(
                &agent,
                &base,
                &alice,
                "POST",
                &format!("/v1/access/grants/{grant}/revoke"),
                Some(&json!({})),
            )?,
            200,
        )?;
        let at = Instant::now();
        let denied = until_status(&stack, &carol, 403, at)?;
        println!(
            "edge cycle {}: approve -> 200 in {} ms, revoke -> 403 in {} ms",
            cycle + 1,
            allowed.as_millis(),
            denied.as_millis()
        );
        approvals.push(allowed);
        revocations.push(denied);
    }
    let approve = summary(&mut approvals);
    let revoke = summary(&mut revocations);
    println!(
        "edge: approve -> enforced p50 {} / p95 {} / max {} ms; revoke -> denied p50 {} / p95 {} / max {} ms ({cycles} cycles)",
        ms(&approve, "p50_ms"),
        ms(&approve, "p95_ms"),
        ms(&approve, "max_ms"),
        ms(&revoke, "p50_ms"),
        ms(&revoke, "p95_ms"),
        ms(&revoke, "max_ms"),
    );
    Ok(
        json!({"approve_to_allowed": approve, "revoke_to_denied": revoke,
              "probe_interval_ms": PROBE.as_millis() as u64, "envoy_workers": WORKERS}),
    )
}

// ---- 2. API throughput ----------------------------------------------------------------------

enum Backend {
    Sqlite,
    Postgres(String),
}

/// A fresh PostgreSQL database on the server a URL names, dropped at the end.
struct PostgresDatabase {
    base: String,
    name: String,
}

impl PostgresDatabase {
    fn create(base: &str) -> Result<PostgresDatabase, String> {
        let name = format!("mg_access_bench_{}", std::process::id());
        let mut admin = postgres::Client::connect(base, postgres::NoTls)
            .map_err(|e| format!("PostgreSQL at {base}: {e}"))?;
        // One statement per call: CREATE DATABASE cannot run in the implicit transaction of
        // a multi-statement query.
        for statement in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin
                .batch_execute(&statement)
                .map_err(|e| format!("{statement}: {e:?}"))?;
        }
        Ok(PostgresDatabase {
            base: base.to_owned(),
            name,
        })
    }

    /// The base URL with its database replaced by this one.
    fn url(&self) -> String {
        let (front, query) = self.base.split_once('?').unwrap_or((&self.base, ""));
        let server = match front.split_once("://") {
            Some((scheme, rest)) => {
                format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest))
            }
            None => front.to_owned(),
        };
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("{server}/{}{query}", self.name)
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.base, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn scratch(label: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "meshgate-access-bench-{label}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let catalog = dir.join("catalog");
    std::fs::create_dir_all(&catalog).map_err(|e| format!("{}: {e}", catalog.display()))?;
    let sample = repo_root().join("test-harness/catalog");
    for entry in std::fs::read_dir(&sample).map_err(|e| format!("{}: {e}", sample.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, catalog.join(name))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(dir)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The control plane with the access API over the sample catalog in `dir`, as
/// control-plane/tests/access_api.rs runs it: callers verified through a local JWKS.
fn api_server(dir: &Path, store: Option<Arc<dyn AccessStore>>) -> Result<RunningServer, String> {
    let key = generate_signing_key(Some("access-bench"), &mut rand::rngs::OsRng)
        .map_err(|e| e.to_string())?;
    let key_file = dir.join("snapshot-key.json");
    write_new_signing_key(&key, &key_file).map_err(|e| e.to_string())?;
    let public_key: Value =
        serde_json::from_str(&public_key_line(&key)).map_err(|e| e.to_string())?;
    let jwks = json!({"keys": [public_jwk(&rsa_private(), "rsa", Some("RS256"))]});
    let filter = json!({
        "providers": {"demo": {
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "remote_jwks": {"cluster": "idp", "uri": "https://idp.meshgate.test/jwks"},
        }},
        "snapshot": {
            "cluster": "meshgate-cp",
            "uri": "http://meshgate-cp/v1/snapshots/default",
            "public_keys": [public_key],
        },
        "rules": [{"id": "anything", "action": "deny"}],
    });
    write(&dir.join("jwks.json"), &jwks.to_string())?;
    write(&dir.join("filter.json"), &filter.to_string())?;
    write(&dir.join("access.yaml"), POLICY)?;
    let mut config = ServeConfig::new(CatalogSource::Directory(dir.join("catalog")), key_file);
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.resync_interval = Duration::from_secs(3600);
    config.watch_interval = None;
    config.access = Some(AccessSettings {
        policy_file: dir.join("access.yaml"),
        store: StoreSettings::Sqlite {
            path: dir.join("access.db"),
        },
        audit: AuditSettings {
            stdout: false,
            file: Some(dir.join("audit.jsonl")),
        },
        auth: AuthSettings {
            filter_config: dir.join("filter.json"),
            jwks_files: [("demo".to_owned(), dir.join("jwks.json"))].into(),
            jwks_urls: Default::default(),
        },
        notify: None,
    });
    let server = Server::start_with_access_store(config, no_log(), store)
        .map_err(|e| format!("control plane: {e}"))?;
    if !server.wait_ready(Duration::from_secs(20)) {
        return Err("the control plane published no snapshot within 20 s".into());
    }
    Ok(server)
}

fn api_token(user: &str) -> Result<String, String> {
    let now = meshgate_test_support::unix_now();
    sign(
        "RS256",
        &rsa_private(),
        &json!({"alg": "RS256", "kid": "rsa", "typ": "JWT"}),
        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": format!("user:default/{user}"),
                "email": format!("{user}@example.com"), "iat": now - 10, "exp": now + 3600}),
    )
    .map_err(|e| e.to_string())
}

/// What one phase of C clients did.
struct Phase {
    ok: usize,
    failed: usize,
    first_failure: Option<String>,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// Calls completed by each client: a client the server leaves waiting shows as 0 or 1.
    per_client: Vec<usize>,
}

impl Phase {
    fn report(&mut self, what: &str, backend: &str) -> Value {
        let rate = self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9);
        let latency = summary(&mut self.latencies);
        println!(
            "api on {backend}: {what}: {:.0} requests/s ({} ok, {} failed in {:.1} s), latency p50 {} / p99 {} / max {} ms",
            rate,
            self.ok,
            self.failed,
            self.elapsed.as_secs_f64(),
            ms(&latency, "p50_ms"),
            ms(&latency, "p99_ms"),
            ms(&latency, "max_ms"),
        );
        println!("  completed per client: {:?}", self.per_client);
        if let Some(failure) = &self.first_failure {
            println!("  first failure: {failure}");
        }
        json!({"requests_per_s": rate.round(), "ok": self.ok, "failed": self.failed,
               "seconds": round(self.elapsed.as_secs_f64()), "latency": latency,
               "completed_per_client": self.per_client, "first_failure": self.first_failure})
    }
}

/// Runs `op` from `clients` threads, each with its own keep-alive agent, until `limit` passes
/// or `op` says there is no more work (`None`). `op(agent, client)` gives the call's outcome.
fn phase(
    clients: usize,
    limit: Duration,
    op: impl Fn(&ureq::Agent, usize) -> Option<Result<(), String>> + Sync,
) -> Phase {
    let started = Instant::now();
    let results: Vec<(usize, usize, Option<String>, Vec<Duration>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let op = &op;
                s.spawn(move || {
                    let agent = agent();
                    let (mut ok, mut failed, mut first, mut latencies) = (0, 0, None, Vec::new());
                    while started.elapsed() < limit {
                        let at = Instant::now();
                        match op(&agent, client) {
                            None => break,
                            Some(Ok(())) => {
                                latencies.push(at.elapsed());
                                ok += 1;
                            }
                            Some(Err(error)) => {
                                failed += 1;
                                first.get_or_insert(error);
                            }
                        }
                    }
                    (ok, failed, first, latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|handle| handle.join().ok())
            .collect()
    });
    let elapsed = started.elapsed();
    let mut out = Phase {
        ok: 0,
        failed: 0,
        first_failure: None,
        elapsed,
        latencies: Vec::new(),
        per_client: Vec::new(),
    };
    for (ok, failed, first, latencies) in results {
        out.per_client.push(ok + failed);
        out.ok += ok;
        out.failed += failed;
        if out.first_failure.is_none() {
            out.first_failure = first;
        }
        out.latencies.extend(latencies);
    }
    out
}

fn api_bench(args: &Args, backend: Backend) -> Result<Value, String> {
    let (label, _database, store): (&str, Option<PostgresDatabase>, Option<Arc<dyn AccessStore>>) =
        match &backend {
            Backend::Sqlite => ("sqlite", None, None),
            Backend::Postgres(base) => {
                let database = PostgresDatabase::create(base)?;
                let store = meshgate_control_plane::access_store::open(&StoreConfig::Postgres {
                    url: database.url(),
                })
                .map_err(|e| format!("PostgreSQL store: {e}"))?;
                ("postgresql", Some(database), Some(Arc::from(store)))
            }
        };
    let dir = scratch(label)?;
    let mut server = api_server(&dir, store)?;
    let base = server.url();
    // carol and dave ask (neither owns anything); alice (data-eng) approves; erin lists her
    // own ten requests while the table holds everyone's.
    let requesters = [api_token("carol")?, api_token("dave")?];
    let alice = api_token("alice")?;
    let erin = api_token("erin")?;
    let body = |dag: &str| {
        json!({"target": {"resource": {"kind": "airflow.dag", "id": dag}},
               "duration": "1h", "reason": "benchmark"})
    };
    let setup = agent();
    for _ in 0..10 {
        expect(
            "create",
            call(
                &setup,
                &base,
                &erin,
                "POST",
                "/v1/access/requests",
                Some(&body("etl_daily")),
            )?,
            201,
        )?;
    }
    let limit = Duration::from_secs(args.seconds);
    let created = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let mut create = phase(args.clients, limit, |agent, client| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let token = requesters.get((client + n) % requesters.len())?;
        Some(
            call(
                agent,
                &base,
                token,
                "POST",
                "/v1/access/requests",
                Some(&body("etl_daily")),
            )
            .and_then(|got| expect("create", got, 201))
            .map(|request| {
                if let (Some(id), Ok(mut ids)) = (
                    request.pointer("/id").and_then(Value::as_str),
                    created.lock(),
                ) {
                    ids.push(id.to_owned());
                }
            }),
        )
    });
    let create = create.report("create request", label);
    // Approve what was created: alice owns etl_daily through data-eng.
    let pending = Mutex::new(created.into_inner().map_err(|e| e.to_string())?);
    let pool = pending.lock().map(|ids| ids.len()).unwrap_or(0);
    let mut approve = phase(args.clients, limit, |agent, _| {
        let id = pending.lock().ok()?.pop()?;
        Some(
            call(
                agent,
                &base,
                &alice,
                "POST",
                &format!("/v1/access/requests/{id}/approve"),
                Some(&json!({})),
            )
            .and_then(|got| expect("approve", got, 200))
            .map(|_| ()),
        )
    });
    let mut approve_report = approve.report("approve", label);
    if let Some(fields) = approve_report.as_object_mut() {
        fields.insert("pool".into(), json!(pool));
    }
    if approve.ok + approve.failed >= pool {
        println!(
            "  (the {pool} requests created were all approved before {} s)",
            args.seconds
        );
    }
    let mut list = phase(args.clients, limit, |agent, _| {
        Some(
            call(
                agent,
                &base,
                &erin,
                "GET",
                "/v1/access/requests?mine=1",
                None,
            )
            .and_then(|got| expect("list mine", got, 200))
            .and_then(|listed| {
                match listed
                    .pointer("/requests")
                    .and_then(Value::as_array)
                    .map(Vec::len)
                {
                    Some(10) => Ok(()),
                    other => Err(format!("list mine: {other:?} requests, not 10")),
                }
            }),
        )
    });
    let list = list.report("list mine (10 of the caller's)", label);
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({"create": create, "approve": approve_report, "list_mine": list}))
}

// ---- 3. what 10,000 grants cost ------------------------------------------------------------

/// The grants the bench writes: users `bench-user-NNNNN` with two grants each, alternately a
/// group (data-eng) and one DAG; plus one for carol on etl_daily, to see them arrive.
fn synthetic_grants(count: usize, now_ms: i64) -> Vec<(AccessRequest, StoredGrant)> {
    (0..count)
        .map(|i| {
            let (user, target) = if i + 1 == count {
                (
                    "user:default/carol".to_owned(),
                    Target::Resource {
                        resource_kind: "airflow.dag".into(),
                        id: "etl_daily".into(),
                    },
                )
            } else if i % 2 == 0 {
                (
                    format!("user:default/bench-user-{:05}", i / 2),
                    Target::Group {
                        group: "group:default/data-eng".into(),
                    },
                )
            } else {
                (
                    format!("user:default/bench-user-{:05}", i / 2),
                    Target::Resource {
                        resource_kind: "airflow.dag".into(),
                        id: format!("bench_dag_{i:05}"),
                    },
                )
            };
            let request = AccessRequest {
                id: format!("bench-request-{i:05}"),
                requester: user.clone(),
                target: target.clone(),
                entry: "airflow-dags".into(),
                duration_s: 8 * 3600,
                reason: "benchmark".into(),
                state: RequestState::Pending,
                created_at: now_ms,
                decided_at: None,
                version: 1,
            };
            let grant = StoredGrant {
                id: format!("bench-grant-{i:05}"),
                request_id: request.id.clone(),
                user,
                target,
                not_before: now_ms,
                not_after: now_ms + 8 * 3600 * 1000,
                revoked_at: None,
                revoked_by: None,
            };
            (request, grant)
        })
        .collect()
}

/// The grants as the snapshot carries them.
fn as_snapshot_grants(grants: &[(AccessRequest, StoredGrant)]) -> Grants {
    Grants::new(
        grants
            .iter()
            .map(|(_, grant)| Grant {
                id: grant.id.clone(),
                user: grant.user.clone(),
                target: match &grant.target {
                    Target::Group { group } => GrantTarget::Group(group.clone()),
                    Target::Resource { resource_kind, id } => GrantTarget::Resource {
                        kind: resource_kind.clone(),
                        id: id.clone(),
                    },
                },
                not_after: UnixTime::from_secs(grant.not_after.div_euclid(1000)),
            })
            .collect(),
    )
}

/// Bytes a `Grants` index holds on the heap: its vector and every string's capacity.
fn grants_heap(grants: &Grants, grant_size: usize) -> usize {
    let strings: usize = grants
        .iter()
        .map(|grant| {
            grant.id.capacity()
                + grant.user.capacity()
                + match &grant.target {
                    GrantTarget::Group(group) => group.capacity(),
                    GrantTarget::Resource { kind, id } => kind.capacity() + id.capacity(),
                }
        })
        .sum();
    strings + grants.len() * grant_size
}

/// `Grant` on wasm32 (4-byte pointers): three 12-byte strings' worth for id and user, 24 for
/// the target (two strings; the group variant fits in the string's niche), 8 for `not_after`.
const WASM32_GRANT_BYTES: usize = 12 + 12 + 24 + 8;

fn snapshot_bytes(server: &RunningServer) -> Result<Arc<[u8]>, String> {
    server
        .current()
        .map(|published| Arc::clone(&published.bytes))
        .ok_or_else(|| "the control plane has published nothing".to_owned())
}

fn loaded(stack: &Stack) -> u64 {
    stack
        .envoy
        .counter("wasmcustom.meshgate.snapshot.loaded")
        .unwrap_or(0)
}

fn grant_costs(count: usize) -> Result<Value, String> {
    let stack = Stack::start(&StackOptions {
        access: true,
        ..StackOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let server = stack
        .control_plane
        .as_ref()
        .ok_or("the stack runs no control plane")?;
    let carol = edge_token(&stack, "carol");
    if trigger(&stack, &carol)? != 403 {
        return Err("carol is allowed before any grant".into());
    }
    // Let both workers settle on the no-grants snapshot.
    std::thread::sleep(Duration::from_secs(5));
    let pid = stack.envoy.pid();
    let rss_before = process_kib(pid, "VmRSS").map_err(|e| e.to_string())?;
    let gauge_before = stack
        .envoy
        .counter("wasmcustom.meshgate.snapshot.memory_bytes")
        .unwrap_or(0);
    let size_before = snapshot_bytes(server)?.len();
    let loads_before = loaded(&stack);

    let db = match &stack.access.as_ref().ok_or("no access settings")?.store {
        StoreSettings::Sqlite { path } => path.clone(),
        StoreSettings::Postgres { .. } => return Err("the stack's store is not SQLite".into()),
    };
    let store = SqliteStore::open(&db).map_err(|e| e.to_string())?;
    let now_ms = meshgate_test_support::unix_now() * 1000;
    let grants = synthetic_grants(count, now_ms);
    let writing = Instant::now();
    for (request, grant) in &grants {
        store
            .create_request(request, &[])
            .map_err(|e| format!("create {}: {e}", request.id))?;
        store
            .decide(
                &request.id,
                RequestState::Approved,
                now_ms,
                Some(grant),
                &[],
            )
            .map_err(|e| format!("grant {}: {e}", grant.id))?;
    }
    let written = writing.elapsed();
    println!(
        "grants: {count} written through the SQLite store in {:.1} s (two transactions each)",
        written.as_secs_f64()
    );
    // The syncer reads the store at its next sync (every second in the stack).
    let published = Instant::now();
    until_status(&stack, &carol, 200, published)?;
    while loaded(&stack) < loads_before + WORKERS {
        if published.elapsed() > Duration::from_secs(60) {
            return Err("the workers did not both load the grants within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let at_edge = published.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    let rss_after = process_kib(pid, "VmRSS").map_err(|e| e.to_string())?;
    let gauge_after = stack
        .envoy
        .counter("wasmcustom.meshgate.snapshot.memory_bytes")
        .unwrap_or(0);
    let bytes = snapshot_bytes(server)?;
    let decoded =
        UnverifiedSnapshot::decode(&bytes, &DecodeLimits::default()).map_err(|e| e.to_string())?;
    let index = decoded.contents().grants().map_err(|e| e.to_string())?;
    if index.len() != count {
        return Err(format!(
            "the snapshot carries {} grants, not {count}",
            index.len()
        ));
    }
    let native = grants_heap(&index, std::mem::size_of::<Grant>());
    let wasm32 = grants_heap(&index, WASM32_GRANT_BYTES);
    let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "grants: published and loaded by both workers {} ms after the last write",
        at_edge.as_millis()
    );
    println!(
        "sample catalog snapshot: {size_before} bytes without grants, {} with {count} ({:.1} bytes per grant)",
        bytes.len(),
        (bytes.len() - size_before.min(bytes.len())) as f64 / count as f64
    );
    println!(
        "Grants index heap: {native} bytes native ({:.2} MiB, {} B per Grant struct), about {wasm32} bytes ({:.2} MiB) on wasm32",
        mib(native),
        std::mem::size_of::<Grant>(),
        mib(wasm32)
    );
    println!(
        "envoy (2 workers) RSS: {} KiB without grants, {} KiB with {count} (+{} KiB); filter gauge meshgate.snapshot.memory_bytes {gauge_before} -> {gauge_after} per worker",
        rss_before,
        rss_after,
        rss_after.saturating_sub(rss_before)
    );
    let org = org_snapshot_sizes(&as_snapshot_grants(&grants))?;
    Ok(json!({
        "count": count,
        "write_seconds": round(written.as_secs_f64()),
        "published_to_both_workers_ms": at_edge.as_millis() as u64,
        "sample_catalog_snapshot_bytes": {"without": size_before, "with": bytes.len()},
        "org_quick_snapshot_bytes": org,
        "grants_index_heap_bytes": {"native": native, "native_grant_struct": std::mem::size_of::<Grant>(),
                                    "wasm32_estimate": wasm32},
        "envoy_rss_kib": {"without": rss_before, "with": rss_after,
                          "delta": rss_after.saturating_sub(rss_before)},
        "filter_snapshot_memory_bytes_gauge": {"without": gauge_before, "with": gauge_after},
    }))
}

/// The org-scale quick catalog (10,001 users) as the control plane publishes it, re-encoded
/// without and with `grants`.
fn org_snapshot_sizes(grants: &Grants) -> Result<Value, String> {
    let dir =
        std::env::temp_dir().join(format!("meshgate-access-bench-org-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let catalog = dir.join("catalog");
    Org::generate(&OrgSpec::quick())
        .and_then(|org| org.write_dir(&catalog))
        .map_err(|e| e.to_string())?;
    let key_file = repo_root().join(DEMO_CP_KEY);
    let mut config = ServeConfig::new(CatalogSource::Directory(catalog), &key_file);
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.resync_interval = Duration::from_secs(3600);
    config.watch_interval = None;
    let mut server =
        Server::start_with_log(config, no_log()).map_err(|e| format!("control plane: {e}"))?;
    if !server.wait_ready(Duration::from_secs(120)) {
        return Err("the org-scale catalog was not published within 120 s".into());
    }
    let bytes = snapshot_bytes(&server)?;
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let decoded =
        UnverifiedSnapshot::decode(&bytes, &DecodeLimits::default()).map_err(|e| e.to_string())?;
    let mut input = decoded
        .contents()
        .to_indexed()
        .ok_or("the org snapshot does not re-read")?;
    let key = load_signing_key(&key_file).map_err(|e| e.to_string())?;
    let version = decoded.contents().version();
    let generated_at = decoded.contents().generated_at();
    let without = encode_indexed(&input, version, generated_at, &key)
        .map_err(|e| e.to_string())?
        .len();
    input.grants = grants.clone();
    let with = encode_indexed(&input, version, generated_at, &key)
        .map_err(|e| e.to_string())?
        .len();
    println!(
        "org-scale quick catalog snapshot ({} users, {} groups, {} owned): {without} bytes without grants, {with} with {} ({:.1} bytes per grant)",
        decoded.contents().user_count(),
        decoded.contents().group_count(),
        decoded.contents().owned_count(),
        grants.len(),
        (with - without.min(with)) as f64 / grants.len().max(1) as f64
    );
    Ok(
        json!({"without": without, "with": with, "users": decoded.contents().user_count(),
              "groups": decoded.contents().group_count(), "owned": decoded.contents().owned_count()}),
    )
}
