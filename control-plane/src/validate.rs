//! Finds meshgate plugin configurations in the files users actually write (plugin JSON,
//! Istio `WasmPlugin` manifests, Envoy bootstraps) and compiles each with the same
//! compiler `on_configure` uses.

use std::path::Path;

use meshgate_core::{ConfigError, Policy};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("`{path}` is not valid YAML: {detail}")]
    Yaml { path: String, detail: String },
    #[error("no meshgate configuration found in `{path}` (looked for a WasmPlugin `pluginConfig` and Envoy Wasm filters whose root_id starts with `meshgate`)")]
    NothingFound { path: String },
}

/// One plugin configuration found in a file.
#[derive(Debug)]
pub struct Found {
    /// Where in the file: `WasmPlugin meshgate-edge`, `Envoy filter root_id meshgate`, ...
    pub location: String,
    /// The configuration's JSON text, as the filter receives it.
    pub text: String,
    pub result: Result<Policy, ConfigError>,
}

/// Every meshgate configuration in `path`: `.json` files are one plugin configuration,
/// YAML files are searched.
pub fn validate_file(path: &Path) -> Result<Vec<Found>, ValidateError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ValidateError::Read {
        path: shown.clone(),
        source,
    })?;
    if path.extension().is_some_and(|e| e == "json") {
        return Ok(vec![Found {
            location: String::from("plugin configuration"),
            result: Policy::from_json(text.as_bytes()),
            text,
        }]);
    }
    let found = validate_yaml(&text).map_err(|detail| ValidateError::Yaml {
        path: shown.clone(),
        detail,
    })?;
    if found.is_empty() {
        return Err(ValidateError::NothingFound { path: shown });
    }
    Ok(found)
}

/// Searches every YAML document of `text`.
pub fn validate_yaml(text: &str) -> Result<Vec<Found>, String> {
    let mut found = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(document).map_err(|e| e.to_string())?;
        collect(&value, &mut found);
    }
    Ok(found)
}

fn collect(value: &Value, found: &mut Vec<Found>) {
    // Istio: WasmPlugin (and TrafficExtension) carry the config as a YAML map.
    if let Some(kind) = value.get("kind").and_then(Value::as_str) {
        if matches!(kind, "WasmPlugin" | "TrafficExtension") {
            let name = value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("(unnamed)");
            let location = format!("{kind} {name}");
            // WasmPlugin: spec.pluginConfig; TrafficExtension (Istio 1.30+): spec.wasm.pluginConfig.
            let config = value
                .pointer("/spec/pluginConfig")
                .or_else(|| value.pointer("/spec/wasm/pluginConfig"))
                .cloned()
                .unwrap_or(Value::Null);
            let text = config.to_string();
            found.push(Found {
                location,
                result: Policy::from_json(text.as_bytes()),
                text,
            });
            return;
        }
    }
    match value {
        Value::Object(map) => {
            // Envoy: a Wasm filter config with root_id `meshgate*` and a StringValue configuration.
            let root_id = map.get("root_id").and_then(Value::as_str);
            if let Some(root_id) =
                root_id.filter(|r| r.starts_with("meshgate") && !r.contains("ceiling"))
            {
                let raw = map
                    .get("configuration")
                    .and_then(|c| c.get("value"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                found.push(Found {
                    location: format!("Envoy Wasm filter root_id `{root_id}`"),
                    result: Policy::from_json(raw.as_bytes()),
                    text: raw.to_owned(),
                });
            }
            map.values().for_each(|v| collect(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_configs_in_istio_and_envoy_yaml() {
        let yaml = r#"
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: edge}
spec:
  pluginConfig:
    providers: {}
    rules:
      - {id: health, action: allow, public: true, paths: [/health]}
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: broken}
spec:
  pluginConfig:
    rules:
      - {id: x, action: permit}
---
static_resources:
  listeners:
    - filter_chains:
        - filters:
            - typed_config:
                http_filters:
                  - typed_config:
                      config:
                        root_id: meshgate
                        configuration:
                          value: '{"rules": [{"id": "a", "action": "allow", "paths": ["/a/{x"]}]}'
                  - typed_config:
                      config:
                        root_id: meshgate_ceiling
                        configuration: {value: "{}"}
"#;
        let found = validate_yaml(yaml).unwrap();
        let summary: Vec<(&str, Result<(), String>)> = found
            .iter()
            .map(|f| {
                (
                    f.location.as_str(),
                    f.result.as_ref().map(|_| ()).map_err(|e| e.path.clone()),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("WasmPlugin edge", Ok(())),
                ("WasmPlugin broken", Err(String::from("rules[0].action"))),
                (
                    "Envoy Wasm filter root_id `meshgate`",
                    Err(String::from("rules[0].paths[0]"))
                ),
            ]
        );
    }

    #[test]
    fn shipped_istio_manifests_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/istio");
        for name in ["wasmplugin.yaml", "trafficextension.yaml"] {
            let found = validate_file(&dir.join(name)).unwrap();
            assert_eq!(found.len(), 1, "{name}");
            assert!(found[0].result.is_ok(), "{name}: {:?}", found[0].result);
        }
    }

    #[test]
    fn shipped_demo_config_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/meshgate-demo.yaml");
        let found = validate_file(&path).unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].result.is_ok(), "{:?}", found[0].result);
    }
}
