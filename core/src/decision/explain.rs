//! Rule outcomes in words. [`ruling_reason`] says why the rules decided as they did (the
//! decision's `reason`); [`explain`] lists every rule, in evaluation order, with whether it
//! matched and, if not, the first reason (for `meshgate check` and previews; the request path
//! never builds one). Whether a rule matches is [`Rule::evaluate`]'s alone: this module
//! only formats what it says.

use serde_json::{json, Value};

use crate::decision::evaluate::{Closest, RuleList, Ruling};
use crate::decision::verdict::{Effect, Verdict};
use crate::identity::caller::Caller;
use crate::policy::catalog::CatalogState;
use crate::policy::config::{Mode, Policy};
use crate::policy::pattern::PathPattern;
use crate::policy::rules::{Action, ClaimCondition, Outcome, Rule, Unmet};
use crate::request::{normalize_host, Request, RequestFacts, UnixTime};

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
    /// A condition could not be evaluated for this caller (an allow rule then doesn't
    /// allow; a deny rule denies, and is reported as `Decided`).
    Error,
}

impl RuleOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleOutcome::Decided => "decided",
            RuleOutcome::Matched => "matched",
            RuleOutcome::NotMatched => "not_matched",
            RuleOutcome::NeedsCaller => "needs_caller",
            RuleOutcome::Error => "error",
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

/// Explains `verdict`, the decision `decide` made for `req`.
pub fn explain(
    policy: &Policy,
    catalog: CatalogState<'_>,
    req: &Request<'_>,
    verdict: Verdict,
    now: UnixTime,
) -> Explanation {
    let host = normalize_host(req.authority);
    let rules = match verdict.decision.normalized_path.as_deref() {
        // The path was refused before any rule ran.
        None => Vec::new(),
        Some(path) => {
            let facts = RequestFacts {
                host: &host,
                method: req.method,
                path,
            };
            let list = RuleList::new(policy, catalog.catalog());
            let caller = verdict
                .decision
                .principal
                .as_deref()
                .map(|p| list.caller(p, now));
            list.trace(&facts, caller.as_ref())
                .into_iter()
                .map(|(rule, outcome)| trace(rule, &outcome, &verdict))
                .collect()
        }
    };
    Explanation {
        method: req.method.to_owned(),
        host,
        rules,
        verdict,
    }
}

fn trace(rule: &Rule, outcome: &Outcome<'_>, verdict: &Verdict) -> RuleTrace {
    let decided = verdict.decision.rule_id.as_deref() == Some(rule.id.as_str())
        && match (rule.action, verdict.decision.effect) {
            (Action::Deny, Effect::Deny(_)) | (Action::Allow, Effect::Allow(_)) => true,
            (Action::Deny, Effect::Allow(_)) | (Action::Allow, Effect::Deny(_)) => false,
        };
    let (outcome, detail) = match outcome {
        Outcome::Matched if decided => (RuleOutcome::Decided, matched()),
        Outcome::Matched => (RuleOutcome::Matched, matched()),
        Outcome::Unmet(Unmet::NoCaller) => (RuleOutcome::NeedsCaller, describe(outcome)),
        Outcome::Unmet(_) => (RuleOutcome::NotMatched, describe(outcome)),
        Outcome::Error(_) if decided => (RuleOutcome::Decided, describe(outcome)),
        Outcome::Error(_) => (RuleOutcome::Error, describe(outcome)),
    };
    RuleTrace {
        id: rule.id.clone(),
        action: rule.action,
        outcome,
        detail,
    }
}

fn matched() -> String {
    String::from("host, method, path and `when` all match")
}

/// The decision's reason for what the rules ruled.
pub fn ruling_reason(ruling: &Ruling<'_>, facts: &RequestFacts<'_>) -> String {
    match ruling {
        Ruling::Denied { rule, error: None } => format!("deny rule `{}` matched", rule.id),
        Ruling::Denied {
            rule,
            error: Some(error),
        } => format!(
            "deny rule `{}` cannot be evaluated, so it denies: {error}",
            rule.id
        ),
        Ruling::Allowed(rule) => format!("allow rule `{}` matched", rule.id),
        // No rule matched: deny by default, naming the allow rule that came closest...
        Ruling::Default {
            action: Action::Deny,
            closest,
        } => {
            let mut reason = format!(
                "no allow rule matched {} {}{}",
                facts.method, facts.host, facts.path
            );
            if let Some(Closest { rule, outcome }) = closest {
                reason.push_str(&format!(
                    "; closest: allow rule `{}` matches the request, but {}",
                    rule.id,
                    describe(outcome)
                ));
            }
            reason
        }
        // ...unless the configuration says allow.
        Ruling::Default {
            action: Action::Allow,
            ..
        } => String::from("no rule matched; default action is allow"),
    }
}

/// What a rule said of a request, in words.
pub fn describe(outcome: &Outcome<'_>) -> String {
    match outcome {
        Outcome::Matched => matched(),
        Outcome::Unmet(unmet) => describe_unmet(unmet),
        Outcome::Error(e) => e.error.to_string(),
    }
}

/// The condition a rule wanted and what the request or caller had, in words.
fn describe_unmet(unmet: &Unmet<'_>) -> String {
    match unmet {
        Unmet::Host { had, .. } => format!("host `{had}` is not one of the rule's hosts"),
        Unmet::Method { wanted, had } => format!("method `{had}` is not one of {}", list(wanted)),
        Unmet::Path { wanted, had } => {
            let patterns: Vec<String> = wanted.iter().map(describe_path).collect();
            format!("path `{had}` matches none of {}", patterns.join(", "))
        }
        Unmet::NoCaller => String::from("request matches, but `when` needs a verified caller"),
        Unmet::GroupsAny { wanted, had } => {
            let names: Vec<String> = wanted.iter().map(|g| g.name.clone()).collect();
            format!(
                "caller is in none of groups_any {} ({})",
                list(&names),
                describe_groups(had)
            )
        }
        Unmet::GroupsAll { missing, had } => format!(
            "caller is not in `{}`, which groups_all requires ({})",
            missing.name,
            describe_groups(had)
        ),
        Unmet::Subject { wanted, .. } => format!("subject is not one of {}", list(wanted)),
        Unmet::Provider { wanted, had } => {
            format!("provider `{had}` is not one of {}", list(wanted))
        }
        Unmet::Claim { condition, .. } => match condition {
            ClaimCondition::Equals { claim, value } => {
                format!("claim `{}` does not equal {value}", claim.as_str())
            }
            ClaimCondition::Contains { claim, value } => {
                format!("claim `{}` does not contain {value}", claim.as_str())
            }
        },
        Unmet::UnknownResource { kind, id } => {
            format!(
                "the catalog lists no {kind} `{}`",
                id.as_deref().unwrap_or("?")
            )
        }
        Unmet::NotOwner {
            kind,
            id,
            owners,
            had,
        } => {
            let owners: Vec<String> = owners.iter().map(str::to_owned).collect();
            format!(
                "{kind} `{id}` is owned by {}, and the caller is in none of them ({})",
                list(&owners),
                describe_groups(had)
            )
        }
    }
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
            "grant": d.grant.as_ref().map(|g| json!({
                "id": g.id, "target": g.target, "not_after": g.not_after,
            })),
            "mode": match d.mode { Mode::Enforce => "enforce", Mode::Shadow => "shadow" },
            "shadow": d.shadow.as_ref().map(crate::decision::log::shadow_json),
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
        if let Some(g) = &d.grant {
            out.push_str(&format!(
                "grant: `{}` gives {} until {} (Unix seconds); the rule matches only with it\n",
                g.id, g.target, g.not_after
            ));
        }
        if !self.rules.is_empty() {
            out.push_str("rules (deny rules first, then allow rules, in order):\n");
        }
        for r in &self.rules {
            let marker = match r.outcome {
                RuleOutcome::Decided => "=>",
                RuleOutcome::Matched => " +",
                RuleOutcome::Error => " !",
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
    use crate::decision::authorize::Credential;
    use crate::request::UnixTime;

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
        let verdict = crate::testing::decide_on_claims(
            &policy,
            &claims,
            method,
            "airflow.internal",
            path,
            1_700_000_000,
        );
        let req = Request {
            method,
            authority: "airflow.internal",
            path,
            headers: &[],
        };
        explain(
            &policy,
            CatalogState::NotConfigured,
            &req,
            verdict,
            UnixTime::from_secs(0),
        )
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
        let verdict = crate::decision::authorize::decide(
            &policy,
            Credential::token(
                &crate::KeyStore::new(&policy),
                &mut crate::TokenCache::new(0),
            ),
            CatalogState::NotConfigured,
            &req,
            UnixTime::from_secs(0),
        );
        let e = explain(
            &policy,
            CatalogState::NotConfigured,
            &req,
            verdict,
            UnixTime::from_secs(0),
        );
        assert_eq!(e.status(), 401);
        assert_eq!(outcome(&e, "dags-read").0, RuleOutcome::NeedsCaller);

        let e = run("GET", "/api%2Fv1", &["data-eng"]);
        assert_eq!(e.status(), 400);
        assert!(e.rules.is_empty());
        assert!(e.to_text().contains("(path rejected)"));
    }

    /// Rules that cannot be evaluated (group overage, no snapshot) are explained with the
    /// rule that decided: the deny rule that failed closed, the allow rule that errored.
    #[test]
    fn rules_that_cannot_be_evaluated() {
        let policy = policy();
        let claims = json!({"iss": "https://idp", "sub": "alice", "exp": 2_000_000_000, "_claim_names": {"groups": "src1"}});
        let explain_at = |method| {
            let verdict = crate::testing::decide_on_claims(
                &policy,
                &claims,
                method,
                "airflow.internal",
                "/api/v1/dags",
                1_700_000_000,
            );
            let req = Request {
                method,
                authority: "airflow.internal",
                path: "/api/v1/dags",
                headers: &[],
            };
            explain(
                &policy,
                CatalogState::NotConfigured,
                &req,
                verdict,
                UnixTime::from_secs(0),
            )
        };
        let e = explain_at("POST");
        assert_eq!(e.verdict.decision.code_str(), "rule_denied");
        let (o, why) = outcome(&e, "no-contractor-writes");
        assert_eq!(o, RuleOutcome::Decided);
        assert!(why.contains("group overage"), "{why}");
        let e = explain_at("GET");
        assert_eq!(e.verdict.decision.code_str(), "no_rule_matched");
        let (o, why) = outcome(&e, "dags-read");
        assert_eq!(o, RuleOutcome::Error);
        assert!(
            why.starts_with("groups_any needs the caller's groups"),
            "{why}"
        );
        assert_eq!(e.to_json()["rules"][1]["outcome"], "error");
        let reason = &e.verdict.decision.reason;
        assert!(
            reason.contains("closest: allow rule `dags-read`"),
            "{reason}"
        );
    }
}
