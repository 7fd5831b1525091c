//! The caller as rules see them: the verified principal, and what a catalog snapshot adds
//! (the catalog user, groups closed under nesting, ownership).

use crate::identity::groupref::GroupName;
use crate::identity::principal::{CatalogKey, Principal};
use crate::request::UnixTime;
use crate::snapshot::{Grant, GrantTarget, Grants, GroupSet, Snapshot, UserView};

#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub principal: &'a Principal,
    pub snapshot: Option<&'a Snapshot>,
    /// The catalog user the token maps to, if any.
    pub user: Option<UserView<'a>>,
    /// The user's grants (active or not) and the decision's time, which says which hold.
    grants: &'a [Grant],
    now: UnixTime,
}

impl<'a> Caller<'a> {
    pub fn new(principal: &'a Principal, snapshot: Option<&'a Snapshot>) -> Caller<'a> {
        let user = snapshot.and_then(|s| find_user(s, &principal.catalog_keys));
        Caller {
            principal,
            snapshot,
            user,
            grants: &[],
            now: UnixTime::from_secs(0),
        }
    }

    /// The caller with the grants `grants` holds for them at `now`: a granted group counts
    /// as one of their groups, a granted resource as owned by them. Grants are keyed by the
    /// catalog user, or, for a caller the snapshot does not list, by the user ref the token
    /// names (a view may leave out users in none of its groups).
    pub fn with_grants(self, grants: &'a Grants, now: UnixTime) -> Caller<'a> {
        let user_ref = self.user.map(|u| u.entity_ref).or_else(|| {
            self.principal
                .catalog_keys
                .iter()
                .find_map(|key| match key {
                    CatalogKey::UserRef(r) => Some(r.as_str()),
                    CatalogKey::Email(_) => None,
                })
        });
        Caller {
            grants: user_ref.map_or(&[][..], |r| grants.of_user(r)),
            now,
            ..self
        }
    }

    /// The same caller holding only `grants` (a subset of theirs): to find which grant made
    /// a difference.
    pub fn only_grants(self, grants: &'a [Grant]) -> Caller<'a> {
        Caller { grants, ..self }
    }

    /// The grants that hold now.
    pub fn active_grants(&self) -> impl Iterator<Item = &'a Grant> + 'a {
        let now = self.now;
        self.grants.iter().filter(move |g| g.is_active(now))
    }

    /// Whether a grant held now gives ownership of the resource `kind`/`id`.
    pub fn granted_resource(&self, kind: &str, id: &str) -> bool {
        self.active_grants().any(|g| {
            matches!(&g.target, GrantTarget::Resource { kind: k, id: i } if k == kind && i == id)
        })
    }

    /// The catalog groups that grants held now add, each with its ancestors.
    fn granted_groups<'s>(
        &self,
        snapshot: &'s Snapshot,
    ) -> impl Iterator<Item = (u32, GroupSet<'s>)> + 's
    where
        'a: 's,
    {
        self.active_grants()
            .filter_map(|g| match &g.target {
                GrantTarget::Group(group) => Some(group.as_str()),
                GrantTarget::Resource { .. } => None,
            })
            .filter_map(move |r| snapshot.group_index(r))
            .map(move |index| (index, snapshot.ancestors_of(index)))
    }

    /// Token groups (as written, or as refs), then the catalog user's closed groups, then
    /// the groups above the token's groups in the catalog.
    pub fn in_group(&self, group: &GroupName) -> bool {
        if self.principal.in_group(&group.name) || self.principal.has_group_ref(&group.catalog_ref)
        {
            return true;
        }
        if self
            .active_grants()
            .any(|g| matches!(&g.target, GrantTarget::Group(r) if *r == group.catalog_ref))
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
                .chain(self.granted_groups(snapshot))
                .any(|(own, above)| own == index || above.contains_index(index))
    }

    /// Whether the caller's groups can be known: not when the token carries none because
    /// they overflowed to a claim source (Entra ID's group overage) and no catalog snapshot
    /// is there to give them.
    pub fn groups_known(&self) -> bool {
        !self.principal.groups_overage || self.snapshot.is_some()
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
            .chain(self.granted_groups(snapshot))
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

    /// The catalog user's groups (entity refs, nesting closed), comma-separated, for the
    /// upstream's `x-meshgate-catalog-groups`.
    pub fn user_groups_joined(&self) -> Option<String> {
        self.user.map(|user| {
            let mut joined = String::new();
            for group in user.groups.iter() {
                if !joined.is_empty() {
                    joined.push(',');
                }
                joined.push_str(group);
            }
            joined
        })
    }
}

fn find_user<'s>(snapshot: &'s Snapshot, keys: &[CatalogKey]) -> Option<UserView<'s>> {
    keys.iter().find_map(|key| match key {
        CatalogKey::UserRef(r) => snapshot.user(r),
        CatalogKey::Email(e) => snapshot.user_by_email(e),
    })
}
