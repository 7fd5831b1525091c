//! `meshgate check`: the decision and its explanation for one request, offline, with the
//! same `meshgate_core` code the filter runs. `meshgate validate`: compile configurations.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use meshgate_core::authorize::{decide, Credential as Identity};
use meshgate_core::catalog::{Catalog, CatalogState};
use meshgate_core::explain::explain;
use meshgate_core::jwks::{KeyOrigin, KeySet};
use meshgate_core::provider::KeySource;
use meshgate_core::snapshot::Snapshot;
use meshgate_core::{KeyStore, Policy, Request, TokenCache, UnixTime};

use super::args::{Arg, Args};
use super::err::CliError;
use super::{write_out, CliEnv, Command};
use crate::validate::validate_file;

/// A snapshot file, verified with the configuration's `snapshot.public_keys`, as the filter
/// would load it.
fn load_catalog(policy: &Policy, file: &str) -> Result<Catalog, CliError> {
    let invalid = |detail: String| CliError::Invalid {
        what: String::from("--snapshot"),
        detail,
    };
    let source = policy.snapshot.as_ref().ok_or_else(|| {
        invalid(String::from(
            "the configuration has no `snapshot` section, so no key to verify it with",
        ))
    })?;
    let bytes = std::fs::read(file).map_err(|e| invalid(format!("cannot read `{file}`: {e}")))?;
    let snapshot = Snapshot::decode(&bytes, &source.trusted_keys, &source.limits)
        .map_err(|e| invalid(format!("`{file}`: {e}")))?;
    Catalog::new(policy, snapshot).map_err(|e| invalid(format!("`{file}`: {e}")))
}

enum Credential {
    None,
    Token(String),
    Claims(serde_json::Map<String, serde_json::Value>),
}

/// `--token` or `--claims` as given (`@FILE` read when the command runs).
enum CredentialArg {
    None,
    Token(String),
    Claims(String),
}

/// A parsed `check` command line.
pub(super) struct CheckCommand {
    config: Option<String>,
    url: Option<String>,
    method: String,
    credential: CredentialArg,
    headers: Vec<(String, String)>,
    /// Provider name → key set file.
    jwks: BTreeMap<String, String>,
    now: Option<i64>,
    snapshot_file: Option<String>,
    json: bool,
}

pub(super) fn parse_check(args: &mut Args<'_>, _: &CliEnv) -> Result<Command, CliError> {
    let mut command = CheckCommand {
        config: None,
        url: None,
        method: String::from("GET"),
        credential: CredentialArg::None,
        headers: Vec::new(),
        jwks: BTreeMap::new(),
        now: None,
        snapshot_file: None,
        json: false,
    };
    while let Some(flag) = args.next_flag()? {
        match flag.name {
            "--config" => command.config = Some(flag.value()?.to_owned()),
            "--url" => command.url = Some(flag.value()?.to_owned()),
            "--method" => command.method = flag.value()?.to_ascii_uppercase(),
            "--token" => command.credential = CredentialArg::Token(flag.value()?.to_owned()),
            "--claims" => command.credential = CredentialArg::Claims(flag.value()?.to_owned()),
            "--header" => {
                let value = flag.value()?;
                let (name, v) = value.split_once(':').ok_or_else(|| CliError::Invalid {
                    what: String::from("--header"),
                    detail: format!("`{value}` is not NAME:VALUE"),
                })?;
                command
                    .headers
                    .push((name.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
            "--jwks" => {
                let value = flag.value()?;
                let (provider, file) = value.split_once('=').ok_or_else(|| CliError::Invalid {
                    what: String::from("--jwks"),
                    detail: format!("`{value}` is not PROVIDER=FILE"),
                })?;
                command.jwks.insert(provider.to_owned(), file.to_owned());
            }
            "--now" => command.now = Some(flag.seconds()?),
            "--snapshot" => command.snapshot_file = Some(flag.value()?.to_owned()),
            "--json" => command.json = true,
            _ => return Err(flag.unhandled()),
        }
    }
    Ok(Command::Check(command))
}

pub(super) fn check(command: CheckCommand, now: i64, out: &mut dyn Write) -> Result<u8, CliError> {
    let CheckCommand {
        config,
        url,
        method,
        credential,
        mut headers,
        jwks,
        now: given_now,
        snapshot_file,
        json,
    } = command;
    let now = given_now.unwrap_or(now);
    let credential = match credential {
        CredentialArg::None => Credential::None,
        CredentialArg::Token(value) => Credential::Token(match value.strip_prefix('@') {
            Some(file) => read(file)?.trim().to_owned(),
            None => value.trim().to_owned(),
        }),
        CredentialArg::Claims(value) => {
            let text = match value.strip_prefix('@') {
                Some(file) => read(file)?,
                None => value,
            };
            let claims = serde_json::from_str(&text).map_err(|e| CliError::Invalid {
                what: String::from("--claims"),
                detail: format!("not a JSON object: {e}"),
            })?;
            Credential::Claims(claims)
        }
    };
    let jwks = jwks
        .into_iter()
        .map(|(provider, file)| Ok((provider, read(&file)?)))
        .collect::<Result<BTreeMap<String, String>, CliError>>()?;
    let config = config.ok_or(CliError::MissingFlag { flag: "--config" })?;
    let url = url.ok_or(CliError::MissingFlag { flag: "--url" })?;
    let policy = load_policy(&config)?;
    let (authority, path) =
        meshgate_core::config::split_uri(&url).ok_or_else(|| CliError::Invalid {
            what: String::from("--url"),
            detail: format!("`{url}` is not an absolute http(s) URL"),
        })?;
    headers.splice(
        0..0,
        [
            (String::from(":method"), method.clone()),
            (String::from(":authority"), authority.to_owned()),
            (String::from(":path"), path.to_owned()),
        ],
    );
    if let Credential::Token(token) = &credential {
        if !headers.iter().any(|(k, _)| k == "authorization") {
            headers.push((String::from("authorization"), format!("Bearer {token}")));
        }
    }
    let req = Request {
        method: &method,
        authority,
        path,
        headers: &headers,
    };
    let catalog = match &snapshot_file {
        Some(file) => Some(load_catalog(&policy, file)?),
        None => None,
    };
    let state = match (&catalog, &policy.snapshot) {
        (Some(catalog), _) => CatalogState::Ready(catalog),
        // The filter would wait for its first snapshot: say so rather than guess.
        (None, Some(_)) => CatalogState::Unavailable {
            reason: "meshgate check was given no --snapshot",
        },
        (None, None) => CatalogState::NotConfigured,
    };
    let now = UnixTime::from_secs(now);
    let verdict = match credential {
        Credential::Claims(claims) => decide(&policy, Identity::Claims(claims), state, &req, now),
        Credential::None | Credential::Token(_) => {
            let keys = key_store(&policy, &jwks)?;
            let mut cache = TokenCache::new(0);
            decide(
                &policy,
                Identity::token(&keys, &mut cache),
                state,
                &req,
                now,
            )
        }
    };
    let explanation = explain(&policy, state, &req, verdict, now);
    let text = if json {
        format!("{:#}\n", explanation.to_json())
    } else {
        explanation.to_text()
    };
    write_out(out, &text)?;
    Ok(if explanation.verdict.decision.is_allowed() {
        0
    } else {
        1
    })
}

/// A plugin configuration from JSON, or the one meshgate configuration in a YAML file.
pub(super) fn load_policy(path: &str) -> Result<Policy, CliError> {
    let found = validate_file(Path::new(path))?;
    let mut found = found.into_iter();
    match (found.next(), found.next()) {
        (Some(only), None) => only.result.map_err(|error| CliError::Config {
            path: path.to_owned(),
            location: only.location,
            error: Box::new(error),
        }),
        _ => Err(CliError::Invalid {
            what: String::from("--config"),
            detail: format!("`{path}` holds several meshgate configurations; pass a file with one"),
        }),
    }
}

/// Local key sets come from the config; remote ones must be given with `--jwks`.
fn key_store(policy: &Policy, jwks: &BTreeMap<String, String>) -> Result<KeyStore, CliError> {
    let mut keys = KeyStore::new(policy);
    for (index, provider) in policy.providers.iter().enumerate() {
        match (&provider.keys, jwks.get(&provider.name)) {
            (KeySource::Remote(_), Some(document)) => {
                let set = KeySet::parse(document.as_bytes(), KeyOrigin::Remote).map_err(|e| {
                    CliError::Invalid {
                        what: format!("--jwks {}", provider.name),
                        detail: e.to_string(),
                    }
                })?;
                keys.set(index, Arc::new(set));
            }
            (KeySource::Local(_), Some(_)) => {
                return Err(CliError::Invalid {
                    what: format!("--jwks {}", provider.name),
                    detail: String::from("this provider has local_jwks in the config"),
                })
            }
            _ => {}
        }
    }
    if let Some(unknown) = jwks
        .keys()
        .find(|n| !policy.providers.iter().any(|p| &p.name == *n))
    {
        return Err(CliError::Invalid {
            what: format!("--jwks {unknown}"),
            detail: String::from("no provider has that name"),
        });
    }
    Ok(keys)
}

fn read(path: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A parsed `validate` command line.
pub(super) struct ValidateCommand {
    files: Vec<String>,
}

pub(super) fn parse_validate(args: &mut Args<'_>, _: &CliEnv) -> Result<Command, CliError> {
    let mut files = Vec::new();
    while let Some(arg) = args.next()? {
        match arg {
            Arg::Operand(file) => files.push(file.to_owned()),
            // The format is found from the file; the switches only say what the reader expects.
            Arg::Flag(flag) if matches!(flag.name, "--istio" | "--envoy") => {}
            Arg::Flag(flag) => return Err(flag.unhandled()),
        }
    }
    if files.is_empty() {
        return Err(CliError::MissingFlag { flag: "FILE" });
    }
    Ok(Command::Validate(ValidateCommand { files }))
}

/// `meshgate validate FILE...`: every configuration found, ok or the error with its field.
pub(super) fn validate(command: &ValidateCommand, out: &mut dyn Write) -> Result<u8, CliError> {
    let files = &command.files;
    let mut failed = false;
    let mut report = String::new();
    for file in files {
        match validate_file(Path::new(file)) {
            Ok(found) => {
                for f in found {
                    match f.result {
                        Ok(policy) => report.push_str(&format!(
                            "ok    {file}: {}: {} providers, {} rules\n",
                            f.location,
                            policy.providers.len(),
                            policy.rules.len()
                        )),
                        Err(e) => {
                            failed = true;
                            report.push_str(&format!("error {file}: {}: {e}\n", f.location));
                        }
                    }
                }
            }
            Err(e) => {
                failed = true;
                report.push_str(&format!("error {e}\n"));
            }
        }
    }
    write_out(out, &report)?;
    Ok(u8::from(failed))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cli::tests::{env, run_args};
    use crate::issuer::test_keys::{shared_keyset, temp_dir, TEST_ISSUER};
    use crate::issuer::MintRequest;

    fn setup() -> (std::path::PathBuf, String, String) {
        let keys = shared_keyset();
        let dir = temp_dir("check");
        let config = json!({
            "providers": {"demo": {"issuer": TEST_ISSUER, "audiences": ["tools"], "local_jwks": {"inline": keys.public_jwks()}}},
            "rules": [
                {"id": "dags", "action": "allow", "hosts": ["airflow.internal"], "methods": ["GET"], "paths": ["/api/v1/dags"], "when": {"groups_any": ["data-eng"]}}
            ]
        });
        let path = dir.join("plugin.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let mint = |groups: &[&str]| {
            let mut req = MintRequest::new("alice", env().now);
            req.audiences = vec!["tools".into()];
            req.groups = groups.iter().map(|g| g.to_string()).collect();
            keys.mint(&req).unwrap()
        };
        (path, mint(&["data-eng"]), mint(&["finance"]))
    }

    #[test]
    fn check_explains_allow_and_deny_with_exit_codes() {
        let (config, good, finance) = setup();
        let config = config.to_str().unwrap();
        let url = "https://airflow.internal/api/v1/dags";
        let (code, out, err) = run_args(
            &["check", "--config", config, "--url", url, "--token", &good],
            &env(),
        );
        assert_eq!((code, err.as_str()), (0, ""), "{out}");
        assert!(out.starts_with("ALLOW 200 (rule_allowed)"), "{out}");
        assert!(out.contains("=> allow dags"), "{out}");

        let (code, out, _) = run_args(
            &[
                "check", "--config", config, "--url", url, "--token", &finance,
            ],
            &env(),
        );
        assert_eq!(code, 1);
        assert!(out.starts_with("DENY 403 (no_rule_matched)"), "{out}");
        assert!(
            out.contains("caller is in none of groups_any [`data-eng`]"),
            "{out}"
        );

        let (code, out, _) = run_args(
            &["check", "--config", config, "--url", url, "--json"],
            &env(),
        );
        assert_eq!(code, 1);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["code"], "token_missing");
        assert_eq!(json["rules"][0]["outcome"], "needs_caller");

        // Claims preview: no signature, same checks otherwise (here: expired).
        let claims = json!({"iss": TEST_ISSUER, "aud": "tools", "exp": env().now - 3600, "groups": ["data-eng"]}).to_string();
        let (code, out, _) = run_args(
            &[
                "check", "--config", config, "--url", url, "--claims", &claims,
            ],
            &env(),
        );
        assert_eq!(code, 1);
        assert!(out.starts_with("DENY 401 (token_expired)"), "{out}");
    }

    #[test]
    fn check_and_validate_report_bad_input() {
        let dir = temp_dir("validate");
        let bad = dir.join("bad.json");
        std::fs::write(
            &bad,
            r#"{"rules": [{"id": "a", "action": "allow", "paths": ["/x/{y"]}]}"#,
        )
        .unwrap();
        let bad = bad.to_str().unwrap();
        let (code, out, _) = run_args(&["validate", bad], &env());
        assert_eq!(code, 1);
        assert!(out.contains("`rules[0].paths[0]`"), "{out}");
        let (code, _, err) = run_args(&["check", "--config", bad, "--url", "http://a/"], &env());
        assert_eq!(code, 1);
        assert!(err.contains("`rules[0].paths[0]`"), "{err}");
        let (code, _, err) = run_args(&["check", "--config", bad], &env());
        assert_eq!(code, 2);
        assert!(err.contains("`--url` is required"), "{err}");
        let (code, out, _) = run_args(
            &["validate", "--istio", "../envoy/meshgate-demo.yaml"],
            &env(),
        );
        assert_eq!(code, 0, "{out}");
    }
}
