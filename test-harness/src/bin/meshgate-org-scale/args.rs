//! Command-line flags. `--quick` sets a smaller base; explicit flags override it wherever they
//! appear. Every value is bounded, so a typo cannot ask for a run that never ends.

use std::path::PathBuf;
use std::time::Duration;

use meshgate_test_harness::envoy::repo_root;
use meshgate_test_harness::orggen::{Nesting, OrgSpec};

pub const USAGE: &str = "\
usage: meshgate-org-scale [--quick] [--users N] [--groups N] [--entities N]
         [--nesting shallow|deep] [--seed N] [--huge-group[=N]] [--changes N] [--reloads N]
         [--concurrency N] [--deadline-s N] [--max-cp-rss-mib N] [--meshgate PATH]
         [--snapshot default|five]
         [--out FILE] [--backstage-json] [--keep] [--generate-only DIR]

Generates an organisation-scale catalog, serves it with the release `meshgate serve` to a real
Envoy running dist/meshgate.wasm, and measures catalog -> edge. Defaults: the issue's scale
(100,001 users, 10,004 groups, 50,000 owned entities, deep nesting), 10 changes, 100 reloads,
Envoy --concurrency 2, a 900 s deadline, out target/bench/org-scale.json.
--generate-only DIR writes the catalog (YAML files) to DIR and exits, for profiling the
control plane alone (`meshgate snapshot build --catalog DIR ...`).";

const MAX_USERS: usize = 5_000_000;
const MAX_GROUPS: usize = 1_000_000;
const MAX_ENTITIES: usize = 5_000_000;
const MAX_HUGE_GROUP: usize = 10_000_000;
const MAX_CHANGES: usize = 1_000;
const MAX_RELOADS: usize = 10_000;
const MAX_CONCURRENCY: usize = 64;
const MAX_DEADLINE_S: usize = 86_400;
const MAX_RSS_MIB: usize = 1_048_576;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub spec: OrgSpec,
    /// What the Envoy polls: `default` (the whole catalog) or `five` (a five-group view).
    pub snapshot: String,
    pub changes: usize,
    pub reloads: usize,
    pub concurrency: u32,
    /// The whole run stops measuring at this point and reports where it stood.
    pub deadline: Duration,
    /// The control plane is stopped when its RSS passes this.
    pub max_cp_rss_mib: u64,
    pub meshgate: PathBuf,
    pub out: PathBuf,
    pub backstage_json: bool,
    /// Keep the generated catalog and logs.
    pub keep: bool,
    /// Write the catalog here and stop.
    pub generate_only: Option<PathBuf>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("help requested")]
    Help,
    #[error("unknown option `{flag}`")]
    UnknownFlag { flag: String },
    #[error("option `{flag}` needs a value")]
    MissingValue { flag: String },
    #[error("option `{flag}` given twice")]
    Repeated { flag: String },
    #[error("option `{flag}`: `{value}` {reason}")]
    BadValue {
        flag: String,
        value: String,
        reason: String,
    },
}

/// The flags after the program name.
pub fn parse(args: &[String]) -> Result<Args, ArgsError> {
    let mut seen: Vec<String> = Vec::new();
    let mut values: Vec<(String, Option<String>)> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        if seen.contains(&flag) {
            return Err(ArgsError::Repeated { flag });
        }
        seen.push(flag.clone());
        let takes_value = match flag.as_str() {
            "-h" | "--help" => return Err(ArgsError::Help),
            "--quick" | "--backstage-json" | "--keep" | "--huge-group" => false,
            "--users" | "--groups" | "--entities" | "--nesting" | "--seed" | "--changes"
            | "--reloads" | "--concurrency" | "--deadline-s" | "--max-cp-rss-mib"
            | "--meshgate" | "--out" | "--snapshot" | "--generate-only" => true,
            _ => return Err(ArgsError::UnknownFlag { flag }),
        };
        let value = match (takes_value, inline) {
            (_, Some(value)) if flag != "--huge-group" && !takes_value => {
                return Err(ArgsError::BadValue {
                    flag,
                    value,
                    reason: "is not expected: the option takes no value".into(),
                })
            }
            (_, Some(value)) => Some(value),
            (true, None) => Some(
                rest.next()
                    .cloned()
                    .ok_or_else(|| ArgsError::MissingValue { flag: flag.clone() })?,
            ),
            (false, None) => None,
        };
        values.push((flag, value));
    }
    let quick = values.iter().any(|(flag, _)| flag == "--quick");
    let mut parsed = Args {
        spec: if quick {
            OrgSpec::quick()
        } else {
            OrgSpec::organisation()
        },
        changes: 10,
        reloads: if quick { 20 } else { 100 },
        concurrency: 2,
        deadline: Duration::from_secs(900),
        max_cp_rss_mib: 8 * 1024,
        meshgate: repo_root().join("target/release/meshgate"),
        out: repo_root().join("target/bench/org-scale.json"),
        backstage_json: false,
        keep: false,
        generate_only: None,
        snapshot: String::from("default"),
    };
    for (flag, value) in values {
        let given = value.is_some();
        let text = value.unwrap_or_default();
        let number = |min: usize, max: usize| -> Result<usize, ArgsError> {
            let bad = |reason: String| ArgsError::BadValue {
                flag: flag.clone(),
                value: text.clone(),
                reason,
            };
            let n: usize = text
                .parse()
                .map_err(|_| bad("is not a whole number".into()))?;
            if (min..=max).contains(&n) {
                Ok(n)
            } else {
                Err(bad(format!("is outside {min}..={max}")))
            }
        };
        match flag.as_str() {
            "--users" => parsed.spec.users = number(OrgSpec::MIN_USERS, MAX_USERS)?,
            "--groups" => parsed.spec.groups = number(OrgSpec::MIN_GROUPS, MAX_GROUPS)?,
            "--entities" => parsed.spec.entities = number(OrgSpec::MIN_ENTITIES, MAX_ENTITIES)?,
            "--nesting" => {
                parsed.spec.nesting =
                    text.parse::<Nesting>()
                        .map_err(|error| ArgsError::BadValue {
                            flag: flag.clone(),
                            value: text.clone(),
                            reason: format!("is not valid: {error}"),
                        })?;
            }
            "--seed" => {
                parsed.spec.seed = text.parse().map_err(|_| ArgsError::BadValue {
                    flag: flag.clone(),
                    value: text.clone(),
                    reason: "is not a 64-bit whole number".into(),
                })?;
            }
            "--huge-group" => {
                parsed.spec.huge_group_members = if !given {
                    OrgSpec::HUGE_GROUP_MEMBERS
                } else {
                    number(1, MAX_HUGE_GROUP)?
                };
            }
            "--changes" => parsed.changes = number(0, MAX_CHANGES)?,
            "--reloads" => parsed.reloads = number(0, MAX_RELOADS)?,
            "--concurrency" => {
                parsed.concurrency = u32::try_from(number(1, MAX_CONCURRENCY)?).unwrap_or(2);
            }
            "--deadline-s" => {
                parsed.deadline = Duration::from_secs(number(10, MAX_DEADLINE_S)? as u64);
            }
            "--max-cp-rss-mib" => parsed.max_cp_rss_mib = number(64, MAX_RSS_MIB)? as u64,
            "--meshgate" | "--out" | "--generate-only" => {
                if text.is_empty() || text.contains('\0') {
                    return Err(ArgsError::BadValue {
                        flag,
                        value: text,
                        reason: "is not a path".into(),
                    });
                }
                if flag == "--out" {
                    parsed.out = PathBuf::from(text);
                } else if flag == "--generate-only" {
                    parsed.generate_only = Some(PathBuf::from(text));
                } else {
                    parsed.meshgate = PathBuf::from(text);
                }
            }
            "--snapshot" => match text.as_str() {
                "default" | "five" => parsed.snapshot = text,
                _ => {
                    return Err(ArgsError::BadValue {
                        flag,
                        value: text,
                        reason: "is not `default` or `five`".into(),
                    })
                }
            },
            "--backstage-json" => parsed.backstage_json = true,
            "--keep" => parsed.keep = true,
            _ => {}
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Result<Args, ArgsError> {
        let list: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        parse(&list)
    }

    #[test]
    fn defaults_are_the_issue_scale_and_quick_is_smaller() {
        let full = args("").unwrap();
        assert_eq!(full.spec, OrgSpec::organisation());
        assert_eq!((full.changes, full.reloads, full.concurrency), (10, 100, 2));
        let quick = args("--quick").unwrap();
        assert_eq!(quick.spec.users, 10_001);
        // Explicit flags win wherever --quick stands.
        let mixed = args("--users 500 --quick --nesting shallow --huge-group").unwrap();
        assert_eq!(mixed.spec.users, 500);
        assert_eq!(mixed.spec.nesting, Nesting::Shallow);
        assert_eq!(mixed.spec.huge_group_members, OrgSpec::HUGE_GROUP_MEMBERS);
        let inline = args("--huge-group=12 --out=x.json --reloads=0").unwrap();
        assert_eq!(inline.spec.huge_group_members, 12);
        assert_eq!(inline.out, PathBuf::from("x.json"));
        assert_eq!(inline.reloads, 0);
        assert_eq!(full.generate_only, None);
        let only = args("--quick --generate-only /tmp/org").unwrap();
        assert_eq!(only.generate_only, Some(PathBuf::from("/tmp/org")));
    }

    #[test]
    fn bad_flags_are_named() {
        let bad = |text: &str, flag: &str| match args(text) {
            Err(ArgsError::BadValue { flag: got, .. })
            | Err(ArgsError::MissingValue { flag: got })
            | Err(ArgsError::Repeated { flag: got })
            | Err(ArgsError::UnknownFlag { flag: got }) => assert_eq!(got, flag, "{text}"),
            other => panic!("{text}: {other:?}"),
        };
        bad("--users", "--users"); // truncated
        bad("--users=", "--users"); // empty
        bad("--users 10", "--users"); // below the adversarial minimum
        bad("--users 99999999999999999999999", "--users"); // oversized
        bad("--users 5000001", "--users");
        bad("--users -5", "--users"); // hostile
        bad("--users 1e5", "--users");
        bad("--snapshot edge", "--snapshot");
        bad("--snapshot", "--snapshot");
        bad("--users 100 --users 200", "--users"); // duplicated
        bad("--nesting diagonal", "--nesting");
        bad("--concurrency 0", "--concurrency");
        bad("--deadline-s 5", "--deadline-s");
        bad("--keep=yes", "--keep");
        bad("--huge-group=", "--huge-group");
        bad("--frobnicate", "--frobnicate");
        bad("--seed 0x10", "--seed");
        bad("--generate-only", "--generate-only");
        bad("--generate-only=", "--generate-only");
        assert_eq!(args("--help"), Err(ArgsError::Help));
        assert!(matches!(
            parse(&["--out".to_owned(), String::new()]),
            Err(ArgsError::BadValue { .. })
        ));
    }
}
