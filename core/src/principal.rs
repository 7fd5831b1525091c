//! The verified caller: who they are and which groups they are in.

use serde_json::{Map, Value};

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
    /// All verified claims, for claim conditions and `claim_to_headers`.
    pub claims: Map<String, Value>,
    /// Compare group names ignoring ASCII case (the provider's `groups_case_insensitive`).
    pub groups_case_insensitive: bool,
}

impl Principal {
    pub fn in_group(&self, group: &str) -> bool {
        if self.groups_case_insensitive {
            return self.groups.iter().any(|g| g.eq_ignore_ascii_case(group));
        }
        self.groups
            .binary_search_by(|g| g.as_str().cmp(group))
            .is_ok()
    }
}
