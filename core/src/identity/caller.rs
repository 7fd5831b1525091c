//! The caller as rules see them: the verified principal, and what a catalog snapshot adds
//! (the catalog user, groups closed under nesting, ownership).

use crate::identity::groupref::GroupName;
use crate::identity::principal::{CatalogKey, Principal};
use crate::snapshot::{GroupSet, Snapshot, UserView};

#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub principal: &'a Principal,
    pub snapshot: Option<&'a Snapshot>,
    /// The catalog user the token maps to, if any.
    pub user: Option<UserView<'a>>,
}

impl<'a> Caller<'a> {
    pub fn new(principal: &'a Principal, snapshot: Option<&'a Snapshot>) -> Caller<'a> {
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
