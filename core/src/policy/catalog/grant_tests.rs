//! Grants at the edge: a granted group counts as the user's (with the groups above it), a
//! granted resource as owned by them, until `not_after` by the deciding clock; the decision
//! names the grant an allow rests on, and only that.

use serde_json::json;

use super::*;
use crate::decision::authorize::{decide, Credential};
use crate::decision::headers::{plan, GRANT_HEADER};
use crate::decision::log::decision_record;
use crate::decision::verdict::Effect;
use crate::request::{Request, UnixTime};
use crate::snapshot::{
    encode_indexed, DecodeLimits, Grant, GrantTarget, Grants, GroupInput, OwnedInput, SigningKey,
    SnapshotInput, UserInput,
};

const NOW: i64 = 1_700_000_000;

fn policy() -> Policy {
    let config = json!({
        "providers": {"okta": {
            "issuer": "https://okta",
            "audiences": ["tools"],
            "remote_jwks": {"cluster": "okta", "uri": "https://okta/keys"},
            "catalog_user": {"resolve_by": ["entity_ref", "email"]}
        }},
        "rules": [
            {"id": "read", "action": "allow", "hosts": ["airflow.internal"],
             "methods": ["GET"], "paths": ["/api/v1/dags"],
             "when": {"groups_any": ["data-platform"]}},
            {"id": "trigger", "action": "allow", "hosts": ["airflow.internal"],
             "methods": ["POST"], "paths": ["/api/v1/dags/{dag_id}/dagRuns"],
             "when": {"owns": {"kind": "airflow.dag", "id": "{dag_id}"}}}
        ]
    });
    Policy::from_json(config.to_string().as_bytes()).unwrap()
}

fn grant(id: &str, user: &str, target: GrantTarget, not_after: i64) -> Grant {
    Grant {
        id: id.into(),
        user: user.into(),
        target,
        not_after: UnixTime::from_secs(not_after),
    }
}

fn dag(id: &str) -> GrantTarget {
    GrantTarget::Resource {
        kind: "airflow.dag".into(),
        id: id.into(),
    }
}

/// data-platform ⊃ data-eng, which owns `etl_daily`; alice is in data-eng; carol in none.
fn catalog(policy: &Policy, grants: Vec<Grant>) -> Catalog {
    let user = |name: &str, groups: &[&str]| UserInput {
        entity_ref: format!("user:default/{name}"),
        email: Some(format!("{name}@example.com")),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    };
    let input = SnapshotInput {
        users: vec![
            user("alice", &["group:default/data-eng"]),
            user("carol", &[]),
        ],
        owned: vec![OwnedInput {
            kind: "airflow.dag".into(),
            id: "etl_daily".into(),
            owners: vec!["group:default/data-eng".into()],
        }],
        groups: vec![GroupInput {
            entity_ref: "group:default/data-eng".into(),
            ancestors: vec!["group:default/data-platform".into()],
        }],
        rules: None,
    };
    let mut indexed = input.interned();
    indexed.grants = Grants::new(grants);
    let key = SigningKey::from_seed("cp", [3; 32]).unwrap();
    let bytes = encode_indexed(&indexed, 1, NOW, &key).unwrap();
    let snapshot =
        Snapshot::decode(&bytes, &[key.trusted_key()], &DecodeLimits::default()).unwrap();
    Catalog::new(policy, snapshot).unwrap()
}

fn request<'r>(method: &'r str, path: &'r str) -> Request<'r> {
    Request {
        method,
        authority: "airflow.internal",
        path,
        headers: &[],
    }
}

fn decide_as(
    policy: &Policy,
    catalog: &Catalog,
    name: &str,
    req: &Request<'_>,
    at: i64,
) -> crate::decision::verdict::Verdict {
    let claims = json!({"iss": "https://okta", "aud": "tools", "exp": at + 600,
        "sub": "00u1", "email": format!("{name}@example.com")});
    decide(
        policy,
        Credential::Claims(claims.as_object().unwrap().clone()),
        CatalogState::Ready(catalog),
        req,
        UnixTime::from_secs(at),
    )
}

/// (case, grants present, who, request, at, allowed, grant named)
type Case<'r> = (
    &'static str,
    bool,
    &'static str,
    &'r Request<'r>,
    i64,
    bool,
    Option<&'static str>,
);

#[test]
fn grants_allow_until_not_after_and_decisions_name_them() {
    let policy = policy();
    let trigger = request("POST", "/api/v1/dags/etl_daily/dagRuns");
    let other_dag = request("POST", "/api/v1/dags/other/dagRuns");
    let read = request("GET", "/api/v1/dags");
    let until = NOW + 900;
    let grants = vec![
        grant("g-dag", "user:default/carol", dag("etl_daily"), until),
        grant(
            "g-group",
            "user:default/carol",
            GrantTarget::Group("group:default/data-eng".into()),
            until,
        ),
        // Someone else's grant, and one already over.
        grant("g-dave", "user:default/dave", dag("other"), until),
        grant("g-old", "user:default/carol", dag("other"), NOW - 1),
    ];
    let cases: [Case<'_>; 10] = [
        (
            "no grant: carol cannot trigger",
            false,
            "carol",
            &trigger,
            NOW,
            false,
            None,
        ),
        (
            "no grant: carol cannot read",
            false,
            "carol",
            &read,
            NOW,
            false,
            None,
        ),
        (
            "resource grant lets carol trigger",
            true,
            "carol",
            &trigger,
            NOW,
            true,
            Some("g-dag"),
        ),
        (
            "a granted group counts with the groups above it",
            true,
            "carol",
            &read,
            NOW,
            true,
            Some("g-group"),
        ),
        (
            "the grant is for one dag only",
            true,
            "carol",
            &other_dag,
            NOW,
            false,
            None,
        ),
        (
            "an expired grant gives nothing",
            true,
            "carol",
            &other_dag,
            NOW,
            false,
            None,
        ),
        (
            "one second before not_after",
            true,
            "carol",
            &trigger,
            until - 1,
            true,
            Some("g-dag"),
        ),
        (
            "at not_after the grant is over",
            true,
            "carol",
            &trigger,
            until,
            false,
            None,
        ),
        (
            "an owner needs no grant",
            true,
            "alice",
            &trigger,
            NOW,
            true,
            None,
        ),
        (
            "another user's grant gives nothing",
            true,
            "alice",
            &other_dag,
            NOW,
            false,
            None,
        ),
    ];
    let with = catalog(&policy, grants);
    let without = catalog(&policy, Vec::new());
    for (name, has_grants, who, req, at, allowed, named) in cases {
        let catalog = if has_grants { &with } else { &without };
        let verdict = decide_as(&policy, catalog, who, req, at);
        let d = &verdict.decision;
        assert_eq!(
            matches!(d.effect, Effect::Allow(_)),
            allowed,
            "{name}: {}",
            d.reason
        );
        assert_eq!(d.grant.as_ref().map(|g| g.id.as_str()), named, "{name}");
        let header = plan(&policy, &verdict, &[])
            .set
            .into_iter()
            .find(|(k, _)| k == GRANT_HEADER)
            .map(|(_, v)| v);
        let record = decision_record(d, req, None, at, None);
        match named {
            Some(id) => {
                let header = header.unwrap_or_default();
                assert!(
                    header.starts_with(&format!("{id};target=")),
                    "{name}: {header}"
                );
                assert!(
                    header.ends_with(&format!(";not_after={until}")),
                    "{name}: {header}"
                );
                assert_eq!(record["grant"]["id"], id, "{name}");
            }
            None => {
                assert_eq!(header, None, "{name}");
                assert!(record["grant"].is_null(), "{name}");
            }
        }
    }
}

#[test]
fn the_grant_named_is_the_one_the_rule_needed() {
    // carol holds a group grant that gives the read rule, and a dag grant that gives
    // nothing to it: the decision names the group grant.
    let policy = policy();
    let grants = vec![
        grant("a-dag", "user:default/carol", dag("etl_daily"), NOW + 60),
        grant(
            "b-group",
            "user:default/carol",
            GrantTarget::Group("group:default/data-platform".into()),
            NOW + 60,
        ),
    ];
    let catalog = catalog(&policy, grants);
    let verdict = decide_as(
        &policy,
        &catalog,
        "carol",
        &request("GET", "/api/v1/dags"),
        NOW,
    );
    assert_eq!(verdict.decision.grant.unwrap().id, "b-group");
}

#[test]
fn a_user_missing_from_the_snapshot_is_granted_by_their_token_ref() {
    // A view may leave out users in none of its groups; their grants still hold, found by
    // the user ref a Backstage-style token names.
    let policy = Policy::from_json(
        json!({
            "providers": {"bs": {
                "issuer": "https://bs",
                "audiences": ["tools"],
                "remote_jwks": {"cluster": "bs", "uri": "https://bs/keys"},
                "catalog_user": {"resolve_by": ["entity_ref"]}
            }},
            "rules": [{"id": "trigger", "action": "allow", "hosts": ["airflow.internal"],
                "paths": ["/api/v1/dags/{dag_id}/dagRuns"],
                "when": {"owns": {"kind": "airflow.dag", "id": "{dag_id}"}}}]
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let catalog = catalog(
        &policy,
        vec![grant("g", "user:default/zoe", dag("etl_daily"), NOW + 60)],
    );
    let claims = json!({"iss": "https://bs", "aud": "tools", "exp": NOW + 600,
        "sub": "user:default/zoe"});
    let verdict = decide(
        &policy,
        Credential::Claims(claims.as_object().unwrap().clone()),
        CatalogState::Ready(&catalog),
        &request("POST", "/api/v1/dags/etl_daily/dagRuns"),
        UnixTime::from_secs(NOW),
    );
    assert!(verdict.decision.is_allowed(), "{}", verdict.decision.reason);
    assert_eq!(verdict.decision.grant.unwrap().id, "g");
}
