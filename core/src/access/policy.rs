//! The compiled access policy: what can be requested, by whom, for how long, approved by
//! whom, and which requests approve themselves. Built from [`dto`](super::dto) by
//! [`AccessPolicy::from_json`] or [`AccessPolicy::from_value`], or refused with one
//! [`AccessPolicyError`] naming the field.

use std::collections::{BTreeMap, HashMap};
use std::io;

use serde_json::Value;

use super::dto::{
    AccessPolicyConfig, AutoApproveConfig, ReasonConfig, RequestableConfig, TargetConfig,
};
use super::duration::{format_duration, parse_duration};
use super::err::{AccessPolicyError, PolicyReason};
use super::AccessTarget;
use crate::identity::groupref::GroupName;

/// The largest access policy accepted, in bytes of JSON.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;
/// The longest grant anyone can ask for: 30 days.
pub const MAX_DURATION_CAP_S: u64 = 30 * 24 * 60 * 60;
/// Approvals an entry may require at most.
pub const MAX_APPROVALS: u64 = 10;
/// The only file version this build reads.
pub const POLICY_VERSION: u64 = 1;

/// A compiled access policy. Immutable; the control plane shares it between requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Members (closed groups) may list and revoke everything. Not implicit approvers.
    pub admins: Vec<GroupName>,
    /// In file order: a request takes the first entry whose target matches.
    pub requestable: Vec<Requestable>,
}

/// One requestable entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requestable {
    pub name: String,
    pub target: TargetSpec,
    /// `None`: any catalog user may ask.
    pub requesters: Option<Vec<GroupName>>,
    pub max_duration_s: u64,
    pub reason_required: bool,
    pub approvals: u8,
    pub approvers: ApproverSpec,
    /// In file order; the first whose conditions all hold approves at once.
    pub auto_approve: Vec<AutoApprove>,
}

/// What an entry makes requestable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// Membership of one catalog group.
    Group(GroupName),
    /// Ownership of a resource of `kind` (as rules name it in `when.owns`): one id, or any.
    Resource { kind: String, id: Option<String> },
}

impl TargetSpec {
    /// Whether a request for `target` falls under this entry.
    pub fn matches(&self, target: &AccessTarget) -> bool {
        match (self, target) {
            (TargetSpec::Group(group), AccessTarget::Group(wanted)) => group.catalog_ref == *wanted,
            (
                TargetSpec::Resource { kind, id },
                AccessTarget::Resource {
                    kind: wanted_kind,
                    id: wanted_id,
                },
            ) => kind == wanted_kind && id.as_ref().is_none_or(|id| id == wanted_id),
            _ => false,
        }
    }
}

/// Who approves an entry's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproverSpec {
    /// The target's owners in the catalog: members of an owning group, or the owning user.
    Owners,
    /// Members (closed groups) of any of these groups.
    Groups(Vec<GroupName>),
}

/// An auto-approval condition: every part that is set must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoApprove {
    pub name: String,
    /// The requested duration is at most this; `None`: up to the entry's maximum.
    pub max_duration_s: Option<u64>,
    /// The requester is a member (closed groups) of one of these.
    pub requester_in: Option<Vec<GroupName>>,
    /// A direct group of the requester is a parent, child or sibling of an owning group.
    pub requester_near_owner: bool,
    /// The target entity has none of these annotation key/value pairs.
    pub unless_annotation: Vec<(String, String)>,
}

impl AccessPolicy {
    /// Parses and compiles a policy from JSON text, refusing more than [`MAX_POLICY_BYTES`].
    pub fn from_json(json: &[u8]) -> Result<AccessPolicy, AccessPolicyError> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(too_large(json.len()));
        }
        // serde reads a struct from an array too; a policy is an object.
        let first = json.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b == b'[') {
            return Err(not_an_object());
        }
        let mut de = serde_json::Deserializer::from_slice(json);
        let dto: AccessPolicyConfig =
            serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
        de.end().map_err(|e| {
            AccessPolicyError::new(
                ROOT,
                PolicyReason::Json {
                    detail: e.to_string(),
                },
            )
        })?;
        compile(dto)
    }

    /// Compiles a policy the control plane read as YAML and converted to JSON. Refuses one
    /// whose JSON form is over [`MAX_POLICY_BYTES`], without writing it out in full.
    pub fn from_value(value: &Value) -> Result<AccessPolicy, AccessPolicyError> {
        let mut counter = ByteCounter { bytes: 0 };
        if serde_json::to_writer(&mut counter, value).is_err() {
            return Err(too_large(counter.bytes));
        }
        if value.is_array() {
            return Err(not_an_object());
        }
        let dto: AccessPolicyConfig =
            serde_path_to_error::deserialize(value).map_err(json_error)?;
        compile(dto)
    }

    /// The entry named `name`.
    pub fn entry(&self, name: &str) -> Option<&Requestable> {
        self.requestable.iter().find(|entry| entry.name == name)
    }

    /// The first entry whose target covers `target`.
    pub fn entry_for(&self, target: &AccessTarget) -> Option<&Requestable> {
        self.requestable
            .iter()
            .find(|entry| entry.target.matches(target))
    }
}

const ROOT: &str = "(root)";

fn too_large(size: usize) -> AccessPolicyError {
    AccessPolicyError::new(
        ROOT,
        PolicyReason::TooLarge {
            size,
            max: MAX_POLICY_BYTES,
        },
    )
}

fn not_an_object() -> AccessPolicyError {
    AccessPolicyError::new(
        ROOT,
        PolicyReason::Json {
            detail: String::from(
                "invalid type: sequence, expected an access policy: an object with `version` and `requestable`",
            ),
        },
    )
}

fn json_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> AccessPolicyError {
    let path = e.path().to_string();
    // serde_path_to_error says `.` for the root and `?` before any field was read.
    let path = if path == "." || path == "?" {
        String::from(ROOT)
    } else {
        path
    };
    AccessPolicyError::new(
        path,
        PolicyReason::Json {
            detail: e.into_inner().to_string(),
        },
    )
}

/// Counts the bytes of a value's JSON form and stops past the limit.
struct ByteCounter {
    bytes: usize,
}

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes = self.bytes.saturating_add(buf.len());
        if self.bytes > MAX_POLICY_BYTES {
            return Err(io::Error::other("access policy too large"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn compile(dto: AccessPolicyConfig) -> Result<AccessPolicy, AccessPolicyError> {
    if dto.version != POLICY_VERSION {
        return Err(AccessPolicyError::new(
            "version",
            PolicyReason::Version {
                version: dto.version,
            },
        ));
    }
    let admins = groups("admins", &dto.admins)?;
    if dto.requestable.is_empty() {
        return Err(AccessPolicyError::new("requestable", PolicyReason::Empty));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut requestable = Vec::with_capacity(dto.requestable.len());
    for (i, entry) in dto.requestable.iter().enumerate() {
        let at = format!("requestable[{i}]");
        if let Some(first) = seen.insert(&entry.name, i) {
            return Err(AccessPolicyError::new(
                format!("{at}.name"),
                PolicyReason::DuplicateName {
                    name: entry.name.clone(),
                    first: format!("requestable[{first}]"),
                },
            ));
        }
        requestable.push(compile_entry(&at, entry)?);
    }
    Ok(AccessPolicy {
        admins,
        requestable,
    })
}

fn compile_entry(at: &str, entry: &RequestableConfig) -> Result<Requestable, AccessPolicyError> {
    let name = name(&format!("{at}.name"), &entry.name)?;
    let target = target(&format!("{at}.target"), &entry.target)?;
    let requesters = entry
        .requesters
        .as_ref()
        .map(|list| non_empty_groups(&format!("{at}.requesters"), list))
        .transpose()?;
    let max_duration_s = duration(&format!("{at}.max_duration"), &entry.max_duration)?;
    let approvals = match entry.approvals {
        None => 1,
        Some(n) => u8::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_APPROVALS).contains(&u64::from(*n)))
            .ok_or_else(|| {
                AccessPolicyError::new(
                    format!("{at}.approvals"),
                    PolicyReason::OutOfRange {
                        min: 1,
                        max: MAX_APPROVALS,
                    },
                )
            })?,
    };
    let approvers = approvers(&format!("{at}.approvers"), entry.approvers.as_ref())?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut auto_approve = Vec::with_capacity(entry.auto_approve.len());
    for (i, rule) in entry.auto_approve.iter().enumerate() {
        let rule_at = format!("{at}.auto_approve[{i}]");
        if let Some(first) = seen.insert(&rule.name, i) {
            return Err(AccessPolicyError::new(
                format!("{rule_at}.name"),
                PolicyReason::DuplicateName {
                    name: rule.name.clone(),
                    first: format!("{at}.auto_approve[{first}]"),
                },
            ));
        }
        auto_approve.push(compile_auto_approve(&rule_at, rule, max_duration_s)?);
    }
    Ok(Requestable {
        name,
        target,
        requesters,
        max_duration_s,
        reason_required: !matches!(entry.reason, Some(ReasonConfig::Optional)),
        approvals,
        approvers,
        auto_approve,
    })
}

fn compile_auto_approve(
    at: &str,
    rule: &AutoApproveConfig,
    entry_max_s: u64,
) -> Result<AutoApprove, AccessPolicyError> {
    let name = name(&format!("{at}.name"), &rule.name)?;
    let max_duration_s = match &rule.max_duration {
        None => None,
        Some(text) => {
            let field = format!("{at}.max_duration");
            let seconds = duration(&field, text)?;
            if seconds > entry_max_s {
                return Err(AccessPolicyError::new(
                    field,
                    PolicyReason::OverEntryMaximum {
                        value: text.clone(),
                        max: format_duration(entry_max_s),
                    },
                ));
            }
            Some(seconds)
        }
    };
    let requester_in = rule
        .requester_in
        .as_ref()
        .map(|list| non_empty_groups(&format!("{at}.requester_in"), list))
        .transpose()?;
    let unless_annotation = match &rule.unless_annotation {
        None => Vec::new(),
        Some(pairs) => annotations(&format!("{at}.unless_annotation"), pairs)?,
    };
    Ok(AutoApprove {
        name,
        max_duration_s,
        requester_in,
        requester_near_owner: rule.requester_near_owner.unwrap_or(false),
        unless_annotation,
    })
}

/// `[a-z0-9-]{1,63}`.
fn name(at: &str, name: &str) -> Result<String, AccessPolicyError> {
    let valid = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(AccessPolicyError::new(at, PolicyReason::Name))
    }
}

fn target(at: &str, target: &TargetConfig) -> Result<TargetSpec, AccessPolicyError> {
    match (&target.resource, &target.group) {
        (Some(resource), None) => {
            let kind = resource_kind(&resource.kind).ok_or_else(|| {
                AccessPolicyError::new(format!("{at}.resource.kind"), PolicyReason::ResourceKind)
            })?;
            let id = match &resource.id {
                None => None,
                Some(id) => Some(resource_id(id).ok_or_else(|| {
                    AccessPolicyError::new(format!("{at}.resource.id"), PolicyReason::ResourceId)
                })?),
            };
            Ok(TargetSpec::Resource { kind, id })
        }
        (None, Some(group)) => Ok(TargetSpec::Group(group_name(
            &format!("{at}.group"),
            group,
        )?)),
        _ => Err(AccessPolicyError::new(at, PolicyReason::Target)),
    }
}

/// A resource kind as `when.owns` accepts it (see `compile_owns` in the rule config): 1-128
/// characters without whitespace; here also without control characters.
pub(super) fn resource_kind(kind: &str) -> Option<String> {
    let valid = (1..=128).contains(&kind.len())
        && !kind.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then(|| kind.to_owned())
}

/// A resource id as the catalog stores it: 1-512 characters, no whitespace or control
/// characters (`etl_daily`, `acme/deploy`).
pub(super) fn resource_id(id: &str) -> Option<String> {
    let valid =
        (1..=512).contains(&id.len()) && !id.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then(|| id.to_owned())
}

/// A group as rules name it (`data-eng` or `group:default/data-eng`), without whitespace
/// or control characters, at most 255 bytes.
pub(super) fn parse_group(name: &str) -> Option<GroupName> {
    let clean = name.len() <= 255 && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    clean.then(|| GroupName::parse(name)).flatten()
}

fn group_name(at: &str, name: &str) -> Result<GroupName, AccessPolicyError> {
    parse_group(name).ok_or_else(|| {
        AccessPolicyError::new(
            at,
            PolicyReason::Group {
                name: name.to_owned(),
            },
        )
    })
}

fn groups(at: &str, names: &[String]) -> Result<Vec<GroupName>, AccessPolicyError> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| group_name(&format!("{at}[{i}]"), name))
        .collect()
}

fn non_empty_groups(at: &str, names: &[String]) -> Result<Vec<GroupName>, AccessPolicyError> {
    if names.is_empty() {
        return Err(AccessPolicyError::new(at, PolicyReason::Empty));
    }
    groups(at, names)
}

/// More than 0, at most [`MAX_DURATION_CAP_S`].
fn duration(at: &str, text: &str) -> Result<u64, AccessPolicyError> {
    let seconds = parse_duration(text).map_err(|error| {
        AccessPolicyError::new(
            at,
            PolicyReason::Duration {
                value: text.to_owned(),
                error,
            },
        )
    })?;
    if seconds == 0 {
        return Err(AccessPolicyError::new(at, PolicyReason::ZeroDuration));
    }
    if seconds > MAX_DURATION_CAP_S {
        return Err(AccessPolicyError::new(
            at,
            PolicyReason::DurationOverCap {
                value: text.to_owned(),
                max: format_duration(MAX_DURATION_CAP_S),
            },
        ));
    }
    Ok(seconds)
}

fn approvers(at: &str, value: Option<&Value>) -> Result<ApproverSpec, AccessPolicyError> {
    match value {
        None => Ok(ApproverSpec::Owners),
        Some(Value::String(keyword)) if keyword == "owners" => Ok(ApproverSpec::Owners),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(AccessPolicyError::new(at, PolicyReason::Empty));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let item_at = format!("{at}[{i}]");
                    match item {
                        Value::String(name) => group_name(&item_at, name),
                        _ => Err(AccessPolicyError::new(item_at, PolicyReason::Approvers)),
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(ApproverSpec::Groups)
        }
        Some(_) => Err(AccessPolicyError::new(at, PolicyReason::Approvers)),
    }
}

/// Keys as Kubernetes and Backstage write annotations (`meshgate.io/environment`).
fn annotations(
    at: &str,
    pairs: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, AccessPolicyError> {
    if pairs.is_empty() {
        return Err(AccessPolicyError::new(at, PolicyReason::Empty));
    }
    pairs
        .iter()
        .map(|(key, value)| {
            let key_ok = (1..=317).contains(&key.len())
                && !key.chars().any(|c| c.is_whitespace() || c.is_control());
            if !key_ok {
                return Err(AccessPolicyError::new(at, PolicyReason::AnnotationKey));
            }
            if value.len() > 1024 || value.chars().any(char::is_control) {
                return Err(AccessPolicyError::new(
                    format!("{at}.{key}"),
                    PolicyReason::AnnotationValue,
                ));
            }
            Ok((key.clone(), value.clone()))
        })
        .collect()
}
