//! What the control plane hands to the encoder: users with their direct group memberships,
//! groups with their closed ancestors, and the catalog resources whose ownership the filter
//! can check.

/// What the control plane computed from the catalog, before encoding.
///
/// The order of every list is irrelevant: the encoder sorts everything, so the same catalog
/// read in any order gives byte-identical snapshots on every control-plane replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotInput {
    /// Users with the group refs they are a direct member of (`group:default/data-eng`), email
    /// optional. The filter closes them with [`SnapshotInput::groups`]' ancestors.
    pub users: Vec<UserInput>,
    /// Catalog resources the filter can check ownership of, by (kind, id), e.g.
    /// (`airflow.dag`, `etl_daily`), (`buildkite.pipeline`, `acme/deploy`), with owning group
    /// refs. Owners are groups and are not closed upward: membership closure is on the user
    /// side.
    pub owned: Vec<OwnedInput>,
    /// Groups with their transitively closed parents, so the filter can close users' direct
    /// groups and the group claims a token carries (a member of `analytics` also counts for
    /// `data-eng` when `analytics` is nested in it). Groups without parents may be left out.
    /// The ancestor lists must be closed: the filter does not close them further.
    pub groups: Vec<GroupInput>,
    /// Rules in the filter's rule language, as a JSON array (the same objects as the plugin
    /// configuration's `rules`). The filter compiles them when it loads the snapshot.
    pub rules: Option<String>,
}

/// One catalog group and every group above it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupInput {
    /// Normalized entity ref, `group:default/analytics`.
    pub entity_ref: String,
    /// Every parent, grandparent and so on. The group itself and duplicates are ignored.
    pub ancestors: Vec<String>,
}

/// One catalog user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInput {
    /// Normalized entity ref, `user:default/alice`.
    pub entity_ref: String,
    /// `spec.profile.email`; stored lowercased.
    pub email: Option<String>,
    /// The groups the user is a direct member of. A closed list (direct and inherited) gives
    /// the same answers, only a larger snapshot. Duplicates are ignored.
    pub groups: Vec<String>,
}

/// One resource a tool exposes, and the groups that own it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedInput {
    /// Resource kind, `airflow.dag`.
    pub kind: String,
    /// Resource id within the kind, `etl_daily`.
    pub id: String,
    /// Owner refs: groups, or users (`user:default/dave`). Entries for the same (kind, id)
    /// are merged.
    pub owners: Vec<String>,
}
