//! Self-service access, the pure part: the access policy file (what can be requested, by
//! whom, for how long, approved by whom, approved by itself when), and the decisions over
//! it. No I/O: the control plane stores requests, reviews and grants, and answers catalog
//! questions through [`AccessFacts`].
//!
//! - [`policy`]: the file, compiled into [`AccessPolicy`] or refused with one
//!   [`AccessPolicyError`] naming the field.
//! - [`decide`]: [`assess`] a new request, [`review`] a pending one, [`may_revoke`] a grant;
//!   each refusal is a [`Refusal`] with a stable [`code`](Refusal::code).
//! - [`duration`]: `15m`, `1h30m`, `PT1H`, as the file, the API and the CLI write them.
//!
//! Refs are compared as the catalog stores them: `user:<namespace>/<name>` and
//! `group:<namespace>/<name>`, lowercased; short names (`alice`, `data-eng`) mean the
//! `default` namespace, as in the rules.

pub mod decide;
pub mod dto;
pub mod duration;
mod err;
pub mod facts;
pub mod policy;

pub use decide::{
    assess, is_admin, may_revoke, review, Approvers, Assessment, GrantRef, PendingRequest,
    ReviewOutcome, ReviewVerdict, RevokeRight,
};
pub use duration::{format_duration, parse_duration, DurationError};
pub use err::{AccessPolicyError, PolicyReason, ReasonProblem, Refusal};
pub use facts::{AccessFacts, MemoryFacts};
pub use policy::{
    AccessPolicy, ApproverSpec, AutoApprove, Requestable, TargetSpec, MAX_APPROVALS,
    MAX_DURATION_CAP_S, MAX_POLICY_BYTES,
};

use std::fmt;

use crate::identity::groupref::{user_ref, DEFAULT_NAMESPACE};

/// What a request asks for, and what a grant gives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccessTarget {
    /// Membership of a catalog group: `group:<namespace>/<name>`.
    Group(String),
    /// Ownership of a catalog resource as rules check it with `when.owns`: kind
    /// (`airflow.dag`) and id (`etl_daily`), both compared exactly.
    Resource { kind: String, id: String },
}

impl AccessTarget {
    /// A group target from a short name or entity ref; `None` when it is neither.
    pub fn group(name: &str) -> Option<AccessTarget> {
        policy::parse_group(name).map(|group| AccessTarget::Group(group.catalog_ref))
    }

    /// A resource target; `None` for an empty or malformed kind or id.
    pub fn resource(kind: &str, id: &str) -> Option<AccessTarget> {
        Some(AccessTarget::Resource {
            kind: policy::resource_kind(kind)?,
            id: policy::resource_id(id)?,
        })
    }

    /// The same target in the catalog's spelling (group refs lowercased, short names
    /// expanded); `None` when malformed.
    pub fn normalized(&self) -> Option<AccessTarget> {
        match self {
            AccessTarget::Group(name) => AccessTarget::group(name),
            AccessTarget::Resource { kind, id } => AccessTarget::resource(kind, id),
        }
    }
}

impl fmt::Display for AccessTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessTarget::Group(group) => write!(f, "membership of `{group}`"),
            AccessTarget::Resource { kind, id } => write!(f, "{kind} `{id}`"),
        }
    }
}

/// A user ref in the catalog's spelling (`alice` → `user:default/alice`); `None` for refs
/// of another kind, malformed refs, whitespace or control characters, or over 255 bytes.
pub fn normalize_user(user: &str) -> Option<String> {
    let clean = user.len() <= 255 && !user.chars().any(|c| c.is_whitespace() || c.is_control());
    clean.then(|| user_ref(user, DEFAULT_NAMESPACE)).flatten()
}

/// A request as the requester submits it; the requester comes from their verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDraft {
    /// A user entity ref or user name.
    pub requester: String,
    pub target: AccessTarget,
    pub duration_s: u64,
    pub reason: Option<String>,
}

impl RequestDraft {
    /// The draft as it should be stored: refs in the catalog's spelling, the reason trimmed
    /// (and `None` when blank) and checked.
    pub fn normalized(&self) -> Result<RequestDraft, Refusal> {
        let requester = normalize_user(&self.requester).ok_or_else(|| Refusal::InvalidUser {
            user: self.requester.clone(),
        })?;
        let target = self
            .target
            .normalized()
            .ok_or_else(|| Refusal::InvalidTarget {
                target: match &self.target {
                    AccessTarget::Group(name) => name.clone(),
                    AccessTarget::Resource { kind, id } => format!("{kind} {id}"),
                },
            })?;
        let reason = match self.reason.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(reason) => Some(check_reason(reason)?.to_owned()),
        };
        Ok(RequestDraft {
            requester,
            target,
            duration_s: self.duration_s,
            reason,
        })
    }
}

/// The longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

fn check_reason(reason: &str) -> Result<&str, Refusal> {
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(Refusal::ReasonInvalid {
            problem: ReasonProblem::TooLong {
                max: MAX_REASON_CHARS,
            },
        });
    }
    // Control characters would break log lines; bidirectional overrides make a reason read
    // differently from what it says.
    let hostile =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if reason.chars().any(hostile) {
        return Err(Refusal::ReasonInvalid {
            problem: ReasonProblem::ControlCharacters,
        });
    }
    Ok(reason)
}

#[cfg(test)]
mod tests;
