//! The order rules are tried in: deny rules before allow rules, the configuration's before
//! the catalog snapshot's, then the default action. Whether one rule matches is
//! [`Rule::evaluate`]'s to say; this module only walks the rules and keeps what it met.

use crate::decision::verdict::{AllowCode, DenyCode, Effect};
use crate::identity::caller::Caller;
use crate::identity::principal::Principal;
use crate::policy::catalog::Catalog;
use crate::policy::config::Policy;
use crate::policy::rules::{Action, ConditionError, Outcome, Rule, RuleError};
use crate::request::{RequestFacts, UnixTime};
use crate::snapshot::{Grant, Snapshot};

/// The rules a request is checked against: the configuration's, then the catalog's.
#[derive(Debug, Clone, Copy)]
pub struct RuleList<'a> {
    policy: &'a Policy,
    catalog: Option<&'a Catalog>,
}

/// Which rules take part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The rules that decide: shadow rules left out.
    Enforced,
    /// Shadow rules too, to say what they would have decided.
    WithShadow,
}

impl Scope {
    fn admits(self, rule: &Rule) -> bool {
        self == Scope::WithShadow || !rule.shadow
    }
}

/// What the rules decide for a request with a verified caller.
#[derive(Debug, Clone)]
pub enum Ruling<'a> {
    /// The first deny rule that matched, or that could not be evaluated (`error`): deny
    /// rules fail closed.
    Denied {
        rule: &'a Rule,
        error: Option<ConditionError>,
    },
    /// The first allow rule that matched, in configuration order.
    Allowed(&'a Rule),
    /// No rule matched: the default action decides.
    Default {
        action: Action,
        /// The first allow rule whose host, method and path matched, with the condition
        /// the caller failed or the error that kept it from matching.
        closest: Option<Closest<'a>>,
    },
}

/// An allow rule that matched the request but not the caller.
#[derive(Debug, Clone)]
pub struct Closest<'a> {
    pub rule: &'a Rule,
    /// Never [`Outcome::Matched`].
    pub outcome: Outcome<'a>,
}

/// A ruling and the rule errors met on the way to it.
#[derive(Debug, Clone)]
pub struct Evaluation<'a> {
    pub ruling: Ruling<'a>,
    pub errors: Vec<RuleError>,
}

impl Ruling<'_> {
    /// The effect this ruling gives a request.
    pub fn effect(&self) -> Effect {
        match self {
            Ruling::Denied { .. } => Effect::Deny(DenyCode::RuleDenied),
            Ruling::Allowed(_) => Effect::Allow(AllowCode::RuleAllowed),
            Ruling::Default {
                action: Action::Deny,
                ..
            } => Effect::Deny(DenyCode::NoRuleMatched),
            Ruling::Default {
                action: Action::Allow,
                ..
            } => Effect::Allow(AllowCode::DefaultAllow),
        }
    }

    /// The rule that decided, if one did.
    pub fn rule(&self) -> Option<&Rule> {
        match self {
            Ruling::Denied { rule, .. } | Ruling::Allowed(rule) => Some(rule),
            Ruling::Default { .. } => None,
        }
    }
}

impl<'a> RuleList<'a> {
    pub fn new(policy: &'a Policy, catalog: Option<&'a Catalog>) -> RuleList<'a> {
        RuleList { policy, catalog }
    }

    /// Deny rules that may match the request (indexed by host and path), in order.
    fn deny<'h>(&self, facts: &RequestFacts<'h>) -> impl Iterator<Item = &'a Rule> + use<'a, 'h> {
        let (host, path) = (facts.host, facts.path);
        let catalog = self.catalog.map(|c| &c.rules);
        self.policy.rules.deny_for(host, path).chain(
            catalog
                .into_iter()
                .flat_map(move |r| r.deny_for(host, path)),
        )
    }

    /// Allow rules that may match the request (indexed by host and path), in order.
    fn allow<'h>(&self, facts: &RequestFacts<'h>) -> impl Iterator<Item = &'a Rule> + use<'a, 'h> {
        let (host, path) = (facts.host, facts.path);
        let catalog = self.catalog.map(|c| &c.rules);
        self.policy.rules.allow_for(host, path).chain(
            catalog
                .into_iter()
                .flat_map(move |r| r.allow_for(host, path)),
        )
    }

    /// The catalog snapshot, when one is loaded.
    pub fn snapshot(&self) -> Option<&'a Snapshot> {
        self.catalog.map(|c| &c.snapshot)
    }

    /// The caller as rules see them at `now`: the catalog user, and the grants the snapshot
    /// holds for them.
    pub fn caller<'p>(&self, principal: &'p Principal, now: UnixTime) -> Caller<'p>
    where
        'a: 'p,
    {
        let caller = Caller::new(principal, self.snapshot());
        match self.catalog {
            Some(catalog) => caller.with_grants(&catalog.grants, now),
            None => caller,
        }
    }

    pub fn has_shadow_rules(&self) -> bool {
        self.policy.has_shadow_rules || self.catalog.is_some_and(|c| c.rules.has_shadow_rules())
    }

    /// The first deny rule that applies to the request whoever the caller is (no `when`):
    /// checked before any token work.
    pub fn caller_free_deny(&self, facts: &RequestFacts<'a>, scope: Scope) -> Option<&'a Rule> {
        self.deny(facts)
            .filter(|rule| scope.admits(rule))
            .find(|rule| matches!(rule.evaluate(facts, None), Outcome::Matched))
    }

    /// The first allow rule that lets the request through without a caller: public, or
    /// (shadow rules only get here) without `when`. With [`Scope::Enforced`], public only.
    pub fn caller_free_allow(&self, facts: &RequestFacts<'a>, scope: Scope) -> Option<&'a Rule> {
        self.allow(facts)
            .filter(|rule| scope.admits(rule) && (rule.public || scope == Scope::WithShadow))
            .find(|rule| matches!(rule.evaluate(facts, None), Outcome::Matched))
    }

    /// The first of the configuration's allow rules with `failure_mode: open` whose host,
    /// method and path match: it lets the request through when keys or the snapshot are
    /// missing.
    pub fn fail_open_route(&self, facts: &RequestFacts<'_>) -> Option<&'a Rule> {
        self.policy
            .rules
            .allow
            .iter()
            .find(|r| r.fail_open && r.matches_request(facts))
    }

    /// Deny rules first (the first that matches, or cannot be evaluated, denies), then
    /// allow rules (the first that matches allows), then the default action.
    pub fn evaluate(
        &self,
        facts: &RequestFacts<'a>,
        caller: &Caller<'a>,
        scope: Scope,
    ) -> Evaluation<'a> {
        let mut errors = Vec::new();
        for rule in self.deny(facts).filter(|rule| scope.admits(rule)) {
            match rule.evaluate(facts, Some(caller)) {
                Outcome::Matched => {
                    let ruling = Ruling::Denied { rule, error: None };
                    return Evaluation { ruling, errors };
                }
                Outcome::Error(e) => {
                    let ruling = Ruling::Denied {
                        rule,
                        error: Some(e.error.clone()),
                    };
                    errors.push(e);
                    return Evaluation { ruling, errors };
                }
                Outcome::Unmet(_) => {}
            }
        }
        let mut closest = None;
        for rule in self.allow(facts).filter(|rule| scope.admits(rule)) {
            let outcome = match rule.evaluate(facts, Some(caller)) {
                Outcome::Matched => {
                    return Evaluation {
                        ruling: Ruling::Allowed(rule),
                        errors,
                    }
                }
                Outcome::Unmet(unmet) if unmet.is_request() => continue,
                Outcome::Unmet(unmet) => Outcome::Unmet(unmet),
                Outcome::Error(e) => {
                    errors.push(e.clone());
                    Outcome::Error(e)
                }
            };
            closest.get_or_insert(Closest { rule, outcome });
        }
        let ruling = Ruling::Default {
            action: self.policy.default_action,
            closest,
        };
        Evaluation { ruling, errors }
    }

    /// Every rule with its outcome, in evaluation order (deny rules, then allow rules; the
    /// configuration's before the catalog's), shadow rules included. For explanations: the
    /// request path stops at the first rule that decides.
    pub fn trace(
        &self,
        facts: &RequestFacts<'a>,
        caller: Option<&Caller<'a>>,
    ) -> Vec<(&'a Rule, Outcome<'a>)> {
        let catalog = self.catalog.map(|c| &c.rules);
        let policy = &self.policy.rules;
        policy
            .deny
            .iter()
            .chain(catalog.into_iter().flat_map(|r| r.deny.iter()))
            .chain(policy.allow.iter())
            .chain(catalog.into_iter().flat_map(|r| r.allow.iter()))
            .map(|rule| (rule, rule.evaluate(facts, caller)))
            .collect()
    }
}

/// The grant an allow by `rule` rests on: `None` when the rule matches without any of
/// the caller's grants. Runs only for callers holding a grant.
pub fn grant_behind<'p>(
    rule: &'p Rule,
    facts: &RequestFacts<'p>,
    caller: &Caller<'p>,
) -> Option<&'p Grant> {
    caller.active_grants().next()?;
    let matches = |c: Caller<'p>| matches!(rule.evaluate(facts, Some(&c)), Outcome::Matched);
    if matches(caller.only_grants(&[])) {
        return None;
    }
    caller
        .active_grants()
        .find(|&grant| matches(caller.only_grants(std::slice::from_ref(grant))))
}
