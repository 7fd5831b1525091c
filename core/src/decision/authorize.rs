//! The request path: normalize → public routes → token → identity → rules → decision.
//! Pure: time, keys and the cache come in as arguments. [`decide`] is the one entry.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::decision::evaluate::{grant_behind, RuleList, Ruling, Scope};
use crate::decision::explain;
use crate::decision::verdict::{
    AllowCode, Decision, DecisionBuilder, DenyCode, Diagnostics, Effect, KeysWanted, MissingKeys,
    ProviderId, ShadowOutcome, Verdict,
};
use crate::identity::backstage;
use crate::identity::cache::{CachedIdentity, TokenCache};
use crate::identity::claims::{self, ClaimError};
use crate::identity::principal::Principal;
use crate::identity::provider::Provider;
use crate::policy::catalog::CatalogState;
use crate::policy::config::{FailureMode, Policy};
use crate::policy::keystore::KeyStore;
use crate::policy::path;
use crate::policy::rules::Rule;
use crate::request::{normalize_host, Request, RequestFacts, UnixTime};
use crate::token::extract::{find_token, TokenSource};
use crate::token::jws::{TokenError, UnverifiedToken};
use crate::token::signature::{SignatureBackend, SignatureChecks};

/// Where the caller's identity comes from.
pub enum Credential<'c> {
    /// The token in the request, verified with these keys.
    Token(TokenKeys<'c>),
    /// Claims taken as verified, for previews ("what would happen if..."): `iss` still
    /// selects the provider and everything but the signature is checked exactly as for a
    /// real token. Never for traffic.
    Claims(Map<String, Value>),
}

/// What a request's token is verified with.
pub struct TokenKeys<'c> {
    pub keys: &'c KeyStore,
    /// Verified tokens, so a token seen before skips the signature check.
    pub cache: &'c mut TokenCache,
    /// Checks the signatures it can (see [`crate::token::signature`]); Rust checks the rest.
    pub backend: Option<&'c dyn SignatureBackend>,
}

impl<'c> Credential<'c> {
    /// The request's token, its signature checked in Rust.
    pub fn token(keys: &'c KeyStore, cache: &'c mut TokenCache) -> Credential<'c> {
        Credential::Token(TokenKeys {
            keys,
            cache,
            backend: None,
        })
    }

    /// The request's token, `backend` checking the signatures it can.
    pub fn token_using(
        keys: &'c KeyStore,
        cache: &'c mut TokenCache,
        backend: &'c dyn SignatureBackend,
    ) -> Credential<'c> {
        Credential::Token(TokenKeys {
            keys,
            cache,
            backend: Some(backend),
        })
    }
}

/// Decides one request: the path, then deny rules that name no caller and public routes,
/// then the caller's identity, then the rules with that caller. What the decision lacked
/// (keys) and met (rules that could not be evaluated) comes back in its diagnostics.
pub fn decide(
    policy: &Policy,
    credential: Credential<'_>,
    catalog: CatalogState<'_>,
    req: &Request<'_>,
    now: UnixTime,
) -> Verdict {
    let normalized = match path::normalize(req.path, policy.path_options) {
        Ok(p) => p,
        Err(e) => {
            let reason = format!("path rejected: {e}");
            return Verdict {
                decision: Decision::builder(Effect::Deny(DenyCode::PathRejected), reason).build(),
                strip_token_header: None,
                cache_hit: None,
                signature_checks: SignatureChecks::default(),
                diagnostics: Diagnostics::default(),
            };
        }
    };
    let host = normalize_host(req.authority);
    let facts = RequestFacts {
        host: &host,
        method: req.method,
        path: &normalized,
    };
    let rules = RuleList::new(policy, catalog.catalog());
    let answer = answer(policy, credential, catalog, req, &facts, now.secs());
    let mode = policy.mode_for(&facts);
    let shadow = if rules.has_shadow_rules() {
        shadow_outcome(rules, &facts, &answer.decision, now)
    } else {
        None
    };
    let snapshot_version = catalog.catalog().map(|c| c.snapshot.version());
    Verdict {
        decision: answer
            .decision
            .request(normalized.clone(), mode, shadow, snapshot_version)
            .build(),
        strip_token_header: answer.strip_token_header,
        cache_hit: answer.cache_hit,
        signature_checks: answer.signature_checks,
        diagnostics: answer.diagnostics,
    }
}

/// A decision before what holds for the whole request is known, and the rest of the verdict.
struct Answer {
    decision: DecisionBuilder,
    strip_token_header: Option<String>,
    cache_hit: Option<bool>,
    signature_checks: SignatureChecks,
    diagnostics: Diagnostics,
}

impl Answer {
    /// A decision made before a caller was verified.
    fn anonymous(decision: DecisionBuilder) -> Answer {
        Answer {
            decision,
            strip_token_header: None,
            cache_hit: None,
            signature_checks: SignatureChecks::default(),
            diagnostics: Diagnostics::default(),
        }
    }
}

/// Everything but what holds for the whole request: rules that name no caller, then the
/// caller, then the rules with them.
fn answer(
    policy: &Policy,
    credential: Credential<'_>,
    catalog: CatalogState<'_>,
    req: &Request<'_>,
    facts: &RequestFacts<'_>,
    now: i64,
) -> Answer {
    let rules = RuleList::new(policy, catalog.catalog());
    // Deny rules that name no caller apply to everyone, before any token work.
    if let Some(rule) = rules.caller_free_deny(facts, Scope::Enforced) {
        let ruling = Ruling::Denied { rule, error: None };
        return Answer::anonymous(ruled(&ruling, facts));
    }
    if let Some(rule) = rules.caller_free_allow(facts, Scope::Enforced) {
        return Answer::anonymous(allowed_without_caller(rule));
    }

    let mut cache_hit = None;
    let mut checks = SignatureChecks::default();
    let (identity, source) = match credential {
        Credential::Token(TokenKeys {
            keys,
            cache,
            backend,
        }) => {
            let found = match find_token(&policy.sources, req.headers, req.path) {
                Ok(Some(found)) => found,
                Ok(None) => {
                    return Answer::anonymous(Decision::builder(
                        Effect::Deny(DenyCode::TokenMissing),
                        "no token in the request",
                    ))
                }
                Err(e) => {
                    return Answer::anonymous(Decision::builder(
                        Effect::Deny(DenyCode::TokenInvalid),
                        e.to_string(),
                    ))
                }
            };
            let verifier = Verifier {
                keys,
                backend,
                checks: &mut checks,
            };
            let identity = identify(
                policy,
                verifier,
                cache,
                found.token,
                found.source,
                now,
                &mut cache_hit,
            );
            (identity, Some(found.source))
        }
        Credential::Claims(claims) => {
            let identity = provider_for(policy, &claims).and_then(|(index, provider)| {
                let source = provider.sources.first().copied().unwrap_or_default();
                accept(index, provider, claims, source, now)
            });
            (identity, None)
        }
    };
    let identity = match identity {
        Ok(identity) => identity,
        Err(failure) => {
            let keys_wanted = failure.keys_wanted();
            return Answer {
                signature_checks: checks,
                diagnostics: Diagnostics {
                    errors: Vec::new(),
                    keys_wanted,
                },
                ..Answer::anonymous(unverified(policy, rules, facts, failure))
            };
        }
    };
    let provider = policy.providers.get(identity.provider);
    let token_source = source.and_then(|s| policy.sources.get(s));
    let strip_token_header = match (provider, token_source) {
        (Some(p), Some(TokenSource::Header { name, .. })) if !p.forward => Some(name.clone()),
        _ => None,
    };
    let (decision, errors) = match catalog {
        CatalogState::Unavailable { reason } => {
            let decision = catalog_unavailable(policy, rules, facts, reason, identity.principal);
            (decision, Vec::new())
        }
        CatalogState::NotConfigured | CatalogState::Ready(_) => {
            let caller = rules.caller(&identity.principal, UnixTime::from_secs(now));
            let evaluation = rules.evaluate(facts, &caller, Scope::Enforced);
            let grant = match evaluation.ruling {
                Ruling::Allowed(rule) => grant_behind(rule, facts, &caller),
                _ => None,
            };
            let decision = ruled(&evaluation.ruling, facts)
                .grant(grant)
                .catalog_user(caller.user_ref(), caller.user_groups_joined())
                .caller(Arc::clone(&identity.principal));
            (decision, evaluation.errors)
        }
    };
    Answer {
        decision,
        strip_token_header,
        cache_hit,
        signature_checks: checks,
        diagnostics: Diagnostics {
            errors,
            keys_wanted: None,
        },
    }
}

/// The decision a ruling of the rules makes.
fn ruled(ruling: &Ruling<'_>, facts: &RequestFacts<'_>) -> DecisionBuilder {
    Decision::builder(ruling.effect(), explain::ruling_reason(ruling, facts))
        .rule(ruling.rule().map(|r| r.id.as_str()))
}

/// An allow rule that needs no caller (public, or a shadow rule without `when`) matched a
/// request without one.
fn allowed_without_caller(rule: &Rule) -> DecisionBuilder {
    let (code, kind) = caller_free_allow(rule);
    Decision::builder(
        Effect::Allow(code),
        format!("{kind} rule `{}` matched", rule.id),
    )
    .rule(Some(&rule.id))
}

fn caller_free_allow(rule: &Rule) -> (AllowCode, &'static str) {
    if rule.public {
        (AllowCode::PublicRoute, "public")
    } else {
        (AllowCode::RuleAllowed, "allow")
    }
}

/// What the decision would be with shadow rules enforced too, if that is different.
/// Token outcomes don't change: shadow rules only weigh in where rules are consulted.
fn shadow_outcome(
    rules: RuleList<'_>,
    facts: &RequestFacts<'_>,
    enforced: &DecisionBuilder,
    now: UnixTime,
) -> Option<ShadowOutcome> {
    let (effect, rule) = match enforced.principal() {
        Some(principal) => {
            let caller = rules.caller(principal, now);
            let ruling = rules.evaluate(facts, &caller, Scope::WithShadow).ruling;
            (ruling.effect(), ruling.rule().map(|r| r.id.clone()))
        }
        None => {
            if let Some(rule) = rules.caller_free_deny(facts, Scope::WithShadow) {
                (Effect::Deny(DenyCode::RuleDenied), Some(rule.id.clone()))
            } else if let Some(rule) = rules.caller_free_allow(facts, Scope::WithShadow) {
                // A shadow rule without `when` would let a request without a caller through.
                (
                    Effect::Allow(caller_free_allow(rule).0),
                    Some(rule.id.clone()),
                )
            } else {
                return None;
            }
        }
    };
    let differs = effect != enforced.effect() || rule.as_deref() != enforced.rule_id();
    differs.then_some(ShadowOutcome {
        effect,
        rule_id: rule,
    })
}

/// No verified caller: the token was refused. Keys that never loaded let the request
/// through when `failure_mode` is open (globally, or on an allow rule matching this
/// request); such requests carry no identity.
fn unverified(
    policy: &Policy,
    rules: RuleList<'_>,
    facts: &RequestFacts<'_>,
    failure: Failure,
) -> DecisionBuilder {
    let Failure { denial, provider } = failure;
    let provider = provider
        .and_then(|index| policy.providers.get(index))
        .map(|p| p.name.clone());
    if denial.code != DenyCode::JwksUnavailable {
        return Decision::builder(Effect::Deny(denial.code), denial.reason).provider(provider);
    }
    let open = format!("{}; failure_mode is open", denial.reason);
    let fail_open = Effect::Allow(AllowCode::FailOpen);
    match (policy.failure_mode, rules.fail_open_route(facts)) {
        (FailureMode::Open, _) => Decision::builder(fail_open, open).provider(provider),
        (FailureMode::Closed, Some(rule)) => Decision::builder(fail_open, open)
            .provider(provider)
            .rule(Some(&rule.id)),
        (FailureMode::Closed, None) => {
            Decision::builder(Effect::Deny(denial.code), denial.reason).provider(provider)
        }
    }
}

/// A snapshot is configured but none is usable (none loaded yet, or too old): like keys
/// that never loaded, `failure_mode` decides. Fail-open requests keep the verified identity.
fn catalog_unavailable(
    policy: &Policy,
    rules: RuleList<'_>,
    facts: &RequestFacts<'_>,
    reason: &str,
    principal: Arc<Principal>,
) -> DecisionBuilder {
    let reason = format!("the catalog snapshot is unavailable: {reason}");
    let open = format!("{reason}; failure_mode is open");
    let fail_open = Effect::Allow(AllowCode::FailOpen);
    let unavailable = Effect::Deny(DenyCode::SnapshotUnavailable);
    match (policy.failure_mode, rules.fail_open_route(facts)) {
        (FailureMode::Open, _) => Decision::builder(fail_open, open).caller(principal),
        (FailureMode::Closed, Some(rule)) => Decision::builder(fail_open, open)
            .caller(principal)
            .rule(Some(&rule.id)),
        (FailureMode::Closed, None) => Decision::builder(unavailable, reason).caller(principal),
    }
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

/// Why a token gave no verified caller, and the provider (index) it was checked against.
struct Failure {
    denial: Denial,
    provider: Option<usize>,
}

impl Failure {
    fn new(denial: Denial, provider: Option<usize>) -> Failure {
        Failure { denial, provider }
    }

    /// The keys that would have let the token through, if missing keys refused it.
    fn keys_wanted(&self) -> Option<KeysWanted> {
        let missing = match self.denial.code {
            DenyCode::JwksUnavailable => MissingKeys::NotLoaded,
            DenyCode::KeyUnknown => MissingKeys::UnknownKey,
            _ => return None,
        };
        Some(KeysWanted {
            provider: ProviderId::new(self.provider?),
            missing,
        })
    }
}

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
) -> Result<CachedIdentity, Failure> {
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
        let index = provider.map(|_| hit.provider);
        let skew = provider.map_or(0, |p| p.clock_skew_s);
        if !provider.is_some_and(|p| p.sources.contains(&source)) {
            return Err(Failure::new(location_denial(), index));
        }
        hit.validity
            .check(now, skew)
            .map_err(|e| Failure::new(claim_denial(e), index))?;
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
) -> Result<CachedIdentity, Failure> {
    let parsed = UnverifiedToken::parse(token, policy.max_token_bytes)
        .map_err(|e| Failure::new(token_denial(&e), None))?;
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
                    Failure::new(
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
        Failure::new(
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
) -> Result<(), Failure> {
    let Some(provider) = policy.providers.get(index) else {
        return Err(Failure::new(
            Denial::new(DenyCode::IssuerUnknown, "provider vanished"),
            None,
        ));
    };
    let checked = Some(index);
    if !provider.sources.contains(&source) {
        return Err(Failure::new(location_denial(), checked));
    }
    // Before the keys: a token of the wrong type is refused without a JWKS refetch.
    if let Some(profile) = provider.backstage {
        profile
            .check_type(parsed.header.typ.as_deref(), &parsed.claims)
            .map_err(|e| Failure::new(type_denial(&e), checked))?;
    }
    let Some(set) = verifier.keys.get(index) else {
        return Err(Failure::new(
            Denial::new(
                DenyCode::JwksUnavailable,
                format!("keys of provider `{}` are not loaded yet", provider.name),
            ),
            checked,
        ));
    };
    parsed
        .verify_using(set, verifier.backend, verifier.checks)
        .map_err(|e| Failure::new(token_denial(&e), checked))?;
    Ok(())
}

/// The providers that may have issued a token with these claims, found at `source`
/// (`None`: a preview without a token), in the order to try them
/// ([`Policy::providers_for`]). None is an error naming why.
fn candidate_providers(
    policy: &Policy,
    claims: &Map<String, Value>,
    source: Option<usize>,
) -> Result<Vec<usize>, Failure> {
    let issuer =
        claims::string_claim(claims, "iss").map_err(|e| Failure::new(claim_denial(e), None))?;
    let candidates = policy.providers_for(issuer, source);
    if !candidates.is_empty() {
        return Ok(candidates);
    }
    Err(match issuer {
        None => Failure::new(
            Denial::new(DenyCode::TokenInvalid, "token has no `iss` claim"),
            None,
        ),
        Some(issuer) => {
            let shown: String = issuer.chars().take(200).collect();
            Failure::new(
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
) -> Result<(usize, &'p Provider), Failure> {
    let candidates = candidate_providers(policy, claims, None)?;
    candidates
        .first()
        .and_then(|&i| policy.providers.get(i).map(|p| (i, p)))
        .ok_or_else(|| {
            Failure::new(
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
) -> Result<CachedIdentity, Failure> {
    let validity = provider
        .check_claims(&claims, now)
        .map_err(|e| Failure::new(claim_denial(e), Some(index)))?;
    let principal = provider
        .principal(claims)
        .map_err(|e| Failure::new(claim_denial(e), Some(index)))?;
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
fn backstage_non_user_token(policy: &Policy, typ: Option<&str>) -> Option<Failure> {
    let index = policy
        .providers
        .iter()
        .position(|p| p.backstage.is_some())?;
    let error = backstage::non_user_token(typ)?;
    Some(Failure::new(type_denial(&error), Some(index)))
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
            Credential::token(&KeyStore::new(policy), &mut TokenCache::new(0)),
            CatalogState::NotConfigured,
            &req,
            UnixTime::from_secs(NOW),
        )
        .decision
    }

    #[test]
    fn cached_verifications_end_when_the_keys_change() {
        use crate::testing::{other_rsa_public, public_jwk};
        use crate::token::jwks::{KeyOrigin, KeySet};
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
                Credential::token(keys, &mut cache),
                CatalogState::NotConfigured,
                &req,
                UnixTime::from_secs(NOW),
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

    /// A deny rule whose groups can't be known (the token's groups overflowed to a claim
    /// source and no catalog snapshot is loaded) fails closed: it denies, naming the rule.
    /// An allow rule in the same state does not allow. Both are reported as rule errors.
    #[test]
    fn an_unevaluable_deny_rule_fails_closed() {
        let policy = Policy::from_json(
            json!({
                "providers": {"idp": {"issuer": "https://idp", "remote_jwks": {"cluster": "idp", "uri": "https://idp/keys"}}},
                "rules": [
                    {"id": "no-contractors", "action": "deny", "methods": ["POST"], "when": {"groups_any": ["contractors"]}},
                    {"id": "staff", "action": "allow", "paths": ["/staff"], "when": {"groups_all": ["staff"]}},
                    {"id": "api", "action": "allow", "paths": ["/api/**"]}
                ]
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let overage = json!({"iss": "https://idp", "sub": "a", "exp": NOW + 60, "_claim_names": {"groups": "src1"}});
        let listed =
            json!({"iss": "https://idp", "sub": "a", "exp": NOW + 60, "groups": ["staff"]});
        let denied = Effect::Deny(DenyCode::RuleDenied);
        let allowed = Effect::Allow(AllowCode::RuleAllowed);
        let unmatched = Effect::Deny(DenyCode::NoRuleMatched);
        let cases = [
            (
                &overage,
                "POST",
                "/api/x",
                denied,
                Some("no-contractors"),
                Some("no-contractors"),
            ),
            (&overage, "GET", "/staff", unmatched, None, Some("staff")),
            (&overage, "GET", "/api/x", allowed, Some("api"), None),
            (&listed, "POST", "/api/x", allowed, Some("api"), None),
            (&listed, "GET", "/staff", allowed, Some("staff"), None),
        ];
        for (claims, method, path, effect, rule, error) in cases {
            let verdict = crate::testing::decide_on_claims(&policy, claims, method, "h", path, NOW);
            let d = &verdict.decision;
            let errors: Vec<&str> = verdict
                .diagnostics
                .errors
                .iter()
                .map(|e| e.rule_id.as_str())
                .collect();
            let case = format!("{method} {path}: {}", d.reason);
            assert_eq!((d.effect, d.rule_id.as_deref()), (effect, rule), "{case}");
            assert_eq!(errors, Vec::from_iter(error), "{case}");
            if error.is_some() {
                assert!(d.reason.contains("group overage"), "{case}");
            }
        }
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
