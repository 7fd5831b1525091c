//! The catalog at the edge: a verified snapshot with the rules it carries, and what the
//! request path knows of it. How the caller looks through it is `caller`.

use crate::policy::config::{ConfigError, ConfigReason, Policy};
use crate::policy::rules::RuleSet;
use crate::snapshot::{Grants, Snapshot};

/// A loaded snapshot and its compiled rules. Built off the request path, then shared.
#[derive(Debug)]
pub struct Catalog {
    pub snapshot: Snapshot,
    /// Rules the control plane published, evaluated after the configuration's own.
    pub rules: RuleSet,
    /// Access grants the control plane published; each holds until its `not_after` by the
    /// deciding clock, whatever the control plane does after.
    pub grants: Grants,
}

impl Catalog {
    /// Compiles the snapshot's rules against `policy` (provider names must exist, rule ids
    /// must not repeat the configuration's).
    pub fn new(policy: &Policy, snapshot: Snapshot) -> Result<Catalog, ConfigError> {
        let rules = match snapshot.rules_json() {
            Some(json) => policy.compile_catalog_rules(json)?,
            None => RuleSet::default(),
        };
        let grants = snapshot.grants().map_err(|error| ConfigError {
            path: String::from("snapshot.grants"),
            reason: ConfigReason::Unreadable {
                detail: error.to_string(),
            },
        })?;
        Ok(Catalog {
            snapshot,
            rules,
            grants,
        })
    }
}

/// What the request path knows about the catalog.
#[derive(Debug, Clone, Copy)]
pub enum CatalogState<'c> {
    /// No snapshot is configured: rules see token groups only.
    NotConfigured,
    /// Configured, but none has loaded yet, or the last one is older than
    /// `max_staleness_s`: `failure_mode` decides.
    Unavailable {
        reason: &'static str,
    },
    Ready(&'c Catalog),
}

impl<'c> CatalogState<'c> {
    pub fn catalog(&self) -> Option<&'c Catalog> {
        match self {
            CatalogState::Ready(catalog) => Some(catalog),
            _ => None,
        }
    }
}

#[cfg(test)]
mod grant_tests;
#[cfg(test)]
mod tests;
