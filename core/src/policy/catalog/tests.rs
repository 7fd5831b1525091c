//! Catalog-aware decisions: nested groups, token-group closure, identity mapping, group
//! overage, ownership, snapshot rules and an unavailable snapshot.

use serde_json::{json, Map, Value};

use super::*;
use crate::decision::authorize::{decide, Credential};
use crate::decision::verdict::{AllowCode, DenyCode, Effect};
use crate::request::{Request, UnixTime};
use crate::snapshot::{
    encode, DecodeLimits, GroupInput, OwnedInput, SigningKey, SnapshotInput, UserInput,
};

const NOW: i64 = 1_700_000_000;

fn policy(extra: Value) -> Policy {
    let mut config = json!({
        "providers": {"okta": {
            "issuer": "https://okta",
            "audiences": ["tools"],
            "remote_jwks": {"cluster": "okta", "uri": "https://okta/keys"},
            "catalog_user": {"resolve_by": ["entity_ref", "email", "username"]}
        }},
        "rules": [
            {"id": "dags", "action": "allow", "hosts": ["airflow.internal"],
             "paths": ["/api/v1/dags"], "when": {"groups_any": ["data-eng"]}},
            {"id": "trigger", "action": "allow", "hosts": ["airflow.internal"], "methods": ["POST"],
             "paths": ["/api/v1/dags/{dag_id}/dagRuns"],
             "when": {"owns": {"kind": "airflow.dag", "id": "{dag_id}"}}},
            {"id": "builds", "action": "allow", "hosts": ["buildkite.internal"],
             "paths": ["/v2/organizations/{org}/pipelines/{pipeline}/builds"],
             "when": {"owns": {"kind": "buildkite.pipeline", "id": "{org}/{pipeline}"}}},
            {"id": "platform", "action": "allow", "hosts": ["platform.internal"],
             "when": {"groups_any": ["group:default/platform-team"]}}
        ]
    });
    if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    Policy::from_json(config.to_string().as_bytes()).unwrap()
}

fn user(entity_ref: &str, email: &str, groups: &[&str]) -> UserInput {
    UserInput {
        entity_ref: entity_ref.into(),
        email: Some(email.into()),
        groups: groups.iter().map(|g| (*g).into()).collect(),
    }
}

/// data-eng ⊃ analytics; alice is in analytics (so data-eng too), bob in platform-team.
fn snapshot_with(rules: Option<&str>) -> Snapshot {
    let input = SnapshotInput {
        users: vec![
            // A direct group only: data-eng comes from the hierarchy.
            user(
                "user:default/alice",
                "alice@example.com",
                &["group:default/analytics"],
            ),
            user(
                "user:default/bob",
                "bob@example.com",
                &["group:default/platform-team"],
            ),
        ],
        owned: vec![
            OwnedInput {
                kind: "airflow.dag".into(),
                id: "etl".into(),
                owners: vec!["group:default/data-eng".into()],
            },
            OwnedInput {
                kind: "buildkite.pipeline".into(),
                id: "acme/deploy".into(),
                owners: vec!["group:default/platform-team".into()],
            },
        ],
        groups: vec![GroupInput {
            entity_ref: "group:default/analytics".into(),
            ancestors: vec!["group:default/data-eng".into()],
        }],
        rules: rules.map(str::to_owned),
    };
    let key = SigningKey::from_seed("cp", [3; 32]).unwrap();
    let bytes = encode(&input, 1, NOW, &key).unwrap();
    Snapshot::decode(&bytes, &[key.trusted_key()], &DecodeLimits::default()).unwrap()
}

fn claims(extra: Value) -> Map<String, Value> {
    let mut claims =
        json!({"iss": "https://okta", "aud": "tools", "exp": NOW + 600, "sub": "00u1"});
    if let (Some(base), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    claims.as_object().unwrap().clone()
}

fn decide_at(
    policy: &Policy,
    state: CatalogState<'_>,
    claims: Map<String, Value>,
    method: &str,
    host: &str,
    path: &str,
) -> crate::Decision {
    let req = Request {
        method,
        authority: host,
        path,
        headers: &[],
    };
    decide(
        policy,
        Credential::Claims(claims),
        state,
        &req,
        UnixTime::from_secs(NOW),
    )
    .decision
}

/// (name, catalog, extra claims, method, host, path, expected code or `allow`).
type Case<'c> = (
    &'static str,
    CatalogState<'c>,
    Value,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

#[test]
fn groups_and_ownership_come_from_the_catalog() {
    let policy = policy(json!({}));
    let catalog = Catalog::new(&policy, snapshot_with(None)).unwrap();
    let ready = CatalogState::Ready(&catalog);
    let none = CatalogState::NotConfigured;
    let allow = Some("allow");
    let cases: Vec<Case<'_>> = vec![
        (
            "nested group via the catalog user (email)",
            ready,
            json!({"email": "Alice@Example.com"}),
            "GET",
            "airflow.internal",
            "/api/v1/dags",
            allow,
        ),
        (
            "same token without a catalog",
            none,
            json!({"email": "alice@example.com"}),
            "GET",
            "airflow.internal",
            "/api/v1/dags",
            Some("no_rule_matched"),
        ),
        (
            "token group closed through the hierarchy",
            ready,
            json!({"groups": ["analytics"]}),
            "GET",
            "airflow.internal",
            "/api/v1/dags",
            allow,
        ),
        (
            "token group without hierarchy needs the catalog",
            none,
            json!({"groups": ["analytics"]}),
            "GET",
            "airflow.internal",
            "/api/v1/dags",
            Some("no_rule_matched"),
        ),
        (
            "plain token group still matches without catalog",
            none,
            json!({"groups": ["data-eng"]}),
            "GET",
            "airflow.internal",
            "/api/v1/dags",
            allow,
        ),
        (
            "token groups keep their case",
            ready,
            json!({"groups": ["Data-Eng"]}),
            "GET",
            "airflow.internal",
            "/api/v1/dags",
            Some("no_rule_matched"),
        ),
        (
            "entity-ref token group matches a short rule name",
            none,
            json!({"groups": ["group:default/Data-Eng"]}),
            "GET",
            "airflow.internal",
            "/api/v1/dags",
            allow,
        ),
        (
            "user mapped by entity-ref subject",
            ready,
            json!({"sub": "User:Default/Alice"}),
            "GET",
            "airflow.internal",
            "/api/v1/dags",
            allow,
        ),
        (
            "user mapped by username",
            ready,
            json!({"preferred_username": "alice"}),
            "GET",
            "airflow.internal",
            "/api/v1/dags",
            allow,
        ),
        (
            "unknown user, no groups",
            ready,
            json!({"email": "mallory@example.com"}),
            "GET",
            "airflow.internal",
            "/api/v1/dags",
            Some("no_rule_matched"),
        ),
        (
            "Entra group overage: groups from the catalog",
            ready,
            json!({"email": "alice@example.com", "_claim_names": {"groups": "src1"}}),
            "GET",
            "airflow.internal",
            "/api/v1/dags",
            allow,
        ),
        (
            "owner team triggers its DAG",
            ready,
            json!({"email": "alice@example.com"}),
            "POST",
            "airflow.internal",
            "/api/v1/dags/etl/dagRuns",
            allow,
        ),
        (
            "another team may not",
            ready,
            json!({"email": "bob@example.com"}),
            "POST",
            "airflow.internal",
            "/api/v1/dags/etl/dagRuns",
            Some("no_rule_matched"),
        ),
        (
            "unknown DAG is nobody's",
            ready,
            json!({"email": "alice@example.com"}),
            "POST",
            "airflow.internal",
            "/api/v1/dags/other/dagRuns",
            Some("no_rule_matched"),
        ),
        (
            "ownership through a token group's ancestors",
            ready,
            json!({"groups": ["analytics"]}),
            "POST",
            "airflow.internal",
            "/api/v1/dags/etl/dagRuns",
            allow,
        ),
        (
            "ownership needs a catalog",
            none,
            json!({"groups": ["data-eng"]}),
            "POST",
            "airflow.internal",
            "/api/v1/dags/etl/dagRuns",
            Some("no_rule_matched"),
        ),
        (
            "two-parameter resource id",
            ready,
            json!({"email": "bob@example.com"}),
            "GET",
            "buildkite.internal",
            "/v2/organizations/acme/pipelines/deploy/builds",
            allow,
        ),
        (
            "two-parameter resource id, wrong team",
            ready,
            json!({"email": "alice@example.com"}),
            "GET",
            "buildkite.internal",
            "/v2/organizations/acme/pipelines/deploy/builds",
            Some("no_rule_matched"),
        ),
        (
            "rule written as an entity ref, catalog user",
            ready,
            json!({"email": "bob@example.com"}),
            "GET",
            "platform.internal",
            "/",
            allow,
        ),
        (
            "rule written as an entity ref, plain token group",
            none,
            json!({"groups": ["platform-team"]}),
            "GET",
            "platform.internal",
            "/",
            allow,
        ),
    ];
    for (name, state, extra, method, host, path, expected) in cases {
        let decision = decide_at(&policy, state, claims(extra), method, host, path);
        let got = match decision.effect {
            Effect::Allow(_) => "allow",
            Effect::Deny(code) => code.as_str(),
        };
        assert_eq!(Some(got), expected, "{name}: {}", decision.reason);
        if matches!(state, CatalogState::Ready(_)) {
            assert_eq!(decision.snapshot_version, Some(1), "{name}");
        }
        // The catalog user and their closed groups go along for the upstream's headers.
        let groups = match decision.catalog_user.as_deref() {
            Some("user:default/alice") => Some("group:default/analytics,group:default/data-eng"),
            Some("user:default/bob") => Some("group:default/platform-team"),
            _ => None,
        };
        assert_eq!(decision.catalog_groups.as_deref(), groups, "{name}");
    }
}

#[test]
fn an_unavailable_snapshot_follows_failure_mode() {
    let unavailable = CatalogState::Unavailable {
        reason: "no snapshot loaded yet",
    };
    let request = |policy: &Policy, host: &str| {
        decide_at(
            policy,
            unavailable,
            claims(json!({"groups": ["data-eng"]})),
            "GET",
            host,
            "/api/v1/dags",
        )
    };
    let closed = policy(json!({}));
    let decision = request(&closed, "airflow.internal");
    assert_eq!(decision.effect, Effect::Deny(DenyCode::SnapshotUnavailable));
    assert_eq!(DenyCode::SnapshotUnavailable.http_status(), 503);
    assert!(decision.reason.contains("no snapshot loaded yet"));

    let open = policy(json!({"failure_mode": "open"}));
    let decision = request(&open, "airflow.internal");
    assert_eq!(decision.effect, Effect::Allow(AllowCode::FailOpen));
    assert!(
        decision.principal.is_some(),
        "fail-open keeps the verified caller"
    );

    // Public routes never need the catalog.
    let public = policy(json!({"rules": [
        {"id": "health", "action": "allow", "public": true, "paths": ["/health"]}
    ]}));
    let req = Request {
        method: "GET",
        authority: "airflow.internal",
        path: "/health",
        headers: &[],
    };
    let verdict = crate::decision::authorize::decide(
        &public,
        Credential::token(
            &crate::KeyStore::new(&public),
            &mut crate::TokenCache::new(0),
        ),
        unavailable,
        &req,
        UnixTime::from_secs(NOW),
    );
    assert_eq!(
        verdict.decision.effect,
        Effect::Allow(AllowCode::PublicRoute)
    );
}

#[test]
fn snapshot_rules_are_compiled_against_the_configuration() {
    let policy = policy(json!({}));
    let extra = r#"[{"id": "cp-airbyte", "action": "allow", "hosts": ["airbyte.internal"],
                     "when": {"groups_any": ["platform-team"], "providers": ["okta"]}},
                    {"id": "cp-deny", "action": "deny", "hosts": ["airflow.internal"],
                     "paths": ["/api/v1/dags"], "when": {"subjects": ["blocked"]}}]"#;
    let catalog = Catalog::new(&policy, snapshot_with(Some(extra))).unwrap();
    let ready = CatalogState::Ready(&catalog);
    let bob = || claims(json!({"email": "bob@example.com"}));
    let decision = decide_at(
        &policy,
        ready,
        bob(),
        "GET",
        "airbyte.internal",
        "/api/v1/connections",
    );
    assert_eq!(decision.rule_id.as_deref(), Some("cp-airbyte"));
    let blocked = claims(json!({"sub": "blocked", "groups": ["data-eng"]}));
    let decision = decide_at(
        &policy,
        ready,
        blocked,
        "GET",
        "airflow.internal",
        "/api/v1/dags",
    );
    assert_eq!(decision.effect, Effect::Deny(DenyCode::RuleDenied));
    assert_eq!(
        decision.rule_id.as_deref(),
        Some("cp-deny"),
        "snapshot deny rules beat allow rules"
    );

    let bad = [
        (
            r#"[{"id": "x", "action": "allow", "when": {"providers": ["nope"]}}]"#,
            "snapshot.rules[0].when.providers[0]",
        ),
        (
            r#"[{"id": "dags", "action": "allow"}]"#,
            "snapshot.rules[0].id",
        ),
        (
            r#"[{"id": "x", "action": "allow", "hostz": []}]"#,
            "snapshot.rules[0]",
        ),
        (r#"{"id": "x"}"#, "snapshot.rules"),
    ];
    for (rules, path) in bad {
        let err = Catalog::new(&policy, snapshot_with(Some(rules))).unwrap_err();
        assert!(err.path.starts_with(path), "{rules}: {err}");
    }
}

#[test]
fn ownership_conditions_are_checked_when_compiled() {
    let cases = [
        (
            json!({"kind": "airflow.dag", "id": "{dag}"}),
            json!(["/api/v1/dags/{dag_id}"]),
            "has no parameter `dag`",
        ),
        (
            json!({"kind": "airflow.dag", "id": "etl"}),
            json!(["/api/v1/dags/{dag_id}"]),
            "at least one parameter",
        ),
        (
            json!({"kind": "", "id": "{dag_id}"}),
            json!(["/api/v1/dags/{dag_id}"]),
            "resource kind",
        ),
        (
            json!({"kind": "airflow.dag", "id": "{dag_id}"}),
            json!([{"prefix": "/api"}]),
            "not a template",
        ),
        (
            json!({"kind": "airflow.dag", "id": "{dag_id"}),
            json!(["/api/v1/dags/{dag_id}"]),
            "at least one parameter",
        ),
        (
            json!({"kind": "airflow.dag", "id": "{dag_id}"}),
            json!([]),
            "needs `paths`",
        ),
    ];
    for (owns, paths, expected) in cases {
        let config = json!({"rules": [{"id": "r", "action": "allow", "paths": paths, "when": {"owns": owns}}]});
        let err = Policy::from_json(config.to_string().as_bytes()).unwrap_err();
        assert!(err.path.starts_with("rules[0].when.owns"), "{err}");
        assert!(err.reason.to_string().contains(expected), "{err}");
    }
    let bad_group = json!({"rules": [{"id": "r", "action": "allow", "when": {"groups_any": ["user:default/alice"]}}]});
    let err = Policy::from_json(bad_group.to_string().as_bytes()).unwrap_err();
    assert_eq!(err.path, "rules[0].when.groups_any[0]");
}

/// Any caller the catalog maps to a user (here by email) gets `x-meshgate-user`; a caller it
/// doesn't map gets none, and neither does a denied request.
#[test]
fn the_catalog_user_is_named_to_the_upstream() {
    let policy = policy(json!({}));
    let catalog = Catalog::new(&policy, snapshot_with(None)).unwrap();
    let user_header = |claims: Map<String, Value>, path: &str| {
        let req = Request {
            method: "GET",
            authority: "airflow.internal",
            path,
            headers: &[],
        };
        let verdict = decide(
            &policy,
            Credential::Claims(claims),
            CatalogState::Ready(&catalog),
            &req,
            UnixTime::from_secs(NOW),
        );
        let header = crate::decision::headers::plan(&policy, &verdict, &[])
            .set
            .into_iter()
            .find(|(name, _)| name == crate::decision::headers::USER_HEADER)
            .map(|(_, value)| value);
        (verdict.decision.catalog_user, header)
    };
    let alice = || claims(json!({"email": "Alice@Example.com"}));
    assert_eq!(
        user_header(alice(), "/api/v1/dags"),
        (
            Some("user:default/alice".to_owned()),
            Some("user:default/alice".to_owned())
        )
    );
    // Denied (no rule for this path): the decision knows the user, the upstream gets nothing.
    assert_eq!(
        user_header(alice(), "/elsewhere"),
        (Some("user:default/alice".to_owned()), None)
    );
    assert_eq!(
        user_header(
            claims(json!({"email": "mallory@example.com", "groups": ["data-eng"]})),
            "/api/v1/dags"
        ),
        (None, None)
    );
}

/// A resource owned by a user (`spec.owner: user:default/dave`), another by a group.
fn user_owned_snapshot() -> Snapshot {
    let input = SnapshotInput {
        users: vec![
            user("user:default/dave", "dave@example.com", &[]),
            user(
                "user:default/erin",
                "erin@example.com",
                &["group:default/analytics"],
            ),
        ],
        owned: vec![
            OwnedInput {
                kind: "airflow.dag".into(),
                id: "daves_dag".into(),
                owners: vec!["user:default/dave".into()],
            },
            OwnedInput {
                kind: "airflow.dag".into(),
                id: "shared".into(),
                owners: vec!["user:default/dave".into(), "group:default/data-eng".into()],
            },
        ],
        groups: vec![GroupInput {
            entity_ref: "group:default/analytics".into(),
            ancestors: vec!["group:default/data-eng".into()],
        }],
        rules: None,
    };
    let key = SigningKey::from_seed("cp", [3; 32]).unwrap();
    let bytes = encode(&input, 1, NOW, &key).unwrap();
    Snapshot::decode(&bytes, &[key.trusted_key()], &DecodeLimits::default()).unwrap()
}

#[test]
fn a_user_owner_owns_their_own_resources() {
    let policy = policy(json!({}));
    let catalog = Catalog::new(&policy, user_owned_snapshot()).unwrap();
    let ready = CatalogState::Ready(&catalog);
    let cases = [
        ("dave", "daves_dag", "allow"),
        ("dave", "shared", "allow"),
        ("erin", "daves_dag", "no_rule_matched"),
        ("erin", "shared", "allow"),
        ("zoe", "daves_dag", "no_rule_matched"),
    ];
    for (name, dag, expected) in cases {
        let decision = decide_at(
            &policy,
            ready,
            claims(json!({"email": format!("{name}@example.com")})),
            "POST",
            "airflow.internal",
            &format!("/api/v1/dags/{dag}/dagRuns"),
        );
        let got = match decision.effect {
            Effect::Allow(_) => "allow",
            Effect::Deny(code) => code.as_str(),
        };
        assert_eq!(got, expected, "{name} on {dag}: {}", decision.reason);
    }
}
