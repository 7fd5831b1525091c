//! Why a decision came out the way it did: every rule, in evaluation order, with whether
//! it matched and, if not, the first reason. Used by `meshgate check` and previews; the
//! request path itself never builds one.

use serde_json::{json, Value};

use crate::authorize::{Request, Verdict};
use crate::catalog::{Caller, CatalogState};
use crate::decision::Effect;
use crate::pattern::PathPattern;
use crate::rules::{
    caller_owns, normalize_host, Action, ClaimCondition, Conditions, RequestFacts, Rule,
};
use crate::Policy;

/// How one rule related to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOutcome {
    /// This rule made the decision.
    Decided,
    /// Matched, but another rule decided first (deny before allow, then config order).
    Matched,
    /// Did not match; `detail` says why.
    NotMatched,
    /// Needs a verified caller, and there was none.
    NeedsCaller,
}

impl RuleOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleOutcome::Decided => "decided",
            RuleOutcome::Matched => "matched",
            RuleOutcome::NotMatched => "not_matched",
            RuleOutcome::NeedsCaller => "needs_caller",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTrace {
    pub id: String,
    pub action: Action,
    pub outcome: RuleOutcome,
    /// What matched, or the first reason it didn't.
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Explanation {
    pub verdict: Verdict,
    pub method: String,
    pub host: String,
    pub rules: Vec<RuleTrace>,
}

/// Explains `verdict`, the decision `decide` (or `decide_claims`) made for `req`.
pub fn explain(
    policy: &Policy,
    catalog: CatalogState<'_>,
    req: &Request<'_>,
    verdict: Verdict,
) -> Explanation {
    let catalog = catalog.catalog();
    let host = normalize_host(req.authority);
    let path = verdict.decision.normalized_path.clone();
    let principal = verdict.decision.principal.clone();
    let rules = match &path {
        // The path was refused before any rule ran.
        None => Vec::new(),
        Some(path) => {
            let facts = RequestFacts {
                host: &host,
                method: req.method,
                path,
            };
            let caller = principal.as_deref().map(|p| Caller::new(p, catalog));
            let extra = catalog.map(|c| &c.rules);
            policy
                .rules
                .deny
                .iter()
                .chain(extra.iter().flat_map(|r| r.deny.iter()))
                .chain(policy.rules.allow.iter())
                .chain(extra.iter().flat_map(|r| r.allow.iter()))
                .map(|rule| trace(rule, &facts, caller.as_ref(), &verdict))
                .collect()
        }
    };
    Explanation {
        verdict,
        method: req.method.to_owned(),
        host,
        rules,
    }
}

fn trace(
    rule: &Rule,
    facts: &RequestFacts<'_>,
    caller: Option<&Caller<'_>>,
    verdict: &Verdict,
) -> RuleTrace {
    let (outcome, detail) = match mismatch(rule, facts, caller) {
        Some(Mismatch::Request(why)) => (RuleOutcome::NotMatched, why),
        Some(Mismatch::Caller(why)) => (RuleOutcome::NotMatched, why),
        Some(Mismatch::NoCaller) => (
            RuleOutcome::NeedsCaller,
            String::from("request matches, but `when` needs a verified caller"),
        ),
        None => {
            let decided = verdict.decision.rule_id.as_deref() == Some(rule.id.as_str())
                && match (rule.action, verdict.decision.effect) {
                    (Action::Deny, Effect::Deny(_)) | (Action::Allow, Effect::Allow(_)) => true,
                    (Action::Deny, Effect::Allow(_)) | (Action::Allow, Effect::Deny(_)) => false,
                };
            let outcome = if decided {
                RuleOutcome::Decided
            } else {
                RuleOutcome::Matched
            };
            (
                outcome,
                String::from("host, method, path and `when` all match"),
            )
        }
    };
    RuleTrace {
        id: rule.id.clone(),
        action: rule.action,
        outcome,
        detail,
    }
}

enum Mismatch {
    Request(String),
    Caller(String),
    NoCaller,
}

fn mismatch(
    rule: &Rule,
    facts: &RequestFacts<'_>,
    caller: Option<&Caller<'_>>,
) -> Option<Mismatch> {
    if !rule.route.hosts.is_empty() && !rule.route.hosts.iter().any(|h| h.matches(facts.host)) {
        return Some(Mismatch::Request(format!(
            "host `{}` is not one of the rule's hosts",
            facts.host
        )));
    }
    if !rule.route.methods.is_empty() && !rule.route.methods.iter().any(|m| m == facts.method) {
        return Some(Mismatch::Request(format!(
            "method `{}` is not one of {}",
            facts.method,
            list(&rule.route.methods)
        )));
    }
    if !rule.route.paths.is_empty() && !rule.route.paths.iter().any(|p| p.is_match(facts.path)) {
        let patterns: Vec<String> = rule.route.paths.iter().map(describe_path).collect();
        return Some(Mismatch::Request(format!(
            "path `{}` matches none of {}",
            facts.path,
            patterns.join(", ")
        )));
    }
    if rule.public || rule.when.is_empty() {
        return None;
    }
    match caller {
        None => Some(Mismatch::NoCaller),
        Some(caller) => caller_mismatch(rule, caller, facts.path).map(Mismatch::Caller),
    }
}

/// For a request no allow rule let through: the first allow rule whose host, method and path
/// match, and the condition the caller fails, in words. Only for denials: it formats text.
pub(crate) fn closest_allow<'r>(
    mut rules: impl Iterator<Item = &'r Rule>,
    facts: &RequestFacts<'_>,
    caller: &Caller<'_>,
) -> Option<String> {
    rules.find_map(|rule| match mismatch(rule, facts, Some(caller)) {
        Some(Mismatch::Caller(why)) => Some(format!(
            "allow rule `{}` matches the request, but {why}",
            rule.id
        )),
        Some(Mismatch::Request(_) | Mismatch::NoCaller) | None => None,
    })
}

/// The caller's groups in words: the token's, and the catalog user's when there is one.
fn describe_groups(caller: &Caller<'_>) -> String {
    let p = caller.principal;
    let mut text = format!("token groups: {}", list(&p.groups));
    if p.groups_overage {
        text.push_str(" (group overage: the token points elsewhere for its groups)");
    }
    match caller.user {
        Some(user) => {
            let groups: Vec<String> = user.groups.iter().map(str::to_owned).collect();
            text.push_str(&format!(
                "; catalog user `{}`: {}",
                user.entity_ref,
                list(&groups)
            ));
        }
        None if caller.snapshot.is_some() => text.push_str("; no catalog user matches the token"),
        None => {}
    }
    text
}

/// The first condition of `when` the caller fails, in words.
fn caller_mismatch(rule: &Rule, caller: &Caller<'_>, path: &str) -> Option<String> {
    let when = &rule.when;
    let p = caller.principal;
    if !when.groups_any.is_empty() && !when.groups_any.iter().any(|g| caller.in_group(g)) {
        let names: Vec<String> = when.groups_any.iter().map(|g| g.name.clone()).collect();
        return Some(format!(
            "caller is in none of groups_any {} ({})",
            list(&names),
            describe_groups(caller)
        ));
    }
    if let Some(missing) = when.groups_all.iter().find(|g| !caller.in_group(g)) {
        return Some(format!(
            "caller is not in `{}`, which groups_all requires ({})",
            missing.name,
            describe_groups(caller)
        ));
    }
    if !when.subjects.is_empty()
        && !p
            .subject
            .as_ref()
            .is_some_and(|s| when.subjects.contains(s))
    {
        return Some(format!("subject is not one of {}", list(&when.subjects)));
    }
    if !when.providers.is_empty() && !when.providers.contains(&p.provider) {
        return Some(format!(
            "provider `{}` is not one of {}",
            p.provider,
            list(&when.providers)
        ));
    }
    for condition in &when.claims {
        let holds = Conditions {
            claims: vec![condition.clone()],
            ..Conditions::default()
        }
        .hold_for(caller, &rule.route, path);
        if !holds {
            return Some(match condition {
                ClaimCondition::Equals { claim, value } => {
                    format!("claim `{}` does not equal {value}", claim.as_str())
                }
                ClaimCondition::Contains { claim, value } => {
                    format!("claim `{}` does not contain {value}", claim.as_str())
                }
            });
        }
    }
    if let Some(owns) = &when.owns {
        if !caller_owns(caller, owns, &rule.route, path) {
            let resource = owns.resource_id(&rule.route.paths, path);
            let id = resource.as_deref().unwrap_or("?");
            let Some(snapshot) = caller.snapshot else {
                return Some(format!(
                    "ownership of {} `{id}` needs a catalog snapshot, and none is loaded",
                    owns.kind
                ));
            };
            return Some(match snapshot.owners_of(&owns.kind, id) {
                None => format!("the catalog lists no {} `{id}`", owns.kind),
                Some(owners) => {
                    let owners: Vec<String> = owners.iter().map(str::to_owned).collect();
                    format!(
                        "{} `{id}` is owned by {}, and the caller is in none of them ({})",
                        owns.kind,
                        list(&owners),
                        describe_groups(caller)
                    )
                }
            });
        }
    }
    None
}

fn describe_path(pattern: &PathPattern) -> String {
    match pattern {
        PathPattern::Exact(p) => format!("exact `{p}`"),
        PathPattern::Prefix(p) => format!("prefix `{p}`"),
        PathPattern::Template(t) => format!("`{}`", t.as_str()),
    }
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    format!("[{}]", quoted.join(", "))
}

impl Explanation {
    pub fn status(&self) -> u16 {
        self.verdict
            .decision
            .deny_code()
            .map_or(200, |c| c.http_status())
    }

    /// The explanation as JSON (for `meshgate check --json` and previews).
    pub fn to_json(&self) -> Value {
        let d = &self.verdict.decision;
        let principal = d.principal.as_deref().map(|p| {
            json!({
                "provider": p.provider,
                "subject": p.subject,
                "email": p.email,
                "groups": p.groups,
            })
        });
        json!({
            "decision": if d.is_allowed() { "allow" } else { "deny" },
            "code": d.code_str(),
            "status": self.status(),
            "reason": d.reason,
            "rule_id": d.rule_id,
            "mode": match d.mode { crate::Mode::Enforce => "enforce", crate::Mode::Shadow => "shadow" },
            "shadow": d.shadow.as_ref().map(crate::log::shadow_json),
            "request": {"method": self.method, "host": self.host, "path": d.normalized_path},
            "principal": principal,
            "rules": self.rules.iter().map(|r| json!({
                "id": r.id,
                "action": match r.action { Action::Allow => "allow", Action::Deny => "deny" },
                "outcome": r.outcome.as_str(),
                "detail": r.detail,
            })).collect::<Vec<_>>(),
        })
    }

    /// The explanation for people: decision first, then every rule.
    pub fn to_text(&self) -> String {
        let d = &self.verdict.decision;
        let mut out = format!(
            "{} {} ({}): {}\n",
            if d.is_allowed() { "ALLOW" } else { "DENY" },
            self.status(),
            d.code_str(),
            d.reason
        );
        out.push_str(&format!(
            "request: {} {}{}\n",
            self.method,
            self.host,
            d.normalized_path.as_deref().unwrap_or("(path rejected)")
        ));
        match d.principal.as_deref() {
            Some(p) => out.push_str(&format!(
                "caller: {} via `{}`, groups {}\n",
                p.subject.as_deref().unwrap_or("(no sub)"),
                p.provider,
                list(&p.groups)
            )),
            None => out.push_str("caller: none verified\n"),
        }
        if !self.rules.is_empty() {
            out.push_str("rules (deny rules first, then allow rules, in order):\n");
        }
        for r in &self.rules {
            let marker = match r.outcome {
                RuleOutcome::Decided => "=>",
                RuleOutcome::Matched => " +",
                RuleOutcome::NotMatched | RuleOutcome::NeedsCaller => "  ",
            };
            let action = match r.action {
                Action::Allow => "allow",
                Action::Deny => "deny",
            };
            out.push_str(&format!(
                "{marker} {action:5} {:<28} {}: {}\n",
                r.id,
                r.outcome.as_str(),
                r.detail
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::authorize::decide_claims;

    fn policy() -> Policy {
        Policy::from_json(
            json!({
                "providers": {"idp": {"issuer": "https://idp", "local_jwks": {"inline": {"keys": [crate::testing::public_jwk(&crate::testing::ec_private(), "ec", None)]}}}},
                "rules": [
                    {"id": "no-contractor-writes", "action": "deny", "methods": ["POST"], "when": {"groups_any": ["contractors"]}},
                    {"id": "dags-read", "action": "allow", "hosts": ["airflow.internal"], "methods": ["GET"], "paths": ["/api/v1/dags"], "when": {"groups_any": ["data-eng"]}},
                    {"id": "runs", "action": "allow", "hosts": ["airflow.internal"], "paths": ["/api/v1/dags/{dag_id}/dagRuns"], "when": {"groups_all": ["data-eng", "operators"]}}
                ]
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    fn run(method: &str, path: &str, groups: &[&str]) -> Explanation {
        let policy = policy();
        let claims =
            json!({"iss": "https://idp", "sub": "alice", "exp": 2_000_000_000, "groups": groups});
        let req = Request {
            method,
            authority: "airflow.internal",
            path,
            headers: &[],
        };
        let verdict = decide_claims(
            &policy,
            CatalogState::NotConfigured,
            claims.as_object().unwrap().clone(),
            &req,
            1_700_000_000,
        );
        explain(&policy, CatalogState::NotConfigured, &req, verdict)
    }

    fn outcome(e: &Explanation, id: &str) -> (RuleOutcome, String) {
        let r = e.rules.iter().find(|r| r.id == id).unwrap();
        (r.outcome, r.detail.clone())
    }

    #[test]
    fn traces_say_which_rule_decided_and_why_others_did_not() {
        let e = run("GET", "/api/v1/dags", &["data-eng"]);
        assert_eq!(e.status(), 200);
        assert_eq!(outcome(&e, "dags-read").0, RuleOutcome::Decided);
        let (o, why) = outcome(&e, "no-contractor-writes");
        assert_eq!(o, RuleOutcome::NotMatched);
        assert!(why.contains("method `GET`"), "{why}");
        assert!(outcome(&e, "runs")
            .1
            .contains("matches none of `/api/v1/dags/{dag_id}/dagRuns`"));

        let e = run("POST", "/api/v1/dags/etl/dagRuns", &["data-eng"]);
        assert_eq!(e.status(), 403);
        let (o, why) = outcome(&e, "runs");
        assert_eq!(o, RuleOutcome::NotMatched);
        assert!(why.contains("not in `operators`"), "{why}");

        // A deny that matches decides; an allow that also matches is reported as matched.
        let e = run(
            "POST",
            "/api/v1/dags/etl/dagRuns",
            &["data-eng", "operators", "contractors"],
        );
        assert_eq!(outcome(&e, "no-contractor-writes").0, RuleOutcome::Decided);
        assert_eq!(outcome(&e, "runs").0, RuleOutcome::Matched);
        let text = e.to_text();
        assert!(text.starts_with("DENY 403 (rule_denied)"), "{text}");
        assert!(text.contains("=> deny "), "{text}");
        assert_eq!(e.to_json()["rules"][0]["outcome"], "decided");
        assert_eq!(e.to_json()["mode"], "enforce");
    }

    #[test]
    fn no_caller_and_rejected_paths() {
        let policy = policy();
        let req = Request {
            method: "GET",
            authority: "airflow.internal",
            path: "/api/v1/dags",
            headers: &[],
        };
        let verdict = crate::authorize::decide(
            &policy,
            &crate::KeyStore::new(&policy),
            &mut crate::TokenCache::new(0),
            CatalogState::NotConfigured,
            &req,
            0,
        );
        let e = explain(&policy, CatalogState::NotConfigured, &req, verdict);
        assert_eq!(e.status(), 401);
        assert_eq!(outcome(&e, "dags-read").0, RuleOutcome::NeedsCaller);

        let e = run("GET", "/api%2Fv1", &["data-eng"]);
        assert_eq!(e.status(), 400);
        assert!(e.rules.is_empty());
        assert!(e.to_text().contains("(path rejected)"));
    }
}
