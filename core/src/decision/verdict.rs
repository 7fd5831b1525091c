//! The answer to one request: a value, so the filter, the CLI and tests read it the same way.

use std::fmt;
use std::sync::Arc;

use crate::identity::principal::Principal;
use crate::policy::config::Mode;
use crate::policy::rules::RuleError;
use crate::snapshot::Grant;
use crate::token::signature::SignatureChecks;

/// Why a request was denied. Each code has a stable snake_case name used in logs,
/// metrics and response bodies: never renumber or rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyCode {
    /// No token was presented on a route that needs one.
    TokenMissing,
    /// The token is not a well-formed JWS, or a claim has the wrong type.
    TokenInvalid,
    /// `exp` is in the past (beyond the clock skew).
    TokenExpired,
    /// `nbf` or `iat` is in the future (beyond the clock skew).
    TokenNotYetValid,
    /// No configured audience is in `aud`.
    AudienceMismatch,
    /// `iss` names no configured provider.
    IssuerUnknown,
    /// The token's `kid` (or, without `kid`, its algorithm) matches no key of the provider.
    KeyUnknown,
    /// The algorithm is not the one the key is pinned to (`none`, HS/RS confusion, ...).
    AlgorithmNotAllowed,
    /// The signature does not verify with any candidate key.
    SignatureInvalid,
    /// The provider's key set has not been fetched yet.
    JwksUnavailable,
    /// The token came from a place its provider does not read tokens from.
    TokenLocationNotAllowed,
    /// The token is of a type its provider does not take as a user's credential (a Backstage
    /// limited-user or plugin token, or an untyped one with `legacy_tokens` off).
    TokenTypeNotAllowed,
    /// The request path is ambiguous or malformed (encoded slash, backslash, ...).
    PathRejected,
    /// A deny rule matched.
    RuleDenied,
    /// No allow rule matched and the default action is deny.
    NoRuleMatched,
    /// A catalog snapshot is configured but none is loaded, or the last one is too old.
    SnapshotUnavailable,
}

impl DenyCode {
    pub const ALL: [DenyCode; 16] = [
        DenyCode::TokenMissing,
        DenyCode::TokenInvalid,
        DenyCode::TokenExpired,
        DenyCode::TokenNotYetValid,
        DenyCode::AudienceMismatch,
        DenyCode::IssuerUnknown,
        DenyCode::KeyUnknown,
        DenyCode::AlgorithmNotAllowed,
        DenyCode::SignatureInvalid,
        DenyCode::JwksUnavailable,
        DenyCode::TokenLocationNotAllowed,
        DenyCode::TokenTypeNotAllowed,
        DenyCode::PathRejected,
        DenyCode::RuleDenied,
        DenyCode::NoRuleMatched,
        DenyCode::SnapshotUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DenyCode::TokenMissing => "token_missing",
            DenyCode::TokenInvalid => "token_invalid",
            DenyCode::TokenExpired => "token_expired",
            DenyCode::TokenNotYetValid => "token_not_yet_valid",
            DenyCode::AudienceMismatch => "audience_mismatch",
            DenyCode::IssuerUnknown => "issuer_unknown",
            DenyCode::KeyUnknown => "key_unknown",
            DenyCode::AlgorithmNotAllowed => "algorithm_not_allowed",
            DenyCode::SignatureInvalid => "signature_invalid",
            DenyCode::JwksUnavailable => "jwks_unavailable",
            DenyCode::TokenLocationNotAllowed => "token_location_not_allowed",
            DenyCode::TokenTypeNotAllowed => "token_type_not_allowed",
            DenyCode::PathRejected => "path_rejected",
            DenyCode::RuleDenied => "rule_denied",
            DenyCode::NoRuleMatched => "no_rule_matched",
            DenyCode::SnapshotUnavailable => "snapshot_unavailable",
        }
    }

    /// The one place that maps a denial to an HTTP status.
    /// Authentication failures are 401 (the caller can fix them with a good token);
    /// authorization failures are 403; a path we refuse to interpret is 400.
    /// A wrong audience is 401 like Istio (Envoy's jwt_authn answers 403): the token
    /// is not a credential for this service, so another token may succeed.
    pub fn http_status(self) -> u16 {
        match self {
            DenyCode::PathRejected => 400,
            // The caller can't fix it; like an unreachable ext_authz service.
            DenyCode::SnapshotUnavailable => 503,
            DenyCode::RuleDenied | DenyCode::NoRuleMatched => 403,
            DenyCode::TokenMissing
            | DenyCode::TokenInvalid
            | DenyCode::TokenExpired
            | DenyCode::TokenNotYetValid
            | DenyCode::AudienceMismatch
            | DenyCode::IssuerUnknown
            | DenyCode::KeyUnknown
            | DenyCode::AlgorithmNotAllowed
            | DenyCode::SignatureInvalid
            | DenyCode::JwksUnavailable
            | DenyCode::TokenLocationNotAllowed
            | DenyCode::TokenTypeNotAllowed => 401,
        }
    }

    /// What the caller is told. Fixed text per code: the detailed reason (which may quote
    /// token contents) goes only to the decision log.
    pub fn public_message(self) -> &'static str {
        match self {
            DenyCode::TokenMissing => "a bearer token is required",
            DenyCode::TokenInvalid => "the token is malformed or has invalid claims",
            DenyCode::TokenExpired => "the token has expired",
            DenyCode::TokenNotYetValid => "the token is not valid yet",
            DenyCode::AudienceMismatch => "the token is not meant for this service",
            DenyCode::IssuerUnknown => "the token issuer is not trusted here",
            DenyCode::KeyUnknown => "the token was signed with an unknown key",
            DenyCode::AlgorithmNotAllowed => {
                "the token signing algorithm is not allowed for its key"
            }
            DenyCode::SignatureInvalid => "the token signature is invalid",
            DenyCode::JwksUnavailable => "the issuer keys are not available yet",
            DenyCode::TokenLocationNotAllowed => {
                "the token was sent where its issuer is not accepted"
            }
            DenyCode::TokenTypeNotAllowed => "the token is not a user token accepted here",
            DenyCode::PathRejected => "the request path is ambiguous or malformed",
            DenyCode::RuleDenied => "access denied by policy",
            DenyCode::NoRuleMatched => "access denied: no rule allows this request",
            DenyCode::SnapshotUnavailable => "authorization data is not available; try again later",
        }
    }

    /// True when the caller presented a token that failed verification; used for the
    /// RFC 6750 `error="invalid_token"` attribute (absent when no token was sent).
    pub fn is_invalid_token(self) -> bool {
        self.http_status() == 401 && self != DenyCode::TokenMissing
    }
}

impl fmt::Display for DenyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllowCode {
    /// An allow rule matched.
    RuleAllowed,
    /// A public rule matched: no token needed.
    PublicRoute,
    /// No rule matched and the default action is allow.
    DefaultAllow,
    /// The provider's keys are unavailable and `failure_mode` is `open` for this request.
    FailOpen,
}

impl AllowCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AllowCode::RuleAllowed => "rule_allowed",
            AllowCode::PublicRoute => "public_route",
            AllowCode::DefaultAllow => "default_allow",
            AllowCode::FailOpen => "fail_open",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow(AllowCode),
    Deny(DenyCode),
}

/// The decision for one request, with everything needed to explain it. Made by
/// [`DecisionBuilder`] only, in one go: nothing is changed once it is built.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub effect: Effect,
    /// Human-readable reason; never contains the token or secrets.
    pub reason: String,
    /// The rule that decided, if one did.
    pub rule_id: Option<String>,
    /// The provider that verified the token, if one did.
    pub provider: Option<String>,
    /// The verified caller, when verification succeeded.
    pub principal: Option<Arc<Principal>>,
    /// The normalized path the rules saw (absent when the path was rejected).
    pub normalized_path: Option<String>,
    /// The mode this request is in (global `mode`, or a `mode_overrides` entry).
    pub mode: Mode,
    /// What shadow rules would have decided, when that differs from `effect`.
    pub shadow: Option<ShadowOutcome>,
    /// The catalog snapshot the decision used, if one was loaded.
    pub snapshot_version: Option<u64>,
    /// The catalog user the caller was mapped to (`user:default/alice`), if any.
    pub catalog_user: Option<String>,
    /// That catalog user's groups (entity refs, nesting closed), comma-separated, for the
    /// upstream's `x-meshgate-catalog-groups`.
    pub catalog_groups: Option<String>,
    /// The access grant an allow rests on: the rule matched with it and would not without.
    pub grant: Option<GrantUsed>,
}

/// A grant named by a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantUsed {
    pub id: String,
    /// `group:default/data-eng` or `airflow.dag/etl_daily`.
    pub target: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// Builds a [`Decision`]: the effect and reason first, then what else is known.
#[derive(Debug, Clone)]
#[must_use]
pub struct DecisionBuilder {
    decision: Decision,
}

impl Decision {
    /// A decision with this effect and reason, in enforce mode, with nothing else known yet.
    pub fn builder(effect: Effect, reason: impl Into<String>) -> DecisionBuilder {
        DecisionBuilder {
            decision: Decision {
                effect,
                reason: reason.into(),
                rule_id: None,
                provider: None,
                principal: None,
                normalized_path: None,
                mode: Mode::Enforce,
                shadow: None,
                snapshot_version: None,
                catalog_user: None,
                catalog_groups: None,
                grant: None,
            },
        }
    }
}

impl DecisionBuilder {
    pub fn effect(&self) -> Effect {
        self.decision.effect
    }

    pub fn rule_id(&self) -> Option<&str> {
        self.decision.rule_id.as_deref()
    }

    pub fn principal(&self) -> Option<&Arc<Principal>> {
        self.decision.principal.as_ref()
    }

    /// The rule that decided, if one did.
    pub fn rule(mut self, id: Option<&str>) -> DecisionBuilder {
        self.decision.rule_id = id.map(str::to_owned);
        self
    }

    /// The provider the token named, when no caller was verified.
    pub fn provider(mut self, name: Option<String>) -> DecisionBuilder {
        self.decision.provider = name;
        self
    }

    /// The verified caller (and so the provider that verified them).
    pub fn caller(mut self, principal: Arc<Principal>) -> DecisionBuilder {
        self.decision.provider = Some(principal.provider.clone());
        self.decision.principal = Some(principal);
        self
    }

    /// The catalog user the caller maps to, and that user's groups, comma-separated.
    /// The grant the allow rests on.
    pub fn grant(mut self, grant: Option<&Grant>) -> DecisionBuilder {
        self.decision.grant = grant.map(|g| GrantUsed {
            id: g.id.clone(),
            target: g.target.describe(),
            not_after: g.not_after.secs(),
        });
        self
    }

    pub fn catalog_user(mut self, user: Option<&str>, groups: Option<String>) -> DecisionBuilder {
        self.decision.catalog_user = user.map(str::to_owned);
        self.decision.catalog_groups = groups;
        self
    }

    /// What holds for the whole request: the path rules saw, the mode, what shadow rules
    /// would have done, and the snapshot used.
    pub fn request(
        mut self,
        normalized_path: String,
        mode: Mode,
        shadow: Option<ShadowOutcome>,
        snapshot_version: Option<u64>,
    ) -> DecisionBuilder {
        self.decision.normalized_path = Some(normalized_path);
        self.decision.mode = mode;
        self.decision.shadow = shadow;
        self.decision.snapshot_version = snapshot_version;
        self
    }

    pub fn build(self) -> Decision {
        self.decision
    }
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
    pub diagnostics: Diagnostics,
}

/// What the decision met besides its answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Rules that could not be evaluated on the way to the decision, in evaluation order.
    /// An erroring deny rule denied the request; an erroring allow rule did not allow it.
    pub errors: Vec<RuleError>,
    /// Keys the decision lacked. The filter loads or fetches them, and decides again only
    /// when they arrive.
    pub keys_wanted: Option<KeysWanted>,
}

/// A provider, by its position in the configuration's providers (and in the key store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProviderId(usize);

impl ProviderId {
    pub const fn new(index: usize) -> ProviderId {
        ProviderId(index)
    }

    pub const fn index(self) -> usize {
        self.0
    }
}

/// Keys a provider lacks for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysWanted {
    pub provider: ProviderId,
    pub missing: MissingKeys,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKeys {
    /// The provider's key set never loaded (`jwks_unavailable`, or let through by
    /// `failure_mode: open`).
    NotLoaded,
    /// The token names a key the set doesn't have (`key_unknown`): a key rotated in.
    UnknownKey,
}

/// The decision shadow rules would have made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowOutcome {
    pub effect: Effect,
    pub rule_id: Option<String>,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self.effect, Effect::Allow(_))
    }

    pub fn code_str(&self) -> &'static str {
        match self.effect {
            Effect::Allow(code) => code.as_str(),
            Effect::Deny(code) => code.as_str(),
        }
    }

    pub fn deny_code(&self) -> Option<DenyCode> {
        match self.effect {
            Effect::Deny(code) => Some(code),
            Effect::Allow(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let names: HashSet<&str> = DenyCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), DenyCode::ALL.len());
        for name in names {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
        // Messages go into a quoted WWW-Authenticate attribute and a JSON body.
        for code in DenyCode::ALL {
            let message = code.public_message();
            assert!(
                message.is_ascii() && !message.contains(['"', '\\']),
                "{code}"
            );
        }
    }

    #[test]
    fn status_mapping() {
        let cases = [
            (DenyCode::TokenMissing, 401, false),
            (DenyCode::TokenExpired, 401, true),
            (DenyCode::AudienceMismatch, 401, true),
            (DenyCode::TokenTypeNotAllowed, 401, true),
            (DenyCode::RuleDenied, 403, false),
            (DenyCode::NoRuleMatched, 403, false),
            (DenyCode::PathRejected, 400, false),
        ];
        for (code, status, invalid) in cases {
            assert_eq!(code.http_status(), status, "{code}");
            assert_eq!(code.is_invalid_token(), invalid, "{code}");
        }
    }
}
