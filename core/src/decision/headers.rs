//! The header changes an allowed request gets: incoming identity headers removed, trusted
//! ones added. Computed here so the filter only applies a list.

use serde_json::Value;

use crate::decision::verdict::Verdict;
use crate::identity::principal::Principal;
use crate::policy::config::{Policy, IDENTITY_HEADER_PREFIX};

pub const SUBJECT_HEADER: &str = "x-meshgate-subject";
pub const GROUPS_HEADER: &str = "x-meshgate-groups";
pub const PROVIDER_HEADER: &str = "x-meshgate-provider";
pub const EMAIL_HEADER: &str = "x-meshgate-email";
pub const RULE_HEADER: &str = "x-meshgate-rule";
/// The caller's Backstage user entity ref (`user:default/alice`): the catalog user the caller
/// was mapped to, or the user a Backstage token names.
pub const USER_HEADER: &str = "x-meshgate-user";
/// The catalog user's groups, entity refs with nesting closed, comma-separated.
pub const CATALOG_GROUPS_HEADER: &str = "x-meshgate-catalog-groups";
/// The access grant the allow rests on: its id, `;target=` what it grants, `;not_after=`
/// when it ends (Unix seconds).
pub const GRANT_HEADER: &str = "x-meshgate-grant";
/// Longest value meshgate will put in a header; longer claim values are left out.
pub const MAX_HEADER_VALUE: usize = 8 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderPlan {
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
}

/// Headers to remove from every request that goes upstream, allowed or not: any
/// `x-meshgate-*` and every `claim_to_headers` target, so only meshgate can set them.
pub fn spoofable<'h>(
    policy: &'h Policy,
    incoming: &'h [(String, String)],
) -> impl Iterator<Item = String> + 'h {
    // Only names that match are copied: this runs on every request.
    let mut names: Vec<String> = incoming
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| {
            name.get(..IDENTITY_HEADER_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(IDENTITY_HEADER_PREFIX))
                || policy
                    .owned_headers
                    .iter()
                    .any(|o| o.eq_ignore_ascii_case(name))
        })
        .map(str::to_ascii_lowercase)
        .collect();
    names.sort();
    names.dedup();
    names.into_iter()
}

/// The full plan for a request that goes upstream.
pub fn plan(policy: &Policy, verdict: &Verdict, incoming: &[(String, String)]) -> HeaderPlan {
    let mut plan = HeaderPlan {
        remove: spoofable(policy, incoming).collect(),
        set: Vec::new(),
    };
    if !verdict.decision.is_allowed() {
        // Shadow mode forwards denied requests: they go without identity.
        return plan;
    }
    if let Some(name) = &verdict.strip_token_header {
        if !plan.remove.contains(name) {
            plan.remove.push(name.clone());
        }
    }
    if policy.forward_normalized_path {
        if let Some(path) = normalized_request_path(verdict, incoming) {
            plan.set.push((String::from(":path"), path));
        }
    }
    let Some(principal) = verdict.decision.principal.as_deref() else {
        return plan;
    };
    let mut add = |name: &str, value: String| {
        if is_safe_value(&value) {
            plan.set.push((name.to_owned(), value));
        }
    };
    if let Some(subject) = &principal.subject {
        add(SUBJECT_HEADER, subject.clone());
    }
    add(PROVIDER_HEADER, principal.provider.clone());
    add(GROUPS_HEADER, principal.groups.join(","));
    if let Some(email) = &principal.email {
        add(EMAIL_HEADER, email.clone());
    }
    if let Some(user) = verdict
        .decision
        .catalog_user
        .as_ref()
        .or(principal.user_ref.as_ref())
    {
        add(USER_HEADER, user.clone());
    }
    if let Some(groups) = &verdict.decision.catalog_groups {
        add(CATALOG_GROUPS_HEADER, groups.clone());
    }
    if let Some(rule) = &verdict.decision.rule_id {
        add(RULE_HEADER, rule.clone());
    }
    if let Some(grant) = &verdict.decision.grant {
        add(
            GRANT_HEADER,
            format!(
                "{};target={};not_after={}",
                grant.id, grant.target, grant.not_after
            ),
        );
    }
    if let Some(provider) = policy
        .providers
        .iter()
        .find(|p| p.name == principal.provider)
    {
        for mapping in &provider.claim_to_headers {
            if let Some(value) = claim_header_value(principal, mapping) {
                add(&mapping.header_name, value);
            }
        }
    }
    plan
}

/// The `:path` to forward when normalization changed it: the upstream must receive the
/// path meshgate authorized, not a spelling it may resolve differently. The query is kept.
fn normalized_request_path(verdict: &Verdict, incoming: &[(String, String)]) -> Option<String> {
    let normalized = verdict.decision.normalized_path.as_deref()?;
    let raw = incoming
        .iter()
        .find(|(k, _)| k == ":path")
        .map(|(_, v)| v.as_str())?;
    let cut = raw.find(['?', '#']).unwrap_or(raw.len());
    let (raw_path, rest) = raw.split_at(cut);
    if raw_path == normalized {
        return None;
    }
    // The fragment never goes upstream; the query does.
    let query = rest.split('#').next().unwrap_or_default();
    Some(format!("{normalized}{query}"))
}

fn claim_header_value(
    principal: &Principal,
    mapping: &crate::identity::provider::ClaimToHeader,
) -> Option<String> {
    match mapping.claim.lookup(&principal.claims)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let strings: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            strings.map(|s| s.join(","))
        }
        Value::Null | Value::Object(_) => None,
    }
}

/// No control characters (header injection) and a bounded length.
fn is_safe_value(value: &str) -> bool {
    value.len() <= MAX_HEADER_VALUE && !value.chars().any(|c| c.is_control())
}
