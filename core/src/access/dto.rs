//! The access policy file as written (YAML converted to JSON by the control plane, or JSON).
//! Compiled into [`AccessPolicy`](super::AccessPolicy) by [`super::policy`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an access policy: an object with `version` and `requestable`"
)]
pub struct AccessPolicyConfig {
    pub version: u64,
    /// Groups whose members may list and revoke every request and grant.
    #[serde(default)]
    pub admins: Vec<String>,
    pub requestable: Vec<RequestableConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestableConfig {
    pub name: String,
    pub target: TargetConfig,
    /// Groups whose members may ask; absent: any catalog user.
    #[serde(default)]
    pub requesters: Option<Vec<String>>,
    pub max_duration: String,
    #[serde(default)]
    pub reason: Option<ReasonConfig>,
    #[serde(default)]
    pub approvals: Option<u64>,
    /// `"owners"` or a list of group refs; read by hand so a mistake gets a plain message.
    #[serde(default)]
    pub approvers: Option<Value>,
    #[serde(default)]
    pub auto_approve: Vec<AutoApproveConfig>,
}

/// Exactly one of the two.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    #[serde(default)]
    pub resource: Option<ResourceTargetConfig>,
    #[serde(default)]
    pub group: Option<String>,
}

/// A resource kind as `when.owns` names it; without `id`, any resource of the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceTargetConfig {
    pub kind: String,
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasonConfig {
    Required,
    Optional,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoApproveConfig {
    pub name: String,
    #[serde(default)]
    pub max_duration: Option<String>,
    #[serde(default)]
    pub requester_in: Option<Vec<String>>,
    #[serde(default)]
    pub requester_near_owner: Option<bool>,
    #[serde(default)]
    pub unless_annotation: Option<BTreeMap<String, String>>,
}
