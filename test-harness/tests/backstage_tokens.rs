//! Backstage user tokens at the edge, through a real Envoy (two workers) with the demo
//! configuration's `backstage` provider, the fake Backstage's auth backend signing the tokens,
//! and the control plane serving a copy of the sample catalog:
//! data-eng ⊃ analytics; alice in data-eng, carol in ci-admins, erin in no group; `etl_daily`
//! is owned by data-eng. The demo's rules: `airflow-read` (GET, groups data-eng or
//! data-analysts) and `airflow-trigger` (POST a DAG run, the caller's groups own the DAG).

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions may panic"
)]

use std::time::{Duration, Instant};

use meshgate_control_plane::cli::{run as cli_run, CliEnv};
use meshgate_test_harness::backstage::{read_catalog_dir, sample_catalog_dir, BackstageServer};
use meshgate_test_harness::backstage_auth::{limited_token, UserToken, TYP_USER};
use meshgate_test_harness::http_client::{self, Response};
use meshgate_test_harness::stack::{Stack, StackOptions, TRIGGER_ETL};
use meshgate_test_support::unix_now;
use serde_json::{json, Value};

const LIST: &str = "/api/v1/dags";

fn user_token(stack: &Stack, sub: &str, edit: impl FnOnce(&mut UserToken)) -> String {
    let mut req = UserToken::new(sub, unix_now());
    edit(&mut req);
    stack.backstage.issue_token(&req)
}

fn send(stack: &Stack, method: &str, path: &str, token: &str, extra: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    stack
        .send(method, "airflow.internal", path, &headers)
        .unwrap()
}

/// Status, and the deny code or, for an allow, the `x-meshgate-user` the upstream received.
fn outcome(response: &Response) -> (u16, String) {
    let body = response.json();
    let detail = if response.status == 200 {
        body["headers"]["x-meshgate-user"]
            .as_str()
            .unwrap_or("(none)")
    } else {
        body["code"].as_str().unwrap_or("?")
    };
    (response.status, detail.to_owned())
}

fn counter(stack: &Stack, name: &str) -> u64 {
    stack
        .envoy
        .counter(&format!("wasmcustom.meshgate.{name}"))
        .unwrap_or(0)
}

fn edits(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(find, replace)| ((*find).to_owned(), (*replace).to_owned()))
        .collect()
}

/// The demo's Backstage provider, as the edits below find it.
const PROVIDER: &str = r#""cluster": "backstage"}"#;

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

#[test]
fn backstage_tokens_are_verified_and_mapped_to_the_catalog() {
    let stack = Stack::start(&StackOptions::default()).unwrap();
    // The JWKS was empty when Envoy started (no sign-in yet): the first token's key is fetched
    // on the request path, and the request waits for it instead of failing.
    let alice = user_token(&stack, "user:default/alice", |_| {});
    let first = send(
        &stack,
        "GET",
        LIST,
        &alice,
        &[("x-meshgate-user", "user:default/root")],
    );
    assert_eq!(
        outcome(&first),
        (200, "user:default/alice".to_owned()),
        "{}",
        first.text()
    );
    let echoed = &first.json()["headers"];
    assert_eq!(echoed["x-meshgate-subject"], "user:default/alice");
    assert_eq!(echoed["x-meshgate-provider"], "backstage");
    // No `ent` in the token: the groups that let alice in came from the catalog snapshot.
    assert_eq!(echoed["x-meshgate-groups"], "");

    let refetches = counter(&stack, "jwks.refetch_unknown_kid");
    let now = unix_now();
    let limited = limited_token(&alice).unwrap();
    let plugin = stack.backstage.plugin_token("catalog", "proxy", now);
    let wrong_aud = user_token(&stack, "user:default/alice", |r| r.aud = "airflow".into());
    let untyped = user_token(&stack, "user:default/alice", |r| r.typ = None);
    let mixed_case = user_token(&stack, "User:Default/Alice", |_| {});
    let carol = user_token(&stack, "user:default/carol", |_| {});
    let erin_claiming = user_token(&stack, "user:default/erin", |r| {
        r.ent = Some(vec![
            "user:default/erin".into(),
            "group:default/data-analysts".into(),
        ]);
    });
    let cases: [(&str, &str, &str, &str, u16, &str); 9] = [
        (
            "valid token",
            &alice,
            "GET",
            LIST,
            200,
            "user:default/alice",
        ),
        (
            "ownership from the catalog",
            &alice,
            "POST",
            TRIGGER_ETL,
            200,
            "user:default/alice",
        ),
        (
            "entity ref in mixed case",
            &mixed_case,
            "GET",
            LIST,
            200,
            "user:default/alice",
        ),
        (
            "another team may not trigger",
            &carol,
            "POST",
            TRIGGER_ETL,
            403,
            "no_rule_matched",
        ),
        (
            "limited-user token",
            &limited,
            "GET",
            LIST,
            401,
            "token_type_not_allowed",
        ),
        (
            "plugin token",
            &plugin,
            "GET",
            LIST,
            401,
            "token_type_not_allowed",
        ),
        (
            "wrong aud",
            &wrong_aud,
            "GET",
            LIST,
            401,
            "audience_mismatch",
        ),
        (
            "no typ, legacy_tokens off",
            &untyped,
            "GET",
            LIST,
            401,
            "token_type_not_allowed",
        ),
        // The snapshot has no data-analysts group and erin in no group: `ent` isn't trusted
        // next to a snapshot (trust_token_groups defaults to off).
        (
            "ent group the catalog doesn't have",
            &erin_claiming,
            "GET",
            LIST,
            403,
            "no_rule_matched",
        ),
    ];
    let mut failures = Vec::new();
    for (name, token, method, path, status, detail) in cases {
        let got = outcome(&send(&stack, method, path, token, &[]));
        if got != (status, detail.to_owned()) {
            failures.push(format!("{name}: got {got:?}, want ({status}, {detail:?})"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A 401 names the problem for the client without quoting the token.
    let r = send(&stack, "GET", LIST, &plugin, &[]);
    let challenge = r.header("www-authenticate").unwrap_or_default().to_owned();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // Plugin tokens are refused for their type, before any key lookup: no refetch for them.
    assert_eq!(counter(&stack, "jwks.refetch_unknown_kid"), refetches);

    // The decision log says which ownership rule carol missed.
    let log = stack.envoy.log();
    let line = log
        .lines()
        .rfind(|l| l.contains("meshgate decision") && l.contains("user:default/carol"))
        .unwrap_or_else(|| panic!("no decision line for carol:\n{log}"));
    assert!(
        line.contains("closest: allow rule `airflow-trigger` matches the request, but airflow.dag `etl_daily` is owned by [`group:default/data-eng`]"),
        "{line}"
    );
    assert!(line.contains(r#""user":"user:default/carol""#), "{line}");
}

#[test]
fn token_groups_count_only_when_trusted() {
    let stack = Stack::start(&StackOptions {
        backstage_keys_at_start: true,
        edits: edits(&[(
            PROVIDER,
            r#""cluster": "backstage", "trust_token_groups": true}"#,
        )]),
        ..StackOptions::default()
    })
    .unwrap();
    let claiming = user_token(&stack, "user:default/erin", |r| {
        r.ent = Some(vec![
            "user:default/erin".into(),
            "group:default/data-analysts".into(),
        ]);
    });
    let plain = user_token(&stack, "user:default/erin", |_| {});
    let r = send(&stack, "GET", LIST, &claiming, &[]);
    assert_eq!(
        outcome(&r),
        (200, "user:default/erin".to_owned()),
        "{}",
        r.text()
    );
    assert_eq!(
        r.json()["headers"]["x-meshgate-groups"],
        "group:default/data-analysts"
    );
    assert_eq!(outcome(&send(&stack, "GET", LIST, &plain, &[])).0, 403);
}

#[test]
fn a_rotated_key_is_fetched_once_and_more_unknown_kids_wait_for_the_rate_limit() {
    let stack = Stack::start(&StackOptions {
        backstage_keys_at_start: true,
        // Longer than the test, so the second rotation is surely within the limit.
        edits: edits(&[(
            PROVIDER,
            r#""cluster": "backstage", "refetch_min_interval_s": 60}"#,
        )]),
        ..StackOptions::default()
    })
    .unwrap();
    // Both providers' scheduled fetches land (the demo issuer's and Backstage's), so the
    // first request needs no refetch.
    let loaded = wait_until(Duration::from_secs(20), || {
        counter(&stack, "jwks.fetch_ok") >= 2
    });
    assert!(
        loaded.is_some(),
        "keys never loaded:\n{}",
        stack.envoy.log()
    );
    let before = user_token(&stack, "user:default/alice", |_| {});
    assert_eq!(send(&stack, "GET", LIST, &before, &[]).status, 200);
    // (The counter is shared by both providers: the demo issuer's may have refetched at start.)
    let refetches = counter(&stack, "jwks.refetch_unknown_kid");
    let fetches = stack.backstage.jwks_requests();

    // Backstage makes a new signing key: the first token it signs makes meshgate refetch.
    stack.backstage.rotate_key();
    let rotated = user_token(&stack, "user:default/alice", |_| {});
    let r = send(&stack, "GET", LIST, &rotated, &[]);
    assert_eq!(
        outcome(&r),
        (200, "user:default/alice".to_owned()),
        "{}",
        r.text()
    );
    assert_eq!(stack.backstage.jwks_requests(), fetches + 1, "one refetch");
    assert_eq!(counter(&stack, "jwks.refetch_unknown_kid"), refetches + 1);
    // Tokens of the old key still pass.
    assert_eq!(send(&stack, "GET", LIST, &before, &[]).status, 200);

    // Another new key within the rate limit: denied, at once (the refetch that holds the
    // limit has answered; nothing is left to wait for), and nothing is fetched.
    stack.backstage.rotate_key();
    let again = user_token(&stack, "user:default/alice", |_| {});
    for _ in 0..4 {
        let started = Instant::now();
        let r = send(&stack, "GET", LIST, &again, &[]);
        let took = started.elapsed();
        assert_eq!(outcome(&r), (401, "key_unknown".to_owned()));
        assert!(
            took < Duration::from_millis(1500),
            "held {took:?} before the 401"
        );
    }
    assert_eq!(
        stack.backstage.jwks_requests(),
        fetches + 1,
        "a second refetch"
    );
    assert_eq!(counter(&stack, "jwks.refetch_unknown_kid"), refetches + 1);
}

#[test]
fn a_user_removed_from_a_group_is_denied_although_the_token_still_lists_it() {
    let stack = Stack::start(&StackOptions {
        backstage_keys_at_start: true,
        ..StackOptions::default()
    })
    .unwrap();
    let refs = stack.backstage.ownership_refs("alice").unwrap();
    assert_eq!(refs, ["user:default/alice", "group:default/data-eng"]);
    let alice = user_token(&stack, "user:default/alice", |r| r.ent = Some(refs));
    let allowed = |stack: &Stack| send(stack, "GET", LIST, &alice, &[]).status == 200;
    assert!(
        wait_until(Duration::from_secs(20), || allowed(&stack)).is_some(),
        "alice never allowed:\n{}",
        stack.envoy.log()
    );

    let org = stack.catalog_dir.join("org.yaml");
    let text = std::fs::read_to_string(&org).unwrap();
    assert!(
        text.contains("memberOf: [data-eng]"),
        "the sample catalog changed"
    );
    std::fs::write(
        &org,
        text.replacen("memberOf: [data-eng]", "memberOf: []", 1),
    )
    .unwrap();
    let took = wait_until(Duration::from_secs(20), || !allowed(&stack))
        .unwrap_or_else(|| panic!("alice still allowed 20 s after leaving data-eng"));
    println!("catalog change to denial: {} ms", took.as_millis());
    let r = send(&stack, "GET", LIST, &alice, &[]);
    assert_eq!(outcome(&r), (403, "no_rule_matched".to_owned()));
}

/// The fake auth backend over HTTP, and `meshgate token --backstage` against it.
#[test]
fn the_fake_auth_backend_speaks_backstage() {
    let yaml = read_catalog_dir(&sample_catalog_dir()).unwrap();
    let server = BackstageServer::start("127.0.0.1:0", "catalog-token", &yaml).unwrap();
    let port = server.port();
    let get = |path: &str| {
        let r = http_client::send(port, "GET", "127.0.0.1", path, &[]).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    };
    assert_eq!(get("/api/auth/.well-known/jwks.json"), json!({"keys": []}));
    let discovery = get("/api/auth/.well-known/openid-configuration");
    assert_eq!(discovery["issuer"], server.issuer());
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/api/auth/.well-known/jwks.json", server.url())
    );

    let refreshed = get("/api/auth/guest/refresh?user=alice&ent=true");
    let identity = &refreshed["backstageIdentity"];
    assert_eq!(
        identity["identity"],
        json!({"type": "user", "userEntityRef": "user:default/alice",
               "ownershipEntityRefs": ["user:default/alice", "group:default/data-eng"]})
    );
    assert_eq!(identity["expiresInSeconds"], 3599);
    assert_eq!(refreshed["profile"]["email"], "alice@example.com");
    let payload = claims(identity["token"].as_str().unwrap());
    assert_eq!(payload["ent"], identity["identity"]["ownershipEntityRefs"]);
    assert_eq!(
        get("/api/auth/.well-known/jwks.json")["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let unknown = http_client::send(
        port,
        "GET",
        "127.0.0.1",
        "/api/auth/guest/refresh?user=mallory",
        &[],
    )
    .unwrap();
    assert_eq!(unknown.status, 401);
    // The catalog API still wants its token.
    let catalog = http_client::send(
        port,
        "GET",
        "127.0.0.1",
        "/api/catalog/entities/by-query",
        &[],
    )
    .unwrap();
    assert_eq!(catalog.status, 401);

    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let env = CliEnv {
            now: unix_now(),
            demo_dir: None,
        };
        let code = cli_run(&args, &env, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    };
    let url = server.url();
    let (code, out, err) = run(&[
        "token",
        "--backstage",
        "--user",
        "bob",
        "--backstage-url",
        &url,
    ]);
    assert_eq!((code, err.as_str()), (0, ""));
    let token = out.trim_end();
    let header = part(token, 0);
    assert_eq!(header["typ"], TYP_USER);
    let payload = claims(token);
    assert_eq!(payload["sub"], "user:default/bob");
    assert_eq!(payload["iss"], server.issuer());
    assert!(
        payload.get("ent").is_none(),
        "no ent unless asked: {payload}"
    );
    let (code, out, _) = run(&[
        "token",
        "--backstage",
        "--user",
        "bob",
        "--ent",
        "--backstage-url",
        &url,
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        claims(out.trim_end())["ent"],
        json!(["user:default/bob", "group:default/analytics"])
    );
    let (code, _, err) = run(&[
        "token",
        "--backstage",
        "--user",
        "nobody",
        "--backstage-url",
        &url,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("HTTP 401"), "{err}");
}

fn part(token: &str, index: usize) -> Value {
    use base64::Engine as _;
    let text = token.split('.').nth(index).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn claims(token: &str) -> Value {
    part(token, 1)
}
