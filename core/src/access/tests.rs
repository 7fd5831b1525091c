//! The access policy file (good and bad), and every refusal and auto-approval condition of
//! the decisions, over a small in-memory catalog.

use serde_json::{json, Value};

use super::*;

/// org ─┬─ data ─┬─ data-eng ── ml
///      │        └─ analysts
///      ├─ data-eng-friends, finance, platform, sre, release, ops
fn catalog() -> MemoryFacts {
    MemoryFacts::new()
        .group("org", &[])
        .group("data", &["org"])
        .group("data-eng", &["data"])
        .group("ml", &["data-eng"])
        .group("analysts", &["data"])
        .group("data-eng-friends", &["org"])
        .group("finance", &["org"])
        .group("platform", &["org"])
        .group("sre", &["org"])
        .group("release", &["org"])
        .group("ops", &["org"])
        .user("alice", &["data-eng"])
        .user("bob", &["data-eng"])
        .user("erin", &["ml"])
        .user("carol", &["analysts"])
        .user("frank", &["data"])
        .user("gina", &["finance"])
        .user("hank", &["data-eng-friends"])
        .user("olga", &["ops"])
        .user("pat", &["platform"])
        .user("sam", &["sre"])
        .user("sue", &["sre"])
        .user("tom", &["sre"])
        .user("rita", &["release"])
        .user("ursula", &[])
        .resource("airflow.dag", "etl_daily", &["data-eng"])
        .resource("airflow.dag", "prod_load", &["data-eng"])
        .resource("airflow.dag", "staging_load", &["data-eng"])
        .resource("airflow.dag", "orphan", &[])
        .resource("airflow.dag", "personal", &["user:default/ursula"])
        .resource("buildkite.pipeline", "acme/deploy", &["release"])
        .annotate(&dag("prod_load"), "meshgate.io/environment", "production")
        .annotate(&dag("staging_load"), "meshgate.io/environment", "staging")
}

fn dag(id: &str) -> AccessTarget {
    AccessTarget::Resource {
        kind: "airflow.dag".into(),
        id: id.into(),
    }
}

fn group(name: &str) -> AccessTarget {
    AccessTarget::Group(name.into())
}

fn deploy() -> AccessTarget {
    AccessTarget::Resource {
        kind: "buildkite.pipeline".into(),
        id: "acme/deploy".into(),
    }
}

fn policy_json() -> Value {
    json!({
        "version": 1,
        "admins": ["group:default/platform"],
        "requestable": [
            {
                "name": "airflow-dags",
                "target": {"resource": {"kind": "airflow.dag"}},
                "requesters": ["analysts", "data", "data-eng-friends", "finance", "group:default/ml", "platform"],
                "max_duration": "8h",
                "reason": "required",
                "approvals": 1,
                "approvers": "owners",
                "auto_approve": [
                    {"name": "short-dev-runs", "max_duration": "1h", "requester_near_owner": true,
                     "unless_annotation": {"meshgate.io/environment": "production"}},
                    {"name": "friends", "max_duration": "30m", "requester_in": ["data-eng-friends"]}
                ]
            },
            {
                "name": "deploy",
                "target": {"resource": {"kind": "buildkite.pipeline", "id": "acme/deploy"}},
                "max_duration": "PT1H",
                "reason": "optional",
                "approvals": 2,
                "approvers": ["group:default/sre"]
            },
            {
                "name": "data-eng-membership",
                "target": {"group": "Data-Eng"},
                "max_duration": "1d"
            }
        ]
    })
}

fn policy() -> AccessPolicy {
    AccessPolicy::from_value(&policy_json()).unwrap()
}

fn draft(
    requester: &str,
    target: AccessTarget,
    duration_s: u64,
    reason: Option<&str>,
) -> RequestDraft {
    RequestDraft {
        requester: requester.into(),
        target,
        duration_s,
        reason: reason.map(str::to_owned),
    }
}

#[test]
fn the_example_file_compiles_with_its_defaults() {
    let policy = policy();
    assert_eq!(policy.admins.len(), 1);
    assert_eq!(policy.requestable.len(), 3);
    let dags = &policy.requestable[0];
    assert_eq!(
        dags.target,
        TargetSpec::Resource {
            kind: "airflow.dag".into(),
            id: None
        }
    );
    assert_eq!(dags.max_duration_s, 8 * 3600);
    assert!(dags.reason_required);
    assert_eq!(dags.approvers, ApproverSpec::Owners);
    assert_eq!(dags.auto_approve[0].max_duration_s, Some(3600));
    assert!(dags.auto_approve[0].requester_near_owner);
    assert_eq!(
        dags.auto_approve[0].unless_annotation,
        vec![("meshgate.io/environment".into(), "production".into())]
    );
    let deploy = &policy.requestable[1];
    assert!(!deploy.reason_required);
    assert_eq!(deploy.approvals, 2);
    let membership = &policy.requestable[2];
    assert_eq!(
        membership.target,
        TargetSpec::Group(crate::groupref::GroupName::parse("Data-Eng").unwrap())
    );
    // Defaults: reason required, one approval, the owners approve, anyone may ask.
    assert!(membership.reason_required);
    assert_eq!(membership.approvals, 1);
    assert_eq!(membership.approvers, ApproverSpec::Owners);
    assert_eq!(membership.requesters, None);
    assert!(membership.auto_approve.is_empty());
    // JSON text and a converted value compile alike.
    let from_text = AccessPolicy::from_json(policy_json().to_string().as_bytes()).unwrap();
    assert_eq!(from_text, policy);
}

/// `requestable[0]` replaced by the example entry with `field` set to `value`.
fn with_entry(field: &str, value: Value) -> Value {
    let mut config = policy_json();
    config["requestable"][0][field] = value;
    config
}

fn with_auto(field: &str, value: Value) -> Value {
    let mut config = policy_json();
    config["requestable"][0]["auto_approve"][0][field] = value;
    config
}

/// Every refusal of the file, as the one line an operator reads.
#[test]
fn bad_files_are_refused_with_one_line_naming_the_field() {
    let mut duplicate = policy_json();
    duplicate["requestable"][2]["name"] = json!("airflow-dags");
    let mut duplicate_auto = policy_json();
    duplicate_auto["requestable"][0]["auto_approve"][1]["name"] = json!("short-dev-runs");
    let mut no_version = policy_json();
    no_version.as_object_mut().unwrap().remove("version");
    let mut no_max = policy_json();
    no_max["requestable"][1]
        .as_object_mut()
        .unwrap()
        .remove("max_duration");
    let cases: Vec<(Value, &str)> = vec![
        (json!(null), "`(root)`: invalid type: null, expected an access policy: an object with `version` and `requestable`"),
        (json!([]), "`(root)`: invalid type: sequence, expected an access policy: an object with `version` and `requestable`"),
        (
            json!([1, [], []]),
            "`(root)`: invalid type: sequence, expected an access policy: an object with `version` and `requestable`",
        ),
        (json!({}), "`(root)`: missing field `version`"),
        (no_version, "`(root)`: missing field `version`"),
        (json!({"version": 2, "requestable": []}), "`version`: version 2 is not supported; this meshgate reads version 1"),
        (json!({"version": 1, "requestable": []}), "`requestable`: must not be empty"),
        (json!({"version": 1}), "`(root)`: missing field `requestable`"),
        (
            json!({"version": 1, "requestable": [], "extra": 1}),
            "`extra`: unknown field `extra`, expected one of `version`, `admins`, `requestable`",
        ),
        (duplicate, "`requestable[2].name`: `airflow-dags` is already the name of requestable[0]"),
        (
            duplicate_auto,
            "`requestable[0].auto_approve[1].name`: `short-dev-runs` is already the name of requestable[0].auto_approve[0]",
        ),
        (with_entry("name", json!("")), "`requestable[0].name`: names are 1-63 characters of `a-z`, `0-9` and `-`"),
        (with_entry("name", json!("Airflow")), "`requestable[0].name`: names are 1-63 characters of `a-z`, `0-9` and `-`"),
        (with_entry("name", json!("a".repeat(64))), "`requestable[0].name`: names are 1-63 characters of `a-z`, `0-9` and `-`"),
        (with_entry("name", json!("../etc")), "`requestable[0].name`: names are 1-63 characters of `a-z`, `0-9` and `-`"),
        (with_entry("name", json!("dags\u{202E}")), "`requestable[0].name`: names are 1-63 characters of `a-z`, `0-9` and `-`"),
        (with_entry("name", json!(7)), "`requestable[0].name`: invalid type: integer `7`, expected a string"),
        (with_entry("max_duration", json!("2x")), "`requestable[0].max_duration`: `2x` is not a duration (`15m`, `1h30m`, `1d` or `PT1H`)"),
        (with_entry("max_duration", json!("")), "`requestable[0].max_duration`: `` is empty (`15m`, `1h30m`, `1d` or `PT1H`)"),
        (with_entry("max_duration", json!("0s")), "`requestable[0].max_duration`: must be more than 0"),
        (with_entry("max_duration", json!("31d")), "`requestable[0].max_duration`: `31d` is more than 30d"),
        (with_entry("max_duration", json!("30d1s")), "`requestable[0].max_duration`: `30d1s` is more than 30d"),
        (with_entry("max_duration", json!(3600)), "`requestable[0].max_duration`: invalid type: integer `3600`, expected a string"),
        (no_max, "`requestable[1]`: missing field `max_duration`"),
        (with_entry("approvals", json!(0)), "`requestable[0].approvals`: must be between 1 and 10"),
        (with_entry("approvals", json!(11)), "`requestable[0].approvals`: must be between 1 and 10"),
        (with_entry("approvals", json!(4096)), "`requestable[0].approvals`: must be between 1 and 10"),
        (with_entry("approvals", json!(-1)), "`requestable[0].approvals`: invalid value: integer `-1`, expected u64"),
        (with_entry("reason", json!("maybe")), "`requestable[0].reason`: unknown variant `maybe`, expected `required` or `optional`"),
        (with_entry("approvers", json!("admins")), "`requestable[0].approvers`: must be `owners` or a list of groups"),
        (with_entry("approvers", json!(1)), "`requestable[0].approvers`: must be `owners` or a list of groups"),
        (with_entry("approvers", json!([])), "`requestable[0].approvers`: must not be empty"),
        (with_entry("approvers", json!(["sre", 1])), "`requestable[0].approvers[1]`: must be `owners` or a list of groups"),
        (
            with_entry("approvers", json!(["sre", "user:default/bob"])),
            "`requestable[0].approvers[1]`: `user:default/bob` is not a group name or a group entity ref (`group:namespace/name`)",
        ),
        (with_entry("requesters", json!([])), "`requestable[0].requesters`: must not be empty"),
        (
            with_entry("requesters", json!(["data eng"])),
            "`requestable[0].requesters[0]`: `data eng` is not a group name or a group entity ref (`group:namespace/name`)",
        ),
        (
            with_entry("requesters", json!(["group:default/a\nb"])),
            "`requestable[0].requesters[0]`: `group:default/a\nb` is not a group name or a group entity ref (`group:namespace/name`)",
        ),
        (
            with_entry("requesters", json!(["a/b/c"])),
            "`requestable[0].requesters[0]`: `a/b/c` is not a group name or a group entity ref (`group:namespace/name`)",
        ),
        (with_entry("target", json!({})), "`requestable[0].target`: set exactly one of `resource` and `group`"),
        (
            with_entry("target", json!({"group": "data-eng", "resource": {"kind": "airflow.dag"}})),
            "`requestable[0].target`: set exactly one of `resource` and `group`",
        ),
        (
            with_entry("target", json!({"user": "alice"})),
            "`requestable[0].target.user`: unknown field `user`, expected `resource` or `group`",
        ),
        (
            with_entry("target", json!({"group": "component:x"})),
            "`requestable[0].target.group`: `component:x` is not a group name or a group entity ref (`group:namespace/name`)",
        ),
        (
            with_entry("target", json!({"resource": {"kind": "airflow dag"}})),
            "`requestable[0].target.resource.kind`: a resource kind such as `airflow.dag`: 1-128 characters, no spaces",
        ),
        (
            with_entry("target", json!({"resource": {"kind": ""}})),
            "`requestable[0].target.resource.kind`: a resource kind such as `airflow.dag`: 1-128 characters, no spaces",
        ),
        (
            with_entry("target", json!({"resource": {"kind": "airflow.dag", "id": ""}})),
            "`requestable[0].target.resource.id`: a resource id: 1-512 characters, no spaces or control characters",
        ),
        (
            with_entry("target", json!({"resource": {"kind": "airflow.dag", "id": "etl\u{0}"}})),
            "`requestable[0].target.resource.id`: a resource id: 1-512 characters, no spaces or control characters",
        ),
        (
            with_entry("target", json!({"resource": {"kind": "airflow.dag", "owner": "x"}})),
            "`requestable[0].target.resource.owner`: unknown field `owner`, expected `kind` or `id`",
        ),
        (
            with_entry("unknown", json!(true)),
            "`requestable[0].unknown`: unknown field `unknown`, expected one of `name`, `target`, `requesters`, `max_duration`, `reason`, `approvals`, `approvers`, `auto_approve`",
        ),
        (with_auto("name", json!("Short")), "`requestable[0].auto_approve[0].name`: names are 1-63 characters of `a-z`, `0-9` and `-`"),
        (
            with_auto("max_duration", json!("9h")),
            "`requestable[0].auto_approve[0].max_duration`: `9h` is more than the entry's max_duration `8h`",
        ),
        (with_auto("max_duration", json!("soon")), "`requestable[0].auto_approve[0].max_duration`: `soon` is not a duration (`15m`, `1h30m`, `1d` or `PT1H`)"),
        (with_auto("requester_in", json!([])), "`requestable[0].auto_approve[0].requester_in`: must not be empty"),
        (
            with_auto("requester_near_owner", json!("yes")),
            "`requestable[0].auto_approve[0].requester_near_owner`: invalid type: string \"yes\", expected a boolean",
        ),
        (with_auto("unless_annotation", json!({})), "`requestable[0].auto_approve[0].unless_annotation`: must not be empty"),
        (
            with_auto("unless_annotation", json!({"bad key": "x"})),
            "`requestable[0].auto_approve[0].unless_annotation`: an annotation key: 1-317 characters, no spaces or control characters",
        ),
        (
            with_auto("unless_annotation", json!({"env": "prod\r\n"})),
            "`requestable[0].auto_approve[0].unless_annotation.env`: an annotation value: at most 1024 characters, no control characters",
        ),
        (
            with_auto("requester_is_owner", json!(true)),
            "`requestable[0].auto_approve[0].requester_is_owner`: unknown field `requester_is_owner`, expected one of `name`, `max_duration`, `requester_in`, `requester_near_owner`, `unless_annotation`",
        ),
        (
            json!({"version": 1, "admins": ["user:default/pat"], "requestable": []}),
            "`admins[0]`: `user:default/pat` is not a group name or a group entity ref (`group:namespace/name`)",
        ),
    ];
    for (config, expected) in &cases {
        let from_value = AccessPolicy::from_value(config).unwrap_err().to_string();
        assert_eq!(from_value, *expected, "{config}");
        let from_text = AccessPolicy::from_json(config.to_string().as_bytes())
            .unwrap_err()
            .to_string();
        // Text adds serde_json's position to shape errors; the field and words are the same.
        assert!(
            from_text.starts_with(*expected),
            "{from_text} vs {expected}"
        );
    }
}

/// Input that is not a policy at all: empty, truncated, duplicated keys, oversized, nested.
#[test]
fn bad_text_is_refused_without_panicking() {
    let example = policy_json().to_string();
    let truncated = &example[..example.len() / 2];
    // `approvers` is read as any JSON value: serde_json's depth limit stops the nesting.
    let deep = format!(
        r#"{{"version": 1, "requestable": [{{"name": "a", "approvers": {}{}}}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let oversized = format!(
        r#"{{"version": 1, "admins": ["{}"], "requestable": []}}"#,
        "a".repeat(MAX_POLICY_BYTES)
    );
    let cases: Vec<(&[u8], &str)> = vec![
        (
            b"",
            "`(root)`: EOF while parsing a value at line 1 column 0",
        ),
        (
            b"   ",
            "`(root)`: EOF while parsing a value at line 1 column 3",
        ),
        (b" [1, [], []]", "`(root)`: invalid type: sequence"),
        (
            b"{}",
            "`(root)`: missing field `version` at line 1 column 2",
        ),
        (b"\xff\xfe", "`(root)`: expected value at line 1 column 1"),
        (truncated.as_bytes(), "EOF while parsing"),
        (
            br#"{"version": 1, "version": 1, "requestable": []}"#,
            "duplicate field `version`",
        ),
        (
            br#"{"version": 1, "requestable": []} trailing"#,
            "`(root)`: trailing characters at line 1 column 35",
        ),
        (deep.as_bytes(), "recursion limit exceeded"),
        (
            oversized.as_bytes(),
            "`(root)`: is 1048625 bytes; an access policy is at most 1048576 bytes",
        ),
    ];
    for (text, expected) in cases {
        let err = AccessPolicy::from_json(text).unwrap_err().to_string();
        assert!(err.contains(expected), "{err} vs {expected}");
        assert!(!err.contains('\n'), "{err}");
    }
    // A value converted from YAML is measured without writing it out.
    let big = json!({"version": 1, "admins": ["a".repeat(MAX_POLICY_BYTES)], "requestable": []});
    let err = AccessPolicy::from_value(&big).unwrap_err();
    assert!(matches!(err.reason, PolicyReason::TooLarge { .. }), "{err}");
    assert_eq!(err.path, "(root)");
}

#[test]
fn requests_are_refused_with_a_stable_code() {
    let policy = policy();
    let facts = catalog();
    let two_hours = 7200;
    let cases: Vec<(RequestDraft, &str)> = vec![
        (
            draft(
                "group:default/analysts",
                dag("etl_daily"),
                two_hours,
                Some("x"),
            ),
            "invalid_user",
        ),
        (
            draft("", dag("etl_daily"), two_hours, Some("x")),
            "invalid_user",
        ),
        (
            draft("carol\n", dag("etl_daily"), two_hours, Some("x")),
            "invalid_user",
        ),
        (
            draft(
                "carol",
                AccessTarget::Resource {
                    kind: "airflow dag".into(),
                    id: "etl_daily".into(),
                },
                two_hours,
                Some("x"),
            ),
            "invalid_target",
        ),
        (
            draft("carol", group("user:default/alice"), two_hours, Some("x")),
            "invalid_target",
        ),
        (
            draft("zoe", dag("etl_daily"), two_hours, Some("x")),
            "unknown_requester",
        ),
        (
            draft(
                "carol",
                AccessTarget::Resource {
                    kind: "github.repo".into(),
                    id: "x".into(),
                },
                two_hours,
                Some("x"),
            ),
            "not_requestable",
        ),
        (
            draft("carol", group("analysts"), two_hours, Some("x")),
            "not_requestable",
        ),
        (
            draft(
                "carol",
                AccessTarget::Resource {
                    kind: "buildkite.pipeline".into(),
                    id: "acme/other".into(),
                },
                60,
                None,
            ),
            "not_requestable",
        ),
        (
            draft("carol", dag("etl_missing"), two_hours, Some("x")),
            "unknown_target",
        ),
        (
            draft("olga", dag("etl_daily"), two_hours, Some("x")),
            "requester_not_allowed",
        ),
        (
            draft("ursula", dag("etl_daily"), two_hours, Some("x")),
            "requester_not_allowed",
        ),
        (
            draft("alice", group("data-eng"), two_hours, Some("x")),
            "already_has_access",
        ),
        (
            draft("erin", group("data-eng"), two_hours, Some("x")),
            "already_has_access",
        ),
        (
            draft("erin", dag("etl_daily"), two_hours, Some("x")),
            "already_has_access",
        ),
        (draft("rita", deploy(), 60, None), "already_has_access"),
        (
            draft("carol", dag("etl_daily"), 0, Some("x")),
            "duration_invalid",
        ),
        (
            draft("carol", dag("etl_daily"), 8 * 3600 + 1, Some("x")),
            "duration_over_maximum",
        ),
        (
            draft("carol", deploy(), 3601, None),
            "duration_over_maximum",
        ),
        (
            draft("carol", dag("etl_daily"), two_hours, None),
            "reason_required",
        ),
        (
            draft("carol", dag("etl_daily"), two_hours, Some("  \t ")),
            "reason_required",
        ),
        (
            draft(
                "carol",
                dag("etl_daily"),
                two_hours,
                Some(&"x".repeat(1001)),
            ),
            "reason_invalid",
        ),
        (
            draft("carol", dag("etl_daily"), two_hours, Some("line\nbreak")),
            "reason_invalid",
        ),
        (
            draft("carol", dag("etl_daily"), two_hours, Some("esc \u{1b}[31m")),
            "reason_invalid",
        ),
        (
            draft(
                "carol",
                dag("etl_daily"),
                two_hours,
                Some("fix \u{202E}lanigiro"),
            ),
            "reason_invalid",
        ),
        (
            draft("carol", dag("orphan"), two_hours, Some("x")),
            "no_approvers",
        ),
    ];
    for (draft, code) in cases {
        let refusal = assess(&policy, &draft, &facts).unwrap_err();
        assert_eq!(refusal.code(), code, "{draft:?}: {refusal}");
    }
}

#[test]
fn requests_that_may_be_made_wait_for_the_right_approvers() {
    let policy = policy();
    let facts = catalog();
    let data_eng = || Approvers::Owners {
        owners: vec!["group:default/data-eng".into()],
    };
    let cases: Vec<(RequestDraft, Assessment)> = vec![
        (
            draft(
                "Carol",
                dag("etl_daily"),
                7200,
                Some("rerun after the outage"),
            ),
            Assessment::Pending {
                entry: "airflow-dags".into(),
                approvers: data_eng(),
                approvals_needed: 1,
            },
        ),
        (
            draft(
                "user:default/carol",
                dag("personal"),
                7200,
                Some(&"x".repeat(1000)),
            ),
            Assessment::Pending {
                entry: "airflow-dags".into(),
                approvers: Approvers::Owners {
                    owners: vec!["user:default/ursula".into()],
                },
                approvals_needed: 1,
            },
        ),
        (
            draft("carol", deploy(), 3600, None),
            Assessment::Pending {
                entry: "deploy".into(),
                approvers: Approvers::Groups {
                    groups: vec!["group:default/sre".into()],
                },
                approvals_needed: 2,
            },
        ),
        // A group without catalog owners is approved by its own members.
        (
            draft(
                "carol",
                group("group:default/DATA-ENG"),
                3600,
                Some("on call"),
            ),
            Assessment::Pending {
                entry: "data-eng-membership".into(),
                approvers: data_eng(),
                approvals_needed: 1,
            },
        ),
    ];
    for (draft, expected) in cases {
        assert_eq!(assess(&policy, &draft, &facts), Ok(expected), "{draft:?}");
    }
    // A group the catalog names owners for is approved by them.
    let facts = catalog().group_owners("data-eng", &["platform"]);
    assert_eq!(
        assess(
            &policy,
            &draft("carol", group("data-eng"), 60, Some("x")),
            &facts
        ),
        Ok(Assessment::Pending {
            entry: "data-eng-membership".into(),
            approvers: Approvers::Owners {
                owners: vec!["group:default/platform".into()]
            },
            approvals_needed: 1,
        })
    );
}

/// One entry over `airflow.dag` (max 8h, reason optional) with one auto-approve rule.
fn auto_policy(rule: Value) -> AccessPolicy {
    let mut named = json!({"name": "rule"});
    if let (Some(named), Some(rule)) = (named.as_object_mut(), rule.as_object()) {
        named.extend(rule.clone());
    }
    AccessPolicy::from_value(&json!({
        "version": 1,
        "requestable": [{
            "name": "dags",
            "target": {"resource": {"kind": "airflow.dag"}},
            "max_duration": "8h",
            "reason": "optional",
            "auto_approve": [named]
        }]
    }))
    .unwrap()
}

/// Each condition on its own: holds (auto-approved) or fails (pending), one row each.
#[test]
fn each_auto_approve_condition_decides() {
    let facts = catalog();
    let near = json!({"requester_near_owner": true});
    let friends = json!({"requester_in": ["data-eng-friends"]});
    let not_prod = json!({"unless_annotation": {"meshgate.io/environment": "production"}});
    let short = json!({"max_duration": "1h"});
    let cases: Vec<(&str, &Value, &str, &str, u64, bool)> = vec![
        (
            "duration at the limit",
            &short,
            "carol",
            "etl_daily",
            3600,
            true,
        ),
        (
            "duration over the limit",
            &short,
            "carol",
            "etl_daily",
            3601,
            false,
        ),
        ("in the group", &friends, "hank", "etl_daily", 7200, true),
        (
            "not in the group",
            &friends,
            "carol",
            "etl_daily",
            7200,
            false,
        ),
        (
            "sibling of the owner",
            &near,
            "carol",
            "etl_daily",
            7200,
            true,
        ),
        (
            "parent of the owner",
            &near,
            "frank",
            "etl_daily",
            7200,
            true,
        ),
        (
            "far from the owner",
            &near,
            "gina",
            "etl_daily",
            7200,
            false,
        ),
        ("a user owns it", &near, "carol", "personal", 7200, false),
        ("no annotation", &not_prod, "gina", "etl_daily", 7200, true),
        (
            "another value",
            &not_prod,
            "gina",
            "staging_load",
            7200,
            true,
        ),
        (
            "annotated production",
            &not_prod,
            "gina",
            "prod_load",
            7200,
            false,
        ),
    ];
    for (name, rule, requester, id, duration_s, approved) in cases {
        let policy = auto_policy(rule.clone());
        let outcome = assess(
            &policy,
            &draft(requester, dag(id), duration_s, None),
            &facts,
        )
        .unwrap();
        assert_eq!(
            matches!(outcome, Assessment::AutoApproved { ref condition, .. } if condition == "rule"),
            approved,
            "{name}: {outcome:?}"
        );
    }
}

/// Conditions combine: all must hold, and the first rule that holds is the one named.
#[test]
fn auto_approve_takes_the_first_rule_whose_conditions_all_hold() {
    let policy = policy();
    let facts = catalog();
    let cases: Vec<(RequestDraft, Option<&str>)> = vec![
        (
            draft("carol", dag("etl_daily"), 3600, Some("x")),
            Some("short-dev-runs"),
        ),
        (draft("carol", dag("etl_daily"), 3601, Some("x")), None),
        (draft("carol", dag("prod_load"), 600, Some("x")), None),
        (draft("gina", dag("etl_daily"), 600, Some("x")), None),
        (
            draft("hank", dag("etl_daily"), 1800, Some("x")),
            Some("friends"),
        ),
        (
            draft("hank", dag("prod_load"), 1800, Some("x")),
            Some("friends"),
        ),
        (draft("hank", dag("etl_daily"), 1801, Some("x")), None),
        // Auto-approval still needs a catalog user, a reason where required, and so on.
        (draft("carol", dag("etl_daily"), 600, None), None),
        // and needs no approvers.
        (
            draft("hank", dag("orphan"), 600, Some("x")),
            Some("friends"),
        ),
    ];
    for (draft, condition) in cases {
        let outcome = assess(&policy, &draft, &facts);
        let got = match &outcome {
            Ok(Assessment::AutoApproved { entry, condition }) => {
                assert_eq!(entry, "airflow-dags");
                Some(condition.as_str())
            }
            _ => None,
        };
        assert_eq!(got, condition, "{draft:?}: {outcome:?}");
    }
}

fn pending(
    requester: &str,
    target: AccessTarget,
    entry: &str,
    approvals: &[&str],
) -> PendingRequest {
    PendingRequest {
        requester: requester.into(),
        target,
        entry: entry.into(),
        approvals: approvals.iter().map(|a| (*a).to_owned()).collect(),
    }
}

#[test]
fn reviews_count_once_per_approver_and_one_deny_decides() {
    use ReviewVerdict::{Approve, Deny};
    let policy = policy();
    let facts = catalog();
    let carol_dag = || pending("carol", dag("etl_daily"), "airflow-dags", &[]);
    let carol_deploy = |approvals: &[&str]| pending("carol", deploy(), "deploy", approvals);
    let cases: Vec<(
        PendingRequest,
        &str,
        ReviewVerdict,
        Result<ReviewOutcome, &str>,
    )> = vec![
        (carol_dag(), "carol", Approve, Err("self_review")),
        (carol_dag(), "User:Default/Carol", Deny, Err("self_review")),
        (carol_dag(), "gina", Approve, Err("not_an_approver")),
        // Admins are not implicit approvers.
        (carol_dag(), "pat", Approve, Err("not_an_approver")),
        (carol_dag(), "", Approve, Err("invalid_user")),
        (
            carol_dag(),
            "alice",
            Approve,
            Ok(ReviewOutcome::Approved { approvals: 1 }),
        ),
        (carol_dag(), "alice", Deny, Ok(ReviewOutcome::Denied)),
        // A member of a child group of the owner is an owner too.
        (
            carol_dag(),
            "erin",
            Approve,
            Ok(ReviewOutcome::Approved { approvals: 1 }),
        ),
        (
            pending("carol", dag("personal"), "airflow-dags", &[]),
            "ursula",
            Approve,
            Ok(ReviewOutcome::Approved { approvals: 1 }),
        ),
        (
            pending("carol", dag("personal"), "airflow-dags", &[]),
            "alice",
            Approve,
            Err("not_an_approver"),
        ),
        (
            pending("carol", dag("etl_daily"), "airflow-dags", &["bob"]),
            "alice",
            Approve,
            Err("already_decided"),
        ),
        (
            pending("carol", dag("etl_daily"), "gone", &[]),
            "alice",
            Approve,
            Err("unknown_entry"),
        ),
        (
            pending("carol", dag("etl_daily"), "deploy", &[]),
            "sam",
            Approve,
            Err("unknown_entry"),
        ),
        // Named approvers: owners are not approvers unless listed.
        (carol_deploy(&[]), "rita", Approve, Err("not_an_approver")),
        (
            carol_deploy(&[]),
            "sam",
            Approve,
            Ok(ReviewOutcome::StillPending {
                approvals: 1,
                needed: 2,
            }),
        ),
        (
            carol_deploy(&["sam"]),
            "sam",
            Approve,
            Err("already_reviewed"),
        ),
        (
            carol_deploy(&["sam"]),
            "user:default/SAM",
            Deny,
            Err("already_reviewed"),
        ),
        (
            carol_deploy(&["Sam", "user:default/sam"]),
            "sue",
            Approve,
            Ok(ReviewOutcome::Approved { approvals: 2 }),
        ),
        (
            carol_deploy(&["sam"]),
            "sue",
            Deny,
            Ok(ReviewOutcome::Denied),
        ),
        (
            carol_deploy(&["sam", "sue"]),
            "tom",
            Approve,
            Err("already_decided"),
        ),
        // A stored approval by the requester (never made through `review`) does not count.
        (
            carol_deploy(&["carol"]),
            "sam",
            Approve,
            Ok(ReviewOutcome::StillPending {
                approvals: 1,
                needed: 2,
            }),
        ),
    ];
    for (request, reviewer, verdict, expected) in cases {
        let outcome = review(&policy, &request, reviewer, &facts, verdict);
        assert_eq!(
            outcome.as_ref().map_err(Refusal::code),
            expected.as_ref().map_err(|code| *code),
            "{reviewer} {verdict:?} {request:?}: {outcome:?}"
        );
    }
}

#[test]
fn grants_are_revoked_by_the_grantee_admins_approvers_and_owners() {
    let policy = policy();
    let facts = catalog();
    let grant = |grantee: &str, target: AccessTarget, entry: &str| GrantRef {
        grantee: grantee.into(),
        target,
        entry: entry.into(),
    };
    let cases: Vec<(GrantRef, &str, Result<RevokeRight, &str>)> = vec![
        (
            grant("carol", dag("etl_daily"), "airflow-dags"),
            "Carol",
            Ok(RevokeRight::Grantee),
        ),
        (
            grant("carol", dag("etl_daily"), "airflow-dags"),
            "pat",
            Ok(RevokeRight::Admin),
        ),
        (
            grant("carol", dag("etl_daily"), "airflow-dags"),
            "alice",
            Ok(RevokeRight::Approver),
        ),
        (
            grant("carol", dag("etl_daily"), "airflow-dags"),
            "gina",
            Err("not_allowed_to_revoke"),
        ),
        (
            grant("carol", dag("etl_daily"), "airflow-dags"),
            "hank",
            Err("not_allowed_to_revoke"),
        ),
        (
            grant("carol", dag("etl_daily"), "airflow-dags"),
            "bad user",
            Err("invalid_user"),
        ),
        // The entry left the policy: the target's owners still can.
        (
            grant("carol", dag("etl_daily"), "gone"),
            "alice",
            Ok(RevokeRight::Owner),
        ),
        (
            grant("carol", dag("etl_daily"), "gone"),
            "gina",
            Err("not_allowed_to_revoke"),
        ),
        (
            grant("carol", deploy(), "deploy"),
            "sam",
            Ok(RevokeRight::Approver),
        ),
        (
            grant("carol", deploy(), "deploy"),
            "rita",
            Ok(RevokeRight::Owner),
        ),
        (
            grant("carol", deploy(), "deploy"),
            "alice",
            Err("not_allowed_to_revoke"),
        ),
        (
            grant("carol", group("data-eng"), "data-eng-membership"),
            "bob",
            Ok(RevokeRight::Approver),
        ),
    ];
    for (grant, actor, expected) in cases {
        let outcome = may_revoke(&policy, &grant, actor, &facts);
        assert_eq!(
            outcome.as_ref().map_err(Refusal::code),
            expected.as_ref().map_err(|code| *code),
            "{actor} {grant:?}"
        );
    }
    assert!(is_admin(&policy, "pat", &facts));
    assert!(!is_admin(&policy, "alice", &facts));
}

#[test]
fn refusal_codes_are_distinct_snake_case_and_messages_one_line() {
    let refusals = [
        Refusal::InvalidUser { user: "x".into() },
        Refusal::UnknownRequester { user: "x".into() },
        Refusal::InvalidTarget { target: "x".into() },
        Refusal::NotRequestable { target: "x".into() },
        Refusal::UnknownEntry {
            entry: "x".into(),
            target: "x".into(),
        },
        Refusal::UnknownTarget { target: "x".into() },
        Refusal::RequesterNotAllowed {
            user: "x".into(),
            entry: "x".into(),
        },
        Refusal::AlreadyHasAccess {
            user: "x".into(),
            target: "x".into(),
        },
        Refusal::DurationInvalid,
        Refusal::DurationOverMaximum {
            requested_s: 2,
            max_s: 1,
            entry: "x".into(),
        },
        Refusal::ReasonRequired { entry: "x".into() },
        Refusal::ReasonInvalid {
            problem: ReasonProblem::ControlCharacters,
        },
        Refusal::NoApprovers { target: "x".into() },
        Refusal::SelfReview { user: "x".into() },
        Refusal::NotAnApprover {
            user: "x".into(),
            entry: "x".into(),
        },
        Refusal::AlreadyReviewed { user: "x".into() },
        Refusal::AlreadyDecided { approvals: 1 },
        Refusal::NotAllowedToRevoke { user: "x".into() },
    ];
    let mut codes: Vec<&str> = refusals.iter().map(Refusal::code).collect();
    for refusal in &refusals {
        let code = refusal.code();
        assert!(
            code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{code}"
        );
        assert!(!refusal.to_string().contains('\n'));
        // Every code is documented.
        assert!(
            include_str!("../../../docs/access.md").contains(&format!("`{code}`")),
            "{code}"
        );
    }
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), refusals.len());
}

#[test]
fn drafts_normalize_to_the_catalog_spelling() {
    let raw = draft("Carol", group("Data-Eng"), 60, Some("  on call  "));
    assert_eq!(
        raw.normalized(),
        Ok(draft(
            "user:default/carol",
            group("group:default/data-eng"),
            60,
            Some("on call")
        ))
    );
    assert_eq!(
        draft("carol", dag("etl_daily"), 60, Some(" "))
            .normalized()
            .map(|d| d.reason),
        Ok(None)
    );
}

/// Group targets: the group is its own owner, so `requester_near_owner` looks at its parent,
/// children and siblings, and `unless_annotation` at the group entity.
#[test]
fn auto_approval_of_group_membership() {
    let policy = AccessPolicy::from_value(&json!({
        "version": 1,
        "requestable": [{
            "name": "data-eng",
            "target": {"group": "data-eng"},
            "max_duration": "1h",
            "reason": "optional",
            "auto_approve": [{"name": "near", "requester_near_owner": true,
                              "unless_annotation": {"meshgate.io/sensitive": "true"}}]
        }]
    }))
    .unwrap();
    let plain = catalog();
    let sensitive = catalog().annotate(
        &group("group:default/data-eng"),
        "meshgate.io/sensitive",
        "true",
    );
    let cases: Vec<(&MemoryFacts, &str, bool)> = vec![
        (&plain, "carol", true),
        (&plain, "frank", true),
        (&plain, "gina", false),
        (&sensitive, "carol", false),
    ];
    for (facts, requester, approved) in cases {
        let outcome = assess(
            &policy,
            &draft(requester, group("data-eng"), 600, None),
            facts,
        )
        .unwrap();
        assert_eq!(
            matches!(outcome, Assessment::AutoApproved { .. }),
            approved,
            "{requester}: {outcome:?}"
        );
    }
}

#[test]
fn memory_facts_close_groups_and_survive_cycles() {
    let facts = MemoryFacts::new()
        .group("a", &["b"])
        .group("b", &["a", "c"])
        .user("u", &["a"]);
    assert_eq!(
        facts.groups_of("user:default/u"),
        vec!["group:default/a", "group:default/b", "group:default/c"]
    );
    assert!(facts.exists(&group("group:default/c")));
    assert!(!facts.exists(&group("group:default/d")));
}
