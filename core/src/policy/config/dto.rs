//! The plugin configuration as users write it (JSON), field names following Envoy's
//! `jwt_authn` and `rbac` where the concept is the same. Nothing here is trusted until
//! `compile` has checked it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Providers by name; `BTreeMap` so compilation order (and errors) are deterministic.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub default_action: Option<ActionConfig>,
    #[serde(default)]
    pub mode: Option<ModeConfig>,
    #[serde(default)]
    pub mode_overrides: Vec<ModeOverrideConfig>,
    #[serde(default)]
    pub decision_log: Option<DecisionLogConfig>,
    #[serde(default)]
    pub path_normalization: Option<PathNormalizationConfig>,
    /// Limit on a token's size in bytes (default 8192).
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
    /// Like jwt_authn's `jwt_cache_config`: verified tokens kept per worker.
    #[serde(default)]
    pub jwt_cache_config: Option<JwtCacheConfig>,
    /// `realm` in `WWW-Authenticate` (default `meshgate`).
    #[serde(default)]
    pub realm: Option<String>,
    /// What happens when a provider's keys have never loaded (IdP down since start):
    /// `closed` (default) denies, `open` lets requests through without identity.
    #[serde(default)]
    pub failure_mode: Option<FailureModeConfig>,
    /// Where the catalog snapshot comes from (the control plane), and how it is trusted.
    #[serde(default)]
    pub snapshot: Option<SnapshotConfig>,
}

/// The control plane's snapshot, polled through an Envoy cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    pub cluster: String,
    /// `http://meshgate-cp.internal:18090/v1/snapshots/default`
    pub uri: String,
    /// Ed25519 keys the snapshot may be signed with (`meshgate keygen` prints the line).
    pub public_keys: Vec<SnapshotKeyConfig>,
    /// How often to ask for a newer snapshot (default 10).
    #[serde(default)]
    pub poll_interval_s: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Ask the control plane to hold each poll up to this long until a newer snapshot is
    /// published (`Prefer: wait=N`); 0 or absent: plain polling every `poll_interval_s`.
    #[serde(default)]
    pub long_poll_s: Option<u64>,
    /// A snapshot not confirmed by the control plane for this long counts as unavailable
    /// (`failure_mode` decides). Default: never; the last good snapshot stays in force.
    #[serde(default)]
    pub max_staleness_s: Option<u64>,
    /// Largest snapshot accepted, in bytes (default 64 MiB).
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotKeyConfig {
    pub kid: String,
    pub public_key: String,
}

/// Which decisions are logged, and whether they are exposed to Envoy's access log.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogConfig {
    /// Share of allowed requests logged, 0.0-1.0 (default 0).
    #[serde(default)]
    pub allow_sample_rate: Option<f64>,
    /// Share of denied requests logged, 0.0-1.0 (default 1).
    #[serde(default)]
    pub deny_sample_rate: Option<f64>,
    /// Also store each decision in Envoy filter state as `wasm.meshgate_decision`, for
    /// access-log formatters (`%FILTER_STATE(wasm.meshgate_decision:PLAIN)%`).
    #[serde(default)]
    pub filter_state: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureModeConfig {
    Closed,
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionConfig {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeConfig {
    Enforce,
    Shadow,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathNormalizationConfig {
    #[serde(default)]
    pub allow_encoded_slash: bool,
    #[serde(default)]
    pub allow_backslash: bool,
    #[serde(default)]
    pub allow_semicolon: bool,
    /// Forward the normalized path (default true), so the upstream gets the path that
    /// was authorized even when Envoy's own `normalize_path` is off.
    #[serde(default)]
    pub forward_normalized_path: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtCacheConfig {
    /// 0 turns the cache off.
    pub jwt_cache_size: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Required, except for a `backstage` provider (derived from its base URL).
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub local_jwks: Option<LocalJwksConfig>,
    #[serde(default)]
    pub remote_jwks: Option<RemoteJwksConfig>,
    #[serde(default)]
    pub from_headers: Option<Vec<HeaderSourceConfig>>,
    #[serde(default)]
    pub from_params: Vec<String>,
    #[serde(default)]
    pub from_cookies: Vec<String>,
    #[serde(default)]
    pub forward: bool,
    #[serde(default)]
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub email_claim: Option<String>,
    #[serde(default)]
    pub username_claim: Option<String>,
    #[serde(default)]
    pub clock_skew_s: Option<i64>,
    #[serde(default)]
    pub max_lifetime_s: Option<i64>,
    #[serde(default)]
    pub require_expiration: Option<bool>,
    #[serde(default)]
    pub max_groups: Option<usize>,
    #[serde(default)]
    pub groups_case_insensitive: bool,
    #[serde(default)]
    pub claim_to_headers: Vec<ClaimToHeaderConfig>,
    /// How this provider's callers are found in the catalog snapshot.
    #[serde(default)]
    pub catalog_user: Option<CatalogUserConfig>,
    /// A Backstage auth backend: issuer, audience and JWKS come from its base URL.
    #[serde(default)]
    pub backstage: Option<BackstageConfig>,
}

/// A provider for Backstage user tokens (forwarded by Backstage's proxy with
/// `credentials: forward`). `issuer` is `{base_url}/api/auth`, the audience `backstage`, the
/// JWKS `{base_url}/api/auth/.well-known/jwks.json`, fetched through `cluster`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackstageConfig {
    /// The backend's base URL as Backstage knows it (`backend.baseUrl`): `https://backstage.example.com`.
    pub base_url: String,
    /// The Envoy cluster the JWKS is fetched through.
    pub cluster: String,
    /// Accept tokens without `typ` whose `aud` is `backstage` (older Backstage releases).
    #[serde(default)]
    pub legacy_tokens: bool,
    /// Count the `group:` refs of the token's `ent` claim. Default: off when a catalog
    /// snapshot is configured, on when not.
    #[serde(default)]
    pub trust_token_groups: Option<bool>,
    /// As in `remote_jwks`.
    #[serde(default)]
    pub cache_duration_s: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// As in `remote_jwks` (default `wait`).
    #[serde(default)]
    pub refetch_on_unknown_kid: Option<UnknownKidConfig>,
    /// As in `remote_jwks`, but 5 by default: Backstage makes new keys all the time.
    #[serde(default)]
    pub refetch_min_interval_s: Option<u64>,
}

/// Like Backstage's sign-in resolvers; the first lookup that finds a user wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogUserConfig {
    /// Default `[entity_ref, email]`.
    #[serde(default)]
    pub resolve_by: Option<Vec<ResolveByConfig>>,
    /// Namespace of user entities for name lookups (default `default`).
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveByConfig {
    EntityRef,
    Email,
    Username,
    EmailLocalPart,
    Subject,
}

/// Envoy's `local_jwks` is a data source; `inline_string` holds the JWKS as a string.
/// `inline` takes the same document as a JSON object, which reads better in JSON config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalJwksConfig {
    #[serde(default)]
    pub inline_string: Option<String>,
    #[serde(default)]
    pub inline: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteJwksConfig {
    /// Envoy cluster the fetch goes through.
    pub cluster: String,
    pub uri: String,
    #[serde(default)]
    pub cache_duration_s: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// On a token whose `kid` is not in the key set: `wait` (default) refetches the JWKS
    /// and holds the request until it lands, `background` refetches and denies this
    /// request, `off` only denies. Refetches are rate limited per key set.
    #[serde(default)]
    pub refetch_on_unknown_kid: Option<UnknownKidConfig>,
    /// Least time between two refetches caused by unknown `kid`s (default 30).
    #[serde(default)]
    pub refetch_min_interval_s: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownKidConfig {
    Wait,
    Background,
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSourceConfig {
    pub name: String,
    #[serde(default)]
    pub value_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimToHeaderConfig {
    pub header_name: String,
    pub claim_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub id: String,
    pub action: ActionConfig,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub paths: Vec<PathConfig>,
    #[serde(default)]
    pub when: Option<WhenConfig>,
    /// Per-route override of the global `failure_mode` (allow rules only).
    #[serde(default)]
    pub failure_mode: Option<FailureModeConfig>,
    /// `shadow`: the rule never decides; decisions record what it would have done
    /// (like Envoy RBAC's `shadow_rules`).
    #[serde(default)]
    pub mode: Option<ModeConfig>,
}

/// The mode for part of the traffic, overriding the global `mode` (first match wins).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeOverrideConfig {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub paths: Vec<PathConfig>,
    pub mode: ModeConfig,
}

/// A bare string is a template (`/api/v1/dags/{dag_id}/dagRuns`, `/api/**`); objects
/// spell Envoy's `exact` and `prefix` matchers.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PathConfig {
    Template(String),
    Exact { exact: String },
    Prefix { prefix: String },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenConfig {
    #[serde(default)]
    pub groups_any: Vec<String>,
    #[serde(default)]
    pub groups_all: Vec<String>,
    #[serde(default)]
    pub subjects: Vec<String>,
    #[serde(default)]
    pub providers: Vec<String>,
    #[serde(default)]
    pub claims: Vec<ClaimConditionConfig>,
    /// The caller's groups own the catalog resource named by the path.
    #[serde(default)]
    pub owns: Option<OwnsConfig>,
}

/// `{"kind": "airflow.dag", "id": "{dag_id}"}`: the resource (kind, id) whose catalog owners
/// the caller must be among; `id` is built from the rule's path parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnsConfig {
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimConditionConfig {
    pub claim: String,
    #[serde(default)]
    pub equals: Option<Value>,
    #[serde(default)]
    pub contains: Option<Value>,
}
