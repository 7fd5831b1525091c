//! Plugin configuration: JSON → `dto` → validated, compiled `Policy`. Either the whole
//! configuration compiles or nothing of it is used.

pub mod dto;
mod err;
mod rules;

pub use err::{ConfigError, ConfigReason};
pub use rules::compile_rules_json;

use std::collections::HashMap;
use std::sync::Arc;

use crate::identity::backstage::{self, BackstageProfile};
use crate::identity::claims::ClaimPath;
use crate::identity::provider::{
    ClaimToHeader, KeySource, Provider, RemoteJwks, ResolveBy, UnknownKid, DEFAULT_CLOCK_SKEW_S,
    DEFAULT_MAX_GROUPS,
};
use crate::policy::path::PathOptions;
use crate::policy::rules::{Action, RouteMatch, RuleSet};
use crate::token::extract::TokenSource;
use crate::token::jwks::{KeyOrigin, KeySet};
use crate::token::jws::DEFAULT_MAX_TOKEN_BYTES;

use dto::{
    ActionConfig, FailureModeConfig, ModeConfig, PluginConfig, ProviderConfig, ResolveByConfig,
    UnknownKidConfig,
};

pub const DEFAULT_JWT_CACHE_SIZE: usize = 1024;
pub const DEFAULT_CACHE_DURATION_S: u64 = 300;
pub const DEFAULT_FETCH_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_REFETCH_MIN_INTERVAL_S: u64 = 30;
/// Every header meshgate injects starts with this; incoming ones are always removed.
pub const IDENTITY_HEADER_PREFIX: &str = "x-meshgate-";

/// Which decisions are logged: shares in parts per million, so sampling is integer math.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionLog {
    pub allow_ppm: u32,
    pub deny_ppm: u32,
    pub filter_state: bool,
}

impl DecisionLog {
    /// Whether to log this decision. Keyed by the request id when there is one, so every
    /// proxy on a request's path makes the same choice.
    pub fn sampled(&self, allowed: bool, key: u64) -> bool {
        let ppm = if allowed {
            self.allow_ppm
        } else {
            self.deny_ppm
        };
        match ppm {
            0 => false,
            1_000_000.. => true,
            share => (key % 1_000_000) < u64::from(share),
        }
    }
}

/// What to do when a provider's keys have never loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    Closed,
    /// Let the request through without identity, and count it.
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    /// Every request passes; the decision is logged and counted as if enforced.
    Shadow,
}

/// A compiled, validated configuration. Immutable; shared by all requests.
#[derive(Debug, Clone)]
pub struct Policy {
    pub providers: Vec<Provider>,
    pub by_issuer: HashMap<String, usize>,
    /// Providers without `issuer`, in name order: the candidates for a token whose `iss`
    /// no provider names.
    pub any_issuer: Vec<usize>,
    /// Every place any provider reads tokens from, in lookup order.
    pub sources: Vec<TokenSource>,
    pub rules: RuleSet,
    pub default_action: Action,
    pub mode: Mode,
    /// Per-route modes, first match wins; otherwise `mode`.
    pub mode_overrides: Vec<(RouteMatch, Mode)>,
    /// Whether any rule is a shadow rule (so decisions compute shadow outcomes).
    pub has_shadow_rules: bool,
    pub decision_log: DecisionLog,
    pub path_options: PathOptions,
    pub max_token_bytes: usize,
    pub jwt_cache_size: usize,
    pub realm: String,
    /// Lowercase header names meshgate sets; incoming copies are removed.
    pub owned_headers: Vec<String>,
    /// Rewrite `:path` to the normalized path on allowed requests.
    pub forward_normalized_path: bool,
    pub failure_mode: FailureMode,
    /// The catalog snapshot source, when one is configured.
    pub snapshot: Option<SnapshotSource>,
}

/// Where and how the filter gets catalog snapshots.
#[derive(Debug, Clone)]
pub struct SnapshotSource {
    pub cluster: String,
    pub uri: String,
    pub authority: String,
    pub path: String,
    pub trusted_keys: Vec<crate::snapshot::TrustedKey>,
    pub poll_interval_s: u64,
    pub timeout_ms: u64,
    /// Longest the control plane may hold a poll (`Prefer: wait`); 0: not asked.
    pub long_poll_s: u64,
    pub max_staleness_s: Option<u64>,
    pub limits: crate::snapshot::DecodeLimits,
}

pub const DEFAULT_SNAPSHOT_POLL_S: u64 = 10;
/// The longest wait a poll may ask for: meshgate's control plane holds no poll longer (common
/// proxies cut idle connections at 60 s).
pub const MAX_LONG_POLL_S: u64 = 55;

impl Policy {
    /// The providers that may have issued a token with this `iss` (if any) found at token
    /// source `source`, in the order to try them: the provider naming that issuer, alone;
    /// else the providers without `issuer` that read tokens from `source`, in name order.
    /// A provider naming the issuer wins even when it doesn't read from `source` (the
    /// token is then refused as found in the wrong place).
    pub fn providers_for(&self, iss: Option<&str>, source: Option<usize>) -> Vec<usize> {
        if let Some(&index) = iss.and_then(|iss| self.by_issuer.get(iss)) {
            return vec![index];
        }
        self.any_issuer
            .iter()
            .copied()
            .filter(|&index| {
                source.is_none_or(|source| {
                    self.providers
                        .get(index)
                        .is_some_and(|p| p.sources.contains(&source))
                })
            })
            .collect()
    }

    /// The mode for this request: the first matching override, else the global mode.
    pub fn mode_for(&self, facts: &crate::request::RequestFacts<'_>) -> Mode {
        self.mode_overrides
            .iter()
            .find(|(route, _)| route.matches(facts))
            .map_or(self.mode, |(_, mode)| *mode)
    }

    /// Parses and compiles plugin configuration JSON.
    pub fn from_json(json: &[u8]) -> Result<Policy, ConfigError> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let dto: PluginConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            // serde_path_to_error says `.` for the root and `?` before any field was read.
            ConfigError::new(
                if path == "." || path == "?" {
                    String::from("(root)")
                } else {
                    path
                },
                ConfigReason::Json {
                    detail: e.into_inner().to_string(),
                },
            )
        })?;
        Policy::try_from(dto)
    }
}

impl TryFrom<PluginConfig> for Policy {
    type Error = ConfigError;

    fn try_from(dto: PluginConfig) -> Result<Policy, ConfigError> {
        let mut sources: Vec<TokenSource> = Vec::new();
        let mut providers = Vec::with_capacity(dto.providers.len());
        let mut by_issuer = HashMap::new();
        let mut any_issuer = Vec::new();
        let mut owned_headers = Vec::new();
        let has_snapshot = dto.snapshot.is_some();
        for (name, cfg) in &dto.providers {
            let provider = compile_provider(name, cfg, &mut sources, has_snapshot)?;
            match &provider.issuer {
                Some(issuer) => {
                    if let Some(other) = by_issuer.insert(issuer.clone(), providers.len()) {
                        let other_name = providers
                            .get(other)
                            .map_or("?", |p: &Provider| p.name.as_str());
                        return Err(ConfigError::new(
                            format!("providers.{name}.issuer"),
                            ConfigReason::DuplicateIssuer {
                                issuer: issuer.clone(),
                                provider: other_name.to_owned(),
                            },
                        ));
                    }
                }
                None => any_issuer.push(providers.len()),
            }
            owned_headers.extend(
                provider
                    .claim_to_headers
                    .iter()
                    .map(|c| c.header_name.clone()),
            );
            providers.push(provider);
        }
        owned_headers.sort();
        owned_headers.dedup();

        let mut seen_ids = HashMap::new();
        let mut rules = Vec::with_capacity(dto.rules.len());
        for (index, rule) in dto.rules.iter().enumerate() {
            let path = format!("rules[{index}]");
            if let Some(previous) = seen_ids.insert(rule.id.clone(), index) {
                return Err(ConfigError::new(
                    format!("{path}.id"),
                    ConfigReason::DuplicateId {
                        id: rule.id.clone(),
                        first: format!("rules[{previous}]"),
                    },
                ));
            }
            rules.push(rules::compile_rule(&path, rule, &|name| {
                dto.providers.contains_key(name)
            })?);
        }

        let log = dto.decision_log.unwrap_or_default();
        let decision_log = DecisionLog {
            allow_ppm: share_ppm("decision_log.allow_sample_rate", log.allow_sample_rate, 0.0)?,
            deny_ppm: share_ppm("decision_log.deny_sample_rate", log.deny_sample_rate, 1.0)?,
            filter_state: log.filter_state,
        };
        let mut mode_overrides = Vec::with_capacity(dto.mode_overrides.len());
        for (i, o) in dto.mode_overrides.iter().enumerate() {
            let route = rules::compile_route(
                &format!("mode_overrides[{i}]"),
                &o.hosts,
                &o.methods,
                &o.paths,
            )?;
            mode_overrides.push((route, mode(Some(o.mode))));
        }
        let normalization = dto.path_normalization.unwrap_or_default();
        let max_token_bytes = dto.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
        if max_token_bytes == 0 {
            return Err(ConfigError::new("max_token_bytes", ConfigReason::Zero));
        }
        let realm = dto.realm.unwrap_or_else(|| String::from("meshgate"));
        if realm.is_empty()
            || !realm
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ')
        {
            return Err(ConfigError::new("realm", ConfigReason::Realm));
        }
        let rules = RuleSet::new(rules);
        Ok(Policy {
            decision_log,
            has_shadow_rules: rules.has_shadow_rules(),
            providers,
            by_issuer,
            any_issuer,
            sources,
            rules,
            default_action: match dto.default_action {
                Some(ActionConfig::Allow) => Action::Allow,
                Some(ActionConfig::Deny) | None => Action::Deny,
            },
            mode: mode(dto.mode),
            mode_overrides,
            path_options: PathOptions {
                allow_encoded_slash: normalization.allow_encoded_slash,
                allow_backslash: normalization.allow_backslash,
                allow_semicolon: normalization.allow_semicolon,
            },
            max_token_bytes,
            jwt_cache_size: dto
                .jwt_cache_config
                .map_or(DEFAULT_JWT_CACHE_SIZE, |c| c.jwt_cache_size),
            realm,
            owned_headers,
            forward_normalized_path: normalization.forward_normalized_path.unwrap_or(true),
            failure_mode: failure_mode(dto.failure_mode),
            snapshot: dto.snapshot.as_ref().map(compile_snapshot).transpose()?,
        })
    }
}

fn share_ppm(path: &str, value: Option<f64>, default: f64) -> Result<u32, ConfigError> {
    let share = value.unwrap_or(default);
    if !(0.0..=1.0).contains(&share) {
        return Err(ConfigError::new(path, ConfigReason::NotAShare));
    }
    // In range by the check above, so the cast can't truncate meaningfully.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "0.0..=1.0 checked"
    )]
    Ok((share * 1_000_000.0).round() as u32)
}

fn mode(dto: Option<ModeConfig>) -> Mode {
    match dto {
        Some(ModeConfig::Shadow) => Mode::Shadow,
        Some(ModeConfig::Enforce) | None => Mode::Enforce,
    }
}

fn failure_mode(dto: Option<FailureModeConfig>) -> FailureMode {
    match dto {
        Some(FailureModeConfig::Open) => FailureMode::Open,
        Some(FailureModeConfig::Closed) | None => FailureMode::Closed,
    }
}

fn compile_provider(
    name: &str,
    cfg: &ProviderConfig,
    sources: &mut Vec<TokenSource>,
    has_snapshot: bool,
) -> Result<Provider, ConfigError> {
    let at = |field: &str| format!("providers.{name}.{field}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConfigError::new(
            format!("providers.{name}"),
            ConfigReason::ProviderName,
        ));
    }
    let identity = match &cfg.backstage {
        Some(backstage) => compile_backstage(name, cfg, backstage, has_snapshot)?,
        None => compile_issuer(name, cfg)?,
    };

    let mut own_sources = Vec::new();
    let default_headers = [dto::HeaderSourceConfig {
        name: String::from("authorization"),
        value_prefix: String::from("Bearer "),
    }];
    let headers = cfg.from_headers.as_deref().unwrap_or(&default_headers);
    for (i, header) in headers.iter().enumerate() {
        let header_name = header.name.to_ascii_lowercase();
        if !is_header_name(&header_name) {
            return Err(ConfigError::new(
                format!("{}[{i}].name", at("from_headers")),
                ConfigReason::HeaderName {
                    name: header.name.clone(),
                },
            ));
        }
        own_sources.push(TokenSource::Header {
            name: header_name,
            value_prefix: header.value_prefix.clone(),
        });
    }
    for (i, param) in cfg.from_params.iter().enumerate() {
        if param.is_empty() || param.contains(['&', '=', '?', '#']) {
            return Err(ConfigError::new(
                format!("{}[{i}]", at("from_params")),
                ConfigReason::QueryParam,
            ));
        }
        own_sources.push(TokenSource::Param {
            name: param.clone(),
        });
    }
    for (i, cookie) in cfg.from_cookies.iter().enumerate() {
        if cookie.is_empty() || cookie.contains([';', '=', ' ']) {
            return Err(ConfigError::new(
                format!("{}[{i}]", at("from_cookies")),
                ConfigReason::CookieName,
            ));
        }
        own_sources.push(TokenSource::Cookie {
            name: cookie.clone(),
        });
    }
    let source_indices = own_sources
        .into_iter()
        .map(|source| match sources.iter().position(|s| *s == source) {
            Some(index) => index,
            None => {
                sources.push(source);
                sources.len().saturating_sub(1)
            }
        })
        .collect();

    let claim_path = |field: &str,
                      value: &Option<String>,
                      default: Option<&str>|
     -> Result<Option<ClaimPath>, ConfigError> {
        match value.as_deref().or(default) {
            None | Some("") => Ok(None),
            Some(path) => ClaimPath::new(path).map(Some).ok_or_else(|| {
                ConfigError::new(
                    at(field),
                    ConfigReason::ClaimPath {
                        path: path.to_owned(),
                    },
                )
            }),
        }
    };
    let clock_skew_s = cfg.clock_skew_s.unwrap_or(DEFAULT_CLOCK_SKEW_S);
    if !(0..=3600).contains(&clock_skew_s) {
        return Err(ConfigError::new(
            at("clock_skew_s"),
            ConfigReason::OutOfRange { min: 0, max: 3600 },
        ));
    }
    if cfg.max_lifetime_s.is_some_and(|m| m <= 0) {
        return Err(ConfigError::new(at("max_lifetime_s"), ConfigReason::Zero));
    }
    let mut claim_to_headers = Vec::new();
    for (i, mapping) in cfg.claim_to_headers.iter().enumerate() {
        let header_name = mapping.header_name.to_ascii_lowercase();
        if !is_header_name(&header_name) || header_name.starts_with(':') {
            return Err(ConfigError::new(
                format!("{}[{i}].header_name", at("claim_to_headers")),
                ConfigReason::HeaderName {
                    name: mapping.header_name.clone(),
                },
            ));
        }
        if matches!(
            header_name.as_str(),
            "authorization" | "host" | "cookie" | "content-length" | "transfer-encoding"
        ) {
            return Err(ConfigError::new(
                format!("{}[{i}].header_name", at("claim_to_headers")),
                ConfigReason::ReservedHeader { name: header_name },
            ));
        }
        let claim = ClaimPath::new(&mapping.claim_name).ok_or_else(|| {
            ConfigError::new(
                format!("{}[{i}].claim_name", at("claim_to_headers")),
                ConfigReason::ClaimPath {
                    path: mapping.claim_name.clone(),
                },
            )
        })?;
        claim_to_headers.push(ClaimToHeader { header_name, claim });
    }
    let catalog_user = cfg.catalog_user.clone();
    let resolve_by = match catalog_user.as_ref().and_then(|c| c.resolve_by.clone()) {
        Some(list) if list.is_empty() => {
            return Err(ConfigError::new(
                at("catalog_user.resolve_by"),
                ConfigReason::NoLookup,
            ))
        }
        Some(list) => list.into_iter().map(resolve_by).collect(),
        // A Backstage token's `sub` is the user's entity ref: nothing else to look up.
        None if identity.backstage.is_some() => vec![ResolveBy::EntityRef],
        None => vec![ResolveBy::EntityRef, ResolveBy::Email],
    };
    let user_namespace = catalog_user
        .and_then(|c| c.namespace)
        .unwrap_or_else(|| String::from(crate::identity::groupref::DEFAULT_NAMESPACE));
    if user_namespace.is_empty() || user_namespace.contains(['/', ':']) {
        return Err(ConfigError::new(
            at("catalog_user.namespace"),
            ConfigReason::Namespace,
        ));
    }
    Ok(Provider {
        resolve_by,
        user_namespace: user_namespace.to_lowercase(),
        name: name.to_owned(),
        issuer: identity.issuer,
        audiences: identity.audiences,
        keys: identity.keys,
        sources: source_indices,
        forward: cfg.forward,
        groups_claim: if identity.backstage.is_some() {
            // Backstage tokens carry groups in `ent`, read by the Backstage profile.
            None
        } else {
            claim_path("groups_claim", &cfg.groups_claim, Some("groups"))?
        },
        email_claim: claim_path("email_claim", &cfg.email_claim, Some("email"))?,
        username_claim: claim_path(
            "username_claim",
            &cfg.username_claim,
            Some("preferred_username"),
        )?,
        clock_skew_s,
        max_lifetime_s: cfg.max_lifetime_s,
        require_expiration: cfg.require_expiration.unwrap_or(true),
        max_groups: cfg.max_groups.unwrap_or(DEFAULT_MAX_GROUPS),
        groups_case_insensitive: cfg.groups_case_insensitive,
        claim_to_headers,
        backstage: identity.backstage,
    })
}

/// Who issues a provider's tokens, for whom, and where its keys come from.
struct Identity {
    issuer: Option<String>,
    audiences: Vec<String>,
    keys: KeySource,
    backstage: Option<BackstageProfile>,
}

/// A generic provider: `issuer` (none: any issuer), `audiences` and one of `local_jwks` /
/// `remote_jwks`.
fn compile_issuer(name: &str, cfg: &ProviderConfig) -> Result<Identity, ConfigError> {
    let at = |field: &str| format!("providers.{name}.{field}");
    let issuer = match cfg.issuer.as_deref() {
        None => None,
        Some("") => return Err(ConfigError::new(at("issuer"), ConfigReason::Empty)),
        Some(issuer) => Some(issuer.to_owned()),
    };
    if cfg.audiences.iter().any(String::is_empty) {
        return Err(ConfigError::new(
            at("audiences"),
            ConfigReason::EmptyAudience,
        ));
    }
    let keys = match (&cfg.local_jwks, &cfg.remote_jwks) {
        (Some(local), None) => {
            KeySource::Local(Arc::new(compile_local_jwks(&at("local_jwks"), local)?))
        }
        (None, Some(remote)) => KeySource::Remote(compile_remote_jwks(&at("remote_jwks"), remote)?),
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                format!("providers.{name}"),
                ConfigReason::BothKeySources,
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                format!("providers.{name}"),
                ConfigReason::NoKeySource,
            ))
        }
    };
    Ok(Identity {
        issuer,
        audiences: cfg.audiences.clone(),
        keys,
        backstage: None,
    })
}

/// A provider of kind `backstage`: issuer, audience and JWKS derived from the base URL, the
/// JWKS refetched at once on an unknown `kid` (rate limited to one per 5 s by default).
fn compile_backstage(
    name: &str,
    cfg: &ProviderConfig,
    backstage: &dto::BackstageConfig,
    has_snapshot: bool,
) -> Result<Identity, ConfigError> {
    let at = |field: &str| format!("providers.{name}.{field}");
    let derived = [
        ("issuer", cfg.issuer.is_some()),
        ("audiences", !cfg.audiences.is_empty()),
        ("local_jwks", cfg.local_jwks.is_some()),
        ("remote_jwks", cfg.remote_jwks.is_some()),
        ("groups_claim", cfg.groups_claim.is_some()),
    ];
    if let Some((field, _)) = derived.iter().find(|(_, set)| *set) {
        let why = if *field == "groups_claim" {
            ConfigReason::BackstageGroupsClaim
        } else {
            ConfigReason::DerivedFromBackstage
        };
        return Err(ConfigError::new(at(field), why));
    }
    let base = backstage::normalize_base_url(&backstage.base_url).ok_or_else(|| {
        ConfigError::new(
            at("backstage.base_url"),
            ConfigReason::BackstageUrl {
                url: backstage.base_url.clone(),
            },
        )
    })?;
    let remote = dto::RemoteJwksConfig {
        cluster: backstage.cluster.clone(),
        uri: backstage::jwks_uri(base),
        cache_duration_s: backstage.cache_duration_s,
        timeout_ms: backstage.timeout_ms,
        refetch_on_unknown_kid: backstage.refetch_on_unknown_kid,
        refetch_min_interval_s: Some(
            backstage
                .refetch_min_interval_s
                .unwrap_or(backstage::DEFAULT_REFETCH_MIN_INTERVAL_S),
        ),
    };
    Ok(Identity {
        issuer: Some(backstage::issuer(base)),
        audiences: vec![String::from(backstage::USER_AUDIENCE)],
        keys: KeySource::Remote(compile_remote_jwks(&at("backstage"), &remote)?),
        backstage: Some(BackstageProfile {
            legacy_tokens: backstage.legacy_tokens,
            trust_token_groups: backstage
                .trust_token_groups
                .unwrap_or_else(|| BackstageProfile::default_trust_token_groups(has_snapshot)),
        }),
    })
}

fn compile_local_jwks(at: &str, cfg: &dto::LocalJwksConfig) -> Result<KeySet, ConfigError> {
    let document = match (&cfg.inline_string, &cfg.inline) {
        (Some(s), None) => s.as_bytes().to_vec(),
        (None, Some(v)) => serde_json::to_vec(v).map_err(|e| {
            ConfigError::new(
                format!("{at}.inline"),
                ConfigReason::Json {
                    detail: e.to_string(),
                },
            )
        })?,
        _ => return Err(ConfigError::new(at, ConfigReason::InlineKeys)),
    };
    KeySet::parse(&document, KeyOrigin::Local)
        .map_err(|e| ConfigError::new(at, ConfigReason::Keys(e)))
}

fn compile_remote_jwks(at: &str, cfg: &dto::RemoteJwksConfig) -> Result<RemoteJwks, ConfigError> {
    if cfg.cluster.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.cluster"),
            ConfigReason::Cluster,
        ));
    }
    let (authority, path) = split_uri(&cfg.uri).ok_or_else(|| {
        ConfigError::new(
            format!("{at}.uri"),
            ConfigReason::JwksUri {
                uri: cfg.uri.clone(),
            },
        )
    })?;
    let cache_duration_s = cfg.cache_duration_s.unwrap_or(DEFAULT_CACHE_DURATION_S);
    if cache_duration_s == 0 {
        return Err(ConfigError::new(
            format!("{at}.cache_duration_s"),
            ConfigReason::Zero,
        ));
    }
    let timeout_ms = cfg.timeout_ms.unwrap_or(DEFAULT_FETCH_TIMEOUT_MS);
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(ConfigError::new(
            format!("{at}.timeout_ms"),
            ConfigReason::OutOfRange {
                min: 1,
                max: 60_000,
            },
        ));
    }
    let refetch_min_interval_s = cfg
        .refetch_min_interval_s
        .unwrap_or(DEFAULT_REFETCH_MIN_INTERVAL_S);
    if !(1..=3600).contains(&refetch_min_interval_s) {
        return Err(ConfigError::new(
            format!("{at}.refetch_min_interval_s"),
            ConfigReason::OutOfRange { min: 1, max: 3600 },
        ));
    }
    Ok(RemoteJwks {
        cluster: cfg.cluster.clone(),
        uri: cfg.uri.clone(),
        authority: authority.to_owned(),
        path: path.to_owned(),
        cache_duration_s,
        timeout_ms,
        on_unknown_kid: match cfg.refetch_on_unknown_kid {
            Some(UnknownKidConfig::Wait) | None => UnknownKid::Wait,
            Some(UnknownKidConfig::Background) => UnknownKid::Background,
            Some(UnknownKidConfig::Off) => UnknownKid::Off,
        },
        refetch_min_interval_s,
    })
}

/// `http://host:port/path?q` → (`host:port`, `/path?q`).
pub fn split_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i)?, rest.get(i..)?),
        None => (rest, "/"),
    };
    (!authority.is_empty() && !authority.contains('@')).then_some((authority, path))
}

fn compile_snapshot(cfg: &dto::SnapshotConfig) -> Result<SnapshotSource, ConfigError> {
    if cfg.cluster.is_empty() {
        return Err(ConfigError::new("snapshot.cluster", ConfigReason::Empty));
    }
    let (authority, path) = split_uri(&cfg.uri).ok_or_else(|| {
        ConfigError::new(
            "snapshot.uri",
            ConfigReason::SnapshotUri {
                uri: cfg.uri.clone(),
            },
        )
    })?;
    if cfg.public_keys.is_empty() {
        return Err(ConfigError::new(
            "snapshot.public_keys",
            ConfigReason::NoSnapshotKeys,
        ));
    }
    let mut trusted_keys = Vec::with_capacity(cfg.public_keys.len());
    for (i, key) in cfg.public_keys.iter().enumerate() {
        let spec = crate::snapshot::PublicKeySpec {
            kid: key.kid.clone(),
            public_key: key.public_key.clone(),
        };
        trusted_keys.push(crate::snapshot::TrustedKey::from_spec(&spec).map_err(|e| {
            ConfigError::new(
                format!("snapshot.public_keys[{i}]"),
                ConfigReason::SnapshotKey(e),
            )
        })?);
    }
    let poll_interval_s = cfg.poll_interval_s.unwrap_or(DEFAULT_SNAPSHOT_POLL_S);
    if !(1..=3600).contains(&poll_interval_s) {
        return Err(ConfigError::new(
            "snapshot.poll_interval_s",
            ConfigReason::OutOfRange { min: 1, max: 3600 },
        ));
    }
    let timeout_ms = cfg.timeout_ms.unwrap_or(DEFAULT_FETCH_TIMEOUT_MS);
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(ConfigError::new(
            "snapshot.timeout_ms",
            ConfigReason::OutOfRange {
                min: 1,
                max: 60_000,
            },
        ));
    }
    let long_poll_s = cfg.long_poll_s.unwrap_or(0);
    if long_poll_s > MAX_LONG_POLL_S {
        return Err(ConfigError::new(
            "snapshot.long_poll_s",
            ConfigReason::OutOfRange {
                min: 0,
                max: MAX_LONG_POLL_S,
            },
        ));
    }
    if cfg.max_staleness_s.is_some_and(|s| s < poll_interval_s) {
        return Err(ConfigError::new(
            "snapshot.max_staleness_s",
            ConfigReason::StalenessBelowPoll,
        ));
    }
    if cfg.max_staleness_s.is_some_and(|s| s <= long_poll_s) {
        return Err(ConfigError::new(
            "snapshot.max_staleness_s",
            ConfigReason::StalenessBelowLongPoll,
        ));
    }
    let mut limits = crate::snapshot::DecodeLimits::default();
    if let Some(max) = cfg.max_bytes {
        if max == 0 {
            return Err(ConfigError::new("snapshot.max_bytes", ConfigReason::Zero));
        }
        limits.max_bytes = max;
    }
    Ok(SnapshotSource {
        cluster: cfg.cluster.clone(),
        uri: cfg.uri.clone(),
        authority: authority.to_owned(),
        path: path.to_owned(),
        trusted_keys,
        poll_interval_s,
        timeout_ms,
        long_poll_s,
        max_staleness_s: cfg.max_staleness_s,
        limits,
    })
}

fn resolve_by(dto: ResolveByConfig) -> ResolveBy {
    match dto {
        ResolveByConfig::EntityRef => ResolveBy::EntityRef,
        ResolveByConfig::Email => ResolveBy::Email,
        ResolveByConfig::Username => ResolveBy::Username,
        ResolveByConfig::EmailLocalPart => ResolveBy::EmailLocalPart,
        ResolveByConfig::Subject => ResolveBy::Subject,
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_!#$%&'*+.^`|~".contains(c))
}

#[cfg(test)]
mod tests;
