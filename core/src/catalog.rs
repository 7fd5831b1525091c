//! The catalog at the edge: a verified snapshot with the rules it carries, and the caller as
//! rules see them (token groups, catalog groups closed under nesting, ownership).

use crate::config::{ConfigError, Policy};
use crate::groupref::GroupName;
use crate::principal::{CatalogKey, Principal};
use crate::rules::RuleSet;
use crate::snapshot::{GroupSet, Snapshot, UserView};

/// A loaded snapshot and its compiled rules. Built off the request path, then shared.
#[derive(Debug)]
pub struct Catalog {
    pub snapshot: Snapshot,
    /// Rules the control plane published, evaluated after the configuration's own.
    pub rules: RuleSet,
}

impl Catalog {
    /// Compiles the snapshot's rules against `policy` (provider names must exist, rule ids
    /// must not repeat the configuration's).
    pub fn new(policy: &Policy, snapshot: Snapshot) -> Result<Catalog, ConfigError> {
        let rules = match snapshot.rules_json() {
            Some(json) => policy.compile_catalog_rules(json)?,
            None => RuleSet::default(),
        };
        Ok(Catalog { snapshot, rules })
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

/// The caller as rules see them.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub principal: &'a Principal,
    pub snapshot: Option<&'a Snapshot>,
    /// The catalog user the token maps to, if any.
    pub user: Option<UserView<'a>>,
}

impl<'a> Caller<'a> {
    pub fn new(principal: &'a Principal, catalog: Option<&'a Catalog>) -> Caller<'a> {
        let snapshot = catalog.map(|c| &c.snapshot);
        let user = snapshot.and_then(|s| find_user(s, &principal.catalog_keys));
        Caller {
            principal,
            snapshot,
            user,
        }
    }

    /// Token groups (as written, or as refs), then the catalog user's closed groups, then
    /// the groups above the token's groups in the catalog.
    pub fn in_group(&self, group: &GroupName) -> bool {
        if self.principal.in_group(&group.name) || self.principal.has_group_ref(&group.catalog_ref)
        {
            return true;
        }
        let Some(snapshot) = self.snapshot else {
            return false;
        };
        let Some(index) = snapshot.group_index(&group.catalog_ref) else {
            return false;
        };
        self.user.is_some_and(|u| u.groups.contains_index(index))
            || self
                .token_groups(snapshot)
                .any(|(own, above)| own == index || above.contains_index(index))
    }

    /// Whether the caller is among `owners`: their own catalog user (an entity owned by
    /// `user:default/dave`), or any of their groups (catalog and token, closed).
    pub fn owns(&self, owners: &GroupSet<'_>) -> bool {
        if self.user.is_some_and(|u| u.groups.intersects(owners)) {
            return true;
        }
        let Some(snapshot) = self.snapshot else {
            return false;
        };
        // The groups table holds every ref named anywhere, user owners included.
        let own_ref = self.user.and_then(|u| snapshot.group_index(u.entity_ref));
        if own_ref.is_some_and(|index| owners.contains_index(index)) {
            return true;
        }
        self.token_groups(snapshot)
            .any(|(own, above)| owners.contains_index(own) || above.intersects(owners))
    }

    /// The catalog groups the token's groups name, each with its ancestors.
    fn token_groups<'s>(
        &self,
        snapshot: &'s Snapshot,
    ) -> impl Iterator<Item = (u32, GroupSet<'s>)> + 's
    where
        'a: 's,
    {
        self.principal
            .group_refs
            .iter()
            .filter_map(move |r| snapshot.group_index(r))
            .map(move |index| (index, snapshot.ancestors_of(index)))
    }

    /// The catalog user's entity ref, for logs and headers.
    pub fn user_ref(&self) -> Option<&'a str> {
        self.user.map(|u| u.entity_ref)
    }
}

fn find_user<'s>(snapshot: &'s Snapshot, keys: &[CatalogKey]) -> Option<UserView<'s>> {
    keys.iter().find_map(|key| match key {
        CatalogKey::UserRef(r) => snapshot.user(r),
        CatalogKey::Email(e) => snapshot.user_by_email(e),
    })
}

#[cfg(test)]
mod tests;
