use serde_json::{json, Value};

use super::*;
use crate::testing::{public_jwk, rsa_private};

fn base() -> Value {
    json!({
        "providers": {
            "okta": {
                "issuer": "https://example.okta.com/oauth2/default",
                "audiences": ["api://tools"],
                "local_jwks": {"inline": {"keys": [public_jwk(&rsa_private(), "k1", Some("RS256"))]}}
            },
            "entra": {
                "issuer": "https://login.microsoftonline.com/tenant/v2.0",
                "remote_jwks": {"cluster": "entra", "uri": "https://login.microsoftonline.com/tenant/discovery/v2.0/keys"}
            }
        },
        "rules": [{"id": "r1", "action": "allow", "hosts": ["airflow.internal"], "paths": ["/api/v1/dags/{dag_id}/dagRuns"]}]
    })
}

fn compile(config: &Value) -> Result<Policy, ConfigError> {
    Policy::from_json(config.to_string().as_bytes())
}

#[test]
fn valid_config_compiles_with_defaults() {
    let policy = compile(&base()).unwrap();
    assert_eq!(policy.providers.len(), 2);
    assert_eq!(policy.default_action, Action::Deny);
    assert_eq!(policy.mode, Mode::Enforce);
    assert_eq!(policy.max_token_bytes, DEFAULT_MAX_TOKEN_BYTES);
    assert!(policy.forward_normalized_path);
    // Both providers read `Authorization: Bearer` by default: one shared source.
    assert_eq!(policy.sources.len(), 1);
    let entra = policy.providers.iter().find(|p| p.name == "entra").unwrap();
    match &entra.keys {
        KeySource::Remote(r) => {
            assert_eq!(r.authority, "login.microsoftonline.com");
            assert_eq!(r.path, "/tenant/discovery/v2.0/keys");
            assert_eq!(r.cache_duration_s, DEFAULT_CACHE_DURATION_S);
        }
        KeySource::Local(_) => panic!("entra should be remote"),
    }
    assert_eq!(entra.clock_skew_s, 60);
    assert!(entra.require_expiration);
}

/// Each bad configuration names the offending field as a JSON path.
#[test]
fn errors_name_the_field() {
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "unknown top-level field",
            |c| c["rulez"] = json!([]),
            "rulez",
        ),
        (
            "unknown provider field",
            |c| c["providers"]["okta"]["audience"] = json!("x"),
            "providers.okta.audience",
        ),
        (
            "wrong type",
            |c| c["providers"]["okta"]["audiences"] = json!("x"),
            "providers.okta.audiences",
        ),
        (
            "empty issuer",
            |c| c["providers"]["okta"]["issuer"] = json!(""),
            "providers.okta.issuer",
        ),
        (
            "duplicate issuer",
            |c| c["providers"]["entra"]["issuer"] = c["providers"]["okta"]["issuer"].clone(),
            "providers.okta.issuer",
        ),
        (
            "no keys",
            |c| {
                c["providers"]["okta"]
                    .as_object_mut()
                    .unwrap()
                    .remove("local_jwks");
            },
            "providers.okta",
        ),
        (
            "both key sources",
            |c| {
                c["providers"]["okta"]["remote_jwks"] = json!({"cluster": "c", "uri": "http://x/k"})
            },
            "providers.okta",
        ),
        (
            "unusable local jwks",
            |c| c["providers"]["okta"]["local_jwks"] = json!({"inline": {"keys": []}}),
            "providers.okta.local_jwks",
        ),
        (
            "relative jwks uri",
            |c| c["providers"]["entra"]["remote_jwks"]["uri"] = json!("/keys"),
            "providers.entra.remote_jwks.uri",
        ),
        (
            "zero cache duration",
            |c| c["providers"]["entra"]["remote_jwks"]["cache_duration_s"] = json!(0),
            "providers.entra.remote_jwks.cache_duration_s",
        ),
        (
            "skew too large",
            |c| c["providers"]["okta"]["clock_skew_s"] = json!(86400),
            "providers.okta.clock_skew_s",
        ),
        (
            "bad header source",
            |c| c["providers"]["okta"]["from_headers"] = json!([{"name": "bad header"}]),
            "providers.okta.from_headers[0].name",
        ),
        (
            "claim header onto authorization",
            |c| {
                c["providers"]["okta"]["claim_to_headers"] =
                    json!([{"header_name": "Authorization", "claim_name": "sub"}])
            },
            "providers.okta.claim_to_headers[0].header_name",
        ),
        (
            "bad groups claim path",
            |c| c["providers"]["okta"]["groups_claim"] = json!("a..b"),
            "providers.okta.groups_claim",
        ),
        (
            "duplicate rule id",
            |c| c["rules"] = json!([{"id": "a", "action": "allow"}, {"id": "a", "action": "deny"}]),
            "rules[1].id",
        ),
        (
            "bad action",
            |c| c["rules"][0]["action"] = json!("permit"),
            "rules[0].action",
        ),
        (
            "bad host",
            |c| c["rules"][0]["hosts"] = json!(["a*.b"]),
            "rules[0].hosts[0]",
        ),
        (
            "bad method",
            |c| c["rules"][0]["methods"] = json!(["GET /"]),
            "rules[0].methods[0]",
        ),
        (
            "bad template",
            |c| c["rules"][0]["paths"] = json!(["/a/{x"]),
            "rules[0].paths[0]",
        ),
        (
            "bad exact path",
            |c| c["rules"][0]["paths"] = json!([{"exact": "relative"}]),
            "rules[0].paths[0]",
        ),
        (
            "unknown provider in when",
            |c| c["rules"][0]["when"] = json!({"providers": ["google"]}),
            "rules[0].when.providers[0]",
        ),
        (
            "claim condition with both",
            |c| {
                c["rules"][0]["when"] =
                    json!({"claims": [{"claim": "a", "equals": 1, "contains": 2}]})
            },
            "rules[0].when.claims[0]",
        ),
        (
            "unknown when field",
            |c| c["rules"][0]["when"] = json!({"group": ["x"]}),
            "rules[0].when.group",
        ),
        (
            "public deny",
            |c| c["rules"] = json!([{"id": "p", "action": "deny", "public": true}]),
            "rules[0].public",
        ),
        (
            "public with conditions",
            |c| c["rules"] = json!([{"id": "p", "action": "allow", "public": true, "when": {"groups_any": ["x"]}}]),
            "rules[0].public",
        ),
        ("bad mode", |c| c["mode"] = json!("dry-run"), "mode"),
        ("bad realm", |c| c["realm"] = json!("a\"b"), "realm"),
    ];
    for (name, edit, field) in cases {
        let mut config = base();
        edit(&mut config);
        let err = compile(&config)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(
            err.path == field || err.path.starts_with(&format!("{field}.")),
            "{name}: error names `{}`, expected `{field}`: {err}",
            err.path
        );
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("`{}`: ", err.path)),
            "{name}: {shown}"
        );
    }
    // The public rule cases above fail for their action and conditions; a proper one compiles.
    let mut config = base();
    config["rules"] = json!([{"id": "p", "action": "allow", "public": true, "paths": ["/health"]}]);
    compile(&config).unwrap();
}

#[test]
fn not_json_is_an_error_at_the_root() {
    let err = Policy::from_json(b"{not json").unwrap_err();
    assert_eq!(err.path, "(root)");
    assert!(Policy::from_json(b"").is_err());
}

/// A `backstage` provider derives issuer, audience and JWKS; what it derives can't also be set.
#[test]
fn backstage_provider_errors_name_the_field() {
    fn with_backstage() -> Value {
        let mut config = base();
        config["providers"]["bs"] = json!({"backstage": {"base_url": "https://backstage.example.com", "cluster": "backstage"}});
        config
    }
    compile(&with_backstage()).unwrap();
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "issuer next to backstage",
            |c| c["providers"]["bs"]["issuer"] = json!("https://backstage.example.com/api/auth"),
            "providers.bs.issuer",
        ),
        (
            "audiences next to backstage",
            |c| c["providers"]["bs"]["audiences"] = json!(["backstage"]),
            "providers.bs.audiences",
        ),
        (
            "remote_jwks next to backstage",
            |c| c["providers"]["bs"]["remote_jwks"] = json!({"cluster": "c", "uri": "http://x/k"}),
            "providers.bs.remote_jwks",
        ),
        (
            "groups_claim next to backstage",
            |c| c["providers"]["bs"]["groups_claim"] = json!("ent"),
            "providers.bs.groups_claim",
        ),
        (
            "base_url without scheme",
            |c| c["providers"]["bs"]["backstage"]["base_url"] = json!("backstage.example.com"),
            "providers.bs.backstage.base_url",
        ),
        (
            "base_url with a query",
            |c| c["providers"]["bs"]["backstage"]["base_url"] = json!("https://b.example.com/?x"),
            "providers.bs.backstage.base_url",
        ),
        (
            "no cluster",
            |c| c["providers"]["bs"]["backstage"]["cluster"] = json!(""),
            "providers.bs.backstage.cluster",
        ),
        (
            "refetch interval out of range",
            |c| c["providers"]["bs"]["backstage"]["refetch_min_interval_s"] = json!(0),
            "providers.bs.backstage.refetch_min_interval_s",
        ),
        (
            "timeout out of range",
            |c| c["providers"]["bs"]["backstage"]["timeout_ms"] = json!(0),
            "providers.bs.backstage.timeout_ms",
        ),
        (
            "unknown backstage field",
            |c| c["providers"]["bs"]["backstage"]["audience"] = json!("backstage"),
            "providers.bs.backstage.audience",
        ),
        (
            "bad unknown-kid mode",
            |c| c["providers"]["bs"]["backstage"]["refetch_on_unknown_kid"] = json!("sometimes"),
            "providers.bs.backstage.refetch_on_unknown_kid",
        ),
        (
            "the issuer another provider uses",
            |c| c["providers"]["okta"]["issuer"] = json!("https://backstage.example.com/api/auth"),
            "providers.okta.issuer",
        ),
    ];
    for (name, edit, field) in cases {
        let mut config = with_backstage();
        edit(&mut config);
        let err = compile(&config)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        assert_eq!(err.path, field, "{name}: {err}");
    }
    // Explicit JWKS settings reach the key source.
    let mut config = with_backstage();
    config["providers"]["bs"]["backstage"]["refetch_min_interval_s"] = json!(60);
    config["providers"]["bs"]["backstage"]["refetch_on_unknown_kid"] = json!("background");
    let policy = compile(&config).unwrap();
    let bs = policy.providers.iter().find(|p| p.name == "bs").unwrap();
    match &bs.keys {
        KeySource::Remote(r) => {
            assert_eq!(r.refetch_min_interval_s, 60);
            assert_eq!(r.on_unknown_kid, UnknownKid::Background);
            assert_eq!(
                r.uri,
                "https://backstage.example.com/api/auth/.well-known/jwks.json"
            );
        }
        KeySource::Local(_) => panic!("bs should be remote"),
    }
    assert_eq!(
        policy
            .by_issuer
            .get("https://backstage.example.com/api/auth"),
        Some(&0)
    );
}

/// A provider without `issuer` takes any issuer, like Envoy's `jwt_authn`. A token whose
/// `iss` names a provider goes to that one; any other token (or one without `iss`) goes to
/// the providers without `issuer` that read from where it was found, in name order.
#[test]
fn providers_without_issuer_are_chosen_by_token_source_then_name() {
    let mut config = base();
    config["providers"]["zeta"] = json!({
        "local_jwks": {"inline": {"keys": [public_jwk(&rsa_private(), "z", None)]}},
        "from_headers": [{"name": "x-zeta-token"}]
    });
    config["providers"]["any-b"] = json!({
        "local_jwks": {"inline": {"keys": [public_jwk(&rsa_private(), "b", None)]}}
    });
    config["providers"]["any-a"] = json!({
        "remote_jwks": {"cluster": "a", "uri": "https://a.example/keys"},
        "from_params": ["access_token"]
    });
    let policy = compile(&config).unwrap();
    let index = |name: &str| {
        policy
            .providers
            .iter()
            .position(|p| p.name == name)
            .unwrap()
    };
    let source = |pred: fn(&TokenSource) -> bool| policy.sources.iter().position(pred).unwrap();
    let bearer =
        source(|s| matches!(s, TokenSource::Header { name, .. } if name == "authorization"));
    let zeta_header =
        source(|s| matches!(s, TokenSource::Header { name, .. } if name == "x-zeta-token"));
    let param = source(|s| matches!(s, TokenSource::Param { .. }));
    assert_eq!(
        policy.any_issuer,
        [index("any-a"), index("any-b"), index("zeta")]
    );
    assert!(policy.providers[index("any-a")].issuer.is_none());

    let okta = "https://example.okta.com/oauth2/default";
    let cases: Vec<(Option<&str>, Option<usize>, Vec<usize>)> = vec![
        // A configured issuer decides alone, wherever the token was found.
        (Some(okta), Some(bearer), vec![index("okta")]),
        (Some(okta), Some(param), vec![index("okta")]),
        // Any other issuer, or none: the issuer-less providers reading that source.
        (
            Some("https://other"),
            Some(bearer),
            vec![index("any-a"), index("any-b")],
        ),
        (None, Some(bearer), vec![index("any-a"), index("any-b")]),
        (Some("https://other"), Some(param), vec![index("any-a")]),
        (
            Some("https://other"),
            Some(zeta_header),
            vec![index("zeta")],
        ),
        // A preview without a token: all of them, in name order.
        (
            None,
            None,
            vec![index("any-a"), index("any-b"), index("zeta")],
        ),
    ];
    for (iss, source, expected) in cases {
        assert_eq!(
            policy.providers_for(iss, source),
            expected,
            "{iss:?} at {source:?}"
        );
    }
    // Without issuer-less providers, an unknown issuer has no candidate.
    let policy = compile(&base()).unwrap();
    assert!(policy
        .providers_for(Some("https://other"), Some(0))
        .is_empty());
    assert!(policy.any_issuer.is_empty());
    // `issuer: ""` is still a mistake, not "any".
    let mut config = base();
    config["providers"]["okta"]["issuer"] = json!("");
    assert_eq!(compile(&config).unwrap_err().path, "providers.okta.issuer");
}

/// A local key set without a usable key is refused, with every key's reason.
#[test]
fn inline_key_set_without_usable_key_names_each_skip() {
    let mut config = base();
    config["providers"]["okta"]["local_jwks"] = json!({"inline": {"keys": [
        {"kty": "EC", "crv": "P-192", "kid": "old-curve", "x": "AA", "y": "AA"},
        {"kty": "RSA", "kid": "enc-key", "use": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "kid": "short", "k": "c2hvcnQ"}
    ]}});
    let err = compile(&config).unwrap_err();
    assert_eq!(err.path, "providers.okta.local_jwks");
    let message = err.to_string();
    for needle in [
        "3 skipped",
        "key `old-curve`: key type `EC` with curve `P-192` is not supported",
        "key `enc-key`: `use` is `enc`",
        "key `short`: HMAC secret is 5 bytes",
    ] {
        assert!(message.contains(needle), "{needle} not in {message}");
    }
    config["providers"]["okta"]["local_jwks"] = json!({"inline": {"keys": []}});
    assert!(compile(&config)
        .unwrap_err()
        .to_string()
        .contains("no keys"));
}
