use serde_json::{json, Value};

use super::*;

fn claims(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn token_types_are_read_like_media_types() {
    let cases = [
        (Some("vnd.backstage.user"), TokenType::User),
        (Some("VND.Backstage.User"), TokenType::User),
        (Some("application/vnd.backstage.user"), TokenType::User),
        (Some("Application/vnd.backstage.user"), TokenType::User),
        (Some("vnd.backstage.limited-user"), TokenType::LimitedUser),
        (Some("vnd.backstage.plugin"), TokenType::Plugin),
        (None, TokenType::Untyped),
        (Some("JWT"), TokenType::Other),
        (Some(""), TokenType::Other),
        (Some("application/"), TokenType::Other),
        (Some("vnd.backstage.user+jwt"), TokenType::Other),
    ];
    for (typ, expected) in cases {
        assert_eq!(TokenType::of(typ), expected, "{typ:?}");
    }
}

/// Which tokens a Backstage provider takes as user tokens, with and without `legacy_tokens`.
#[test]
fn typ_decides_what_counts_as_a_user_token() {
    let backstage_aud = json!({"aud": "backstage"});
    let aud_list = json!({"aud": ["other", "backstage"]});
    let other_aud = json!({"aud": "other"});
    let no_aud = json!({});
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        &'a Value,
        bool,
        Result<(), TokenTypeError>,
    );
    let cases: [Case<'_>; 13] = [
        ("user", Some(TYP_USER), &backstage_aud, false, Ok(())),
        (
            "user, legacy on",
            Some(TYP_USER),
            &backstage_aud,
            true,
            Ok(()),
        ),
        // The typ decides for typed tokens; `aud` is the provider's audience check's job.
        ("user, other aud", Some(TYP_USER), &other_aud, false, Ok(())),
        (
            "limited-user",
            Some(TYP_LIMITED_USER),
            &backstage_aud,
            true,
            Err(TokenTypeError::LimitedUser),
        ),
        (
            "plugin",
            Some(TYP_PLUGIN),
            &backstage_aud,
            true,
            Err(TokenTypeError::Plugin),
        ),
        (
            "legacy, switch off",
            None,
            &backstage_aud,
            false,
            Err(TokenTypeError::LegacyOff),
        ),
        ("legacy, switch on", None, &backstage_aud, true, Ok(())),
        ("legacy, aud list", None, &aud_list, true, Ok(())),
        (
            "missing typ, wrong aud",
            None,
            &other_aud,
            true,
            Err(TokenTypeError::LegacyWrongAudience),
        ),
        (
            "missing typ, no aud",
            None,
            &no_aud,
            true,
            Err(TokenTypeError::LegacyWrongAudience),
        ),
        (
            "missing typ, wrong aud, switch off",
            None,
            &other_aud,
            false,
            Err(TokenTypeError::LegacyOff),
        ),
        (
            "JWT",
            Some("JWT"),
            &backstage_aud,
            true,
            Err(TokenTypeError::Other { typ: "JWT".into() }),
        ),
        (
            "empty typ",
            Some(""),
            &backstage_aud,
            true,
            Err(TokenTypeError::Other { typ: String::new() }),
        ),
    ];
    for (name, typ, payload, legacy_tokens, expected) in cases {
        let profile = BackstageProfile {
            legacy_tokens,
            trust_token_groups: false,
        };
        assert_eq!(
            profile.check_type(typ, &claims(payload.clone())),
            expected,
            "{name}"
        );
    }
}

#[test]
fn only_limited_user_and_plugin_tokens_are_refused_without_a_provider() {
    assert_eq!(
        non_user_token(Some(TYP_LIMITED_USER)),
        Some(TokenTypeError::LimitedUser)
    );
    assert_eq!(
        non_user_token(Some(TYP_PLUGIN)),
        Some(TokenTypeError::Plugin)
    );
    for typ in [Some(TYP_USER), Some("JWT"), None] {
        assert_eq!(non_user_token(typ), None, "{typ:?}");
    }
}

#[test]
fn trust_token_groups_defaults_to_off_with_a_snapshot() {
    assert!(!BackstageProfile::default_trust_token_groups(true));
    assert!(BackstageProfile::default_trust_token_groups(false));
}

#[test]
fn ent_gives_group_refs_only() {
    let cases: [(Value, Result<Vec<&str>, ()>); 7] = [
        (json!({}), Ok(vec![])),
        (json!({"ent": null}), Ok(vec![])),
        (
            json!({"ent": ["user:default/alice", "group:default/data-eng"]}),
            Ok(vec!["group:default/data-eng"]),
        ),
        (
            json!({"ent": ["Group:Default/Data-Eng", "group:default/data-eng", "group:ops/SRE"]}),
            Ok(vec!["group:default/data-eng", "group:ops/sre"]),
        ),
        // A bare name is a user in Backstage's ownership refs only with a kind: skip it.
        (
            json!({"ent": ["data-eng", "component:default/x"]}),
            Ok(vec![]),
        ),
        (json!({"ent": "group:default/data-eng"}), Err(())),
        (json!({"ent": ["group:default/a", 1]}), Err(())),
    ];
    for (payload, expected) in cases {
        let got = ent_groups(&claims(payload.clone()), 10);
        match expected {
            Ok(list) => assert_eq!(got.unwrap(), list, "{payload}"),
            Err(()) => assert!(got.is_err(), "{payload}"),
        }
    }
    let many = json!({"ent": ["group:default/a", "group:default/b", "group:default/c"]});
    assert!(matches!(
        ent_groups(&claims(many), 2),
        Err(ClaimError::TooManyGroups { count: 3, .. })
    ));
}

#[test]
fn base_urls_give_issuer_and_jwks() {
    let cases = [
        ("http://127.0.0.1:7007", Some("http://127.0.0.1:7007")),
        ("http://127.0.0.1:7007/", Some("http://127.0.0.1:7007")),
        (
            "https://backstage.example.com/portal",
            Some("https://backstage.example.com/portal"),
        ),
        ("backstage.example.com", None),
        ("ftp://backstage", None),
        ("http://", None),
        ("http://u@host", None),
        ("http://host/?x=1", None),
        ("http://host/a#b", None),
    ];
    for (url, expected) in cases {
        assert_eq!(normalize_base_url(url), expected, "{url}");
    }
    assert_eq!(
        issuer("http://127.0.0.1:7007"),
        "http://127.0.0.1:7007/api/auth"
    );
    assert_eq!(
        jwks_uri("http://127.0.0.1:7007"),
        "http://127.0.0.1:7007/api/auth/.well-known/jwks.json"
    );
}

/// Backstage tokens through `decide`: signed, verified, typed, mapped to the catalog.
mod decisions {
    use std::sync::Arc;

    use serde_json::{json, Value};

    use crate::decision::authorize::{decide, Credential};
    use crate::decision::headers;
    use crate::decision::verdict::Verdict;
    use crate::policy::catalog::{Catalog, CatalogState};
    use crate::request::{Request, UnixTime};
    use crate::snapshot::{
        encode, DecodeLimits, OwnedInput, SigningKey, Snapshot, SnapshotInput, UserInput,
    };
    use crate::testing::{ec_private, public_jwk, sign};
    use crate::token::jwks::{KeyOrigin, KeySet};
    use crate::{KeyStore, Policy, TokenCache};

    const NOW: i64 = 1_700_000_000;
    const ISS: &str = "http://backstage.test:7007/api/auth";

    fn cp_key() -> SigningKey {
        SigningKey::from_seed("cp", [7; 32]).unwrap()
    }

    /// `backstage` options as given; `snapshot` adds a snapshot section to the config.
    fn policy(backstage: Value, snapshot: bool) -> Policy {
        let mut provider =
            json!({"base_url": "http://backstage.test:7007/", "cluster": "backstage"});
        for (k, v) in backstage.as_object().unwrap() {
            provider[k] = v.clone();
        }
        let mut config = json!({
            "providers": {"bs": {"backstage": provider}},
            "rules": [
                {"id": "dags", "action": "allow", "methods": ["GET"], "paths": ["/api/v1/dags"],
                 "when": {"groups_any": ["data-eng"]}},
                {"id": "trigger", "action": "allow", "methods": ["POST"],
                 "paths": ["/api/v1/dags/{dag_id}/dagRuns"],
                 "when": {"owns": {"kind": "airflow.dag", "id": "{dag_id}"}}}
            ]
        });
        if snapshot {
            let spec = cp_key().trusted_key().to_spec();
            config["snapshot"] = json!({"cluster": "cp", "uri": "http://cp/v1/snapshots/default",
                "public_keys": [{"kid": spec.kid, "public_key": spec.public_key}]});
        }
        Policy::from_json(config.to_string().as_bytes()).unwrap()
    }

    /// alice is in data-eng, which owns `etl_daily`; bob is in no group.
    fn catalog(policy: &Policy) -> Catalog {
        let user = |entity_ref: &str, groups: &[&str]| UserInput {
            entity_ref: entity_ref.into(),
            email: None,
            groups: groups.iter().map(|g| (*g).into()).collect(),
        };
        let input = SnapshotInput {
            users: vec![
                user("user:default/alice", &["group:default/data-eng"]),
                user("user:default/bob", &[]),
            ],
            owned: vec![OwnedInput {
                kind: "airflow.dag".into(),
                id: "etl_daily".into(),
                owners: vec!["group:default/data-eng".into()],
            }],
            ..SnapshotInput::default()
        };
        let bytes = encode(&input, 1, NOW, &cp_key()).unwrap();
        let snapshot =
            Snapshot::decode(&bytes, &[cp_key().trusted_key()], &DecodeLimits::default()).unwrap();
        Catalog::new(policy, snapshot).unwrap()
    }

    fn keys(policy: &Policy) -> KeyStore {
        let jwks = json!({"keys": [public_jwk(&ec_private(), "auth-1", Some("ES256"))]});
        let mut keys = KeyStore::new(policy);
        keys.set(
            0,
            Arc::new(KeySet::parse(jwks.to_string().as_bytes(), KeyOrigin::Remote).unwrap()),
        );
        keys
    }

    fn user_claims(sub: &str) -> Value {
        json!({"iss": ISS, "sub": sub, "aud": "backstage", "iat": NOW, "exp": NOW + 3600, "uip": "x"})
    }

    fn token(typ: Option<&str>, claims: &Value) -> String {
        let mut header = json!({"alg": "ES256", "kid": "auth-1"});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        sign("ES256", &ec_private(), &header, claims)
    }

    fn run(
        policy: &Policy,
        state: CatalogState<'_>,
        method: &str,
        path: &str,
        token: &str,
    ) -> Verdict {
        let headers = vec![
            (":path".to_owned(), path.to_owned()),
            ("authorization".to_owned(), format!("Bearer {token}")),
        ];
        let req = Request {
            method,
            authority: "airflow.internal",
            path,
            headers: &headers,
        };
        decide(
            policy,
            Credential::token(&keys(policy), &mut TokenCache::new(0)),
            state,
            &req,
            UnixTime::from_secs(NOW),
        )
    }

    fn code(verdict: &Verdict) -> &'static str {
        if verdict.decision.is_allowed() {
            "allow"
        } else {
            verdict.decision.code_str()
        }
    }

    fn user_header(policy: &Policy, verdict: &Verdict) -> Option<String> {
        headers::plan(policy, verdict, &[])
            .set
            .into_iter()
            .find(|(name, _)| name == headers::USER_HEADER)
            .map(|(_, value)| value)
    }

    #[test]
    fn the_provider_is_derived_from_the_base_url() {
        let policy = policy(json!({}), true);
        let provider = &policy.providers[0];
        assert_eq!(provider.issuer.as_deref(), Some(ISS));
        assert_eq!(provider.audiences, ["backstage"]);
        match &provider.keys {
            crate::identity::provider::KeySource::Remote(remote) => {
                assert_eq!(remote.cluster, "backstage");
                assert_eq!(remote.authority, "backstage.test:7007");
                assert_eq!(remote.path, "/api/auth/.well-known/jwks.json");
                assert_eq!(
                    remote.on_unknown_kid,
                    crate::identity::provider::UnknownKid::Wait
                );
                assert_eq!(remote.refetch_min_interval_s, 5);
            }
            crate::identity::provider::KeySource::Local(_) => panic!("Backstage keys are remote"),
        }
        assert_eq!(
            provider.resolve_by,
            [crate::identity::provider::ResolveBy::EntityRef]
        );
        assert_eq!(
            provider.backstage,
            Some(super::BackstageProfile {
                legacy_tokens: false,
                trust_token_groups: false
            })
        );
        // Without a snapshot, the token's `ent` is all there is.
        assert!(self::policy(json!({}), false).providers[0]
            .backstage
            .is_some_and(|p| p.trust_token_groups));
        assert!(
            !self::policy(json!({"trust_token_groups": false}), false).providers[0]
                .backstage
                .is_some_and(|p| p.trust_token_groups)
        );
    }

    /// Which tokens pass, and who the upstream is told the caller is.
    #[test]
    fn user_tokens_pass_and_other_backstage_tokens_do_not() {
        let strict = policy(json!({}), true);
        let legacy = policy(json!({"legacy_tokens": true}), true);
        let catalog = catalog(&strict);
        let ready = CatalogState::Ready(&catalog);
        let user = Some(super::TYP_USER);
        let limited = json!({"sub": "user:default/alice", "iat": NOW, "exp": NOW + 3600});
        let plugin = json!({"sub": "catalog", "aud": "airflow", "iat": NOW, "exp": NOW + 3600});
        let mut wrong_aud = user_claims("user:default/alice");
        wrong_aud["aud"] = json!("other");
        let with_ent = |ent: Value| {
            let mut claims = user_claims("user:default/bob");
            claims["ent"] = ent;
            claims
        };
        type Case<'a> = (
            &'a str,
            &'a Policy,
            Option<&'a str>,
            Value,
            &'a str,
            &'a str,
            &'a str,
            Option<&'a str>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "user token, groups from the catalog",
                &strict,
                user,
                user_claims("user:default/alice"),
                "GET",
                "/api/v1/dags",
                "allow",
                Some("user:default/alice"),
            ),
            (
                "ownership from the catalog",
                &strict,
                user,
                user_claims("user:default/alice"),
                "POST",
                "/api/v1/dags/etl_daily/dagRuns",
                "allow",
                Some("user:default/alice"),
            ),
            (
                "mixed-case ref is the same user",
                &strict,
                user,
                user_claims("User:Default/ALICE"),
                "GET",
                "/api/v1/dags",
                "allow",
                Some("user:default/alice"),
            ),
            (
                "a name alone is a user in the default namespace",
                &strict,
                user,
                user_claims("alice"),
                "GET",
                "/api/v1/dags",
                "allow",
                Some("user:default/alice"),
            ),
            (
                "user in no group",
                &strict,
                user,
                user_claims("user:default/bob"),
                "GET",
                "/api/v1/dags",
                "no_rule_matched",
                None,
            ),
            (
                "ent is not trusted next to a snapshot",
                &strict,
                user,
                with_ent(json!(["user:default/bob", "group:default/data-eng"])),
                "GET",
                "/api/v1/dags",
                "no_rule_matched",
                None,
            ),
            (
                "limited-user token",
                &strict,
                Some(super::TYP_LIMITED_USER),
                limited.clone(),
                "GET",
                "/api/v1/dags",
                "token_type_not_allowed",
                None,
            ),
            (
                "limited-user token, legacy on",
                &legacy,
                Some(super::TYP_LIMITED_USER),
                limited,
                "GET",
                "/api/v1/dags",
                "token_type_not_allowed",
                None,
            ),
            (
                "plugin token",
                &strict,
                Some(super::TYP_PLUGIN),
                plugin,
                "GET",
                "/api/v1/dags",
                "token_type_not_allowed",
                None,
            ),
            (
                "untyped token, legacy off",
                &strict,
                None,
                user_claims("user:default/alice"),
                "GET",
                "/api/v1/dags",
                "token_type_not_allowed",
                None,
            ),
            (
                "untyped token, legacy on",
                &legacy,
                None,
                user_claims("user:default/alice"),
                "GET",
                "/api/v1/dags",
                "allow",
                Some("user:default/alice"),
            ),
            (
                "untyped token, legacy on, wrong aud",
                &legacy,
                None,
                wrong_aud.clone(),
                "GET",
                "/api/v1/dags",
                "token_type_not_allowed",
                None,
            ),
            (
                "JWT typ",
                &strict,
                Some("JWT"),
                user_claims("user:default/alice"),
                "GET",
                "/api/v1/dags",
                "token_type_not_allowed",
                None,
            ),
            (
                "user token, wrong aud",
                &strict,
                user,
                wrong_aud,
                "GET",
                "/api/v1/dags",
                "audience_mismatch",
                None,
            ),
            (
                "sub names a group",
                &strict,
                user,
                user_claims("group:default/data-eng"),
                "GET",
                "/api/v1/dags",
                "token_invalid",
                None,
            ),
        ];
        let mut failures = Vec::new();
        for (name, policy, typ, claims, method, path, expected, user) in cases {
            let verdict = run(policy, ready, method, path, &token(typ, &claims));
            let got = (code(&verdict), user_header(policy, &verdict));
            if got != (expected, user.map(str::to_owned)) {
                failures.push(format!(
                    "{name}: got {got:?}, want ({expected}, {user:?}); {}",
                    verdict.decision.reason
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn a_plugin_token_signed_with_an_unknown_key_is_refused_for_its_type() {
        // Plugin keys are not in the auth backend's JWKS: the refusal must not be `key_unknown`,
        // which would make the filter refetch the JWKS for every plugin token.
        let policy = policy(json!({}), true);
        let catalog = catalog(&policy);
        let header = json!({"typ": "vnd.backstage.plugin", "alg": "ES256", "kid": "plugin-key"});
        let claims = json!({"sub": "catalog", "aud": "airflow", "iat": NOW, "exp": NOW + 60});
        let token = sign("ES256", &ec_private(), &header, &claims);
        let verdict = run(
            &policy,
            CatalogState::Ready(&catalog),
            "GET",
            "/api/v1/dags",
            &token,
        );
        assert_eq!(code(&verdict), "token_type_not_allowed");
        assert_eq!(verdict.decision.provider.as_deref(), Some("bs"));
        assert!(
            verdict.decision.reason.contains("plugin token"),
            "{}",
            verdict.decision.reason
        );
    }

    #[test]
    fn token_groups_count_when_trusted() {
        let ent = |claims: &mut Value| {
            claims["ent"] = json!(["user:default/bob", "Group:Default/Data-Eng"]);
        };
        let mut claims = user_claims("user:default/bob");
        ent(&mut claims);
        let trusting = policy(json!({"trust_token_groups": true}), true);
        let catalog = catalog(&trusting);
        let verdict = run(
            &trusting,
            CatalogState::Ready(&catalog),
            "GET",
            "/api/v1/dags",
            &token(Some(super::TYP_USER), &claims),
        );
        assert_eq!(code(&verdict), "allow");
        let principal = verdict.decision.principal.as_deref().unwrap();
        assert_eq!(principal.groups, ["group:default/data-eng"]);
        // No snapshot: trusted by default, and the user header still names the token's user.
        let bare = policy(json!({}), false);
        let verdict = run(
            &bare,
            CatalogState::NotConfigured,
            "GET",
            "/api/v1/dags",
            &token(Some(super::TYP_USER), &claims),
        );
        assert_eq!(code(&verdict), "allow");
        assert_eq!(
            user_header(&bare, &verdict).as_deref(),
            Some("user:default/bob")
        );
    }

    #[test]
    fn a_denied_owner_check_names_the_rule_in_the_reason() {
        let policy = policy(json!({}), true);
        let catalog = catalog(&policy);
        let verdict = run(
            &policy,
            CatalogState::Ready(&catalog),
            "POST",
            "/api/v1/dags/etl_daily/dagRuns",
            &token(Some(super::TYP_USER), &user_claims("user:default/bob")),
        );
        assert_eq!(code(&verdict), "no_rule_matched");
        let reason = &verdict.decision.reason;
        assert!(
            reason.contains("closest: allow rule `trigger` matches the request, but airflow.dag `etl_daily` is owned by [`group:default/data-eng`]"),
            "{reason}"
        );
        assert_eq!(
            verdict.decision.catalog_user.as_deref(),
            Some("user:default/bob")
        );
    }
}
