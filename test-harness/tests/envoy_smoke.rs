//! Smoke tests for the Envoy supervision in `meshgate_test_harness::envoy`, run against
//! the ceiling filter. They build nothing: `dist/meshgate-ceiling.wasm` comes from the
//! top-level build (`./build.sh test`) before tests run.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] fns should fail the test loudly too"
)]

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use meshgate_test_harness::envoy::{repo_root, validate_config, Envoy, EnvoyOptions};
use meshgate_test_harness::ports;

const CEILING_YAML: &str = "envoy/ceiling.yaml";
const CEILING_WASM: &str = "dist/meshgate-ceiling.wasm";

/// A port no other call in this process was given: two ports picked one after the other by
/// binding port 0 can be the same one (it was free again), which once made the listener and
/// the admin port collide.
fn free_port() -> u16 {
    ports::free_port().expect("bind an ephemeral port on 127.0.0.1")
}

fn require_ceiling_wasm() {
    let wasm = repo_root().join(CEILING_WASM);
    assert!(
        wasm.is_file(),
        "{} is missing: build it with `cargo build --release --target wasm32-wasip1 -p \
         meshgate-ceiling-filter` and copy target/wasm32-wasip1/release/meshgate_ceiling_filter.wasm \
         there (./build.sh does both)",
        wasm.display()
    );
}

/// The ceiling bootstrap with its fixed ports swapped for free ones.
fn ceiling_yaml(listener_port: u16, admin_port: u16) -> String {
    let yaml = fs::read_to_string(repo_root().join(CEILING_YAML)).expect("read envoy/ceiling.yaml");
    assert!(yaml.contains("port_value: 10002") && yaml.contains("port_value: 9902"));
    yaml.replace("port_value: 10002", &format!("port_value: {listener_port}"))
        .replace("port_value: 9902", &format!("port_value: {admin_port}"))
}

fn scratch_file(name: &str, contents: &str) -> PathBuf {
    let dir = repo_root().join("target/envoy-runs");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-{name}", std::process::id()));
    fs::write(&path, contents).unwrap();
    path
}

#[test]
fn ceiling_filter_serves_ok() {
    require_ceiling_wasm();
    let (listener_port, admin_port) = (free_port(), free_port());
    let envoy = Envoy::start(EnvoyOptions::new(
        ceiling_yaml(listener_port, admin_port),
        admin_port,
    ))
    .unwrap_or_else(|e| panic!("envoy did not start: {e}"));

    let response = ureq::get(&format!("http://127.0.0.1:{listener_port}/anything"))
        .set("authorization", "Bearer not-checked")
        .call()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.into_string().unwrap(), "ok");

    // proxy-wasm logs from the root context read `wasm log <root_id> <vm_id>: <message>`.
    assert!(
        envoy.wait_for_log(
            "wasm log meshgate_ceiling meshgate_ceiling: meshgate-ceiling configured",
            Duration::from_secs(5)
        ),
        "no configure line in log:\n{}",
        envoy.log()
    );
    // Filter-defined metrics are `wasmcustom.`-prefixed in /stats; one increment per VM.
    let configured = envoy.counter("wasmcustom.meshgate_ceiling.configured");
    assert!(configured.is_some_and(|n| n >= 1), "got {configured:?}");
    assert_eq!(
        envoy.counter("listener_manager.listener_create_failure"),
        Some(0)
    );
}

#[test]
fn rejected_plugin_configuration_stops_envoy() {
    require_ceiling_wasm();
    let (listener_port, admin_port) = (free_port(), free_port());
    let yaml =
        ceiling_yaml(listener_port, admin_port).replace(r#"value: "{}""#, r#"value: "reject""#);
    assert!(yaml.contains("reject"));

    let log = Envoy::start_expecting_failure(EnvoyOptions::new(yaml, admin_port))
        .unwrap_or_else(|e| panic!("expected envoy to refuse the config: {e}"));
    assert!(
        log.contains("Unable to create Wasm plugin meshgate_ceiling"),
        "log:\n{log}"
    );
}

#[test]
fn start_fails_when_admin_port_belongs_to_another_envoy() {
    require_ceiling_wasm();
    let admin_port = free_port();
    let first = Envoy::start(EnvoyOptions::new(
        ceiling_yaml(free_port(), admin_port),
        admin_port,
    ))
    .unwrap_or_else(|e| panic!("first envoy did not start: {e}"));
    // The second Envoy cannot bind the admin port and exits, but the first one answers
    // `/ready` meanwhile: start must not mistake it for the second.
    let second = Envoy::start(EnvoyOptions::new(
        ceiling_yaml(free_port(), admin_port),
        admin_port,
    ));
    let err = second.expect_err("second envoy reported ready on a taken admin port");
    println!("second envoy refused as expected: {err}");
    drop(first);
}

#[test]
fn validate_accepts_ceiling_config() {
    require_ceiling_wasm();
    validate_config(&repo_root().join(CEILING_YAML)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn validate_rejects_broken_config() {
    let broken = fs::read_to_string(repo_root().join(CEILING_YAML))
        .unwrap()
        .replace(
            "stat_prefix: ceiling",
            "stat_prefix: ceiling\n                no_such_field: 1",
        );
    let path = scratch_file("broken.yaml", &broken);
    let err =
        validate_config(&path).expect_err("a config with an unknown field must fail validation");
    let _ = fs::remove_file(&path);
    assert!(err.to_string().contains("no_such_field"), "{err}");
}
