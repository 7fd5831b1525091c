//! The access-request API end to end over HTTP: a server on 127.0.0.1:0 over a copy of the
//! sample catalog (test-harness/catalog), callers with tokens signed by the test keys and
//! verified through a local JWKS, an access policy, and a SQLite store in a temp dir (or the
//! in-memory store, for a database that goes down).
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "helpers outside #[test] fns should fail the test loudly too"
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meshgate_control_plane::access::{
    AccessSettings, AccessStore, AuditSettings, AuthSettings, MemoryStore, StoreSettings,
};
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
      # The snapshot carries no annotations: a condition on them never applies (fail
      # closed). Were it applied, every request below would approve itself.
      - name: unless-production
        unless_annotation: {meshgate.io/environment: production}
      - name: short-ci-runs
        max_duration: 15m
        requester_in: [ci-admins]
      - name: near-owners
        max_duration: 30m
        requester_near_owner: true
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

#[test]
fn a_database_that_is_down_answers_503_and_snapshots_keep_serving() {
    let store = Arc::new(MemoryStore::new());
    let api = start("down", Some(store.clone()));
    assert_eq!(api.request_dag("carol", "etl_daily", "1h").0, 201);
    store.set_down(true);
    let (status, body) = api.request_dag("carol", "etl_daily", "1h");
    assert_eq!((status, code(&body)), (503, "store_unavailable"), "{body}");
    let (status, body) = api.as_user("carol", "GET", "/v1/access/grants?mine=1", Value::Null);
    assert_eq!((status, code(&body)), (503, "store_unavailable"));
    let snapshot = ureq::get(&api.server.snapshot_url()).call().unwrap();
    assert_eq!(snapshot.status(), 200);
    store.set_down(false);
    assert_eq!(
        api.as_user("carol", "GET", "/v1/access/grants?mine=1", Value::Null)
            .0,
        200
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
