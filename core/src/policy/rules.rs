//! Compiled RBAC rules: what a request must look like (host, method, path) and who the
//! caller must be (`when`), and what one rule says of one request ([`Rule::evaluate`], the
//! only place rule semantics are written). The order rules are tried in lives in `evaluate`.

use std::fmt;

use serde_json::Value;

use crate::identity::caller::Caller;
use crate::identity::claims::ClaimPath;
use crate::identity::groupref::GroupName;
use crate::policy::pattern::PathPattern;
use crate::request::RequestFacts;
use crate::snapshot::GroupSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

/// Host patterns compare against the request authority lowercased, without port and
/// trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com` stored as `.example.com`: matches any subdomain, not the apex.
    Suffix(String),
}

impl HostPattern {
    pub fn parse(pattern: &str) -> Option<HostPattern> {
        if pattern == "*" {
            return Some(HostPattern::Any);
        }
        let lower = pattern
            .strip_suffix('.')
            .unwrap_or(pattern)
            .to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("*.") {
            if rest.is_empty() || rest.contains(['*', '/', ':']) || rest.ends_with('.') {
                return None;
            }
            return Some(HostPattern::Suffix(format!(".{rest}")));
        }
        if lower.is_empty() || lower.contains(['*', '/', ':']) || lower.ends_with('.') {
            return None;
        }
        Some(HostPattern::Exact(lower))
    }

    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClaimCondition {
    /// The claim equals this JSON value exactly.
    Equals { claim: ClaimPath, value: Value },
    /// The claim is an array holding this value, or a space-separated string holding it
    /// as one word (OAuth `scope`).
    Contains { claim: ClaimPath, value: Value },
}

impl ClaimCondition {
    pub fn claim(&self) -> &ClaimPath {
        match self {
            ClaimCondition::Equals { claim, .. } | ClaimCondition::Contains { claim, .. } => claim,
        }
    }

    /// Whether the claim's value (`None`: the token has no such claim) satisfies this.
    fn holds(&self, had: Option<&Value>) -> bool {
        match self {
            ClaimCondition::Equals { value, .. } => had == Some(value),
            ClaimCondition::Contains { value, .. } => match had {
                Some(Value::Array(items)) => items.contains(value),
                Some(Value::String(s)) => value
                    .as_str()
                    .is_some_and(|v| s.split_ascii_whitespace().any(|w| w == v)),
                _ => false,
            },
        }
    }
}

/// One piece of an ownership id template: text, or a path parameter's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdPart {
    Text(String),
    Param(String),
}

/// "The caller's groups own the catalog resource this request is about": the resource is
/// (`kind`, id), the id built from the route's path parameters (`{org}/{pipeline}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub kind: String,
    pub id: Vec<IdPart>,
}

impl Ownership {
    /// The resource id for this request: the first of `paths` that matches gives the
    /// parameters. `None` when no template matches or a parameter is missing.
    pub fn resource_id(&self, paths: &[PathPattern], path: &str) -> Option<String> {
        let captures = paths.iter().find_map(|p| p.matches(path))?;
        let mut id = String::new();
        for part in &self.id {
            match part {
                IdPart::Text(text) => id.push_str(text),
                IdPart::Param(name) => id.push_str(captures.get(name)?),
            }
        }
        Some(id)
    }

    /// The id template as written, for explanations.
    pub fn id_template(&self) -> String {
        self.id
            .iter()
            .map(|part| match part {
                IdPart::Text(text) => text.clone(),
                IdPart::Param(name) => format!("{{{name}}}"),
            })
            .collect()
    }
}

/// Conditions on the caller. Every non-empty field must hold; lists are any-of, except
/// `groups_all`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions {
    pub groups_any: Vec<GroupName>,
    pub groups_all: Vec<GroupName>,
    pub subjects: Vec<String>,
    pub providers: Vec<String>,
    pub claims: Vec<ClaimCondition>,
    pub owns: Option<Ownership>,
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self.groups_any.is_empty()
            && self.groups_all.is_empty()
            && self.subjects.is_empty()
            && self.providers.is_empty()
            && self.claims.is_empty()
            && self.owns.is_none()
    }

    /// The first condition `caller` fails, in the order the fields are listed; `Ok(None)`
    /// when all hold. `route` and `path` give the owned resource's id.
    fn check<'a>(
        &'a self,
        caller: &Caller<'a>,
        route: &RouteMatch,
        path: &str,
    ) -> Result<Option<Unmet<'a>>, ConditionError> {
        let p = caller.principal;
        if !caller.groups_known() {
            let condition = if !self.groups_any.is_empty() {
                Some(GroupCondition::Any)
            } else if !self.groups_all.is_empty() {
                Some(GroupCondition::All)
            } else {
                None
            };
            if let Some(condition) = condition {
                return Err(ConditionError::GroupsUnknown { condition });
            }
        }
        if !self.groups_any.is_empty() && !self.groups_any.iter().any(|g| caller.in_group(g)) {
            return Ok(Some(Unmet::GroupsAny {
                wanted: &self.groups_any,
                had: *caller,
            }));
        }
        if let Some(missing) = self.groups_all.iter().find(|g| !caller.in_group(g)) {
            return Ok(Some(Unmet::GroupsAll {
                missing,
                had: *caller,
            }));
        }
        let subject = p.subject.as_deref();
        if !self.subjects.is_empty()
            && !subject.is_some_and(|s| self.subjects.iter().any(|w| w == s))
        {
            return Ok(Some(Unmet::Subject {
                wanted: &self.subjects,
                had: subject,
            }));
        }
        if !self.providers.is_empty() && !self.providers.contains(&p.provider) {
            return Ok(Some(Unmet::Provider {
                wanted: &self.providers,
                had: &p.provider,
            }));
        }
        for condition in &self.claims {
            let had = condition.claim().lookup(&p.claims);
            if !condition.holds(had) {
                return Ok(Some(Unmet::Claim { condition, had }));
            }
        }
        if let Some(owns) = &self.owns {
            // Without a snapshot, or for a resource the catalog doesn't know, nobody owns it.
            let id = owns.resource_id(&route.paths, path);
            let Some(snapshot) = caller.snapshot else {
                return Err(ConditionError::NoSnapshot {
                    kind: owns.kind.clone(),
                    id,
                });
            };
            let kind = owns.kind.as_str();
            let Some(id) = id else {
                return Ok(Some(Unmet::UnknownResource { kind, id: None }));
            };
            let Some(owners) = snapshot.owners_of(kind, &id) else {
                return Ok(Some(Unmet::UnknownResource { kind, id: Some(id) }));
            };
            if !caller.owns(&owners) && !caller.granted_resource(kind, &id) {
                return Ok(Some(Unmet::NotOwner {
                    kind,
                    id,
                    owners,
                    had: *caller,
                }));
            }
        }
        Ok(None)
    }
}

/// What part of the traffic a rule (or a mode override) is about.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    /// Empty means any host.
    pub hosts: Vec<HostPattern>,
    /// Uppercase; empty means any method.
    pub methods: Vec<String>,
    /// Empty means any path.
    pub paths: Vec<PathPattern>,
}

impl RouteMatch {
    pub fn matches(&self, req: &RequestFacts<'_>) -> bool {
        self.unmet(req).is_none()
    }

    /// The first of host, method and path that is not the route's.
    fn unmet<'a>(&'a self, req: &RequestFacts<'a>) -> Option<Unmet<'a>> {
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| h.matches(req.host)) {
            return Some(Unmet::Host {
                wanted: &self.hosts,
                had: req.host,
            });
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == req.method) {
            return Some(Unmet::Method {
                wanted: &self.methods,
                had: req.method,
            });
        }
        if !self.paths.is_empty() && !self.paths.iter().any(|p| p.is_match(req.path)) {
            return Some(Unmet::Path {
                wanted: &self.paths,
                had: req.path,
            });
        }
        None
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub action: Action,
    /// Public rules allow without a token (health checks); they carry no conditions.
    pub public: bool,
    pub route: RouteMatch,
    pub when: Conditions,
    /// A shadow rule never decides; the decision records what it would have done.
    pub shadow: bool,
    /// When a provider's keys have never loaded, requests matching this rule's host,
    /// method and path pass without identity (`failure_mode: open` on the rule).
    pub fail_open: bool,
}

impl Rule {
    /// Whether the request's host, method and path are the rule's, whoever the caller.
    pub fn matches_request(&self, req: &RequestFacts<'_>) -> bool {
        self.route.matches(req)
    }

    /// What this rule says of a request and its caller (`None`: no verified caller). Checks
    /// host, method and path, then `when` in field order, and stops at the first condition
    /// not met. Public rules and rules without `when` match any caller, or none.
    pub fn evaluate<'a>(
        &'a self,
        facts: &RequestFacts<'a>,
        caller: Option<&Caller<'a>>,
    ) -> Outcome<'a> {
        if let Some(unmet) = self.route.unmet(facts) {
            return Outcome::Unmet(unmet);
        }
        if self.public || self.when.is_empty() {
            return Outcome::Matched;
        }
        let Some(caller) = caller else {
            return Outcome::Unmet(Unmet::NoCaller);
        };
        match self.when.check(caller, &self.route, facts.path) {
            Ok(None) => Outcome::Matched,
            Ok(Some(unmet)) => Outcome::Unmet(unmet),
            Err(error) => Outcome::Error(RuleError {
                rule_id: self.id.clone(),
                error,
            }),
        }
    }
}

/// What one rule says of one request.
#[derive(Debug, Clone)]
pub enum Outcome<'a> {
    /// Host, method, path and every condition hold.
    Matched,
    /// The first condition that does not hold.
    Unmet(Unmet<'a>),
    /// A condition cannot be evaluated for this caller. An erroring deny rule denies (fails
    /// closed); an erroring allow rule does not allow.
    Error(RuleError),
}

/// The first condition of a rule a request does not meet: what the rule wanted and what
/// the request or caller had.
#[derive(Debug, Clone)]
pub enum Unmet<'a> {
    Host {
        wanted: &'a [HostPattern],
        had: &'a str,
    },
    Method {
        wanted: &'a [String],
        had: &'a str,
    },
    Path {
        wanted: &'a [PathPattern],
        had: &'a str,
    },
    /// The request matches, but `when` needs a verified caller and there is none.
    NoCaller,
    GroupsAny {
        wanted: &'a [GroupName],
        had: Caller<'a>,
    },
    /// The first group of `groups_all` the caller is not in.
    GroupsAll {
        missing: &'a GroupName,
        had: Caller<'a>,
    },
    Subject {
        wanted: &'a [String],
        had: Option<&'a str>,
    },
    Provider {
        wanted: &'a [String],
        had: &'a str,
    },
    Claim {
        condition: &'a ClaimCondition,
        /// The claim's value; `None` when the token has no such claim.
        had: Option<&'a Value>,
    },
    /// The catalog lists no resource of this kind and id (`None`: the path gave no id).
    UnknownResource {
        kind: &'a str,
        id: Option<String>,
    },
    /// The resource is owned by `owners`, and the caller is none of them.
    NotOwner {
        kind: &'a str,
        id: String,
        owners: GroupSet<'a>,
        had: Caller<'a>,
    },
}

impl Unmet<'_> {
    /// Whether the request (host, method or path) is not the rule's, rather than the caller.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Unmet::Host { .. } | Unmet::Method { .. } | Unmet::Path { .. }
        )
    }
}

/// A rule whose conditions could not be evaluated for a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule `{rule_id}`: {error}")]
pub struct RuleError {
    pub rule_id: String,
    pub error: ConditionError,
}

/// Why a condition cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// The token carries no groups because they overflowed to a claim source (Entra ID's
    /// `_claim_names.groups`), and no catalog snapshot is loaded to give them.
    #[error("{condition} needs the caller's groups, which the token leaves out (group overage) and no catalog snapshot gives")]
    GroupsUnknown { condition: GroupCondition },
    /// Ownership needs a catalog snapshot.
    #[error("ownership of {kind} `{}` needs a catalog snapshot, and none is loaded", id.as_deref().unwrap_or("?"))]
    NoSnapshot { kind: String, id: Option<String> },
}

/// Which group condition of `when`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupCondition {
    Any,
    All,
}

impl fmt::Display for GroupCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GroupCondition::Any => "groups_any",
            GroupCondition::All => "groups_all",
        })
    }
}

/// Rules split by action, each list in configuration order, with an index by host.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub deny: Vec<Rule>,
    pub allow: Vec<Rule>,
    deny_index: HostIndex,
    allow_index: HostIndex,
}

/// Which rules can match a host, so a request looks at those rules only: 10,000 rules for
/// other hosts cost one hash lookup. Positions are in configuration order, so the first
/// rule that matches is still the first in the configuration.
#[derive(Debug, Clone, Default)]
struct HostIndex {
    /// Exact host → the rules naming it, plus every rule that could match any host of that
    /// name (`*`, no hosts, a matching `*.suffix`), merged in order.
    exact: std::collections::HashMap<String, Bucket>,
    /// Rules for hosts not in `exact`: wildcard and suffix rules.
    other: Bucket,
}

/// Above this many rules for one host, a bucket is also indexed by path.
const PATH_INDEX_MIN_RULES: usize = 32;

/// The rules of one host: a list, or for many rules a tree of leading path segments.
#[derive(Debug, Clone)]
enum Bucket {
    Flat(Box<[u32]>),
    Paths(PathTrie),
}

impl Default for Bucket {
    fn default() -> Bucket {
        Bucket::Flat(Box::default())
    }
}

/// Rules by the literal path segments their patterns start with.
#[derive(Debug, Clone, Default)]
struct PathTrie {
    /// Rules with no literal leading segment in some path (or no paths at all).
    any: Box<[u32]>,
    root: PathNode,
}

#[derive(Debug, Clone, Default)]
struct PathNode {
    rules: Vec<u32>,
    children: std::collections::HashMap<String, PathNode>,
}

impl Bucket {
    fn new(rules: &[Rule], positions: Vec<u32>) -> Bucket {
        if positions.len() < PATH_INDEX_MIN_RULES {
            return Bucket::Flat(positions.into_boxed_slice());
        }
        let mut trie = PathTrie::default();
        let mut any = Vec::new();
        for &at in &positions {
            let Some(rule) = rules.get(at as usize) else {
                continue;
            };
            let prefixes: Vec<Vec<&str>> = rule
                .route
                .paths
                .iter()
                .map(PathPattern::literal_segments)
                .collect();
            if prefixes.is_empty() || prefixes.iter().any(Vec::is_empty) {
                any.push(at);
                continue;
            }
            for prefix in prefixes {
                let mut node = &mut trie.root;
                for segment in prefix {
                    node = node.children.entry(segment.to_owned()).or_default();
                }
                if node.rules.last() != Some(&at) {
                    node.rules.push(at);
                }
            }
        }
        trie.any = any.into_boxed_slice();
        Bucket::Paths(trie)
    }

    /// Rule positions that may match `path`, in order.
    fn positions(&self, path: &str) -> Positions<'_> {
        match self {
            Bucket::Flat(list) => Positions::Borrowed(list.iter()),
            Bucket::Paths(trie) => {
                let mut found: Vec<u32> = trie.any.to_vec();
                let mut node = &trie.root;
                found.extend_from_slice(&node.rules);
                for segment in path.strip_prefix('/').unwrap_or(path).split('/') {
                    match node.children.get(segment) {
                        Some(next) => {
                            node = next;
                            found.extend_from_slice(&node.rules);
                        }
                        None => break,
                    }
                }
                found.sort_unstable();
                found.dedup();
                Positions::Owned(found.into_iter())
            }
        }
    }
}

enum Positions<'b> {
    Borrowed(std::slice::Iter<'b, u32>),
    Owned(std::vec::IntoIter<u32>),
}

impl Iterator for Positions<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            Positions::Borrowed(iter) => iter.next().copied(),
            Positions::Owned(iter) => iter.next(),
        }
    }
}

impl HostIndex {
    fn new(rules: &[Rule]) -> HostIndex {
        let positions = || (0u32..).zip(rules.iter());
        let not_exact_only = |rule: &Rule| {
            rule.route.hosts.is_empty()
                || rule
                    .route
                    .hosts
                    .iter()
                    .any(|h| !matches!(h, HostPattern::Exact(_)))
        };
        let other: Vec<u32> = positions()
            .filter(|(_, rule)| not_exact_only(rule))
            .map(|(at, _)| at)
            .collect();
        let mut exact: std::collections::HashMap<String, Vec<u32>> =
            std::collections::HashMap::new();
        for (at, rule) in positions() {
            for host in &rule.route.hosts {
                if let HostPattern::Exact(name) = host {
                    exact.entry(name.clone()).or_default().push(at);
                }
            }
        }
        let exact = exact
            .into_iter()
            .map(|(name, mut list)| {
                list.extend(other.iter().copied().filter(|&at| {
                    rules.get(at as usize).is_some_and(|rule| {
                        rule.route.hosts.is_empty()
                            || rule.route.hosts.iter().any(|h| h.matches(&name))
                    })
                }));
                list.sort_unstable();
                list.dedup();
                let bucket = Bucket::new(rules, list);
                (name, bucket)
            })
            .collect();
        HostIndex {
            exact,
            other: Bucket::new(rules, other),
        }
    }

    fn candidates<'r>(
        &'r self,
        rules: &'r [Rule],
        host: &str,
        path: &str,
    ) -> impl Iterator<Item = &'r Rule> + use<'r> {
        let bucket = self.exact.get(host).unwrap_or(&self.other);
        bucket
            .positions(path)
            .filter_map(|at| rules.get(at as usize))
    }
}

impl RuleSet {
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let (deny, allow): (Vec<Rule>, Vec<Rule>) =
            rules.into_iter().partition(|r| r.action == Action::Deny);
        RuleSet {
            deny_index: HostIndex::new(&deny),
            allow_index: HostIndex::new(&allow),
            deny,
            allow,
        }
    }

    /// Deny rules that may match requests for `host` and `path` (normalized), in
    /// configuration order. Callers still check each rule: this only rules out the others.
    pub fn deny_for<'r>(
        &'r self,
        host: &str,
        path: &str,
    ) -> impl Iterator<Item = &'r Rule> + use<'r> {
        self.deny_index.candidates(&self.deny, host, path)
    }

    /// Allow rules that may match requests for `host` and `path`; see [`RuleSet::deny_for`].
    pub fn allow_for<'r>(
        &'r self,
        host: &str,
        path: &str,
    ) -> impl Iterator<Item = &'r Rule> + use<'r> {
        self.allow_index.candidates(&self.allow, host, path)
    }

    pub fn has_shadow_rules(&self) -> bool {
        self.deny.iter().chain(self.allow.iter()).any(|r| r.shadow)
    }

    pub fn len(&self) -> usize {
        self.deny.len().saturating_add(self.allow.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each rule meets one request: what `evaluate` says, as `kind` + what the caller or
    /// request had. Conditions are checked in field order; the first unmet one is named.
    #[test]
    fn evaluate_names_the_first_unmet_condition_and_what_was_there() {
        let policy = crate::policy::config::Policy::from_json(
            serde_json::json!({
                "providers": {
                    "idp": {"issuer": "https://idp", "remote_jwks": {"cluster": "idp", "uri": "https://idp/keys"}},
                    "other": {"issuer": "https://other", "remote_jwks": {"cluster": "other", "uri": "https://other/keys"}}
                },
                "rules": [
                    {"id": "host", "action": "allow", "hosts": ["b.internal"]},
                    {"id": "method", "action": "allow", "methods": ["POST"]},
                    {"id": "path", "action": "allow", "paths": ["/admin/**"]},
                    {"id": "any", "action": "allow", "when": {"groups_any": ["ops"], "subjects": ["bob"]}},
                    {"id": "all", "action": "allow", "when": {"groups_all": ["eng", "ops"]}},
                    {"id": "subject", "action": "allow", "when": {"groups_any": ["eng"], "subjects": ["bob"]}},
                    {"id": "provider", "action": "allow", "when": {"providers": ["other"]}},
                    {"id": "claim", "action": "allow", "when": {"claims": [{"claim": "scope", "contains": "write"}]}},
                    {"id": "owns", "action": "allow", "paths": ["/dags/{dag}"], "when": {"owns": {"kind": "airflow.dag", "id": "{dag}"}}},
                    {"id": "open", "action": "allow", "paths": ["/dags/{dag}"]}
                ]
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let principal = |groups: &[&str], overage: bool| crate::identity::principal::Principal {
            provider: "idp".into(),
            subject: Some("alice".into()),
            email: None,
            username: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            group_refs: Vec::new(),
            catalog_keys: Vec::new(),
            groups_overage: overage,
            claims: serde_json::json!({"scope": "read"})
                .as_object()
                .unwrap()
                .clone(),
            groups_case_insensitive: false,
            user_ref: None,
        };
        let (eng, overage) = (principal(&["eng"], false), principal(&[], true));
        let rule = |id: &str| policy.rules.allow.iter().find(|r| r.id == id).unwrap();
        let cases = [
            ("host", Some(&eng), "/dags/etl", "host a.internal"),
            ("method", Some(&eng), "/dags/etl", "method GET"),
            ("path", Some(&eng), "/dags/etl", "path /dags/etl"),
            ("any", None, "/dags/etl", "no_caller"),
            ("any", Some(&eng), "/dags/etl", "groups_any [\"eng\"]"),
            ("all", Some(&eng), "/dags/etl", "groups_all ops"),
            ("subject", Some(&eng), "/dags/etl", "subject Some(\"alice\")"),
            ("provider", Some(&eng), "/dags/etl", "provider idp"),
            ("claim", Some(&eng), "/dags/etl", "claim Some(String(\"read\"))"),
            ("owns", Some(&eng), "/dags/etl", "error: ownership of airflow.dag `etl` needs a catalog snapshot, and none is loaded"),
            ("any", Some(&overage), "/dags/etl", "error: groups_any needs the caller's groups, which the token leaves out (group overage) and no catalog snapshot gives"),
            ("all", Some(&overage), "/dags/etl", "error: groups_all needs the caller's groups, which the token leaves out (group overage) and no catalog snapshot gives"),
            ("provider", Some(&overage), "/dags/etl", "provider idp"),
            ("open", None, "/dags/etl", "matched"),
            ("open", Some(&overage), "/dags/etl", "matched"),
        ];
        for (id, principal, path, expected) in cases {
            let facts = RequestFacts {
                host: "a.internal",
                method: "GET",
                path,
            };
            let caller = principal.map(|p| Caller::new(p, None));
            let got = match rule(id).evaluate(&facts, caller.as_ref()) {
                Outcome::Matched => String::from("matched"),
                Outcome::Error(e) => {
                    assert_eq!(e.rule_id, id);
                    format!("error: {}", e.error)
                }
                Outcome::Unmet(unmet) => match unmet {
                    Unmet::Host { had, .. } => format!("host {had}"),
                    Unmet::Method { had, .. } => format!("method {had}"),
                    Unmet::Path { had, .. } => format!("path {had}"),
                    Unmet::NoCaller => String::from("no_caller"),
                    Unmet::GroupsAny { had, .. } => {
                        format!("groups_any {:?}", had.principal.groups)
                    }
                    Unmet::GroupsAll { missing, .. } => format!("groups_all {}", missing.name),
                    Unmet::Subject { had, .. } => format!("subject {had:?}"),
                    Unmet::Provider { had, .. } => format!("provider {had}"),
                    Unmet::Claim { had, .. } => format!("claim {had:?}"),
                    other => format!("{other:?}"),
                },
            };
            assert_eq!(got, expected, "rule `{id}`");
        }
    }

    #[test]
    fn hosts() {
        let cases = [
            ("airflow.internal", "airflow.internal", true),
            ("airflow.internal", "airbyte.internal", false),
            ("*.internal", "airflow.internal", true),
            ("*.internal", "a.b.internal", true),
            ("*.internal", "internal", false),
            ("*.internal", "evilinternal", false),
            ("*", "anything", true),
            ("Airflow.Internal.", "airflow.internal", true),
        ];
        for (pattern, host, expected) in cases {
            let p = HostPattern::parse(pattern).unwrap();
            assert_eq!(p.matches(host), expected, "{pattern} vs {host}");
        }
        for bad in ["", "a*.b", "*.", "*.a*", "a/b"] {
            assert!(HostPattern::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_host_index_finds_exactly_the_rules_a_scan_finds_in_order() {
        let host_sets: &[&[&str]] = &[
            &["a.internal"],
            &["b.internal"],
            &["*.internal"],
            &[],
            &["*"],
            &["a.internal", "c.example"],
            &["*.example"],
            &["a.internal"],
            &["b.internal", "*.example"],
        ];
        let rules: Vec<Rule> = host_sets
            .iter()
            .enumerate()
            .map(|(i, hosts)| Rule {
                id: format!("r{i}"),
                action: Action::Allow,
                public: false,
                route: RouteMatch {
                    hosts: hosts
                        .iter()
                        .map(|h| HostPattern::parse(h).unwrap())
                        .collect(),
                    ..RouteMatch::default()
                },
                when: Conditions::default(),
                shadow: false,
                fail_open: false,
            })
            .collect();
        let set = RuleSet::new(rules.clone());
        for host in [
            "a.internal",
            "b.internal",
            "c.example",
            "x.internal",
            "d.example",
            "other",
            "internal",
        ] {
            let facts = RequestFacts {
                host,
                method: "GET",
                path: "/",
            };
            let scanned: Vec<&str> = rules
                .iter()
                .filter(|r| r.matches_request(&facts))
                .map(|r| r.id.as_str())
                .collect();
            let indexed: Vec<&str> = set
                .allow_for(host, "/")
                .filter(|r| r.matches_request(&facts))
                .map(|r| r.id.as_str())
                .collect();
            assert_eq!(indexed, scanned, "{host}");
            assert!(
                !scanned.is_empty(),
                "{host}: the table should exercise a match"
            );
        }
        // Rules for other hosts are not even looked at.
        assert_eq!(set.allow_for("b.internal", "/").count(), 5);
    }

    #[test]
    fn the_path_index_of_a_busy_host_finds_what_a_scan_finds_in_order() {
        let mut paths: Vec<PathPattern> = Vec::new();
        for i in 0..40 {
            paths.push(PathPattern::template(&format!("/bench/{i:02}/items/{{id}}")).unwrap());
        }
        paths.extend([
            PathPattern::template("/api/v1/dags/{dag_id}/dagRuns").unwrap(),
            PathPattern::template("/api/**").unwrap(),
            PathPattern::template("/{tenant}/reports").unwrap(),
            PathPattern::exact("/api/v1/dags").unwrap(),
            PathPattern::prefix("/api/v").unwrap(),
            PathPattern::prefix("/ap").unwrap(),
            PathPattern::template("/bench/07/*").unwrap(),
            PathPattern::template("/a/").unwrap(),
        ]);
        let rule = |i: usize, paths: Vec<PathPattern>| Rule {
            id: format!("r{i}"),
            action: Action::Allow,
            public: false,
            route: RouteMatch {
                hosts: vec![HostPattern::parse("a.internal").unwrap()],
                paths,
                ..RouteMatch::default()
            },
            when: Conditions::default(),
            shadow: false,
            fail_open: false,
        };
        let mut rules: Vec<Rule> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| rule(i, vec![p.clone()]))
            .collect();
        // No paths at all, and several paths with different prefixes.
        rules.insert(3, rule(100, vec![]));
        rules.push(rule(101, vec![paths[5].clone(), paths[41].clone()]));
        let set = RuleSet::new(rules.clone());
        let requests = [
            "/bench/05/items/9",
            "/bench/07/items",
            "/bench/07/items/1",
            "/api/v1/dags",
            "/api/v1/dags/etl/dagRuns",
            "/apiary",
            "/api/v2",
            "/acme/reports",
            "/a/",
            "/a",
            "/",
            "/nothing/here",
        ];
        for path in requests {
            let facts = RequestFacts {
                host: "a.internal",
                method: "GET",
                path,
            };
            let scanned: Vec<&str> = rules
                .iter()
                .filter(|r| r.matches_request(&facts))
                .map(|r| r.id.as_str())
                .collect();
            let indexed: Vec<&str> = set
                .allow_for("a.internal", path)
                .filter(|r| r.matches_request(&facts))
                .map(|r| r.id.as_str())
                .collect();
            assert_eq!(indexed, scanned, "{path}");
        }
        // A request under /bench/05 looks at a handful of rules, not all of them.
        let looked_at = set.allow_for("a.internal", "/bench/05/items/9").count();
        assert!(looked_at < 10, "{looked_at} candidates");
    }
}
