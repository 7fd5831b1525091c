//! Why a configuration is refused: the field, as a JSON path, and what is wrong with it.

use crate::policy::pattern::PatternError;
use crate::snapshot::KeyError;
use crate::token::jwks::JwksError;

/// A configuration error names the field (as a JSON path) and says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{path}`: {reason}")]
pub struct ConfigError {
    pub path: String,
    pub reason: ConfigReason,
}

impl ConfigError {
    pub(super) fn new(path: impl Into<String>, reason: ConfigReason) -> ConfigError {
        ConfigError {
            path: path.into(),
            reason,
        }
    }
}

/// What is wrong with the field a [`ConfigError`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigReason {
    // Shape and values of any field.
    /// Not JSON, or not the expected shape: serde's words (unknown field, wrong type).
    #[error("{detail}")]
    Json { detail: String },
    #[error("must not be empty")]
    Empty,
    /// Published content that cannot be read (a snapshot's grants).
    #[error("unreadable: {detail}")]
    Unreadable { detail: String },
    #[error("must be greater than 0")]
    Zero,
    #[error("must be between {min} and {max}")]
    OutOfRange { min: u64, max: u64 },
    /// A sample rate outside `0.0..=1.0`.
    #[error("must be between 0.0 and 1.0")]
    NotAShare,
    /// An id used twice; `first` is where it was first used (`rules[0]`).
    #[error("`{id}` is already the id of {first}")]
    DuplicateId { id: String, first: String },

    // Plugin settings.
    #[error("must be non-empty printable ASCII without quotes or backslashes")]
    Realm,
    #[error("`{uri}` is not an http(s) URL with a host")]
    SnapshotUri { uri: String },
    #[error("list at least one key (the line `meshgate keygen` prints)")]
    NoSnapshotKeys,
    #[error(transparent)]
    SnapshotKey(KeyError),
    #[error("must be at least poll_interval_s, or every poll would find the snapshot stale")]
    StalenessBelowPoll,
    #[error("must be more than long_poll_s, or a held poll would find the snapshot stale")]
    StalenessBelowLongPoll,

    // Providers.
    #[error("provider names use letters, digits, `-` and `_`")]
    ProviderName,
    #[error("issuer `{issuer}` is also used by provider `{provider}`")]
    DuplicateIssuer { issuer: String, provider: String },
    #[error("audiences must not be empty strings")]
    EmptyAudience,
    #[error("`{name}` is not a valid header name")]
    HeaderName { name: String },
    #[error("must be a plain query parameter name")]
    QueryParam,
    #[error("must be a plain cookie name")]
    CookieName,
    #[error("`{path}` is not a claim name or dotted path")]
    ClaimPath { path: String },
    #[error("`{name}` can't carry a claim")]
    ReservedHeader { name: String },
    #[error("name at least one lookup: entity_ref, email, username, email_local_part or subject")]
    NoLookup,
    #[error("a Backstage namespace: non-empty, without `/` or `:`")]
    Namespace,
    #[error("set one of `local_jwks` and `remote_jwks`, not both")]
    BothKeySources,
    #[error("needs `local_jwks` or `remote_jwks`")]
    NoKeySource,
    #[error("set exactly one of `inline_string` and `inline`")]
    InlineKeys,
    /// The local key set does not parse or has no usable key.
    #[error(transparent)]
    Keys(JwksError),
    #[error("must name an Envoy cluster")]
    Cluster,
    #[error("`{uri}` is not an absolute http(s) URI")]
    JwksUri { uri: String },
    #[error(
        "Backstage tokens carry groups in `ent` (see `backstage.trust_token_groups`); remove it"
    )]
    BackstageGroupsClaim,
    #[error("derived from `backstage.base_url` for a Backstage provider; remove it")]
    DerivedFromBackstage,
    #[error("`{url}` is not the backend's base URL (`https://backstage.example.com`: http(s), a host, no query)")]
    BackstageUrl { url: String },

    // Rules.
    #[error("rule ids are 1-128 characters of letters, digits and `-_.:/`")]
    RuleId,
    #[error("no provider is named `{name}`")]
    UnknownProvider { name: String },
    #[error("set exactly one of `equals` and `contains`")]
    ClaimMatch,
    #[error("a public rule must be an `allow` rule without `when`")]
    PublicNotAllow,
    #[error("only `allow` rules can override the failure mode")]
    FailureModeOnDeny,
    #[error("a public rule can't be a shadow rule")]
    PublicShadow,
    #[error("`{host}` is not a host, `*.suffix` or `*`")]
    Host { host: String },
    #[error("`{method}` is not an HTTP method")]
    Method { method: String },
    #[error(transparent)]
    Path(PatternError),
    #[error("`{name}` is not a group name or a group entity ref (`group:namespace/name`)")]
    Group { name: String },
    #[error("a resource kind such as `airflow.dag`: 1-128 characters, no spaces")]
    ResourceKind,
    #[error("expected text and `{{param}}` references with at least one parameter, e.g. `{{dag_id}}` or `{{org}}/{{pipeline}}`")]
    IdTemplate,
    #[error("an ownership condition needs `paths` templates that name its parameters")]
    NoOwnershipPaths,
    #[error("paths[{index}] is not a template, so it has no parameters")]
    NotATemplate { index: usize },
    #[error("paths[{index}] `{template}` has no parameter `{name}`")]
    MissingParam {
        index: usize,
        template: String,
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::policy::config::Policy;
    use crate::testing::{public_jwk, rsa_private};

    fn provider(issuer: &str) -> Value {
        json!({"issuer": issuer, "local_jwks": {"inline": {"keys": [public_jwk(&rsa_private(), "k1", Some("RS256"))]}}})
    }

    fn with_provider(field: &str, value: Value) -> Value {
        let mut a = provider("https://idp");
        a[field] = value;
        json!({"providers": {"a": a}})
    }

    fn with_rule(rule: Value) -> Value {
        json!({"providers": {"a": provider("https://idp")}, "rules": [rule]})
    }

    /// Each kind of refusal, as the one line an operator reads.
    #[test]
    fn errors_read_as_one_line_naming_the_field() {
        let remote = |field: &str, value: Value| {
            let mut jwks = json!({"cluster": "idp", "uri": "https://idp/keys"});
            jwks[field] = value;
            json!({"providers": {"a": {"issuer": "https://idp", "remote_jwks": jwks}}})
        };
        let owns = |id: &str, paths: Value| {
            with_rule(
                json!({"id": "r", "action": "allow", "paths": paths, "when": {"owns": {"kind": "airflow.dag", "id": id}}}),
            )
        };
        let snapshot = |extra: Value| {
            let mut snapshot = json!({"cluster": "cp", "uri": "http://cp/v1/snapshots/default",
                "public_keys": [{"kid": "cp-1", "public_key": "ZCE4FFXoyAP8T_C_WuICsDcdOZYJWVgs54xBIefXy_A"}]});
            if let (Some(fields), Some(extra)) = (snapshot.as_object_mut(), extra.as_object()) {
                fields.extend(extra.clone());
            }
            json!({"snapshot": snapshot})
        };
        let cases: Vec<(Value, &str)> = vec![
            (
                json!(1),
                "`(root)`: invalid type: integer `1`, expected struct PluginConfig at line 1 column 1",
            ),
            (with_provider("issuer", json!("")), "`providers.a.issuer`: must not be empty"),
            (
                json!({"providers": {"a": provider("https://idp"), "b": provider("https://idp")}}),
                "`providers.b.issuer`: issuer `https://idp` is also used by provider `a`",
            ),
            (with_provider("clock_skew_s", json!(86400)), "`providers.a.clock_skew_s`: must be between 0 and 3600"),
            (with_provider("max_lifetime_s", json!(0)), "`providers.a.max_lifetime_s`: must be greater than 0"),
            (remote("timeout_ms", json!(0)), "`providers.a.remote_jwks.timeout_ms`: must be between 1 and 60000"),
            (remote("uri", json!("/keys")), "`providers.a.remote_jwks.uri`: `/keys` is not an absolute http(s) URI"),
            (
                with_provider("from_headers", json!([{"name": "bad header"}])),
                "`providers.a.from_headers[0].name`: `bad header` is not a valid header name",
            ),
            (
                with_provider("local_jwks", json!({"inline": {"keys": []}})),
                "`providers.a.local_jwks`: JWKS has no keys",
            ),
            (
                json!({"providers": {"a b": provider("https://idp")}}),
                "`providers.a b`: provider names use letters, digits, `-` and `_`",
            ),
            (
                json!({"decision_log": {"deny_sample_rate": 2.0}}),
                "`decision_log.deny_sample_rate`: must be between 0.0 and 1.0",
            ),
            (
                with_rule(json!({"id": "r", "action": "allow", "methods": ["FETCH!"]})),
                "`rules[0].methods[0]`: `FETCH!` is not an HTTP method",
            ),
            (
                with_rule(json!({"id": "r", "action": "allow", "paths": ["/a/../b"]})),
                "`rules[0].paths[0]`: segment `..` is a dot segment, which a normalized path never contains",
            ),
            (
                with_rule(json!({"id": "r", "action": "allow", "when": {"providers": ["nope"]}})),
                "`rules[0].when.providers[0]`: no provider is named `nope`",
            ),
            (
                json!({"rules": [{"id": "r", "action": "allow"}, {"id": "r", "action": "deny"}]}),
                "`rules[1].id`: `r` is already the id of rules[0]",
            ),
            (
                owns("dag", json!(["/dags/{dag_id}"])),
                "`rules[0].when.owns.id`: expected text and `{param}` references with at least one parameter, e.g. `{dag_id}` or `{org}/{pipeline}`",
            ),
            (
                owns("{dag_id}", json!([{"prefix": "/dags/"}])),
                "`rules[0].when.owns.id`: paths[0] is not a template, so it has no parameters",
            ),
            (
                owns("{dag}", json!(["/dags/{dag_id}"])),
                "`rules[0].when.owns.id`: paths[0] `/dags/{dag_id}` has no parameter `dag`",
            ),
            (
                json!({"snapshot": {"cluster": "cp", "uri": "http://cp/v1/snapshots/default", "public_keys": [{"kid": "cp-1", "public_key": "nope"}]}}),
                "`snapshot.public_keys[0]`: public key is 3 bytes; an Ed25519 public key is 32 bytes",
            ),
            (
                snapshot(json!({"long_poll_s": 56})),
                "`snapshot.long_poll_s`: must be between 0 and 55",
            ),
            (
                snapshot(json!({"long_poll_s": 30, "max_staleness_s": 30})),
                "`snapshot.max_staleness_s`: must be more than long_poll_s, or a held poll would find the snapshot stale",
            ),
        ];
        for (config, expected) in cases {
            let err = Policy::from_json(config.to_string().as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), expected, "{config}");
        }
    }
}
