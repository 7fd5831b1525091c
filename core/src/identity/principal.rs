//! The verified caller: who they are and which groups they are in.

use serde_json::{Map, Value};

/// How the caller is looked up in a catalog snapshot, in order; the first key that names a
/// user wins. Computed once per token (the token cache keeps the principal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogKey {
    /// A user entity ref, `user:default/alice`.
    UserRef(String),
    /// `spec.profile.email`, compared ignoring ASCII case.
    Email(String),
}

/// A caller whose token verified. Built once per token and shared (the token cache
/// holds it), so rules borrow it rather than re-reading claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// Name of the provider that verified the token.
    pub provider: String,
    pub subject: Option<String>,
    pub email: Option<String>,
    pub username: Option<String>,
    /// Sorted and deduplicated, compared exactly (no case folding).
    pub groups: Vec<String>,
    /// The catalog refs the token's groups stand for (see `groupref::token_group_ref`),
    /// sorted: how token groups meet catalog groups and rules written as refs.
    pub group_refs: Vec<String>,
    /// Where to find this caller in a catalog snapshot.
    pub catalog_keys: Vec<CatalogKey>,
    /// The token has too many groups to carry them and points elsewhere instead (Entra ID's
    /// `_claim_names.groups`): groups come from the catalog only.
    pub groups_overage: bool,
    /// All verified claims, for claim conditions and `claim_to_headers`.
    pub claims: Map<String, Value>,
    /// Compare group names ignoring ASCII case (the provider's `groups_case_insensitive`).
    pub groups_case_insensitive: bool,
    /// The user entity ref the token itself proves (`sub` of a Backstage user token,
    /// normalized: `user:default/alice`); `None` for other providers.
    pub user_ref: Option<String>,
}

impl Principal {
    /// Whether the token itself names `group` (as written in a rule).
    pub fn in_group(&self, group: &str) -> bool {
        if self.groups_case_insensitive {
            return self.groups.iter().any(|g| g.eq_ignore_ascii_case(group));
        }
        self.groups
            .binary_search_by(|g| g.as_str().cmp(group))
            .is_ok()
    }

    /// Whether a token group stands for the catalog group `catalog_ref`.
    pub fn has_group_ref(&self, catalog_ref: &str) -> bool {
        self.group_refs
            .binary_search_by(|g| g.as_str().cmp(catalog_ref))
            .is_ok()
    }
}
