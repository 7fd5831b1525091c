//! The access-request API end to end over HTTP: a server on 127.0.0.1:0 over a copy of the
//! sample catalog (test-harness/catalog), callers with tokens signed by the test keys and
//! verified through a local JWKS, an access policy, and a SQLite store in a temp dir. The
//! database-down test runs on a fresh PostgreSQL database (`MESHGATE_TEST_POSTGRES_URL`, as
//! tests/access_store.rs; without it it prints `skipped` and passes) reached through a TCP
//! forwarder the test cuts and restores.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "helpers outside #[test] fns should fail the test loudly too"
)]

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use meshgate_control_plane::access::{
    AccessSettings, AccessStore, AuditSettings, AuthSettings, StoreSettings,
};
use meshgate_control_plane::access_store::StoreConfig;
use meshgate_control_plane::serve::{no_log, CatalogSource, RunningServer, ServeConfig, Server};
use meshgate_control_plane::snapshot::{generate_signing_key, write_new_signing_key};
use meshgate_test_support::keys::{ed25519_private, public_jwk, rsa_private};
use meshgate_test_support::sign::sign;
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.meshgate.test";
const AUDIENCE: &str = "meshgate";

const POLICY: &str = "\
version: 1
admins: [platform-team]
requestable:
  - name: airflow-dags
    target: {resource: {kind: airflow.dag}}
    max_duration: 8h
    reason: required
    auto_approve:
      # Read from the catalog at each sync; no DAG is annotated as production.
      - name: unless-production
        max_duration: 5m
        unless_annotation: {meshgate.io/environment: production}
      - name: short-ci-runs
        max_duration: 15m
        requester_in: [ci-admins]
      - name: near-owners
        max_duration: 30m
        requester_near_owner: true
  - name: buildkite-pipelines
    target: {resource: {kind: buildkite.pipeline}}
    max_duration: 8h
    reason: optional
    auto_approve:
      # acme/deploy is annotated as production in the catalog.
      - name: unless-production
        max_duration: 5m
        unless_annotation: {meshgate.io/environment: production}
  - name: join-data-eng
    target: {group: data-eng}
    requesters: [ci-admins, platform-team]
    max_duration: 1d
    reason: optional
";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn unix_now() -> i64 {
    meshgate_test_support::unix_now()
}

struct Api {
    server: RunningServer,
    dir: PathBuf,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scratch(label: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "meshgate-access-it-{label}-{}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let catalog = dir.join("catalog");
    std::fs::create_dir_all(&catalog).unwrap();
    for entry in std::fs::read_dir(manifest_dir().join("../test-harness/catalog")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, catalog.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn config(dir: &Path, with_access: bool) -> ServeConfig {
    let key = generate_signing_key(Some("access-it"), &mut rand::rngs::OsRng).unwrap();
    let key_file = dir.join("snapshot-key.json");
    write_new_signing_key(&key, &key_file).unwrap();
    let mut config = ServeConfig::new(CatalogSource::Directory(dir.join("catalog")), key_file);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.resync_interval = Duration::from_secs(3600);
    config.watch_interval = None;
    if with_access {
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
                "public_keys": [serde_json::from_str::<Value>(
                    &meshgate_control_plane::snapshot::public_key_line(&key)).unwrap()],
            },
            "rules": [{"id": "anything", "action": "deny"}],
        });
        std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
        std::fs::write(dir.join("filter.json"), filter.to_string()).unwrap();
        std::fs::write(dir.join("access.yaml"), POLICY).unwrap();
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
    }
    config
}

fn start(label: &str, store: Option<Arc<dyn AccessStore>>) -> Api {
    let dir = scratch(label);
    let server = Server::start_with_access_store(config(&dir, true), no_log(), store).unwrap();
    assert!(server.wait_ready(Duration::from_secs(20)));
    Api { server, dir }
}

/// A token for `user` (`alice`), valid for an hour unless `exp` says otherwise.
fn token_with(user: &str, exp: i64, key: &Value, kid: &str) -> String {
    let alg = if kid == "ed" { "EdDSA" } else { "RS256" };
    let now = unix_now();
    sign(
        alg,
        key,
        &json!({"alg": alg, "kid": kid, "typ": "JWT"}),
        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": format!("user:default/{user}"),
                "email": format!("{user}@example.com"), "iat": now - 10, "exp": exp}),
    )
    .unwrap()
}

fn token(user: &str) -> String {
    token_with(user, unix_now() + 3600, &rsa_private(), "rsa")
}

impl Api {
    /// Status and JSON body; `token` None sends no `Authorization`.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut request = ureq::request(method, &format!("{}{path}", self.server.url()))
            .timeout(Duration::from_secs(20));
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let result = match body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_string(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{method} {path}: {error}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn as_user(&self, user: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
        let body = (!body.is_null()).then(|| body.to_string());
        self.call(method, path, Some(&token(user)), body.as_deref())
    }

    fn request_dag(&self, user: &str, dag: &str, duration: &str) -> (u16, Value) {
        self.as_user(
            user,
            "POST",
            "/v1/access/requests",
            json!({"target": {"resource": {"kind": "airflow.dag", "id": dag}},
                   "duration": duration, "reason": "rerun the load after the outage"}),
        )
    }
}

fn code(body: &Value) -> &str {
    body.pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("<no code>")
}

#[test]
fn request_approve_by_an_owner_list_and_revoke() {
    let api = start("flow", None);
    let access = api.server.access().unwrap();
    let (changes, changed) = std::sync::mpsc::channel();
    access.subscribe(changes);

    let (status, created) = api.request_dag("carol", "etl_daily", "1h");
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "pending");
    assert_eq!(created["requester"], "user:default/carol");
    let id = created["id"].as_str().unwrap().to_owned();

    // alice is in data-eng, which owns etl_daily: the request waits for her.
    let (status, pending) = api.as_user(
        "alice",
        "GET",
        "/v1/access/requests?pending_for_me=1",
        Value::Null,
    );
    assert_eq!(status, 200);
    assert_eq!(
        pending["requests"].as_array().unwrap().len(),
        1,
        "{pending}"
    );
    let (_, none) = api.as_user(
        "erin",
        "GET",
        "/v1/access/requests?pending_for_me=1",
        Value::Null,
    );
    assert_eq!(none["requests"].as_array().unwrap().len(), 0, "{none}");
    let (status, mine) = api.as_user("carol", "GET", "/v1/access/requests?mine=1", Value::Null);
    assert_eq!(
        (status, mine["requests"][0]["id"].as_str()),
        (200, Some(id.as_str()))
    );
    // Not an admin, no filter: refused.
    assert_eq!(
        api.as_user("carol", "GET", "/v1/access/requests", Value::Null)
            .0,
        403
    );
    assert_eq!(
        api.as_user("dave", "GET", "/v1/access/requests", Value::Null)
            .0,
        200
    );
    // erin is neither the requester nor an approver: the request is not hers to see.
    assert_eq!(
        api.as_user(
            "erin",
            "GET",
            &format!("/v1/access/requests/{id}"),
            Value::Null
        )
        .0,
        404
    );

    let (status, approved) = api.as_user(
        "alice",
        "POST",
        &format!("/v1/access/requests/{id}/approve"),
        json!({"comment": "go ahead"}),
    );
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["state"], "approved");
    let grant_id = approved["grant"]["id"].as_str().unwrap().to_owned();
    changed.recv_timeout(Duration::from_secs(5)).unwrap();

    let now = meshgate_core::UnixTime::from_secs(unix_now());
    let grants = access.active_grants(now).unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants.of_user("user:default/carol").len(), 1);

    let (status, listed) = api.as_user("carol", "GET", "/v1/access/grants?mine=1", Value::Null);
    assert_eq!(status, 200);
    assert_eq!(listed["grants"][0]["id"].as_str(), Some(grant_id.as_str()));
    // Owners of the target see it; someone unrelated does not.
    let (_, owners) = api.as_user("bob", "GET", "/v1/access/grants", Value::Null);
    assert_eq!(owners["grants"].as_array().unwrap().len(), 1);
    let (_, other) = api.as_user("erin", "GET", "/v1/access/grants", Value::Null);
    assert_eq!(other["grants"].as_array().unwrap().len(), 0);
    assert_eq!(
        code(
            &api.as_user(
                "erin",
                "POST",
                &format!("/v1/access/grants/{grant_id}/revoke"),
                json!({})
            )
            .1
        ),
        "not_allowed_to_revoke"
    );

    let (status, revoked) = api.as_user(
        "alice",
        "POST",
        &format!("/v1/access/grants/{grant_id}/revoke"),
        json!({"comment": "done"}),
    );
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["revoked_by"], "user:default/alice");
    changed.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(access.active_grants(now).unwrap().is_empty());
    let (_, after) = api.as_user("carol", "GET", "/v1/access/grants?mine=1", Value::Null);
    assert_eq!(after["grants"].as_array().unwrap().len(), 0);

    // Every step is one audit line, chained.
    let audit = std::fs::read(api.dir.join("audit.jsonl")).unwrap();
    let text = String::from_utf8_lossy(&audit);
    for event in ["requested", "reviewed", "approved", "granted", "revoked"] {
        assert!(
            text.contains(&format!("\"event\":\"{event}\"")),
            "{event}: {text}"
        );
    }
    meshgate_control_plane::audit::verify(&audit).unwrap();

    // The policy, for a request form.
    let (status, policy) = api.as_user("erin", "GET", "/v1/access/policy", Value::Null);
    assert_eq!(status, 200);
    assert_eq!(policy["requestable"][0]["name"], "airflow-dags");
}

#[test]
fn a_short_request_by_ci_admins_approves_itself() {
    let api = start("auto", None);
    let (status, created) = api.request_dag("carol", "etl_daily", "10m");
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "approved");
    assert_eq!(created["auto_approved"]["condition"], "short-ci-runs");
    assert!(created["grant"]["id"].is_string());
    // erin is not in ci-admins: the same request waits.
    let (_, waiting) = api.request_dag("erin", "etl_daily", "10m");
    assert_eq!(waiting["state"], "pending", "{waiting}");
    // alice's direct group data-eng is the parent of analytics, which owns marketing_report.
    let (_, near) = api.request_dag("alice", "marketing_report", "20m");
    assert_eq!(near["auto_approved"]["condition"], "near-owners", "{near}");
    // carol's ci-admins is not near data-eng; over 15m no condition holds.
    let (_, far) = api.request_dag("carol", "etl_daily", "20m");
    assert_eq!(far["state"], "pending", "{far}");
}

#[test]
fn unless_annotation_reads_the_catalog() {
    let api = start("annotation", None);
    // (requester, kind, id, duration, expected state, auto-approving condition)
    let cases = [
        // deploy-pipeline carries `meshgate.io/environment: production`.
        (
            "erin",
            "buildkite.pipeline",
            "acme/deploy",
            "5m",
            "pending",
            None,
        ),
        (
            "bob",
            "buildkite.pipeline",
            "acme/deploy",
            "1h",
            "pending",
            None,
        ),
        // etl-daily carries no environment.
        (
            "erin",
            "airflow.dag",
            "etl_daily",
            "5m",
            "approved",
            Some("unless-production"),
        ),
        (
            "dave",
            "airflow.dag",
            "marketing_report",
            "5m",
            "approved",
            Some("unless-production"),
        ),
        // Over the condition's 5m, and no other condition holds for erin.
        (
            "erin",
            "airflow.dag",
            "marketing_report",
            "10m",
            "pending",
            None,
        ),
    ];
    for (user, kind, id, duration, state, condition) in cases {
        let (status, created) = api.as_user(
            user,
            "POST",
            "/v1/access/requests",
            json!({"target": {"resource": {"kind": kind, "id": id}},
                   "duration": duration, "reason": "rerun the load after the outage"}),
        );
        let case = format!("{user} {kind} {id} {duration}: {created}");
        assert_eq!(status, 201, "{case}");
        assert_eq!(created["state"], state, "{case}");
        assert_eq!(
            created["auto_approved"]["condition"].as_str(),
            condition,
            "{case}"
        );
    }
    // The audit line of each auto-approval names the condition.
    let audit = std::fs::read_to_string(api.dir.join("audit.jsonl")).unwrap();
    let auto: Vec<Value> = audit
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["event"] == "auto_approved")
        .collect();
    assert_eq!(auto.len(), 2, "{audit}");
    for line in &auto {
        assert_eq!(line["detail"]["condition"], "unless-production", "{line}");
        assert_eq!(line["detail"]["entry"], "airflow-dags", "{line}");
    }
}

#[test]
fn bad_input_is_refused_with_its_code() {
    let api = start("refusals", None);
    let (_, pending) = api.request_dag("carol", "etl_daily", "2h");
    let id = pending["id"].as_str().unwrap().to_owned();
    let approve = format!("/v1/access/requests/{id}/approve");
    let dag = |dag: &str, duration: &str| {
        json!({"target": {"resource": {"kind": "airflow.dag", "id": dag}}, "duration": duration,
               "reason": "x"})
    };
    let forged = token_with("carol", unix_now() + 3600, &ed25519_private(), "ed");
    let expired = token_with("carol", unix_now() - 600, &rsa_private(), "rsa");
    let carol = token("carol");
    let post = |token: &str, path: &str, body: &Value| {
        api.call("POST", path, Some(token), Some(&body.to_string()))
    };
    let cases: Vec<(&str, (u16, Value), u16, &str)> = vec![
        (
            "duration over the maximum",
            post(&carol, "/v1/access/requests", &dag("etl_daily", "9h")),
            400,
            "duration_over_maximum",
        ),
        (
            "unparsable duration",
            post(&carol, "/v1/access/requests", &dag("etl_daily", "soon")),
            400,
            "bad_request",
        ),
        (
            "unknown entity",
            post(&carol, "/v1/access/requests", &dag("no_such_dag", "1h")),
            422,
            "unknown_target",
        ),
        (
            "unknown group",
            post(
                &carol,
                "/v1/access/requests",
                &json!({"target": {"group": "no-such-team"}, "duration": "1h"}),
            ),
            400,
            "not_requestable",
        ),
        (
            "requester not allowed",
            api.as_user(
                "erin",
                "POST",
                "/v1/access/requests",
                json!({"target": {"group": "data-eng"}, "duration": "1h"}),
            ),
            403,
            "requester_not_allowed",
        ),
        (
            "already has access",
            api.request_dag("alice", "etl_daily", "1h"),
            409,
            "already_has_access",
        ),
        (
            "self-approval",
            post(&carol, &approve, &json!({})),
            403,
            "self_review",
        ),
        (
            "not an approver",
            api.as_user("erin", "POST", &approve, json!({})),
            403,
            "not_an_approver",
        ),
        (
            "body naming another user",
            post(
                &carol,
                "/v1/access/requests",
                &json!({"requester": "user:default/alice", "target": {"group": "data-eng"}, "duration": "1h"}),
            ),
            400,
            "requester_in_body",
        ),
        (
            "unknown field",
            post(
                &carol,
                "/v1/access/requests",
                &json!({"target": {"group": "data-eng"}, "duration": "1h", "priority": 1}),
            ),
            400,
            "bad_request",
        ),
        (
            "not JSON",
            api.call("POST", "/v1/access/requests", Some(&carol), Some("{nope")),
            400,
            "bad_request",
        ),
        (
            "forged token",
            post(&forged, "/v1/access/requests", &dag("etl_daily", "1h")),
            401,
            "key_unknown",
        ),
        (
            "expired token",
            post(&expired, "/v1/access/requests", &dag("etl_daily", "1h")),
            401,
            "token_expired",
        ),
        (
            "no token",
            api.call("POST", "/v1/access/requests", None, Some("{}")),
            401,
            "token_missing",
        ),
        (
            "unknown request",
            api.as_user(
                "alice",
                "POST",
                "/v1/access/requests/req_nope/approve",
                json!({}),
            ),
            404,
            "not_found",
        ),
        (
            "unknown endpoint",
            api.as_user("alice", "GET", "/v1/access/nope", Value::Null),
            404,
            "not_found",
        ),
        (
            "wrong method",
            api.as_user("alice", "DELETE", "/v1/access/policy", Value::Null),
            405,
            "method_not_allowed",
        ),
        (
            "cancel by another",
            api.as_user(
                "alice",
                "POST",
                &format!("/v1/access/requests/{id}/cancel"),
                Value::Null,
            ),
            403,
            "not_requester",
        ),
    ];
    for (what, (status, body), want_status, want_code) in cases {
        assert_eq!(
            (status, code(&body)),
            (want_status, want_code),
            "{what}: {body}"
        );
    }
    assert!(
        code(
            &post(
                &carol,
                "/v1/access/requests",
                &json!({"target": {"group": "data-eng"}, "duration": "1h", "priority": 1})
            )
            .1
        ) == "bad_request"
    );
    let (_, unknown_field) = post(
        &carol,
        "/v1/access/requests",
        &json!({"target": {"group": "data-eng"}, "duration": "1h", "priority": 1}),
    );
    assert!(
        unknown_field["error"]["message"]
            .as_str()
            .unwrap()
            .contains("priority"),
        "{unknown_field}"
    );

    // Too large a body.
    let big = format!("{{\"reason\": \"{}\"}}", "x".repeat(70 * 1024));
    assert_eq!(
        api.call("POST", "/v1/access/requests", Some(&carol), Some(&big))
            .0,
        413
    );

    // A decided request: a second approval is refused and changes nothing.
    let (status, first) = api.as_user("alice", "POST", &approve, json!({}));
    assert_eq!(
        (status, first["state"].as_str()),
        (200, Some("approved")),
        "{first}"
    );
    let (status, second) = api.as_user("bob", "POST", &approve, json!({}));
    assert_eq!(
        (status, code(&second)),
        (409, "already_decided"),
        "{second}"
    );
    let (_, grants) = api.as_user("carol", "GET", "/v1/access/grants?mine=1", Value::Null);
    assert_eq!(grants["grants"].as_array().unwrap().len(), 1);

    // The requester cancels a pending request, once.
    let (_, other) = api.request_dag("carol", "marketing_report", "1h");
    let cancel = format!(
        "/v1/access/requests/{}/cancel",
        other["id"].as_str().unwrap()
    );
    let (status, cancelled) = api.as_user("carol", "POST", &cancel, Value::Null);
    assert_eq!(
        (status, cancelled["state"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    assert_eq!(api.as_user("carol", "POST", &cancel, Value::Null).0, 409);
}

#[test]
fn concurrent_approvals_make_exactly_one_grant() {
    let api = start("race", None);
    for round in 0..3 {
        let (_, created) = api.request_dag("carol", "etl_daily", "2h");
        let id = created["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/access/requests/{id}/approve");
        let results: Vec<(u16, Value)> = std::thread::scope(|scope| {
            let handles: Vec<_> = ["alice", "bob"]
                .into_iter()
                .map(|user| {
                    let (api, path) = (&api, &path);
                    scope.spawn(move || api.as_user(user, "POST", path, json!({})))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ok = results.iter().filter(|(status, _)| *status == 200).count();
        let conflicts = results.iter().filter(|(status, _)| *status == 409).count();
        // Both may be counted before either decides; then both answer 200 but one grant is made.
        assert!(ok >= 1 && ok + conflicts == 2, "round {round}: {results:?}");
        let (_, record) = api.as_user(
            "carol",
            "GET",
            &format!("/v1/access/requests/{id}"),
            Value::Null,
        );
        assert_eq!(record["state"], "approved");
        let now = meshgate_core::UnixTime::from_secs(unix_now());
        let grants = api.server.access().unwrap().active_grants(now).unwrap();
        let of_request = grants
            .iter()
            .filter(|g| g.id == record["grant"]["id"].as_str().unwrap())
            .count();
        assert_eq!(of_request, 1);
        assert_eq!(grants.len(), round + 1, "one grant per request");
    }
}

// ---- a database that goes down ----------------------------------------------------------

const POSTGRES_URL: &str = "MESHGATE_TEST_POSTGRES_URL";

/// A fresh, empty PostgreSQL database on the server `MESHGATE_TEST_POSTGRES_URL` names,
/// dropped at the end.
struct PostgresDatabase {
    base: String,
    name: String,
}

impl PostgresDatabase {
    /// `None` (after saying so) when PostgreSQL is not configured.
    fn fresh(label: &str) -> Option<PostgresDatabase> {
        let Ok(base) = std::env::var(POSTGRES_URL) else {
            println!("skipped: {label} on PostgreSQL ({POSTGRES_URL} is not set)");
            return None;
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mg_api_{label}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = ::postgres::Client::connect(&base, ::postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        Some(PostgresDatabase { base, name })
    }

    /// The server's address, as the base URL names it.
    fn server(&self) -> SocketAddr {
        let config: ::postgres::Config = self.base.parse().unwrap();
        let host = match config.get_hosts().first() {
            Some(::postgres::config::Host::Tcp(host)) => host.clone(),
            other => panic!("{POSTGRES_URL} names no TCP host: {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}").parse().unwrap()
    }

    /// The URL of this database through `via` instead of the server's own address.
    fn url_via(&self, via: SocketAddr) -> String {
        let (front, query) = self.base.split_once('?').unwrap_or((&self.base, ""));
        let (scheme, rest) = front.split_once("://").unwrap();
        let authority = rest.split('/').next().unwrap();
        let user = authority
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"))
            .unwrap_or_default();
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("{scheme}://{user}{via}/{}{query}", self.name)
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = ::postgres::Client::connect(&self.base, ::postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A TCP forwarder on 127.0.0.1 to `target`, a thread per direction of each connection.
/// [`Forwarder::cut`] closes every connection and stops listening (new connections are
/// refused, as by a server that is down); [`Forwarder::restore`] listens on the same port again.
struct Forwarder {
    addr: SocketAddr,
    target: SocketAddr,
    /// The connections open now, both ends; `None` while cut.
    open: Arc<Mutex<Option<Vec<TcpStream>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Forwarder {
    fn to(target: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut forwarder = Forwarder {
            addr: listener.local_addr().unwrap(),
            target,
            open: Arc::new(Mutex::new(None)),
            acceptor: None,
        };
        forwarder.listen(listener);
        forwarder
    }

    fn listen(&mut self, listener: TcpListener) {
        *self.open.lock().unwrap() = Some(Vec::new());
        let (open, target) = (Arc::clone(&self.open), self.target);
        self.acceptor = Some(std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let mut open = open.lock().unwrap();
                // Cut: this was the wake-up (or a late client); the listener closes on return.
                let Some(streams) = open.as_mut() else { return };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
                streams.extend([client, server]);
            }
        }));
    }

    /// Closes every connection and refuses new ones until [`Forwarder::restore`].
    fn cut(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        for stream in self.open.lock().unwrap().take().unwrap_or_default() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Wakes the acceptor, which sees the cut and returns, closing the listener.
        drop(TcpStream::connect(self.addr));
        acceptor.join().unwrap();
        assert!(TcpStream::connect(self.addr).is_err(), "still listening");
    }

    fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).unwrap();
        self.listen(listener);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Asserts the call answers 503 `store_unavailable`, and within a few seconds (the store
/// must not wait out TCP timeouts while the API holds the caller).
fn unavailable_promptly(what: &str, call: impl FnOnce() -> (u16, Value)) {
    let started = Instant::now();
    let (status, body) = call();
    let took = started.elapsed();
    assert_eq!(
        (status, code(&body)),
        (503, "store_unavailable"),
        "{what}: {body}"
    );
    assert!(took < Duration::from_secs(5), "{what}: took {took:?}");
}

#[test]
fn a_database_that_is_down_answers_503_and_snapshots_keep_serving() {
    let Some(db) = PostgresDatabase::fresh("down") else {
        return;
    };
    let mut link = Forwarder::to(db.server());
    let store = meshgate_control_plane::access_store::open(&StoreConfig::Postgres {
        url: db.url_via(link.addr),
    })
    .unwrap();
    let api = start("down", Some(Arc::from(store)));
    let (status, created) = api.request_dag("carol", "etl_daily", "1h");
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let request_path = format!("/v1/access/requests/{id}");
    let snapshot = ureq::get(&api.server.snapshot_url()).call().unwrap();
    let etag = snapshot.header("ETag").map(str::to_owned);
    let bytes = snapshot.into_string().unwrap();

    link.cut();
    unavailable_promptly("create", || api.request_dag("erin", "etl_daily", "1h"));
    unavailable_promptly("list grants", || {
        api.as_user("carol", "GET", "/v1/access/grants?mine=1", Value::Null)
    });
    unavailable_promptly("get", || {
        api.as_user("carol", "GET", &request_path, Value::Null)
    });
    unavailable_promptly("approve", || {
        api.as_user(
            "alice",
            "POST",
            &format!("{request_path}/approve"),
            json!({}),
        )
    });
    // The edge is unaffected: the same signed snapshot is served, and a sync still publishes.
    let snapshot = ureq::get(&api.server.snapshot_url()).call().unwrap();
    assert_eq!(snapshot.status(), 200);
    assert_eq!(snapshot.header("ETag").map(str::to_owned), etag);
    assert_eq!(snapshot.into_string().unwrap(), bytes);
    let report = api.server.trigger_sync().unwrap();
    assert!(
        !report.serving_stale && report.error.is_none(),
        "{report:?}"
    );

    // Back up: the store connects again on the next call, and nothing changed while down.
    link.restore();
    let (status, record) = api.as_user("carol", "GET", &request_path, Value::Null);
    assert_eq!(
        (status, record["state"].as_str()),
        (200, Some("pending")),
        "{record}"
    );
    let (status, approved) = api.as_user(
        "alice",
        "POST",
        &format!("{request_path}/approve"),
        json!({}),
    );
    assert_eq!(
        (status, approved["state"].as_str()),
        (200, Some("approved")),
        "{approved}"
    );
    let (status, grants) = api.as_user("carol", "GET", "/v1/access/grants?mine=1", Value::Null);
    assert_eq!(status, 200, "{grants}");
    assert_eq!(grants["grants"].as_array().unwrap().len(), 1, "{grants}");
}

/// How long the SQLite store waits for another connection's write lock (`BUSY_TIMEOUT` in
/// access_store/sqlite.rs, which is private).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite has no server to go down, and taking its file or directory away is not something
/// that happens to a running control plane. What does happen: another process holds the
/// database's write lock (an operator's `sqlite3` shell left in `BEGIN IMMEDIATE`, a backup
/// tool). Writes then wait the store's busy timeout and answer 503 `store_unavailable`,
/// snapshots are served, and once the lock is released writes succeed at once.
///
/// Reads answer 200 (WAL), but not at once: the store has one connection behind a mutex, and
/// the expiry tick (a write, every second) holds it for a whole busy timeout each time, so a
/// read waits behind one or two of them (10 s seen). Hence the loose bound on both calls.
#[test]
fn a_locked_sqlite_database_answers_503_for_writes_and_recovers() {
    let bound = SQLITE_BUSY_TIMEOUT * 3;
    let api = start("locked", None);
    let (status, created) = api.request_dag("carol", "etl_daily", "1h");
    assert_eq!(status, 201, "{created}");
    let request_path = format!("/v1/access/requests/{}", created["id"].as_str().unwrap());
    let holder = rusqlite::Connection::open(api.dir.join("access.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let started = Instant::now();
    let (status, body) = api.request_dag("erin", "etl_daily", "1h");
    assert_eq!((status, code(&body)), (503, "store_unavailable"), "{body}");
    assert!(started.elapsed() < bound, "create: {:?}", started.elapsed());
    let started = Instant::now();
    let (status, record) = api.as_user("carol", "GET", &request_path, Value::Null);
    assert_eq!(
        (status, record["state"].as_str()),
        (200, Some("pending")),
        "{record}"
    );
    assert!(started.elapsed() < bound, "get: {:?}", started.elapsed());
    let snapshot = ureq::get(&api.server.snapshot_url()).call().unwrap();
    assert_eq!(snapshot.status(), 200);

    holder.execute_batch("ROLLBACK").unwrap();
    let started = Instant::now();
    let (status, approved) = api.as_user(
        "alice",
        "POST",
        &format!("{request_path}/approve"),
        json!({}),
    );
    assert_eq!(
        (status, approved["state"].as_str()),
        (200, Some("approved")),
        "{approved}"
    );
    assert!(
        started.elapsed() < SQLITE_BUSY_TIMEOUT,
        "approve: {:?}",
        started.elapsed()
    );
}

#[test]
fn sync_needs_an_admin_when_access_is_configured() {
    let api = start("sync", None);
    let (status, body) = api.call("POST", "/v1/sync", None, None);
    assert_eq!((status, code(&body)), (401, "token_missing"));
    let (status, body) = api.as_user("carol", "POST", "/v1/sync", Value::Null);
    assert_eq!((status, code(&body)), (403, "admin_only"));
    let (status, body) = api.as_user("dave", "POST", "/v1/sync", Value::Null);
    assert_eq!(status, 200, "{body}");

    // Without `access:` the API is not there and sync stays open.
    let dir = scratch("no-access");
    let mut plain = Server::start_with_log(config(&dir, false), no_log()).unwrap();
    assert!(plain.wait_ready(Duration::from_secs(20)));
    let url = plain.url();
    let status = match ureq::get(&format!("{url}/v1/access/policy")).call() {
        Err(ureq::Error::Status(status, _)) => status,
        other => panic!("{other:?}"),
    };
    assert_eq!(status, 404);
    assert_eq!(
        ureq::post(&format!("{url}/v1/sync"))
            .call()
            .unwrap()
            .status(),
        200
    );
    plain.stop();
    let _ = std::fs::remove_dir_all(dir);
}

/// docs/openapi/access.yaml lists every route the server answers, and the server answers
/// every route it lists (not 404 / 405 for the route itself).
#[test]
fn the_openapi_document_and_the_routes_agree() {
    use meshgate_control_plane::access::ROUTES;
    let text = std::fs::read_to_string(manifest_dir().join("../docs/openapi/access.yaml")).unwrap();
    let document: Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes);

    let api = start("routes", None);
    for (method, path) in ROUTES {
        let concrete = path.replace("{id}", "x1");
        let body = (method == "post").then_some("{}");
        let (status, body) = api.call(
            &method.to_uppercase(),
            &concrete,
            Some(&token("dave")),
            body,
        );
        let unanswered = status == 405
            || (status == 404
                && code(&body) == "not_found"
                && body.to_string().contains("endpoint"));
        assert!(!unanswered, "{method} {path}: {status} {body}");
    }
}

/// `meshgate access …` against the running server: request, list pending, approve, revoke.
#[test]
fn the_cli_requests_lists_approves_and_revokes() {
    use meshgate_control_plane::cli::{run, CliEnv};
    let api = start("cli", None);
    let url = api.server.url();
    let cli = |args: &[&str], user: &str| {
        let token_file = api.dir.join(format!("{user}.token"));
        std::fs::write(&token_file, token(user)).unwrap();
        let mut argv: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        argv.extend([
            "--url".into(),
            url.clone(),
            "--token-file".into(),
            token_file.display().to_string(),
        ]);
        let env = CliEnv {
            now: unix_now(),
            demo_dir: None,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&argv, &env, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap() + &String::from_utf8(err).unwrap(),
        )
    };
    let (code, out) = cli(
        &[
            "access",
            "request",
            "--target",
            "airflow.dag/etl_daily",
            "--duration",
            "2h",
            "--reason",
            "backfill",
            "--json",
        ],
        "carol",
    );
    assert_eq!(code, 0, "{out}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let (code, out) = cli(&["access", "list", "--pending"], "alice");
    assert!(
        code == 0 && out.contains(&id) && out.contains("pending"),
        "{out}"
    );
    let (code, out) = cli(&["access", "approve", &id], "carol");
    assert!(code == 1 && out.contains("self_review"), "{out}");
    let (code, out) = cli(
        &["access", "approve", &id, "--comment", "ok", "--json"],
        "alice",
    );
    assert_eq!(code, 0, "{out}");
    let approved: Value = serde_json::from_str(&out).unwrap();
    let grant = approved["grant"]["id"].as_str().unwrap().to_owned();
    let (code, out) = cli(&["access", "revoke", &grant], "carol");
    assert!(code == 0 && out.contains(&grant), "{out}");
    let (code, out) = cli(
        &[
            "access",
            "request",
            "--target",
            "etl_daily",
            "--duration",
            "1h",
        ],
        "carol",
    );
    assert!(code == 2 && out.contains("--target"), "{out}");
}

/// The snapshot the server serves now, verified with its key.
fn served(api: &Api) -> meshgate_core::snapshot::Snapshot {
    let response = ureq::get(&api.server.snapshot_url()).call().unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
    meshgate_core::snapshot::Snapshot::decode(
        &bytes,
        &[api.server.trusted_key()],
        &meshgate_core::snapshot::DecodeLimits::default(),
    )
    .unwrap()
}

/// Polls the served snapshot until `check` holds (false after 10 s).
fn served_within(api: &Api, check: impl Fn(&meshgate_core::snapshot::Snapshot) -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if check(&served(api)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn approved_grants_are_published_with_the_snapshot_and_revoked_ones_leave_it() {
    // The catalog is read once an hour here: only the grant changes can move the snapshot.
    let api = start("publish", None);
    let before = served(&api);
    assert!(before.grants().unwrap().is_empty());

    let (_, created) = api.request_dag("carol", "etl_daily", "1h");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, approved) = api.as_user(
        "alice",
        "POST",
        &format!("/v1/access/requests/{id}/approve"),
        Value::Null,
    );
    assert_eq!(status, 200, "{approved}");
    let grant_id = approved["grant"]["id"].as_str().unwrap().to_owned();
    assert!(
        served_within(&api, |s| {
            s.grants()
                .unwrap()
                .of_user("user:default/carol")
                .iter()
                .any(|g| g.id == grant_id)
        }),
        "the approval never reached the snapshot"
    );
    let with_grant = served(&api);
    assert!(with_grant.version() > before.version());
    assert_eq!(with_grant.user_count(), before.user_count(), "same catalog");
    let grant = with_grant.grants().unwrap().iter().next().cloned().unwrap();
    assert_eq!(
        grant.target,
        meshgate_core::snapshot::GrantTarget::Resource {
            kind: "airflow.dag".into(),
            id: "etl_daily".into()
        }
    );
    let lasts = grant.not_after.secs() - unix_now();
    assert!((3590..=3601).contains(&lasts), "not_after in {lasts} s");

    let (status, body) = api.as_user(
        "alice",
        "POST",
        &format!("/v1/access/grants/{grant_id}/revoke"),
        Value::Null,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        served_within(&api, |s| s.grants().unwrap().is_empty()),
        "the revocation never reached the snapshot"
    );
}

/// An HTTP endpoint the tests script: it answers the statuses given, then `then` for good,
/// with the body last published, and records every request (the JWKS a control plane fetches,
/// the notifications it sends).
struct Endpoint {
    url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
    body: Arc<Mutex<String>>,
}

/// One request the endpoint got: lower-case headers, the raw body, the status it answered.
type Delivery = (Vec<(String, String)>, String, u16);

impl Endpoint {
    fn start(path: &str, mut statuses: Vec<u16>, then: u16, body: &str) -> Endpoint {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://{}{path}", server.server_addr());
        let got = Arc::new(Mutex::new(Vec::new()));
        let body = Arc::new(Mutex::new(body.to_owned()));
        let (seen, answer) = (got.clone(), body.clone());
        statuses.reverse();
        std::thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let mut sent = String::new();
                let _ = std::io::Read::read_to_string(request.as_reader(), &mut sent);
                let headers = request
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().to_lowercase(),
                            h.value.to_string(),
                        )
                    })
                    .collect();
                let status = statuses.pop().unwrap_or(then);
                seen.lock().unwrap().push((headers, sent, status));
                let text = answer.lock().unwrap().clone();
                let _ = request
                    .respond(tiny_http::Response::from_string(text).with_status_code(status));
            }
        });
        Endpoint { url, got, body }
    }

    /// What later requests are answered with.
    fn publish(&self, body: &str) {
        *self.body.lock().unwrap() = body.to_owned();
    }

    fn requests(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    /// The bodies answered 202, once `count` arrived (waits up to 15 s).
    fn delivered(&self, count: usize) -> Vec<(Vec<(String, String)>, Value)> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let delivered: Vec<_> = self
                .requests()
                .into_iter()
                .filter(|(_, _, status)| *status == 202)
                .map(|(headers, body, _)| (headers, serde_json::from_str(&body).unwrap()))
                .collect();
            if delivered.len() >= count || Instant::now() > deadline {
                return delivered;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The API refetches keys as the filter's provider says: a key set that was empty when the
/// control plane started (a fresh Backstage before its first sign-in) is retried after
/// `refetch_min_interval_s`, not a fixed 30 s; a rotated key is fetched at most once per
/// interval however many callers present it; `refetch_on_unknown_kid: off` never refetches;
/// keys older than `cache_duration_s` are fetched again.
#[test]
fn keys_are_refetched_under_the_providers_own_settings() {
    let rsa_jwks = json!({"keys": [public_jwk(&rsa_private(), "rsa", Some("RS256"))]}).to_string();
    let both_jwks = json!({"keys": [public_jwk(&rsa_private(), "rsa", Some("RS256")),
                                     public_jwk(&ed25519_private(), "ed", Some("EdDSA"))]})
    .to_string();
    for (on_unknown_kid, refetches) in [("wait", true), ("off", false)] {
        let jwks = Endpoint::start("/jwks.json", Vec::new(), 200, r#"{"keys": []}"#);
        let dir = scratch(&format!("refetch-{on_unknown_kid}"));
        let mut config = config(&dir, true);
        let filter_file = dir.join("filter.json");
        let mut filter: Value =
            serde_json::from_str(&std::fs::read_to_string(&filter_file).unwrap()).unwrap();
        filter["providers"]["demo"]["remote_jwks"]["refetch_min_interval_s"] = json!(1);
        filter["providers"]["demo"]["remote_jwks"]["cache_duration_s"] = json!(4);
        filter["providers"]["demo"]["remote_jwks"]["refetch_on_unknown_kid"] =
            json!(on_unknown_kid);
        std::fs::write(&filter_file, filter.to_string()).unwrap();
        if let Some(access) = config.access.as_mut() {
            access.auth.jwks_files = Default::default();
            access.auth.jwks_urls = [("demo".to_owned(), jwks.url.clone())].into();
        }
        let server = Server::start_with_access_store(config, no_log(), None).unwrap();
        assert!(server.wait_ready(Duration::from_secs(20)));
        let api = Api { server, dir };
        assert_eq!(jwks.requests().len(), 1, "one fetch at start");
        let grants = |token: &str| api.call("GET", "/v1/access/grants?mine=1", Some(token), None);

        // No keys yet: 401 naming the missing key set, whatever refetch_on_unknown_kid says.
        let (status, body) = grants(&token("carol"));
        assert_eq!((status, code(&body)), (401, "jwks_unavailable"), "{body}");
        jwks.publish(&rsa_jwks);
        std::thread::sleep(Duration::from_millis(1100));
        let (status, body) = grants(&token("carol"));
        assert_eq!(status, 200, "a set that never loaded is retried: {body}");
        let after_first_keys = jwks.requests().len();
        let keys_loaded = Instant::now();

        // A token naming a key the set lacks: one refetch for a burst of callers within the
        // interval, none when refetching is off; once published, the key is taken.
        let rotated = token_with("carol", unix_now() + 3600, &ed25519_private(), "ed");
        std::thread::sleep(Duration::from_millis(1100));
        let statuses: Vec<u16> = (0..5).map(|_| grants(&rotated).0).collect();
        assert_eq!(statuses, [401; 5]);
        let expected = after_first_keys + usize::from(refetches);
        assert_eq!(
            jwks.requests().len(),
            expected,
            "refetch_on_unknown_kid: {on_unknown_kid}"
        );
        jwks.publish(&both_jwks);
        std::thread::sleep(Duration::from_millis(1100));
        let (status, body) = grants(&rotated);
        assert_eq!(status, if refetches { 200 } else { 401 }, "{body}");
        // Either way the keys are fetched again once older than cache_duration_s.
        std::thread::sleep(Duration::from_secs(4).saturating_sub(keys_loaded.elapsed()));
        let (status, body) = grants(&rotated);
        assert_eq!(
            status, 200,
            "keys older than cache_duration_s are refreshed: {body}"
        );
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(field, _)| field == name)
        .map_or("", |(_, value)| value.as_str())
}

/// With `access.notify`, the approvers hear of a request waiting for them and the requester
/// of each outcome, as signed JSON the receiver can check; a receiver that answers 503 gets
/// the notice again; an auto-approved request tells only its requester.
#[test]
fn approvers_and_requesters_are_notified_with_signed_events() {
    const SECRET_ENV: &str = "MESHGATE_TEST_ACCESS_NOTIFY_SECRET";
    const SECRET: &str = "a shared secret for the test";
    // SAFETY-free in edition 2021; this variable is read by this test's server only.
    std::env::set_var(SECRET_ENV, SECRET);
    let receiver = Endpoint::start("/api/meshgate-access/events", vec![503], 202, "");
    let dir = scratch("notify");
    let mut config = config(&dir, true);
    if let Some(access) = config.access.as_mut() {
        access.notify = Some(meshgate_control_plane::access::NotifySettings {
            url: receiver.url.clone(),
            secret_env: SECRET_ENV.to_owned(),
            link: "/access-requests".to_owned(),
        });
    }
    let server = Server::start_with_access_store(config, no_log(), None).unwrap();
    assert!(server.wait_ready(Duration::from_secs(20)));
    let api = Api { server, dir };

    let (status, created) = api.request_dag("carol", "etl_daily", "1h");
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, approved) = api.as_user(
        "alice",
        "POST",
        &format!("/v1/access/requests/{id}/approve"),
        json!({"comment": "go ahead"}),
    );
    assert_eq!(status, 200, "{approved}");
    let grant_id = approved["grant"]["id"].as_str().unwrap().to_owned();
    let (status, revoked) = api.as_user(
        "alice",
        "POST",
        &format!("/v1/access/grants/{grant_id}/revoke"),
        json!({"comment": "done"}),
    );
    assert_eq!(status, 200, "{revoked}");
    // carol is in ci-admins: 10 minutes approve themselves; data-eng hears nothing of it.
    let (_, auto) = api.request_dag("carol", "etl_daily", "10m");
    assert_eq!(auto["state"], "approved", "{auto}");

    let delivered = receiver.delivered(4);
    let summary: Vec<(String, Value, String)> = delivered
        .iter()
        .map(|(_, body)| {
            (
                body["audit"]["event"].as_str().unwrap_or("").to_owned(),
                body["recipients"].clone(),
                body["notification"]["title"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "requested".to_owned(),
                json!(["group:default/data-eng"]),
                "carol asks for airflow.dag etl_daily for 1h".to_owned()
            ),
            (
                "approved".to_owned(),
                json!(["user:default/carol"]),
                "Access approved: airflow.dag etl_daily for 1h".to_owned()
            ),
            (
                "revoked".to_owned(),
                json!(["user:default/carol"]),
                "Access revoked: airflow.dag etl_daily".to_owned()
            ),
            (
                "auto_approved".to_owned(),
                json!(["user:default/carol"]),
                "Access granted: airflow.dag etl_daily for 10m".to_owned()
            ),
        ]
    );
    // The first delivery met a 503 and was sent again, byte for byte the same body.
    let all = receiver.requests();
    assert_eq!(all.first().map(|(_, _, status)| *status), Some(503));
    assert_eq!(
        all.first().map(|(_, body, _)| body),
        all.get(1).map(|(_, body, _)| body)
    );
    let now = u64::try_from(unix_now()).unwrap();
    for (headers, body, _) in &all {
        let timestamp: u64 = header(headers, "x-meshgate-timestamp").parse().unwrap();
        assert!(
            now.abs_diff(timestamp) <= 30,
            "timestamp {timestamp}, now {now}"
        );
        assert_eq!(
            header(headers, "x-meshgate-signature"),
            meshgate_control_plane::access::notify::signature(
                SECRET.as_bytes(),
                timestamp,
                body.as_bytes()
            )
        );
        let parsed: Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed["schema"], "meshgate.access.notification/v1");
        assert_eq!(parsed["notification"]["link"], "/access-requests");
        assert_eq!(
            header(headers, "x-meshgate-delivery"),
            parsed["audit"]["seq"].to_string()
        );
    }
    // The notice carries the audit line as written, hash included.
    assert!(delivered[0].1["audit"]["hash"]
        .as_str()
        .is_some_and(|h| h.len() == 64));
}

/// A notify secret that is not in the environment stops the server at start, naming it.
#[test]
fn a_missing_notify_secret_is_refused_at_start() {
    let dir = scratch("notify-nosecret");
    let mut config = config(&dir, true);
    if let Some(access) = config.access.as_mut() {
        access.notify = Some(meshgate_control_plane::access::NotifySettings {
            url: "http://127.0.0.1:9/events".to_owned(),
            secret_env: "MESHGATE_TEST_NOTIFY_SECRET_NEVER_SET".to_owned(),
            link: "/access-requests".to_owned(),
        });
    }
    let error = Server::start_with_access_store(config, no_log(), None)
        .err()
        .map(|e| meshgate_control_plane::serve::error_chain(&e))
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        error.contains("access.notify") && error.contains("MESHGATE_TEST_NOTIFY_SECRET_NEVER_SET"),
        "{error}"
    );
}
