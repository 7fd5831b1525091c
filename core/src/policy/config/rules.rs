//! Rules: `rules[i]` DTOs → compiled [`Rule`]s, for the plugin configuration and for the
//! rules a catalog snapshot carries.

use std::collections::HashMap;

use super::dto::{ActionConfig, FailureModeConfig, ModeConfig, OwnsConfig, PathConfig, RuleConfig};
use super::{ConfigError, ConfigReason, Policy};
use crate::identity::claims::ClaimPath;
use crate::identity::groupref::GroupName;
use crate::policy::pattern::PathPattern;
use crate::policy::rules::{
    Action, ClaimCondition, Conditions, HostPattern, IdPart, Ownership, RouteMatch, Rule, RuleSet,
};

pub(super) fn compile_rule(
    at: &str,
    rule: &RuleConfig,
    known_provider: &dyn Fn(&str) -> bool,
) -> Result<Rule, ConfigError> {
    if rule.id.is_empty()
        || rule.id.len() > 128
        || !rule
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
    {
        return Err(ConfigError::new(format!("{at}.id"), ConfigReason::RuleId));
    }
    let route = compile_route(at, &rule.hosts, &rule.methods, &rule.paths)?;
    let when = match &rule.when {
        None => Conditions::default(),
        Some(w) => {
            for (i, provider) in w.providers.iter().enumerate() {
                if !known_provider(provider) {
                    return Err(ConfigError::new(
                        format!("{at}.when.providers[{i}]"),
                        ConfigReason::UnknownProvider {
                            name: provider.clone(),
                        },
                    ));
                }
            }
            let mut claims = Vec::with_capacity(w.claims.len());
            for (i, c) in w.claims.iter().enumerate() {
                let cat = format!("{at}.when.claims[{i}]");
                let claim = ClaimPath::new(&c.claim).ok_or_else(|| {
                    ConfigError::new(
                        format!("{cat}.claim"),
                        ConfigReason::ClaimPath {
                            path: c.claim.clone(),
                        },
                    )
                })?;
                claims.push(match (&c.equals, &c.contains) {
                    (Some(value), None) => ClaimCondition::Equals {
                        claim,
                        value: value.clone(),
                    },
                    (None, Some(value)) => ClaimCondition::Contains {
                        claim,
                        value: value.clone(),
                    },
                    _ => return Err(ConfigError::new(cat, ConfigReason::ClaimMatch)),
                });
            }
            let mut groups_any = group_names(&format!("{at}.when.groups_any"), &w.groups_any)?;
            groups_any.sort();
            groups_any.dedup();
            let owns = match &w.owns {
                Some(owns) => Some(compile_owns(&format!("{at}.when.owns"), owns, &rule.paths)?),
                None => None,
            };
            Conditions {
                groups_any,
                groups_all: group_names(&format!("{at}.when.groups_all"), &w.groups_all)?,
                subjects: w.subjects.clone(),
                providers: w.providers.clone(),
                claims,
                owns,
            }
        }
    };
    let action = match rule.action {
        ActionConfig::Allow => Action::Allow,
        ActionConfig::Deny => Action::Deny,
    };
    if rule.public && (action != Action::Allow || !when.is_empty()) {
        return Err(ConfigError::new(
            format!("{at}.public"),
            ConfigReason::PublicNotAllow,
        ));
    }
    if rule.failure_mode.is_some() && action != Action::Allow {
        return Err(ConfigError::new(
            format!("{at}.failure_mode"),
            ConfigReason::FailureModeOnDeny,
        ));
    }
    let shadow = rule.mode == Some(ModeConfig::Shadow);
    if shadow && rule.public {
        return Err(ConfigError::new(
            format!("{at}.mode"),
            ConfigReason::PublicShadow,
        ));
    }
    Ok(Rule {
        id: rule.id.clone(),
        action,
        public: rule.public,
        route,
        when,
        fail_open: rule.failure_mode == Some(FailureModeConfig::Open),
        shadow,
    })
}

/// Hosts, methods and paths, with errors naming `{at}.hosts[i]` etc.
pub(super) fn compile_route(
    at: &str,
    hosts: &[String],
    methods: &[String],
    paths: &[PathConfig],
) -> Result<RouteMatch, ConfigError> {
    let mut route = RouteMatch::default();
    for (i, host) in hosts.iter().enumerate() {
        route.hosts.push(HostPattern::parse(host).ok_or_else(|| {
            ConfigError::new(
                format!("{at}.hosts[{i}]"),
                ConfigReason::Host { host: host.clone() },
            )
        })?);
    }
    for (i, method) in methods.iter().enumerate() {
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(ConfigError::new(
                format!("{at}.methods[{i}]"),
                ConfigReason::Method {
                    method: method.clone(),
                },
            ));
        }
        route.methods.push(method.to_ascii_uppercase());
    }
    for (i, path) in paths.iter().enumerate() {
        let compiled = match path {
            PathConfig::Template(t) => PathPattern::template(t),
            PathConfig::Exact { exact } => PathPattern::exact(exact),
            PathConfig::Prefix { prefix } => PathPattern::prefix(prefix),
        };
        route
            .paths
            .push(compiled.map_err(|e| {
                ConfigError::new(format!("{at}.paths[{i}]"), ConfigReason::Path(e))
            })?);
    }
    Ok(route)
}

fn group_names(at: &str, names: &[String]) -> Result<Vec<GroupName>, ConfigError> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            GroupName::parse(name).ok_or_else(|| {
                ConfigError::new(
                    format!("{at}[{i}]"),
                    ConfigReason::Group { name: name.clone() },
                )
            })
        })
        .collect()
}

/// `{kind, id}`: `id` is a template over the rule's path parameters, and every path of the
/// rule must be a template that has them, so the id can always be built.
fn compile_owns(
    at: &str,
    owns: &OwnsConfig,
    paths: &[PathConfig],
) -> Result<Ownership, ConfigError> {
    let kind = owns.kind.trim();
    if kind.is_empty() || kind.len() > 128 || kind.contains(char::is_whitespace) {
        return Err(ConfigError::new(
            format!("{at}.kind"),
            ConfigReason::ResourceKind,
        ));
    }
    let id = parse_id_template(&owns.id)
        .ok_or_else(|| ConfigError::new(format!("{at}.id"), ConfigReason::IdTemplate))?;
    if paths.is_empty() {
        return Err(ConfigError::new(at, ConfigReason::NoOwnershipPaths));
    }
    for (i, path) in paths.iter().enumerate() {
        let PathConfig::Template(template) = path else {
            return Err(ConfigError::new(
                format!("{at}.id"),
                ConfigReason::NotATemplate { index: i },
            ));
        };
        let pattern = PathPattern::template(template)
            .map_err(|e| ConfigError::new(format!("{at}.id"), ConfigReason::Path(e)))?;
        for part in &id {
            if let IdPart::Param(name) = part {
                if !pattern.param_names().any(|p| p == name) {
                    return Err(ConfigError::new(
                        format!("{at}.id"),
                        ConfigReason::MissingParam {
                            index: i,
                            template: template.clone(),
                            name: name.clone(),
                        },
                    ));
                }
            }
        }
    }
    Ok(Ownership {
        kind: kind.to_owned(),
        id,
    })
}

fn parse_id_template(template: &str) -> Option<Vec<IdPart>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find('{') {
            Some(0) => {
                let end = rest.find('}')?;
                let name = rest.get(1..end)?;
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return None;
                }
                parts.push(IdPart::Param(name.to_owned()));
                rest = rest.get(end + 1..)?;
            }
            Some(at) => {
                let text = rest.get(..at)?;
                if text.contains('}') {
                    return None;
                }
                parts.push(IdPart::Text(text.to_owned()));
                rest = rest.get(at..)?;
            }
            None => {
                if rest.contains('}') {
                    return None;
                }
                parts.push(IdPart::Text(rest.to_owned()));
                rest = "";
            }
        }
    }
    parts
        .iter()
        .any(|p| matches!(p, IdPart::Param(_)))
        .then_some(parts)
}

/// Compiles a rules array (JSON text, the plugin configuration's `rules` format) on its own,
/// as the control plane does before it publishes rules: every rule must compile; provider
/// names are checked later, by the filter that loads them.
pub fn compile_rules_json(json: &str) -> Result<RuleSet, ConfigError> {
    compile_rules_text(json, "rules", &|_| true, &HashMap::new())
}

fn compile_rules_text(
    json: &str,
    at: &str,
    known_provider: &dyn Fn(&str) -> bool,
    taken_ids: &HashMap<String, String>,
) -> Result<RuleSet, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let dtos: Vec<RuleConfig> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." || path == "?" {
            at.to_owned()
        } else {
            format!("{at}{path}")
        };
        ConfigError::new(
            path,
            ConfigReason::Json {
                detail: e.into_inner().to_string(),
            },
        )
    })?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut rules = Vec::with_capacity(dtos.len());
    for (index, dto) in dtos.iter().enumerate() {
        let path = format!("{at}[{index}]");
        if let Some(previous) = seen.insert(dto.id.as_str(), index) {
            return Err(ConfigError::new(
                format!("{path}.id"),
                ConfigReason::DuplicateId {
                    id: dto.id.clone(),
                    first: format!("{at}[{previous}]"),
                },
            ));
        }
        if let Some(owner) = taken_ids.get(&dto.id) {
            return Err(ConfigError::new(
                format!("{path}.id"),
                ConfigReason::DuplicateId {
                    id: dto.id.clone(),
                    first: owner.clone(),
                },
            ));
        }
        rules.push(compile_rule(&path, dto, known_provider)?);
    }
    Ok(RuleSet::new(rules))
}

impl Policy {
    /// Compiles the rules a snapshot carries for this configuration: providers they name
    /// must exist here, and their ids must differ from the configuration's rule ids.
    pub fn compile_catalog_rules(&self, json: &str) -> Result<RuleSet, ConfigError> {
        let taken: HashMap<String, String> = self
            .rules
            .deny
            .iter()
            .chain(self.rules.allow.iter())
            .map(|r| {
                (
                    r.id.clone(),
                    String::from("a rule in the plugin configuration"),
                )
            })
            .collect();
        compile_rules_text(
            json,
            "snapshot.rules",
            &|name| self.providers.iter().any(|p| p.name == name),
            &taken,
        )
    }
}
