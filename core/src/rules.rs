//! Compiled RBAC rules: what a request must look like (host, method, path) and who the
//! caller must be (`when`). Evaluation order lives in `authorize`.

use serde_json::Value;

use crate::catalog::Caller;
use crate::claims::ClaimPath;
use crate::groupref::GroupName;
use crate::pattern::PathPattern;
use crate::principal::Principal;

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

/// The request authority as rules compare it: lowercase, no port, no trailing dot.
pub fn normalize_host(authority: &str) -> String {
    let without_port = if authority.starts_with('[') {
        // IPv6 literal: keep up to the closing bracket.
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
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
    fn holds(&self, principal: &Principal) -> bool {
        match self {
            ClaimCondition::Equals { claim, value } => {
                claim.lookup(&principal.claims) == Some(value)
            }
            ClaimCondition::Contains { claim, value } => match claim.lookup(&principal.claims) {
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

    pub fn hold_for(&self, caller: &Caller<'_>, route: &RouteMatch, path: &str) -> bool {
        let p = caller.principal;
        (self.groups_any.is_empty() || self.groups_any.iter().any(|g| caller.in_group(g)))
            && self.groups_all.iter().all(|g| caller.in_group(g))
            && (self.subjects.is_empty()
                || p.subject
                    .as_ref()
                    .is_some_and(|s| self.subjects.contains(s)))
            && (self.providers.is_empty() || self.providers.contains(&p.provider))
            && self.claims.iter().all(|c| c.holds(p))
            && self
                .owns
                .as_ref()
                .is_none_or(|owns| caller_owns(caller, owns, route, path))
    }
}

/// Ownership holds when the snapshot lists the resource and the caller's groups meet its
/// owners. Without a snapshot, or for a resource the catalog doesn't know, it doesn't.
pub fn caller_owns(caller: &Caller<'_>, owns: &Ownership, route: &RouteMatch, path: &str) -> bool {
    let Some(snapshot) = caller.snapshot else {
        return false;
    };
    owns.resource_id(&route.paths, path)
        .and_then(|id| snapshot.owners_of(&owns.kind, &id))
        .is_some_and(|owners| caller.owns(&owners))
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
        (self.hosts.is_empty() || self.hosts.iter().any(|h| h.matches(req.host)))
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == req.method))
            && (self.paths.is_empty() || self.paths.iter().any(|p| p.is_match(req.path)))
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

/// What rules see of a request, already normalized.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'r> {
    pub host: &'r str,
    pub method: &'r str,
    pub path: &'r str,
}

impl Rule {
    pub fn matches_request(&self, req: &RequestFacts<'_>) -> bool {
        self.route.matches(req)
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
    fn authority_normalization() {
        let cases = [
            ("Airflow.Internal:10000", "airflow.internal"),
            ("airflow.internal.", "airflow.internal"),
            ("airflow.internal.:443", "airflow.internal"),
            ("[::1]:8080", "[::1]"),
            ("127.0.0.1", "127.0.0.1"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize_host(raw), expected, "{raw}");
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
