//! The mesh packaging, checked the way a user would meet it:
//!
//! - every Istio manifest under `envoy/istio/` is well formed for what it claims to be, and
//!   each `pluginConfig` compiles with `meshgate_core::Policy::from_json` and loads into the
//!   real filter under `envoy --mode validate` (wrapped the way Istio hands it to Envoy);
//! - every Envoy bootstrap under `envoy/` (any depth) passes `envoy --mode validate`, and
//!   every ECDS resource file a bootstrap subscribes to passes too, once substituted for
//!   its subscription (validate mode only checks that the file exists);
//! - `scripts/oci.sh` writes a complete, reproducible OCI image layout of
//!   `dist/meshgate.wasm` in both variants Istio pulls.
//!
//! The YAML is read with the workspace's YAML parser (serde_norway, through the control
//! plane's `yaml_documents`) into JSON values; a file it cannot read fails here.
//!
//! Needs `dist/meshgate.wasm` and `dist/meshgate-ceiling.wasm` (`./build.sh` builds both)
//! and, for the OCI tests, bash, GNU tar, gzip, sha256sum and python3.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "helpers outside #[test] fns should fail the test loudly too"
)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use meshgate_control_plane::catalog::yaml_documents;
use meshgate_core::Policy;
use meshgate_test_harness::envoy::{repo_root, validate_config};
use serde_json::{json, Value};

const MESHGATE_WASM: &str = "dist/meshgate.wasm";
const CEILING_WASM: &str = "dist/meshgate-ceiling.wasm";
const ISTIO_DIR: &str = "envoy/istio";

// ---------------------------------------------------------------------------------------
// Files and scratch space
// ---------------------------------------------------------------------------------------

fn require_built(relative: &str) {
    let path = repo_root().join(relative);
    assert!(
        path.is_file(),
        "{} is missing: build it with ./build.sh (it builds dist/meshgate.wasm and \
         dist/meshgate-ceiling.wasm)",
        path.display()
    );
}

/// `*.yaml` files under `dir`, any depth, sorted. Hidden files (`.next.yaml`, the
/// scratch copies envoy/README.md suggests for ECDS reloads) are not shipped configs.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = fs::read_dir(&current)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", current.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A fresh directory under `target/manifest-tests/`, unique to this process and `name`.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = repo_root()
        .join("target/manifest-tests")
        .join(format!("{}-{name}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("clear {}: {e}", dir.display()));
    }
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

// ---------------------------------------------------------------------------------------
// Reading the YAML
// ---------------------------------------------------------------------------------------

/// One YAML document of a file, as JSON, and where it sits in its file.
#[derive(Debug, Clone)]
struct Doc {
    file: String,
    /// Position among the file's documents.
    index: usize,
    value: Value,
}

impl Doc {
    fn label(&self) -> String {
        format!("{} (document {})", self.file, self.index + 1)
    }
}

/// The value at `path` (each key a member of the previous object).
fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, key| value.get(key))
}

/// The non-empty documents of a YAML file, read with the workspace's YAML parser
/// (serde_norway, as the control plane reads catalog files).
fn documents(file: &str, text: &str) -> Result<Vec<Doc>, String> {
    let docs = yaml_documents(text).map_err(|e| format!("{file}: not valid YAML: {e}"))?;
    Ok(docs
        .into_iter()
        .map(|(index, value)| Doc {
            file: file.to_owned(),
            index,
            value,
        })
        .collect())
}

/// The one document of a file that holds one.
fn only_document(path: &Path, text: &str) -> Value {
    let file = relative(path);
    let mut docs = documents(&file, text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(docs.len(), 1, "{file}: expected exactly one YAML document");
    docs.remove(0).value
}

/// Every `sha256:` of a file written in double quotes: an unquoted digest that happens to
/// be all digits is a YAML number, not the string Istio wants. (A parser cannot tell a
/// quoted digest from an unquoted one with letters; the text can.)
fn sha256_quoted(file: &str, text: &str) -> Result<(), String> {
    for (n, line) in text.lines().enumerate() {
        let Some(value) = line.trim_start().strip_prefix("sha256:") else {
            continue;
        };
        let value = value.trim();
        if value.len() < 2 || !value.starts_with('"') || !value.ends_with('"') {
            return Err(format!(
                "{file}: line {}: write sha256 in double quotes (an all-digit digest is a \
                 YAML number)",
                n + 1
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Istio manifests
// ---------------------------------------------------------------------------------------

/// A WasmPlugin or TrafficExtension, read.
#[derive(Debug)]
struct Plugin {
    label: String,
    kind: String,
    name: String,
    namespace: String,
    plugin_name: String,
    fail_strategy: String,
    selector_labels: Vec<String>,
    url: String,
    config: Value,
}

#[derive(Debug, Default)]
struct Mesh {
    plugins: Vec<Plugin>,
    /// (namespace, host) → port numbers
    service_entries: BTreeMap<(String, String), Vec<u16>>,
    /// (namespace, host) → port numbers with TLS origination (SIMPLE or MUTUAL)
    tls_origination: BTreeMap<(String, String), Vec<u16>>,
}

fn required(doc: &Doc, value: &Value, path: &[&str]) -> Result<String, String> {
    at(value, path)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("{}: `{}` is missing", doc.label(), path.join(".")))
}

fn expect_eq(doc: &Doc, what: &str, got: &str, want: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{}: {what} is `{got}`, expected `{want}`",
            doc.label()
        ))
    }
}

fn read_plugin(doc: &Doc, kind: &str, name: &str, namespace: &str) -> Result<Plugin, String> {
    let spec = at(&doc.value, &["spec"]).ok_or_else(|| format!("{}: no spec", doc.label()))?;
    // WasmPlugin keeps the module settings in spec; TrafficExtension under spec.wasm.
    let module = if kind == "TrafficExtension" {
        spec.get("wasm")
            .ok_or_else(|| format!("{}: TrafficExtension without `wasm`", doc.label()))?
    } else {
        spec
    };

    expect_eq(
        doc,
        "spec.phase",
        &required(doc, spec, &["phase"])?,
        "AUTHN",
    )?;
    let fail_strategy = required(doc, module, &["failStrategy"])?;
    expect_eq(doc, "failStrategy", &fail_strategy, "FAIL_CLOSE")?;
    let url = required(doc, module, &["url"])?;
    if !url.starts_with("oci://") {
        return Err(format!("{}: url `{url}` is not oci://", doc.label()));
    }
    let hex = match module.get("sha256") {
        None => return Err(format!("{}: `sha256` is missing", doc.label())),
        Some(Value::String(hex)) => hex,
        Some(other) => {
            return Err(format!(
                "{}: sha256 `{other}` is not a string: write it in double quotes",
                doc.label()
            ))
        }
    };
    if hex.len() != 64 || !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!(
            "{}: sha256 `{hex}` is not 64 lowercase hex digits (the manifest digest \
             printed by scripts/oci.sh, without `sha256:`)",
            doc.label()
        ));
    }
    let selector_labels: Vec<String> = at(spec, &["selector", "matchLabels"])
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}: {}", value.as_str().unwrap_or_default()))
        .collect();
    if selector_labels.is_empty() {
        return Err(format!(
            "{}: no spec.selector.matchLabels (the plugin would apply to every workload)",
            doc.label()
        ));
    }
    let matched = spec
        .get("match")
        .and_then(Value::as_array)
        .is_some_and(|items| items.iter().any(|m| m["mode"] == "SERVER"));
    if !matched {
        return Err(format!(
            "{}: spec.match must select `mode: SERVER`, or the filter also runs on the \
             workload's own outbound calls",
            doc.label()
        ));
    }
    let plugin_name = required(doc, module, &["pluginName"])?;
    let config = module
        .get("pluginConfig")
        .filter(|c| c.is_object())
        .cloned()
        .ok_or_else(|| format!("{}: `pluginConfig` is not a mapping", doc.label()))?;
    Ok(Plugin {
        label: doc.label(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        plugin_name,
        fail_strategy,
        selector_labels,
        url,
        config,
    })
}

fn read_mesh_doc(doc: &Doc, mesh: &mut Mesh) -> Result<(), String> {
    let root = &doc.value;
    let api_version = required(doc, root, &["apiVersion"])?;
    let kind = required(doc, root, &["kind"])?;
    let name = required(doc, root, &["metadata", "name"])?;
    let namespace = required(doc, root, &["metadata", "namespace"])?;
    let items = |path: &[&str]| {
        at(root, path)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match (api_version.as_str(), kind.as_str()) {
        ("extensions.istio.io/v1alpha1", "WasmPlugin" | "TrafficExtension") => {
            mesh.plugins
                .push(read_plugin(doc, &kind, &name, &namespace)?);
        }
        ("networking.istio.io/v1", "ServiceEntry") => {
            let hosts = items(&["spec", "hosts"]);
            let ports = items(&["spec", "ports"]);
            if hosts.is_empty() || ports.is_empty() {
                return Err(format!(
                    "{}: ServiceEntry needs hosts and ports",
                    doc.label()
                ));
            }
            let numbers: Vec<u16> = ports
                .iter()
                .filter_map(|port| port["number"].as_u64()?.try_into().ok())
                .collect();
            if numbers.len() != ports.len() {
                return Err(format!("{}: a port without a number", doc.label()));
            }
            for host in hosts.iter().filter_map(Value::as_str) {
                mesh.service_entries
                    .entry((namespace.clone(), host.to_owned()))
                    .or_default()
                    .extend(&numbers);
            }
        }
        ("networking.istio.io/v1", "DestinationRule") => {
            let host = required(doc, root, &["spec", "host"])?;
            for setting in items(&["spec", "trafficPolicy", "portLevelSettings"]) {
                let port = setting["port"]["number"]
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok());
                let tls = matches!(setting["tls"]["mode"].as_str(), Some("SIMPLE" | "MUTUAL"));
                if let (Some(port), true) = (port, tls) {
                    mesh.tls_origination
                        .entry((namespace.clone(), host.clone()))
                        .or_default()
                        .push(port);
                }
            }
        }
        (api_version, kind) => {
            return Err(format!(
                "{}: {api_version} {kind} is not a kind this test knows; teach \
                 test-harness/tests/manifests.rs to check it",
                doc.label()
            ))
        }
    }
    Ok(())
}

fn read_mesh(files: &[(String, String)]) -> Result<Mesh, String> {
    let mut mesh = Mesh::default();
    for (file, text) in files {
        sha256_quoted(file, text)?;
        let docs = documents(file, text)?;
        if docs.is_empty() {
            return Err(format!("{file}: no YAML documents"));
        }
        for doc in &docs {
            read_mesh_doc(doc, &mut mesh)?;
        }
    }
    Ok(mesh)
}

fn istio_files() -> Vec<(String, String)> {
    let files = yaml_files(&repo_root().join(ISTIO_DIR));
    assert!(!files.is_empty(), "no manifests under {ISTIO_DIR}");
    files
        .iter()
        .map(|path| (relative(path), read(path)))
        .collect()
}

/// Host and port of an Istio outbound cluster name `outbound|<port>|<subset>|<host>`.
fn outbound_cluster(name: &str) -> Option<(u16, String)> {
    let mut parts = name.split('|');
    let (Some("outbound"), Some(port), Some(_subset), Some(host), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some((port.parse().ok()?, host.to_owned()))
}

/// Every `remote_jwks` must go through a cluster Istio actually creates: a ServiceEntry
/// for the URI's host with that port, in the plugin's namespace, and TLS origination on
/// that port when the URI is https.
fn check_remote_jwks(plugin: &Plugin, mesh: &Mesh) -> Result<(), String> {
    let providers = plugin
        .config
        .get("providers")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{}: pluginConfig has no providers", plugin.label))?;
    for (provider, cfg) in providers {
        let Some(remote) = cfg.get("remote_jwks") else {
            continue;
        };
        let cluster = remote.get("cluster").and_then(Value::as_str).unwrap_or("");
        let uri = remote.get("uri").and_then(Value::as_str).unwrap_or("");
        let (port, host) = outbound_cluster(cluster).ok_or_else(|| {
            format!(
                "{}: providers.{provider}.remote_jwks.cluster `{cluster}` is not an Istio \
                 cluster name `outbound|<port>|<subset>|<host>`",
                plugin.label
            )
        })?;
        let key = (plugin.namespace.clone(), host.clone());
        let ports = mesh.service_entries.get(&key).ok_or_else(|| {
            format!(
                "{}: no ServiceEntry for `{host}` in namespace `{}` under {ISTIO_DIR}, so \
                 Istio creates no cluster `{cluster}`",
                plugin.label, plugin.namespace
            )
        })?;
        if !ports.contains(&port) {
            return Err(format!(
                "{}: the ServiceEntry for `{host}` has no port {port} (cluster `{cluster}`)",
                plugin.label
            ));
        }
        let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
        let authority = rest.split('/').next().unwrap_or("");
        let uri_host = authority.split(':').next().unwrap_or("");
        if uri_host != host {
            return Err(format!(
                "{}: remote_jwks uri host `{uri_host}` is not the cluster's host `{host}`",
                plugin.label
            ));
        }
        let originates_tls = mesh
            .tls_origination
            .get(&key)
            .is_some_and(|p| p.contains(&port));
        if scheme == "https" && !originates_tls {
            return Err(format!(
                "{}: `{uri}` is https but no DestinationRule originates TLS on port {port} \
                 of `{host}`; the fetch would go out as plain HTTP",
                plugin.label
            ));
        }
    }
    Ok(())
}

#[test]
fn istio_manifests_are_well_formed_and_their_plugin_configs_compile() {
    let mesh = read_mesh(&istio_files()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !mesh.plugins.is_empty(),
        "no WasmPlugin or TrafficExtension under {ISTIO_DIR}"
    );
    for plugin in &mesh.plugins {
        let json = serde_json::to_vec(&plugin.config).unwrap();
        let policy = Policy::from_json(&json)
            .unwrap_or_else(|e| panic!("{}: pluginConfig rejected by meshgate: {e}", plugin.label));
        assert!(
            !policy.rules.is_empty(),
            "{}: pluginConfig has no rules",
            plugin.label
        );
        check_remote_jwks(plugin, &mesh).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "{}: {} {}/{} ok ({} providers, {} rules)",
            plugin.label,
            plugin.kind,
            plugin.namespace,
            plugin.name,
            policy.providers.len(),
            policy.rules.len()
        );
    }
    // A WasmPlugin and a TrafficExtension of the same name are the same plugin under two
    // APIs: they must not drift apart.
    for a in &mesh.plugins {
        for b in mesh
            .plugins
            .iter()
            .filter(|b| b.name == a.name && b.kind != a.kind)
        {
            assert_eq!(
                a.config, b.config,
                "{} and {}: pluginConfig differs",
                a.label, b.label
            );
            assert_eq!(a.url, b.url, "{} and {}: url differs", a.label, b.label);
            assert_eq!(
                a.selector_labels, b.selector_labels,
                "{} and {}: selector differs",
                a.label, b.label
            );
        }
    }
}

#[test]
fn a_manifest_with_a_bad_plugin_config_fails() {
    let files = istio_files();
    let (file, text) = files
        .iter()
        .find(|(_, text)| text.contains("kind: WasmPlugin"))
        .expect("a WasmPlugin manifest");
    // One wrong enum value deep inside the rules.
    assert!(text.contains(r#""action": "deny""#));
    let broken = text.replacen(r#""action": "deny""#, r#""action": "block""#, 1);
    let mesh = read_mesh(&[(file.clone(), broken)]).unwrap();
    let plugin = mesh.plugins.first().unwrap();
    let err = Policy::from_json(&serde_json::to_vec(&plugin.config).unwrap())
        .expect_err("`block` is not an action");
    assert!(err.to_string().contains(".action"), "{err}");

    // A manifest YAML cannot read is refused, not skipped.
    let unbalanced = text.replacen(r#""mode": "enforce""#, r#""mode": "enforce"}}"#, 1);
    let err = read_mesh(&[(file.clone(), unbalanced)]).unwrap_err();
    assert!(err.contains("not valid YAML"), "{err}");
    // The digest without its quotes (whatever digest the manifest holds).
    let unquoted: String = text
        .lines()
        .map(|line| match line.split_once("sha256: \"") {
            Some((before, rest)) => format!("{before}sha256: {}", rest.trim_end_matches('"')),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(&unquoted, text, "no quoted sha256 line found");
    let err = read_mesh(&[(file.clone(), unquoted)]).unwrap_err();
    assert!(err.contains("double quotes"), "{err}");
}

/// The static Envoy config Istio's ECDS delivery amounts to for one plugin: the Wasm
/// filter with the pluginConfig as a JSON string, root_id from pluginName, and the
/// clusters its remote_jwks name (pointing nowhere: validation sends no request).
fn istio_equivalent_bootstrap(plugin: &Plugin) -> Value {
    let failure_policy = match plugin.fail_strategy.as_str() {
        "FAIL_OPEN" => "FAIL_OPEN",
        "FAIL_RELOAD" => "FAIL_RELOAD",
        _ => "FAIL_CLOSED",
    };
    let clusters: Vec<Value> = plugin
        .config
        .get("providers")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|providers| providers.values())
        .filter_map(|p| p.pointer("/remote_jwks/cluster").and_then(Value::as_str))
        .map(|name| {
            json!({
                "name": name,
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                        "socket_address": {"address": "127.0.0.1", "port_value": 9}
                    }}}]}]
                }
            })
        })
        .collect();
    let resource = format!("{}.{}", plugin.namespace, plugin.name);
    json!({
        "static_resources": {
            "listeners": [{
                "name": "virtualInbound",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15006}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "inbound",
                        "route_config": {"name": "inbound", "virtual_hosts": [{
                            "name": "any", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}]
                        }]},
                        "http_filters": [
                            {
                                "name": format!("extensions.istio.io/{}/{resource}", plugin.kind.to_lowercase()),
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                                    "config": {
                                        "name": resource,
                                        "root_id": plugin.plugin_name,
                                        "failure_policy": failure_policy,
                                        "vm_config": {
                                            "runtime": "envoy.wasm.runtime.v8",
                                            "code": {"local": {"filename": MESHGATE_WASM}}
                                        },
                                        "configuration": {
                                            "@type": "type.googleapis.com/google.protobuf.StringValue",
                                            "value": plugin.config.to_string()
                                        }
                                    }
                                }
                            },
                            {
                                "name": "envoy.filters.http.router",
                                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                            }
                        ]
                    }
                }]}]
            }],
            "clusters": clusters
        }
    })
}

fn validate_istio_plugin(plugin: &Plugin, dir: &Path, tag: &str) -> Result<(), String> {
    let path = dir.join(format!("{tag}-{}-{}.json", plugin.kind, plugin.name));
    let bootstrap = serde_json::to_string_pretty(&istio_equivalent_bootstrap(plugin))
        .map_err(|e| e.to_string())?;
    fs::write(&path, bootstrap).map_err(|e| format!("write {}: {e}", path.display()))?;
    validate_config(&path).map_err(|e| format!("{}: {e}", plugin.label))
}

#[test]
fn istio_plugin_configs_load_into_the_filter_in_envoy() {
    require_built(MESHGATE_WASM);
    let dir = scratch_dir("istio");
    let files = istio_files();
    let mesh = read_mesh(&files).unwrap_or_else(|e| panic!("{e}"));
    for plugin in &mesh.plugins {
        validate_istio_plugin(plugin, &dir, "ok").unwrap_or_else(|e| panic!("{e}"));
    }
    // The same path must fail for a config the filter rejects, or the check above proves
    // nothing.
    let (file, text) = files
        .iter()
        .find(|(_, text)| text.contains("kind: WasmPlugin"))
        .unwrap();
    let broken = text.replacen(r#""action": "deny""#, r#""action": "block""#, 1);
    let broken = read_mesh(&[(file.clone(), broken)]).unwrap();
    let err = validate_istio_plugin(broken.plugins.first().unwrap(), &dir, "broken")
        .expect_err("envoy accepted a pluginConfig meshgate rejects");
    assert!(err.contains("Unable to create Wasm plugin"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// Envoy bootstraps and ECDS resources
// ---------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum EnvoyFile {
    Bootstrap,
    /// A DiscoveryResponse-shaped file a bootstrap subscribes to (path_config_source).
    XdsResources,
    /// Kubernetes objects (envoy/istio).
    Kubernetes,
    /// A `meshgate serve` configuration (envoy/demo/cp.yaml).
    ControlPlane,
    /// An access policy the control plane reads (envoy/demo/access-policy.yaml).
    AccessPolicy,
}

fn classify(path: &Path, text: &str) -> EnvoyFile {
    let docs = documents(&relative(path), text).unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<&String> = docs
        .iter()
        .filter_map(|doc| doc.value.as_object())
        .flat_map(|object| object.keys())
        .collect();
    let has = |k: &str| keys.iter().any(|key| *key == k);
    if has("static_resources") || has("dynamic_resources") || has("admin") {
        EnvoyFile::Bootstrap
    } else if has("resources") {
        EnvoyFile::XdsResources
    } else if has("apiVersion") && has("kind") {
        EnvoyFile::Kubernetes
    } else if has("signing_key_file") && has("catalog") {
        EnvoyFile::ControlPlane
    } else if has("requestable") {
        EnvoyFile::AccessPolicy
    } else {
        panic!(
            "{}: neither an Envoy bootstrap (static_resources/dynamic_resources/admin), an \
             xDS resource file (resources) nor a Kubernetes manifest (apiVersion, kind); \
             top-level keys: {keys:?}",
            relative(path)
        )
    }
}

/// JSON pointers of every object under `value` that has a `config_discovery` member.
fn subscriptions(value: &Value, pointer: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if object.contains_key("config_discovery") {
                found.push(pointer.to_owned());
            }
            for (key, child) in object {
                let key = key.replace('~', "~0").replace('/', "~1");
                subscriptions(child, &format!("{pointer}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                subscriptions(child, &format!("{pointer}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// The bootstrap with one `config_discovery` subscription replaced by the `typed_config`
/// of the resource it subscribes to, i.e. what Envoy runs once the subscription has
/// delivered; one result per subscription. Returns (resource file, substituted bootstrap
/// as JSON, which Envoy reads as YAML).
fn substitute_ecds(path: &Path, text: &str) -> Vec<(PathBuf, String)> {
    let bootstrap = only_document(path, text);
    let mut found = Vec::new();
    subscriptions(&bootstrap, "", &mut found);
    found
        .iter()
        .map(|pointer| {
            let filter = bootstrap.pointer(pointer).unwrap();
            let resource_path = filter
                .pointer("/config_discovery/config_source/path_config_source/path")
                .and_then(Value::as_str)
                .map(|p| repo_root().join(p))
                .unwrap_or_else(|| {
                    panic!(
                        "{}: config_discovery at {pointer} has no path_config_source path; \
                         this test only knows file-based ECDS",
                        relative(path)
                    )
                });
            // The filter's name is the resource it subscribes to.
            let name = filter["name"].as_str().unwrap_or_else(|| {
                panic!("{}: the filter at {pointer} has no name", relative(path))
            });
            let typed_config = resource_typed_config(&resource_path, &read(&resource_path), name);
            let mut substituted = bootstrap.clone();
            let object = substituted
                .pointer_mut(pointer)
                .and_then(Value::as_object_mut)
                .unwrap();
            object.remove("config_discovery");
            object.insert("typed_config".into(), typed_config);
            (
                resource_path,
                serde_json::to_string_pretty(&substituted).unwrap(),
            )
        })
        .collect()
}

/// The `typed_config` of the one resource of an xDS resource file, which must be named
/// `name`.
fn resource_typed_config(path: &Path, text: &str, name: &str) -> Value {
    let doc = only_document(path, text);
    let resources = doc["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no resources", relative(path)));
    assert_eq!(
        resources.len(),
        1,
        "{}: expected exactly one resource",
        relative(path)
    );
    let resource = &resources[0];
    assert_eq!(
        resource["@type"],
        "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "{}: the resource is not a TypedExtensionConfig",
        relative(path)
    );
    assert_eq!(
        resource["name"],
        name,
        "{}: the resource is not named `{name}`, the name the bootstrap's filter subscribes to",
        relative(path)
    );
    let typed_config = &resource["typed_config"];
    assert!(
        typed_config.is_object(),
        "{}: no typed_config",
        relative(path)
    );
    typed_config.clone()
}

#[test]
fn every_envoy_bootstrap_validates() {
    require_built(MESHGATE_WASM);
    require_built(CEILING_WASM);
    let dir = scratch_dir("bootstraps");
    let mut bootstraps = Vec::new();
    let mut resource_files = Vec::new();
    let mut control_planes = Vec::new();
    for path in yaml_files(&repo_root().join("envoy")) {
        let text = read(&path);
        match classify(&path, &text) {
            EnvoyFile::Bootstrap => bootstraps.push((path, text)),
            EnvoyFile::XdsResources => resource_files.push(path),
            EnvoyFile::Kubernetes => {
                assert!(
                    path.starts_with(repo_root().join(ISTIO_DIR)),
                    "{}: Kubernetes manifests belong in {ISTIO_DIR}",
                    relative(&path)
                );
            }
            EnvoyFile::ControlPlane => control_planes.push(path),
            EnvoyFile::AccessPolicy => {
                meshgate_control_plane::access::load_policy(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", relative(&path)));
            }
        }
    }
    for path in &control_planes {
        let config = meshgate_control_plane::serve::ServeConfig::load(path)
            .unwrap_or_else(|e| panic!("{}: {e}", relative(path)));
        if let Some(access) = &config.access {
            // The access policy the demo control plane names compiles.
            meshgate_control_plane::access::load_policy(&access.policy_file)
                .unwrap_or_else(|e| panic!("{}: {e}", relative(path)));
        }
        // The demo Envoy must trust the key the demo control plane signs with.
        let key = meshgate_control_plane::snapshot::load_signing_key(&config.signing_key_file)
            .unwrap_or_else(|e| panic!("{}: {e}", relative(path)));
        let public = key.trusted_key().to_spec().public_key;
        let demo = read(&repo_root().join("envoy/meshgate-demo.yaml"));
        assert!(
            demo.contains(&public),
            "envoy/meshgate-demo.yaml does not trust the key of {}",
            relative(path)
        );
    }
    assert!(!control_planes.is_empty(), "envoy/demo/cp.yaml not found");
    for name in [
        "meshgate-demo.yaml",
        "ceiling.yaml",
        "ecds/meshgate-ecds.yaml",
    ] {
        assert!(
            bootstraps
                .iter()
                .any(|(p, _)| p.ends_with(Path::new("envoy").join(name))),
            "envoy/{name} was not found as a bootstrap"
        );
    }

    let mut failures = Vec::new();
    let mut subscribed = Vec::new();
    for (path, text) in &bootstraps {
        match validate_config(path) {
            Ok(()) => println!("envoy --mode validate {}: OK", relative(path)),
            Err(e) => failures.push(format!("{}: {e}", relative(path))),
        }
        for (n, (resource, substituted)) in substitute_ecds(path, text).into_iter().enumerate() {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let wrapped = dir.join(format!("{stem}-ecds-{n}.yaml"));
            fs::write(&wrapped, substituted).unwrap();
            match validate_config(&wrapped) {
                Ok(()) => println!(
                    "envoy --mode validate {} with {} in place of its subscription: OK",
                    relative(path),
                    relative(&resource)
                ),
                Err(e) => failures.push(format!(
                    "{} (substituted into {}): {e}",
                    relative(&resource),
                    relative(path)
                )),
            }
            subscribed.push(resource);
        }
    }
    for resource in &resource_files {
        assert!(
            subscribed.contains(resource),
            "{}: an xDS resource file no bootstrap subscribes to, so nothing validates it",
            relative(resource)
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_broken_ecds_resource_fails_validation_once_substituted() {
    require_built(MESHGATE_WASM);
    let dir = scratch_dir("ecds-broken");
    let bootstrap_path = repo_root().join("envoy/ecds/meshgate-ecds.yaml");
    let resource_path = repo_root().join("envoy/ecds/meshgate-filter.yaml");
    let resource = read(&resource_path);
    assert!(resource.contains(r#""action": "deny""#));
    let broken_path = dir.join("meshgate-filter.yaml");
    fs::write(
        &broken_path,
        resource.replacen(r#""action": "deny""#, r#""action": "block""#, 1),
    )
    .unwrap();
    let bootstrap = read(&bootstrap_path).replace(
        "path: envoy/ecds/meshgate-filter.yaml",
        &format!("path: {}", broken_path.display()),
    );
    // validate mode alone does not notice: it only checks that the file exists ...
    let as_is = dir.join("bootstrap.yaml");
    fs::write(&as_is, &bootstrap).unwrap();
    validate_config(&as_is).unwrap_or_else(|e| panic!("{e}"));
    // ... which is why the subscribed resource is substituted and validated separately.
    let substituted = substitute_ecds(&as_is, &bootstrap);
    let (_, text) = substituted.first().unwrap();
    let wrapped = dir.join("substituted.yaml");
    fs::write(&wrapped, text).unwrap();
    let err = validate_config(&wrapped).expect_err("a rejected config passed validation");
    assert!(
        err.to_string().contains("Unable to create Wasm plugin"),
        "{err}"
    );
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// scripts/oci.sh
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct OciRun {
    manifest_digest: String,
    wasm_sha256: String,
}

fn run_oci(args: &[&str]) -> Result<OciRun, String> {
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/oci.sh"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .map_err(|e| format!("cannot run scripts/oci.sh: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "scripts/oci.sh {args:?} failed ({}):\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::to_owned)
            .ok_or_else(|| format!("no `{prefix}` line in:\n{stdout}"))
    };
    Ok(OciRun {
        manifest_digest: field("manifest digest: ")?,
        wasm_sha256: field("wasm sha256: ")?,
    })
}

fn sha256_hex(path: &Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(output.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks a descriptor against its blob (exists, sha256, size); returns the blob's path.
fn blob(layout: &Path, descriptor: &Value, media_type: &str) -> PathBuf {
    assert_eq!(descriptor["mediaType"], media_type, "{descriptor}");
    let digest = descriptor["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let path = layout.join("blobs/sha256").join(hex);
    assert!(path.is_file(), "blob {digest} missing");
    assert_eq!(
        sha256_hex(&path),
        hex,
        "blob {digest} does not match its digest"
    );
    assert_eq!(
        descriptor["size"].as_u64(),
        Some(fs::metadata(&path).unwrap().len()),
        "size of {digest}"
    );
    path
}

/// Walks oci-layout → index.json → manifest → config and layers, checking every
/// descriptor; returns (manifest digest, manifest).
fn check_layout(layout: &Path) -> (String, Value) {
    assert_eq!(
        read_json(&layout.join("oci-layout")),
        json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "one image per layout");
    let descriptor = &manifests[0];
    assert!(
        descriptor["annotations"]["org.opencontainers.image.ref.name"].is_string(),
        "index entry without a tag"
    );
    let manifest_path = blob(
        layout,
        descriptor,
        "application/vnd.oci.image.manifest.v1+json",
    );
    let manifest = read_json(&manifest_path);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    // Exactly the blobs the manifest names (plus the manifest), nothing stale.
    let mut named: Vec<String> = std::iter::once(&manifest["config"])
        .chain(manifest["layers"].as_array().unwrap())
        .chain(std::iter::once(descriptor))
        .map(|d| {
            d["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_owned()
        })
        .collect();
    named.sort();
    named.dedup();
    let mut present: Vec<String> = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    assert_eq!(
        present, named,
        "blobs/sha256 holds other files than the image's"
    );
    (descriptor["digest"].as_str().unwrap().to_owned(), manifest)
}

/// One file in a ustar archive, as the tar header describes it.
#[derive(Debug)]
struct TarEntry {
    name: String,
    typeflag: u8,
    mode: u64,
    uid: u64,
    gid: u64,
    mtime: u64,
    uname: String,
    gname: String,
    data: Vec<u8>,
}

/// Every entry of an uncompressed tar, read with the `tar` crate; the archive must be POSIX
/// ustar and end with its two zero blocks.
fn tar_entries(archive: &[u8]) -> Vec<TarEntry> {
    assert!(
        archive.len() % 512 == 0
            && archive.len() >= 1024
            && archive[archive.len() - 1024..].iter().all(|&b| b == 0),
        "the tar archive does not end with two zero blocks"
    );
    let mut entries = Vec::new();
    for entry in tar::Archive::new(archive).entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header();
        assert!(header.as_ustar().is_some(), "not a POSIX ustar header");
        let text =
            |bytes: Option<&[u8]>| String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned();
        let mut read = TarEntry {
            name: entry.path().unwrap().display().to_string(),
            typeflag: header.entry_type().as_byte(),
            mode: u64::from(header.mode().unwrap()),
            uid: header.uid().unwrap(),
            gid: header.gid().unwrap(),
            mtime: header.mtime().unwrap(),
            uname: text(header.username_bytes()),
            gname: text(header.groupname_bytes()),
            data: Vec::new(),
        };
        entry.read_to_end(&mut read.data).unwrap();
        entries.push(read);
    }
    entries
}

fn gunzip(path: &Path) -> Vec<u8> {
    let output = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
    assert!(output.status.success(), "gzip -dc {}", path.display());
    output.stdout
}

/// Same file names and bytes in two layouts.
fn assert_same_tree(a: &Path, b: &Path) {
    let list = |root: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = all_files(root)
            .into_iter()
            .map(|p| {
                let name = p.strip_prefix(root).unwrap().display().to_string();
                (name, fs::read(&p).unwrap())
            })
            .collect();
        files.sort();
        files
    };
    let (left, right) = (list(a), list(b));
    let names =
        |files: &[(String, Vec<u8>)]| files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&left),
        names(&right),
        "the two layouts hold different files"
    );
    for ((name, x), (_, y)) in left.iter().zip(&right) {
        assert!(x == y, "{name} differs between the two runs");
    }
}

/// All files under `root`, any depth.
fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Two runs, the second on a copy of the module with another mtime and mode, must give
/// byte-identical layouts. Returns the first layout's directory and its run.
fn build_twice(variant: &str, dir: &Path) -> (PathBuf, OciRun) {
    let wasm = repo_root().join(MESHGATE_WASM);
    let first_out = dir.join("first");
    let first = run_oci(&["--variant", variant, "--out", first_out.to_str().unwrap()])
        .unwrap_or_else(|e| panic!("{e}"));

    let copy = dir.join("copy.wasm");
    fs::copy(&wasm, &copy).unwrap();
    let file = fs::File::options().write(true).open(&copy).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(981_158_400))
        .unwrap();
    drop(file);
    let second_out = dir.join("second");
    let second = run_oci(&[
        "--variant",
        variant,
        "--wasm",
        copy.to_str().unwrap(),
        "--out",
        second_out.to_str().unwrap(),
    ])
    .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(
        first.manifest_digest, second.manifest_digest,
        "the manifest digest changed between two runs on the same module"
    );
    assert_same_tree(&first_out, &second_out);
    (first_out, first)
}

#[test]
fn oci_layout_compat_variant() {
    require_built(MESHGATE_WASM);
    let dir = scratch_dir("oci-compat");
    let (layout, run) = build_twice("compat", &dir);
    let wasm = fs::read(repo_root().join(MESHGATE_WASM)).unwrap();
    assert_eq!(
        run.wasm_sha256,
        sha256_hex(&repo_root().join(MESHGATE_WASM))
    );

    let (digest, manifest) = check_layout(&layout);
    assert_eq!(
        digest, run.manifest_digest,
        "printed digest is not the layout's"
    );
    assert_eq!(
        manifest["annotations"]["module.wasm.image/variant"], "compat",
        "the compat spec asks for this annotation on OCI-typed layers"
    );
    let config = read_json(&blob(
        &layout,
        &manifest["config"],
        "application/vnd.oci.image.config.v1+json",
    ));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "the compat variant has exactly one layer");
    let layer = blob(
        &layout,
        &layers[0],
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );

    // gzip -n: no file name, no timestamp.
    let gz = fs::read(&layer).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "not gzip");
    assert_eq!(gz[3] & 0x08, 0, "gzip header carries a file name");
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "gzip header carries a timestamp");

    let tar = gunzip(&layer);
    // The config's diff_id is the digest of the uncompressed layer.
    let tar_path = dir.join("layer.tar");
    fs::write(&tar_path, &tar).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        json!([format!("sha256:{}", sha256_hex(&tar_path))])
    );
    let entries = tar_entries(&tar);
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["plugin.wasm"],
        "the layer must hold exactly plugin.wasm"
    );
    let entry = &entries[0];
    assert_eq!(entry.typeflag, b'0', "plugin.wasm is not a regular file");
    assert_eq!(
        (entry.uid, entry.gid, entry.mtime, entry.mode),
        (0, 0, 0, 0o644),
        "tar header is not normalized"
    );
    assert_eq!((entry.uname.as_str(), entry.gname.as_str()), ("", ""));
    assert!(
        entry.data == wasm,
        "plugin.wasm differs from {MESHGATE_WASM}"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn oci_layout_wasm_artifact_variant() {
    require_built(MESHGATE_WASM);
    let dir = scratch_dir("oci-wasm");
    let (layout, run) = build_twice("wasm", &dir);
    let wasm = fs::read(repo_root().join(MESHGATE_WASM)).unwrap();

    let (digest, manifest) = check_layout(&layout);
    assert_eq!(digest, run.manifest_digest);
    let config_type = "application/vnd.module.wasm.config.v1+json";
    let config = read_json(&blob(&layout, &manifest["config"], config_type));
    assert_eq!(config["type"], "envoy_proxy");
    assert_eq!(config["abiVersions"], json!(["proxy_abi_version_0_2_1"]));
    assert_eq!(config["config"]["root_ids"], json!(["meshgate"]));
    // Istio's fetcher wants exactly two layers, one of them the raw module.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        2,
        "Istio requires two layers for this variant"
    );
    blob(&layout, &layers[0], config_type);
    assert_eq!(layers[0]["digest"], manifest["config"]["digest"]);
    let module = blob(
        &layout,
        &layers[1],
        "application/vnd.module.wasm.content.layer.v1+wasm",
    );
    assert!(
        fs::read(module).unwrap() == wasm,
        "the wasm layer differs from {MESHGATE_WASM}"
    );
    assert_eq!(
        layers[1]["digest"],
        format!("sha256:{}", run.wasm_sha256),
        "the raw layer's digest is the module's sha256"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn oci_script_refuses_to_replace_a_directory_that_is_not_a_layout() {
    require_built(MESHGATE_WASM);
    let dir = scratch_dir("oci-refuse");
    let keep = dir.join("keep.txt");
    fs::write(&keep, "not an OCI layout").unwrap();
    let err = run_oci(&["--out", dir.to_str().unwrap()]).expect_err("it replaced the directory");
    assert!(err.contains("refusing to replace"), "{err}");
    assert!(keep.is_file(), "the file was deleted");
    let _ = fs::remove_dir_all(&dir);
}
