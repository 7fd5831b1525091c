//! The mock issuer and upstream stubs, exercised over real HTTP on loopback ports.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "helpers outside #[test] fns should fail the test loudly too"
)]

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use jwt_compact::UntrustedToken;
use meshgate_control_plane::issuer::{KeySet, MintRequest};
use meshgate_test_harness::issuer_server::IssuerServer;
use meshgate_test_harness::ports::free_port;
use meshgate_test_harness::upstream::UpstreamServer;
use meshgate_test_support::verify::verify;
use serde_json::{json, Map, Value};

const NOW: i64 = 1_700_000_000;

fn scratch_dir(label: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("harness-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn loopback() -> String {
    format!("127.0.0.1:{}", free_port().unwrap())
}

/// Keys generated once per test binary by an issuer started without a key file (RSA key
/// generation is slow in debug builds); with the issuer URL it announced and the file it wrote.
struct Generated {
    keys: KeySet,
    url: String,
    file: PathBuf,
}

fn generated() -> &'static Generated {
    static GENERATED: OnceLock<Generated> = OnceLock::new();
    GENERATED.get_or_init(|| {
        let file = scratch_dir("generated").join("demo/issuer-keys.json");
        let mut issuer = IssuerServer::start("127.0.0.1:0", file.clone(), None).unwrap();
        let generated = Generated {
            keys: issuer.keyset(),
            url: issuer.url(),
            file,
        };
        issuer.stop();
        generated
    })
}

/// An issuer on a free port serving a copy of the generated keys, with its own key file.
fn issuer() -> IssuerServer {
    let file = scratch_dir("issuer").join("issuer-keys.json");
    generated().keys.save(&file).unwrap();
    let bind = loopback();
    let url = format!("http://{bind}");
    let server = IssuerServer::start(&bind, file, Some(url.clone())).unwrap();
    assert_eq!(server.url(), url);
    server
}

/// GET or POST; returns status, `Cache-Control` and the JSON body, whatever the status.
fn call(method: &str, url: &str) -> (u16, Option<String>, Value) {
    let result = ureq::request(method, url).call();
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(err) => panic!("{method} {url}: {err}"),
    };
    let status = response.status();
    let cache = response.header("Cache-Control").map(str::to_owned);
    (status, cache, response.into_json().unwrap())
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Checks `token` against the served JWKS the way a verifier would: find the key by `kid`,
/// then check the signature with the algorithm the key is published for.
fn verify_with_jwks(token: &str, jwks: &Value) -> Map<String, Value> {
    let kid = UntrustedToken::new(token)
        .unwrap()
        .header()
        .key_id
        .clone()
        .unwrap();
    let entry = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} not in {jwks}"));
    let verified = verify(token, entry).unwrap_or_else(|e| panic!("{kid}: {e}"));
    assert_eq!(entry["alg"], verified.alg.as_str());
    verified.claims
}

#[test]
fn missing_key_file_is_generated_with_the_server_url_as_issuer() {
    let generated = generated();
    assert_eq!(generated.keys.issuer(), generated.url);
    assert_eq!(KeySet::load(&generated.file).unwrap(), generated.keys);
}

#[test]
fn discovery_points_at_the_served_jwks() {
    let issuer = issuer();
    let (status, _, discovery) = call(
        "GET",
        &format!("{}/.well-known/openid-configuration", issuer.url()),
    );
    assert_eq!(status, 200);
    assert_eq!(discovery["issuer"], issuer.url());
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
    assert_eq!(jwks_uri, format!("{}/jwks", issuer.url()));
    let algs = discovery["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.contains(&json!("RS256")) && algs.contains(&json!("EdDSA")));

    let (status, cache, jwks) = call("GET", jwks_uri);
    assert_eq!(status, 200);
    assert_eq!(cache.as_deref(), Some("max-age=300"));
    assert_eq!(kids(&jwks), ["rs256-1", "es256-1", "eddsa-1"]);
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|key| key.get("d").is_none()));
    assert_eq!(issuer.jwks_requests(), 1);
}

#[test]
fn minted_tokens_verify_against_the_served_jwks() {
    let issuer = issuer();
    let (_, _, jwks) = call("GET", &format!("{}/jwks", issuer.url()));
    let keys = issuer.keyset();
    for alg in ["RS256", "ES256", "EdDSA"] {
        let request = MintRequest {
            alg: alg.into(),
            groups: vec!["data-eng".into()],
            audiences: vec!["meshgate-demo".into()],
            ..MintRequest::new("alice", NOW)
        };
        let claims = verify_with_jwks(&keys.mint(&request).unwrap(), &jwks);
        assert_eq!(claims["iss"], issuer.url(), "{alg}");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["groups"], json!(["data-eng"]));
    }

    let unpublished = MintRequest {
        use_unpublished_key: true,
        ..MintRequest::new("mallory", NOW)
    };
    let token = keys.mint(&unpublished).unwrap();
    let kid = UntrustedToken::new(&token)
        .unwrap()
        .header()
        .key_id
        .clone()
        .unwrap();
    assert!(!kids(&jwks).contains(&kid), "{kid} should not be served");
}

#[test]
fn rotation_publishes_a_second_rs256_key_and_reaches_the_key_file() {
    let issuer = issuer();
    let (status, _, rotated) = call("POST", &format!("{}/admin/rotate?alg=RS256", issuer.url()));
    assert_eq!(status, 200);
    assert_eq!(rotated["kid"], "rs256-2");

    let (_, _, jwks) = call("GET", &format!("{}/jwks", issuer.url()));
    let rsa_kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|key| key["kty"] == "RSA")
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rsa_kids, ["rs256-1", "rs256-2"]);

    // What `meshgate token` would read now signs with the new key.
    let on_disk = KeySet::load(issuer.keys_path()).unwrap();
    assert_eq!(on_disk, issuer.keyset());
    let token = on_disk.mint(&MintRequest::new("alice", NOW)).unwrap();
    let header = UntrustedToken::new(&token).unwrap().header().key_id.clone();
    assert_eq!(header.as_deref(), Some("rs256-2"));
    verify_with_jwks(&token, &jwks);

    let (status, _, _) = call(
        "POST",
        &format!("{}/admin/retire?kid=rs256-1", issuer.url()),
    );
    assert_eq!(status, 200);
    let (_, _, jwks) = call("GET", &format!("{}/jwks", issuer.url()));
    assert_eq!(kids(&jwks), ["es256-1", "eddsa-1", "rs256-2"]);
    assert!(
        !KeySet::load(issuer.keys_path())
            .unwrap()
            .key("rs256-1")
            .unwrap()
            .published
    );
}

#[test]
fn admin_mistakes_are_client_errors_and_change_nothing() {
    let issuer = issuer();
    let before = issuer.keyset();
    for (path, status) in [
        ("/admin/rotate", 400),
        ("/admin/rotate?alg=HS256", 400),
        ("/admin/retire?kid=nope", 404),
        ("/admin/fail?status=200", 400),
        ("/admin/fail?status=abc", 400),
    ] {
        let (got, _, body) = call("POST", &format!("{}{path}", issuer.url()));
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    assert_eq!(issuer.keyset(), before);
    assert_eq!(KeySet::load(issuer.keys_path()).unwrap(), before);
    let (status, _, _) = call("GET", &format!("{}/admin/rotate?alg=ES256", issuer.url()));
    assert_eq!(status, 404);
}

#[test]
fn jwks_failure_is_injected_counted_and_recovered() {
    let issuer = issuer();
    let jwks_url = format!("{}/jwks", issuer.url());
    let (status, _, failing) = call("POST", &format!("{}/admin/fail?status=503", issuer.url()));
    assert_eq!((status, &failing["failing"]), (200, &json!(503)));
    let (status, cache, _) = call("GET", &jwks_url);
    assert_eq!((status, cache), (503, None));
    let (status, _, _) = call("GET", &jwks_url);
    assert_eq!(status, 503);

    let (status, _, _) = call("POST", &format!("{}/admin/recover", issuer.url()));
    assert_eq!(status, 200);
    let (status, _, jwks) = call("GET", &jwks_url);
    assert_eq!(status, 200);
    assert_eq!(kids(&jwks).len(), 3);

    let (_, _, stats) = call("GET", &format!("{}/admin/stats", issuer.url()));
    assert_eq!(stats["jwks_requests"], 3);
    assert_eq!(issuer.jwks_requests(), 3);

    issuer.set_jwks_failure(Some(500));
    assert_eq!(call("GET", &jwks_url).0, 500);
}

#[test]
fn stopped_issuer_refuses_connections() {
    let mut issuer = issuer();
    let url = format!("{}/jwks", issuer.url());
    assert_eq!(call("GET", &url).0, 200);
    issuer.stop();
    let refused = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        ureq::get(&url).call().is_err()
    });
    assert!(refused);
}

#[test]
fn stub_routes_name_their_tool_and_echo_the_request() {
    let upstream = UpstreamServer::start(&loopback()).unwrap();
    let cases = [
        ("GET", "/api/v1/dags?limit=10", "airflow", "/api/v1/dags"),
        (
            "GET",
            "/api/v1/dags/etl_daily/dagRuns",
            "airflow",
            "/api/v1/dags/{dag_id}/dagRuns",
        ),
        (
            "POST",
            "/api/v1/dags/etl_daily/dagRuns",
            "airflow",
            "/api/v1/dags/{dag_id}/dagRuns",
        ),
        (
            "POST",
            "/api/v1/connections/list",
            "airbyte",
            "/api/v1/connections/list",
        ),
        (
            "POST",
            "/api/v1/connections/sync",
            "airbyte",
            "/api/v1/connections/sync",
        ),
        (
            "GET",
            "/v2/organizations/acme/pipelines/web/builds",
            "buildkite",
            "/v2/organizations/{org}/pipelines/{pipeline}/builds",
        ),
        (
            "POST",
            "/v2/organizations/acme/pipelines/web/builds",
            "buildkite",
            "/v2/organizations/{org}/pipelines/{pipeline}/builds",
        ),
        ("GET", "/items/42", "fastapi", "/items/{id}"),
        ("GET", "/health", "fastapi", "/health"),
    ];
    for (method, path, tool, route) in cases {
        let response = ureq::request(method, &format!("{}{path}", upstream.url()))
            .set("X-Meshgate-Sub", "alice")
            .set("Authorization", "Bearer abc")
            .send_string("{\"conf\": {}}")
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        let echo: Value = response.into_json().unwrap();
        assert_eq!(echo["tool"], tool, "{method} {path}");
        assert_eq!(echo["route"], route, "{method} {path}");
        assert_eq!(echo["method"], method);
        assert_eq!(echo["path"], path);
        assert_eq!(echo["headers"]["x-meshgate-sub"], "alice");
        assert_eq!(echo["headers"]["authorization"], "Bearer abc");
        assert!(
            echo["body"].is_object() || echo["body"].is_array(),
            "{echo}"
        );
    }
}

#[test]
fn stub_bodies_follow_the_path() {
    let upstream = UpstreamServer::start(&loopback()).unwrap();
    let body = |method: &str, path: &str| -> Value {
        let (status, _, echo) = call(method, &format!("{}{path}", upstream.url()));
        assert_eq!(status, 200, "{method} {path}");
        echo["body"].clone()
    };
    assert_eq!(
        body("GET", "/api/v1/dags")["dags"][0]["dag_id"],
        "etl_daily"
    );
    let run = body("POST", "/api/v1/dags/load_sales/dagRuns");
    assert_eq!(
        (&run["dag_id"], &run["state"]),
        (&json!("load_sales"), &json!("queued"))
    );
    assert!(run["dag_run_id"].is_string());
    assert_eq!(
        body("POST", "/api/v1/connections/sync")["job"],
        json!({"id": 1, "configType": "sync", "status": "running"})
    );
    assert_eq!(
        body("POST", "/v2/organizations/acme/pipelines/web/builds")["pipeline"]["slug"],
        "web"
    );
    assert_eq!(
        body("GET", "/items/42"),
        json!({"id": 42, "name": "item-42"})
    );
    assert_eq!(body("GET", "/health"), json!({"status": "ok"}));
}

#[test]
fn unknown_paths_and_methods_are_404_with_the_echo() {
    let upstream = UpstreamServer::start(&loopback()).unwrap();
    for (method, path) in [
        ("GET", "/nope?x=1"),
        ("DELETE", "/api/v1/dags"),
        ("GET", "/api/v1/connections/sync"),
        ("GET", "/health/"),
    ] {
        let (status, _, echo) = call(method, &format!("{}{path}", upstream.url()));
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(echo["tool"], Value::Null);
        assert_eq!(echo["route"], Value::Null);
        assert_eq!(echo["method"], method);
        assert_eq!(echo["path"], path);
        assert!(echo["headers"]["host"].is_string());
    }
}

#[test]
fn repeated_headers_are_joined_and_the_raw_path_is_kept() {
    let upstream = UpstreamServer::start(&loopback()).unwrap();
    // ureq replaces repeated headers, so write the request by hand.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", upstream.port())).unwrap();
    let request = "GET /items/a%20b?q=1&q=2 HTTP/1.1\r\nHost: stub\r\nX-Group: a\r\nx-group: b\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let echo: Value = serde_json::from_str(body).unwrap();
    assert_eq!(echo["headers"]["x-group"], "a, b");
    assert_eq!(echo["path"], "/items/a%20b?q=1&q=2");
    assert_eq!(echo["body"]["id"], "a%20b");
}

#[test]
fn free_ports_do_not_repeat() {
    let mut ports: Vec<u16> = (0..10).map(|_| free_port().unwrap()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 10);
}
