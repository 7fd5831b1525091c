//! The rules file: a YAML list of rules in the filter's rule language (the same objects as the
//! filter configuration's `rules`), compiled with the filter's own compiler and published in
//! the snapshot as JSON text. A file that does not compile is never published.
//!
//! The compiler is `meshgate_core::config::compile_rules_json`, the one the filter runs on the
//! rules it loads from a snapshot. It checks everything but provider names
//! (`when.providers`), which only the filter's configuration knows.

use std::path::Path;

use meshgate_core::config::ConfigReason;
use serde_json::Value;

use super::err::RulesError;

/// Reads `path` and returns its rules as compact JSON text (object keys sorted, so replicas
/// publish the same bytes) once the filter's rule compiler accepts them. An empty list is
/// allowed.
pub fn load_rules(path: &Path) -> Result<String, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
        path: path.to_owned(),
        source,
    })?;
    let value: Value = serde_norway::from_str(&text).map_err(|source| RulesError::Yaml {
        path: path.to_owned(),
        source,
    })?;
    if !value.is_array() {
        return Err(RulesError::NotAList {
            path: path.to_owned(),
        });
    }
    let json = value.to_string();
    meshgate_core::config::compile_rules_json(&json).map_err(|mut source| {
        if let ConfigReason::Json { detail } = &mut source.reason {
            *detail = without_json_position(detail).to_owned();
        }
        RulesError::Compile {
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(json)
}

/// The compiler reads the JSON text made here, so a parser position (` at line 1 column 50`)
/// points into that text, not into the YAML file; the field path says where instead.
fn without_json_position(reason: &str) -> &str {
    let Some((before, position)) = reason.rsplit_once(" at line ") else {
        return reason;
    };
    let is_position = position
        .split_once(" column ")
        .is_some_and(|(line, column)| {
            [line, column]
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
    if is_position {
        before
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message with its causes.
    fn message(error: &RulesError) -> String {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }

    #[test]
    fn json_positions_are_dropped_from_reasons() {
        for (reason, expected) in [
            (
                "invalid type: integer `7`, expected a sequence at line 1 column 50",
                "invalid type: integer `7`, expected a sequence",
            ),
            ("unknown field `x` at line 12 column 3", "unknown field `x`"),
            ("names a path at line one", "names a path at line one"),
            ("at line 1 column", "at line 1 column"),
            ("plain", "plain"),
        ] {
            assert_eq!(without_json_position(reason), expected);
        }
    }

    #[test]
    fn rules_files_compile_or_say_where_they_fail() {
        let dir = crate::issuer::test_keys::temp_dir("serve-rules");
        let path = dir.join("rules.yaml");
        let ok = [
            ("[]\n", "[]"),
            // Provider names are the filter configuration's business.
            (
                "- {id: ci, action: allow, when: {providers: [buildkite]}}\n",
                r#"[{"action":"allow","id":"ci","when":{"providers":["buildkite"]}}]"#,
            ),
            (
                "- id: dag-owners\n  action: allow\n  paths: ['/api/v1/dags/{dag_id}/dagRuns']\n  when: {owns: {kind: airflow.dag, id: '{dag_id}'}}\n",
                r#"[{"action":"allow","id":"dag-owners","paths":["/api/v1/dags/{dag_id}/dagRuns"],"when":{"owns":{"id":"{dag_id}","kind":"airflow.dag"}}}]"#,
            ),
            (
                "- id: dag-owners\n  action: allow\n  hosts: [airflow.internal]\n  when: {groups_any: [group:default/data-eng]}\n",
                r#"[{"action":"allow","hosts":["airflow.internal"],"id":"dag-owners","when":{"groups_any":["group:default/data-eng"]}}]"#,
            ),
        ];
        for (yaml, json) in ok {
            std::fs::write(&path, yaml).unwrap();
            assert_eq!(load_rules(&path).unwrap(), json, "{yaml}");
        }
        let bad = [
            (
                "- id: a\n  action: maybe\n",
                "does not compile: `rules[0].action`",
            ),
            (
                "- {id: a, action: allow}\n- {id: b, action: allow, when: {groups_any: 3}}\n",
                "does not compile: `rules[1].when.groups_any`",
            ),
            (
                "- {id: a, action: allow}\n- {id: a, action: deny}\n",
                "`rules[1].id`",
            ),
            (
                "- id: a\n  action: allow\n  paths: ['/dags/{dag_id}']\n  when: {owns: {kind: airflow.dag, id: '{dag}'}}\n",
                "`rules[0].when.owns",
            ),
            ("rules: []\n", "must hold a list of rules"),
            ("", "must hold a list of rules"),
            ("- [unclosed\n", "is not valid YAML"),
        ];
        for (yaml, expected) in bad {
            std::fs::write(&path, yaml).unwrap();
            let text = message(&load_rules(&path).unwrap_err());
            assert!(
                text.contains(expected) && text.contains("rules.yaml"),
                "{yaml}\n→ {text}"
            );
            // Positions in the JSON made from the YAML would only mislead.
            if text.contains("does not compile") {
                assert!(!text.contains(" column "), "{text}");
            }
        }
        let text = message(&load_rules(&dir.join("missing.yaml")).unwrap_err());
        assert!(text.contains("cannot read rules file"), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
