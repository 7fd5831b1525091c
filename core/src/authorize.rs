//! The request path: normalize → public routes → token → identity → rules → decision.
//! Pure: time, keys and the cache come in as arguments.

use std::sync::Arc;

use crate::backstage;
use crate::cache::{CachedIdentity, TokenCache};
use crate::catalog::{Caller, Catalog, CatalogState};
use crate::claims::{self, ClaimError};
use crate::config::{FailureMode, Mode, Policy};
use crate::decision::ShadowOutcome;
use crate::decision::{AllowCode, Decision, DenyCode, Effect};
use crate::extract::{find_token, TokenSource};
use crate::keystore::KeyStore;
use crate::path;
use crate::principal::Principal;
use crate::provider::Provider;
use crate::rules::{normalize_host, Action, RequestFacts, Rule};
use crate::signature::{SignatureBackend, SignatureChecks};
use crate::token::{TokenError, UnverifiedToken};
use serde_json::{Map, Value};

/// What the filter reads from a request. Header names are lowercase (as Envoy gives them).
#[derive(Debug, Clone, Copy)]
pub struct Request<'r> {
    pub method: &'r str,
    pub authority: &'r str,
    /// The raw `:path`, query included.
    pub path: &'r str,
    pub headers: &'r [(String, String)],
}

/// A decision plus what the filter needs to apply it.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub decision: Decision,
    /// The header the token came from, to remove before forwarding when the provider
    /// doesn't `forward` it.
    pub strip_token_header: Option<String>,
    /// Whether the verified-token cache answered (`None`: no token was looked up).
    pub cache_hit: Option<bool>,
    /// Who checked signatures for this decision (none on a cache hit).
    pub signature_checks: SignatureChecks,
}

struct Denial {
    code: DenyCode,
    reason: String,
}

impl Denial {
    fn new(code: DenyCode, reason: impl Into<String>) -> Denial {
        Denial {
            code,
            reason: reason.into(),
        }
    }
}

/// Where the caller's identity comes from.
enum Credential<'c> {
    /// The token in the request, verified with these keys (through the cache).
    Token {
        keys: &'c KeyStore,
        cache: &'c mut TokenCache,
        backend: Option<&'c dyn SignatureBackend>,
    },
    /// Claims taken as verified, for previews ("what would happen if..."): everything
    /// but the signature is checked exactly as for a real token.
    Claims(Map<String, Value>),
}

/// Decides one request, verifying signatures in Rust.
pub fn decide(
    policy: &Policy,
    keys: &KeyStore,
    cache: &mut TokenCache,
    catalog: CatalogState<'_>,
    req: &Request<'_>,
    now: i64,
) -> Verdict {
    decide_using(policy, keys, cache, None, catalog, req, now)
}

/// [`decide`], with `backend` (when given) checking the signatures it can; see
/// [`crate::signature`].
pub fn decide_using(
    policy: &Policy,
    keys: &KeyStore,
    cache: &mut TokenCache,
    backend: Option<&dyn SignatureBackend>,
    catalog: CatalogState<'_>,
    req: &Request<'_>,
    now: i64,
) -> Verdict {
    let credential = Credential::Token {
        keys,
        cache,
        backend,
    };
    decide_with(policy, credential, catalog, req, now)
}

/// Decides a request as if it carried a valid token with these claims (the signature is
/// not checked; `iss` still selects the provider and every other check applies). For
/// previews and explanations, never for traffic.
pub fn decide_claims(
    policy: &Policy,
    catalog: CatalogState<'_>,
    claims: Map<String, Value>,
    req: &Request<'_>,
    now: i64,
) -> Verdict {
    decide_with(policy, Credential::Claims(claims), catalog, req, now)
}

fn decide_with(
    policy: &Policy,
    credential: Credential<'_>,
    catalog: CatalogState<'_>,
    req: &Request<'_>,
    now: i64,
) -> Verdict {
    let normalized = match path::normalize(req.path, policy.path_options) {
        Ok(p) => p,
        Err(e) => {
            return Verdict {
                decision: deny(
                    DenyCode::PathRejected,
                    format!("path rejected: {e}"),
                    None,
                    None,
                ),
                strip_token_header: None,
                cache_hit: None,
                signature_checks: SignatureChecks::default(),
            }
        }
    };
    let facts = RequestFacts {
        host: &normalize_host(req.authority),
        method: req.method,
        path: &normalized,
    };
    let mut checks = SignatureChecks::default();
    let mut verdict = decide_normalized(policy, credential, catalog, req, &facts, now, &mut checks);
    verdict.signature_checks = checks;
    verdict.decision.mode = policy.mode_for(&facts);
    let rules = Rules::new(policy, catalog.catalog());
    if rules.has_shadow_rules() {
        verdict.decision.shadow = shadow_outcome(&rules, &facts, &verdict.decision);
    }
    verdict.decision.snapshot_version = catalog.catalog().map(|c| c.snapshot.version());
    verdict.decision.normalized_path = Some(normalized.clone());
    verdict
}

fn decide_normalized(
    policy: &Policy,
    credential: Credential<'_>,
    catalog: CatalogState<'_>,
    req: &Request<'_>,
    facts: &RequestFacts<'_>,
    now: i64,
    checks: &mut SignatureChecks,
) -> Verdict {
    let anonymous = |decision| Verdict {
        decision,
        strip_token_header: None,
        cache_hit: None,
        signature_checks: SignatureChecks::default(),
    };
    let rules = Rules::new(policy, catalog.catalog());
    // Deny rules that name no caller apply to everyone, before any token work.
    if let Some(rule) = rules.first_deny(facts, None, false) {
        return anonymous(rule_denied(rule, None));
    }
    if let Some(rule) = rules
        .allow(facts)
        .find(|r| r.public && !r.shadow && r.matches_request(facts))
    {
        return anonymous(allowed_without_caller(rule));
    }

    let mut cache_hit = None;
    let (identity, source) = match credential {
        Credential::Token {
            keys,
            cache,
            backend,
        } => {
            let found = match find_token(&policy.sources, req.headers, req.path) {
                Ok(Some(found)) => found,
                Ok(None) => {
                    return anonymous(deny(
                        DenyCode::TokenMissing,
                        "no token in the request",
                        None,
                        None,
                    ))
                }
                Err(e) => {
                    return anonymous(deny(DenyCode::TokenInvalid, e.to_string(), None, None))
                }
            };
            (
                identify(
                    policy,
                    Verifier {
                        keys,
                        backend,
                        checks,
                    },
                    cache,
                    found.token,
                    found.source,
                    now,
                    &mut cache_hit,
                ),
                Some(found.source),
            )
        }
        Credential::Claims(claims) => (
            provider_for(policy, &claims).and_then(|(index, provider)| {
                let source = provider.sources.first().copied().unwrap_or_default();
                accept(index, provider, claims, source, now)
            }),
            None,
        ),
    };
    let identity = match identity {
        Ok(identity) => identity,
        Err((denial, provider)) if denial.code == DenyCode::JwksUnavailable => {
            return anonymous(keys_unavailable(policy, facts, denial, provider));
        }
        Err((denial, provider)) => {
            return anonymous(deny(denial.code, denial.reason, provider, None));
        }
    };
    let provider = policy.providers.get(identity.provider);
    let token_source = source.and_then(|s| policy.sources.get(s));
    let strip_token_header = match (provider, token_source) {
        (Some(p), Some(TokenSource::Header { name, .. })) if !p.forward => Some(name.clone()),
        _ => None,
    };
    let decision = match catalog {
        CatalogState::Unavailable { reason } => {
            catalog_unavailable(policy, facts, reason, identity.principal)
        }
        CatalogState::NotConfigured | CatalogState::Ready(_) => {
            evaluate(&rules, facts, identity.principal, false)
        }
    };
    Verdict {
        decision,
        strip_token_header,
        cache_hit,
        signature_checks: SignatureChecks::default(),
    }
}

/// The configuration's rules, then the catalog snapshot's.
#[derive(Clone, Copy)]
struct Rules<'a> {
    policy: &'a Policy,
    catalog: Option<&'a Catalog>,
}

impl<'a> Rules<'a> {
    fn new(policy: &'a Policy, catalog: Option<&'a Catalog>) -> Rules<'a> {
        Rules { policy, catalog }
    }

    /// Deny rules that may match the request: the configuration's, then the catalog's.
    fn deny<'h>(&self, facts: &RequestFacts<'h>) -> impl Iterator<Item = &'a Rule> + use<'a, 'h> {
        let (host, path) = (facts.host, facts.path);
        let catalog = self.catalog.map(|c| &c.rules);
        self.policy.rules.deny_for(host, path).chain(
            catalog
                .into_iter()
                .flat_map(move |r| r.deny_for(host, path)),
        )
    }

    /// Allow rules that may match the request: the configuration's, then the catalog's.
    fn allow<'h>(&self, facts: &RequestFacts<'h>) -> impl Iterator<Item = &'a Rule> + use<'a, 'h> {
        let (host, path) = (facts.host, facts.path);
        let catalog = self.catalog.map(|c| &c.rules);
        self.policy.rules.allow_for(host, path).chain(
            catalog
                .into_iter()
                .flat_map(move |r| r.allow_for(host, path)),
        )
    }

    fn has_shadow_rules(&self) -> bool {
        self.policy.has_shadow_rules || self.catalog.is_some_and(|c| c.rules.has_shadow_rules())
    }

    fn first_deny(
        &self,
        facts: &RequestFacts<'_>,
        caller: Option<&Caller<'_>>,
        with_shadow: bool,
    ) -> Option<&'a Rule> {
        first_match(self.deny(facts), facts, caller, with_shadow)
    }

    fn first_allow(
        &self,
        facts: &RequestFacts<'_>,
        caller: Option<&Caller<'_>>,
        with_shadow: bool,
    ) -> Option<&'a Rule> {
        first_match(self.allow(facts), facts, caller, with_shadow)
    }
}

/// What the decision would be with shadow rules enforced too, if that is different.
/// Token outcomes don't change: shadow rules only weigh in where rules are consulted.
fn shadow_outcome(
    rules: &Rules<'_>,
    facts: &RequestFacts<'_>,
    enforced: &Decision,
) -> Option<ShadowOutcome> {
    let would = match &enforced.principal {
        Some(principal) => evaluate(rules, facts, Arc::clone(principal), true),
        None => {
            if let Some(rule) = rules.first_deny(facts, None, true) {
                rule_denied(rule, None)
            } else if let Some(rule) = rules
                .first_allow(facts, None, true)
                .filter(|r| r.public || r.when.is_empty())
            {
                // A shadow rule without `when` would let an anonymous request through.
                allowed_without_caller(rule)
            } else {
                return None;
            }
        }
    };
    let differs = would.effect != enforced.effect || would.rule_id != enforced.rule_id;
    differs.then_some(ShadowOutcome {
        effect: would.effect,
        rule_id: would.rule_id,
    })
}

/// The provider's keys never loaded: deny, unless `failure_mode` is open globally or on an
/// allow rule matching this request. Fail-open requests carry no identity.
fn keys_unavailable(
    policy: &Policy,
    facts: &RequestFacts<'_>,
    denial: Denial,
    provider: Option<String>,
) -> Decision {
    let route = policy
        .rules
        .allow
        .iter()
        .find(|r| r.fail_open && r.matches_request(facts));
    let open = match (policy.failure_mode, route) {
        (FailureMode::Open, _) => Some(None),
        (FailureMode::Closed, Some(rule)) => Some(Some(rule.id.clone())),
        (FailureMode::Closed, None) => None,
    };
    match open {
        Some(rule_id) => Decision {
            rule_id,
            ..deny(
                denial.code,
                format!("{}; failure_mode is open", denial.reason),
                provider,
                None,
            )
            .with_effect(Effect::Allow(AllowCode::FailOpen))
        },
        None => deny(denial.code, denial.reason, provider, None),
    }
}

/// A snapshot is configured but none is usable (none loaded yet, or too old): like keys
/// that never loaded, `failure_mode` decides. Fail-open requests keep the verified identity.
fn catalog_unavailable(
    policy: &Policy,
    facts: &RequestFacts<'_>,
    reason: &str,
    principal: Arc<Principal>,
) -> Decision {
    let provider = Some(principal.provider.clone());
    let route = policy
        .rules
        .allow
        .iter()
        .find(|r| r.fail_open && r.matches_request(facts));
    let reason = format!("the catalog snapshot is unavailable: {reason}");
    match (policy.failure_mode, route) {
        (FailureMode::Open, _) => deny(
            DenyCode::SnapshotUnavailable,
            format!("{reason}; failure_mode is open"),
            provider,
            Some(principal),
        )
        .with_effect(Effect::Allow(AllowCode::FailOpen)),
        (FailureMode::Closed, Some(rule)) => deny(
            DenyCode::SnapshotUnavailable,
            format!("{reason}; failure_mode is open"),
            provider,
            Some(principal),
        )
        .with_effect(Effect::Allow(AllowCode::FailOpen))
        .with_rule(&rule.id),
        (FailureMode::Closed, None) => deny(
            DenyCode::SnapshotUnavailable,
            reason,
            provider,
            Some(principal),
        ),
    }
}

/// Deny rules first, then allow rules, then the default action.
fn evaluate(
    rules: &Rules<'_>,
    facts: &RequestFacts<'_>,
    principal: Arc<Principal>,
    with_shadow: bool,
) -> Decision {
    let caller = Caller::new(&principal, rules.catalog);
    let denied_by = rules.first_deny(facts, Some(&caller), with_shadow);
    let allowed_by = rules.first_allow(facts, Some(&caller), with_shadow);
    let provider = Some(principal.provider.clone());
    let catalog_user = caller.user_ref().map(str::to_owned);
    let catalog_groups = caller.user.map(|user| {
        let mut joined = String::new();
        for group in user.groups.iter() {
            if !joined.is_empty() {
                joined.push(',');
            }
            joined.push_str(group);
        }
        joined
    });
    let decision = match (denied_by, allowed_by, rules.policy.default_action) {
        // A matching deny rule wins over everything, like RBAC DENY policies and cedar's forbid.
        (Some(rule), _, _) => rule_denied(rule, Some(principal)),
        // Otherwise the first matching allow rule, in configuration order.
        (None, Some(rule), _) => Decision {
            effect: Effect::Allow(AllowCode::RuleAllowed),
            reason: format!("allow rule `{}` matched", rule.id),
            rule_id: Some(rule.id.clone()),
            provider,
            principal: Some(principal),
            normalized_path: None,
            mode: Mode::Enforce,
            shadow: None,
            snapshot_version: None,
            catalog_user: None,
            catalog_groups: None,
        },
        // No rule matched: deny by default, naming the allow rule that came closest...
        (None, None, Action::Deny) => {
            let mut reason = format!(
                "no allow rule matched {} {}{}",
                facts.method, facts.host, facts.path
            );
            let candidates = rules.allow(facts).filter(|r| with_shadow || !r.shadow);
            if let Some(closest) = crate::explain::closest_allow(candidates, facts, &caller) {
                reason.push_str("; closest: ");
                reason.push_str(&closest);
            }
            deny(DenyCode::NoRuleMatched, reason, provider, Some(principal))
        }
        // ...unless the configuration says allow.
        (None, None, Action::Allow) => Decision {
            effect: Effect::Allow(AllowCode::DefaultAllow),
            reason: String::from("no rule matched; default action is allow"),
            rule_id: None,
            provider,
            principal: Some(principal),
            normalized_path: None,
            mode: Mode::Enforce,
            shadow: None,
            snapshot_version: None,
            catalog_user: None,
            catalog_groups: None,
        },
    };
    Decision {
        catalog_user,
        catalog_groups,
        ..decision
    }
}

/// The first rule matching the request whose conditions hold. Without a principal, only
/// rules without conditions can match.
fn first_match<'p>(
    mut rules: impl Iterator<Item = &'p Rule>,
    facts: &RequestFacts<'_>,
    caller: Option<&Caller<'_>>,
    with_shadow: bool,
) -> Option<&'p Rule> {
    rules.find(|rule| {
        (with_shadow || !rule.shadow)
            && rule.matches_request(facts)
            && match caller {
                Some(caller) => rule.when.hold_for(caller, &rule.route, facts.path),
                None => rule.when.is_empty(),
            }
    })
}

/// An allow rule that needs no caller (public, or without `when`) matched an anonymous request.
fn allowed_without_caller(rule: &Rule) -> Decision {
    let (code, kind) = if rule.public {
        (AllowCode::PublicRoute, "public")
    } else {
        (AllowCode::RuleAllowed, "allow")
    };
    Decision {
        effect: Effect::Allow(code),
        reason: format!("{kind} rule `{}` matched", rule.id),
        rule_id: Some(rule.id.clone()),
        provider: None,
        principal: None,
        normalized_path: None,
        mode: Mode::Enforce,
        shadow: None,
        snapshot_version: None,
        catalog_user: None,
        catalog_groups: None,
    }
}

fn rule_denied(rule: &Rule, principal: Option<Arc<Principal>>) -> Decision {
    deny(
        DenyCode::RuleDenied,
        format!("deny rule `{}` matched", rule.id),
        principal.as_ref().map(|p| p.provider.clone()),
        principal,
    )
    .with_rule(&rule.id)
}

fn deny(
    code: DenyCode,
    reason: impl Into<String>,
    provider: Option<String>,
    principal: Option<Arc<Principal>>,
) -> Decision {
    Decision {
        effect: Effect::Deny(code),
        reason: reason.into(),
        rule_id: None,
        provider,
        principal,
        normalized_path: None,
        mode: Mode::Enforce,
        shadow: None,
        snapshot_version: None,
        catalog_user: None,
        catalog_groups: None,
    }
}

impl Decision {
    fn with_rule(mut self, id: &str) -> Decision {
        self.rule_id = Some(id.to_owned());
        self
    }

    fn with_effect(mut self, effect: Effect) -> Decision {
        self.effect = effect;
        self
    }
}

type IdentifyError = (Denial, Option<String>);

/// What a token's signature is checked with, and the tally of who checked it.
struct Verifier<'v> {
    keys: &'v KeyStore,
    backend: Option<&'v dyn SignatureBackend>,
    checks: &'v mut SignatureChecks,
}

/// Token → verified identity, through the cache when possible.
fn identify(
    policy: &Policy,
    verifier: Verifier<'_>,
    cache: &mut TokenCache,
    token: &str,
    source: usize,
    now: i64,
    cache_hit: &mut Option<bool>,
) -> Result<CachedIdentity, IdentifyError> {
    // A hit verified with keys that have since changed is verified again; so is one a
    // provider without `issuer` took from another place: where a token is found is what
    // chooses among those providers.
    let cached = cache.get(token).filter(|hit| {
        hit.key_generation == verifier.keys.generation(hit.provider)
            && policy
                .providers
                .get(hit.provider)
                .is_none_or(|p| p.issuer.is_some() || p.sources.contains(&source))
    });
    *cache_hit = Some(cached.is_some());
    if let Some(hit) = cached {
        let provider = policy.providers.get(hit.provider);
        let name = provider.map(|p| p.name.clone());
        let skew = provider.map_or(0, |p| p.clock_skew_s);
        if !provider.is_some_and(|p| p.sources.contains(&source)) {
            return Err((location_denial(), name));
        }
        hit.validity
            .check(now, skew)
            .map_err(|e| (claim_denial(e), name))?;
        return Ok(hit.clone());
    }
    let identity = verify(policy, verifier, token, source, now)?;
    cache.insert(token, identity.clone(), now);
    Ok(identity)
}

fn verify(
    policy: &Policy,
    mut verifier: Verifier<'_>,
    token: &str,
    source: usize,
    now: i64,
) -> Result<CachedIdentity, IdentifyError> {
    let parsed = UnverifiedToken::parse(token, policy.max_token_bytes)
        .map_err(|e| (token_denial(&e), None))?;
    let typ = parsed.header.typ.as_deref();
    let candidates = candidate_providers(policy, &parsed.claims, Some(source))
        .map_err(|unclaimed| backstage_non_user_token(policy, typ).unwrap_or(unclaimed))?;
    // Providers without `issuer` are tried in order: the first whose keys verify the
    // signature decides. When none does, the first one's answer is reported.
    let mut first_error = None;
    for index in candidates {
        match verify_for(policy, &mut verifier, &parsed, index, source) {
            Ok(()) => {
                let provider = policy.providers.get(index).ok_or_else(|| {
                    (
                        Denial::new(DenyCode::IssuerUnknown, "provider vanished"),
                        None,
                    )
                })?;
                let mut identity = accept(index, provider, parsed.claims, source, now)?;
                identity.key_generation = verifier.keys.generation(index);
                return Ok(identity);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        (
            Denial::new(DenyCode::IssuerUnknown, "no provider takes this token"),
            None,
        )
    }))
}

/// The signature of `parsed` checked with provider `index`'s keys, after the checks that
/// need no keys (where the token was found, its Backstage type).
fn verify_for(
    policy: &Policy,
    verifier: &mut Verifier<'_>,
    parsed: &UnverifiedToken<'_>,
    index: usize,
    source: usize,
) -> Result<(), IdentifyError> {
    let Some(provider) = policy.providers.get(index) else {
        return Err((
            Denial::new(DenyCode::IssuerUnknown, "provider vanished"),
            None,
        ));
    };
    let name = Some(provider.name.clone());
    if !provider.sources.contains(&source) {
        return Err((location_denial(), name));
    }
    // Before the keys: a token of the wrong type is refused without a JWKS refetch.
    if let Some(profile) = provider.backstage {
        profile
            .check_type(parsed.header.typ.as_deref(), &parsed.claims)
            .map_err(|e| (type_denial(&e), name.clone()))?;
    }
    let Some(set) = verifier.keys.get(index) else {
        return Err((
            Denial::new(
                DenyCode::JwksUnavailable,
                format!("keys of provider `{}` are not loaded yet", provider.name),
            ),
            name,
        ));
    };
    parsed
        .verify_using(set, verifier.backend, verifier.checks)
        .map_err(|e| (token_denial(&e), name))?;
    Ok(())
}

/// The providers that may have issued a token with these claims, found at `source`
/// (`None`: a preview without a token), in the order to try them
/// ([`Policy::providers_for`]). None is an error naming why.
fn candidate_providers(
    policy: &Policy,
    claims: &Map<String, Value>,
    source: Option<usize>,
) -> Result<Vec<usize>, IdentifyError> {
    let issuer = claims::string_claim(claims, "iss").map_err(|e| (claim_denial(e), None))?;
    let candidates = policy.providers_for(issuer, source);
    if !candidates.is_empty() {
        return Ok(candidates);
    }
    Err(match issuer {
        None => (
            Denial::new(DenyCode::TokenInvalid, "token has no `iss` claim"),
            None,
        ),
        Some(issuer) => {
            let shown: String = issuer.chars().take(200).collect();
            (
                Denial::new(
                    DenyCode::IssuerUnknown,
                    format!("issuer `{shown}` is not configured"),
                ),
                None,
            )
        }
    })
}

/// The provider a token's claims name, for a preview without a token: the first
/// candidate.
fn provider_for<'p>(
    policy: &'p Policy,
    claims: &Map<String, Value>,
) -> Result<(usize, &'p Provider), IdentifyError> {
    let candidates = candidate_providers(policy, claims, None)?;
    candidates
        .first()
        .and_then(|&i| policy.providers.get(i).map(|p| (i, p)))
        .ok_or_else(|| {
            (
                Denial::new(DenyCode::IssuerUnknown, "no provider takes this token"),
                None,
            )
        })
}

/// Claims of a token whose signature checked out (or that a preview takes as given):
/// time and audience checks, then the principal.
fn accept(
    index: usize,
    provider: &Provider,
    claims: Map<String, Value>,
    source: usize,
    now: i64,
) -> Result<CachedIdentity, IdentifyError> {
    let name = Some(provider.name.clone());
    let validity = provider
        .check_claims(&claims, now)
        .map_err(|e| (claim_denial(e), name.clone()))?;
    let principal = provider
        .principal(claims)
        .map_err(|e| (claim_denial(e), name))?;
    Ok(CachedIdentity {
        provider: index,
        source,
        validity,
        principal: Arc::new(principal),
        key_generation: 0,
    })
}

/// Backstage's limited-user and plugin tokens carry no `iss`, so no provider claims them; with
/// a Backstage provider configured, say what they are rather than that `iss` is missing.
fn backstage_non_user_token(policy: &Policy, typ: Option<&str>) -> Option<IdentifyError> {
    let provider = policy.providers.iter().find(|p| p.backstage.is_some())?;
    let error = backstage::non_user_token(typ)?;
    Some((type_denial(&error), Some(provider.name.clone())))
}

fn type_denial(e: &backstage::TokenTypeError) -> Denial {
    Denial::new(DenyCode::TokenTypeNotAllowed, e.to_string())
}

fn location_denial() -> Denial {
    Denial::new(
        DenyCode::TokenLocationNotAllowed,
        "the token's provider does not accept tokens from where this one was found",
    )
}

fn token_denial(e: &TokenError) -> Denial {
    let code = match e {
        TokenError::TooLarge { .. }
        | TokenError::NotCompactJws { .. }
        | TokenError::BadBase64 { .. }
        | TokenError::BadJson { .. }
        | TokenError::UnknownCritical { .. }
        | TokenError::EmptyCritical
        | TokenError::CompressionOnJws => DenyCode::TokenInvalid,
        TokenError::AlgorithmNotAccepted { .. } | TokenError::AlgorithmNotPinned { .. } => {
            DenyCode::AlgorithmNotAllowed
        }
        TokenError::UnknownKid { .. } | TokenError::NoKeyForAlgorithm { .. } => {
            DenyCode::KeyUnknown
        }
        TokenError::BadSignature => DenyCode::SignatureInvalid,
    };
    Denial::new(code, e.to_string())
}

fn claim_denial(e: ClaimError) -> Denial {
    let code = match e {
        ClaimError::Expired { .. } => DenyCode::TokenExpired,
        ClaimError::NotYetValid { .. } | ClaimError::IssuedInFuture { .. } => {
            DenyCode::TokenNotYetValid
        }
        ClaimError::AudienceNotAccepted { .. } => DenyCode::AudienceMismatch,
        ClaimError::Missing { .. }
        | ClaimError::WrongType { .. }
        | ClaimError::DateOutOfRange { .. }
        | ClaimError::LifetimeTooLong { .. }
        | ClaimError::TooManyGroups { .. } => DenyCode::TokenInvalid,
    };
    Denial::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{rsa_private, sign};

    const NOW: i64 = 1_700_000_000;

    fn policy(extra: serde_json::Value) -> Policy {
        let mut config = json!({
            "providers": {"idp": {"issuer": "https://idp", "remote_jwks": {"cluster": "idp", "uri": "https://idp/keys"}}},
            "rules": [
                {"id": "status", "action": "allow", "paths": ["/status"], "failure_mode": "open"},
                {"id": "api", "action": "allow", "paths": ["/api/**"]}
            ]
        });
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        Policy::from_json(config.to_string().as_bytes()).unwrap()
    }

    fn run(policy: &Policy, path: &str) -> Decision {
        let token = sign(
            "RS256",
            &rsa_private(),
            &json!({"alg": "RS256", "kid": "k"}),
            &json!({"iss": "https://idp", "sub": "a", "exp": NOW + 60}),
        );
        let headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
        let req = Request {
            method: "GET",
            authority: "h",
            path,
            headers: &headers,
        };
        // Remote keys never loaded: the store is empty.
        decide(
            policy,
            &KeyStore::new(policy),
            &mut TokenCache::new(0),
            CatalogState::NotConfigured,
            &req,
            NOW,
        )
        .decision
    }

    #[test]
    fn cached_verifications_end_when_the_keys_change() {
        use crate::jwks::{KeyOrigin, KeySet};
        use crate::testing::{other_rsa_public, public_jwk};
        let policy = policy(json!({}));
        let jwks = |keys: serde_json::Value| {
            std::sync::Arc::new(
                KeySet::parse(
                    json!({ "keys": keys }).to_string().as_bytes(),
                    KeyOrigin::Remote,
                )
                .unwrap(),
            )
        };
        let ours = public_jwk(&rsa_private(), "k", Some("RS256"));
        let mut other = other_rsa_public();
        other["kid"] = json!("other");
        let token = sign(
            "RS256",
            &rsa_private(),
            &json!({"alg": "RS256", "kid": "k"}),
            &json!({"iss": "https://idp", "sub": "a", "exp": NOW + 60}),
        );
        let headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
        let req = Request {
            method: "GET",
            authority: "h",
            path: "/api/x",
            headers: &headers,
        };
        let mut keys = KeyStore::new(&policy);
        let mut cache = TokenCache::new(16);
        let mut ask = |keys: &KeyStore| {
            let v = decide(
                &policy,
                keys,
                &mut cache,
                CatalogState::NotConfigured,
                &req,
                NOW,
            );
            (v.decision.effect, v.cache_hit)
        };
        keys.set(0, jwks(json!([ours.clone()])));
        let allowed = Effect::Allow(AllowCode::RuleAllowed);
        assert_eq!(ask(&keys), (allowed, Some(false)));
        assert_eq!(ask(&keys), (allowed, Some(true)));
        // The same keys fetched again: the cache still answers.
        keys.set(0, jwks(json!([ours.clone()])));
        assert_eq!(ask(&keys), (allowed, Some(true)));
        // The IdP drops the key the token was signed with: the cached answer is not used.
        keys.set(0, jwks(json!([other])));
        assert_eq!(ask(&keys).0, Effect::Deny(DenyCode::KeyUnknown));
    }

    #[test]
    fn keys_unavailable_follows_failure_mode() {
        let closed = policy(json!({}));
        let cases = [
            (
                &closed,
                "/api/x",
                Effect::Deny(DenyCode::JwksUnavailable),
                None,
            ),
            (
                &closed,
                "/status",
                Effect::Allow(AllowCode::FailOpen),
                Some("status"),
            ),
        ];
        for (policy, path, effect, rule) in cases {
            let d = run(policy, path);
            assert_eq!(d.effect, effect, "{path}");
            assert_eq!(d.rule_id.as_deref(), rule, "{path}");
            assert!(d.principal.is_none(), "fail-open carries no identity");
        }
        let open = policy(json!({"failure_mode": "open"}));
        assert_eq!(
            run(&open, "/api/x").effect,
            Effect::Allow(AllowCode::FailOpen)
        );
        assert_eq!(
            run(&open, "/anything").effect,
            Effect::Allow(AllowCode::FailOpen)
        );
    }

    #[test]
    fn only_allow_rules_override_failure_mode() {
        let err = Policy::from_json(
            json!({"rules": [{"id": "d", "action": "deny", "failure_mode": "open"}]})
                .to_string()
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(err.path, "rules[0].failure_mode");
    }
}
