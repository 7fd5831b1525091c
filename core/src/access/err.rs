//! Why an access policy file is refused ([`AccessPolicyError`]), and why a request, a review
//! or a revocation is refused ([`Refusal`], with a stable machine code).

use super::duration::DurationError;

/// A refused access policy file: the field, as a JSON path, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{path}`: {reason}")]
pub struct AccessPolicyError {
    pub path: String,
    pub reason: PolicyReason,
}

impl AccessPolicyError {
    pub(super) fn new(path: impl Into<String>, reason: PolicyReason) -> AccessPolicyError {
        AccessPolicyError {
            path: path.into(),
            reason,
        }
    }
}

/// What is wrong with the field an [`AccessPolicyError`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyReason {
    /// Not JSON, or not the expected shape: serde's words (unknown field, wrong type).
    #[error("{detail}")]
    Json { detail: String },
    #[error("is {size} bytes; an access policy is at most {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("version {version} is not supported; this meshgate reads version 1")]
    Version { version: u64 },
    #[error("must not be empty")]
    Empty,
    #[error("must be between {min} and {max}")]
    OutOfRange { min: u64, max: u64 },
    #[error("names are 1-63 characters of `a-z`, `0-9` and `-`")]
    Name,
    /// A name used twice; `first` is where it was first used (`requestable[0]`).
    #[error("`{name}` is already the name of {first}")]
    DuplicateName { name: String, first: String },
    #[error("`{value}` {error} (`15m`, `1h30m`, `1d` or `PT1H`)")]
    Duration { value: String, error: DurationError },
    #[error("must be more than 0")]
    ZeroDuration,
    #[error("`{value}` is more than {max}")]
    DurationOverCap { value: String, max: String },
    #[error("`{value}` is more than the entry's max_duration `{max}`")]
    OverEntryMaximum { value: String, max: String },
    #[error("`{name}` is not a group name or a group entity ref (`group:namespace/name`)")]
    Group { name: String },
    #[error("a resource kind such as `airflow.dag`: 1-128 characters, no spaces")]
    ResourceKind,
    #[error("a resource id: 1-512 characters, no spaces or control characters")]
    ResourceId,
    #[error("set exactly one of `resource` and `group`")]
    Target,
    #[error("must be `required` or `optional`")]
    ReasonRule,
    #[error("must be `owners` or a list of groups")]
    Approvers,
    #[error("an annotation key: 1-317 characters, no spaces or control characters")]
    AnnotationKey,
    #[error("an annotation value: at most 1024 characters, no control characters")]
    AnnotationValue,
}

/// Why a request, a review or a revocation is refused. Each has a stable snake_case
/// [`code`](Refusal::code) for API bodies, audit lines and the CLI; the message is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The requester (or reviewer, or actor) is not a user entity ref or user name.
    #[error("`{user}` is not a user entity ref")]
    InvalidUser { user: String },
    /// The requester is not a user in the catalog.
    #[error("`{user}` is not a user in the catalog")]
    UnknownRequester { user: String },
    /// The target is not a group ref, or not a resource kind and id.
    #[error("`{target}` is not a group entity ref or a resource kind and id")]
    InvalidTarget { target: String },
    /// No requestable entry matches the target.
    #[error("{target} is not requestable")]
    NotRequestable { target: String },
    /// The entry a pending request or grant names is no longer in the policy, or no longer
    /// covers its target.
    #[error("the access policy has no requestable entry `{entry}` for {target}")]
    UnknownEntry { entry: String, target: String },
    /// The group or resource is not in the catalog.
    #[error("{target} is not in the catalog")]
    UnknownTarget { target: String },
    #[error("`{user}` is not allowed to request `{entry}`")]
    RequesterNotAllowed { user: String, entry: String },
    #[error("`{user}` already has {target}")]
    AlreadyHasAccess { user: String, target: String },
    #[error("a duration must be more than 0 seconds")]
    DurationInvalid,
    #[error("{requested_s} s is more than the maximum of {max_s} s for `{entry}`")]
    DurationOverMaximum {
        requested_s: u64,
        max_s: u64,
        entry: String,
    },
    #[error("`{entry}` requires a reason")]
    ReasonRequired { entry: String },
    #[error("the reason {problem}")]
    ReasonInvalid { problem: ReasonProblem },
    /// Approvers are the target's owners, and the catalog names none.
    #[error("{target} has no owners in the catalog to approve the request")]
    NoApprovers { target: String },
    #[error("`{user}` can't review their own request")]
    SelfReview { user: String },
    #[error("`{user}` is not an approver of `{entry}`")]
    NotAnApprover { user: String, entry: String },
    #[error("`{user}` has already reviewed this request")]
    AlreadyReviewed { user: String },
    /// The approvals so far already reach the threshold.
    #[error("the request already has the {approvals} approvals it needs")]
    AlreadyDecided { approvals: usize },
    #[error("`{user}` may not revoke this grant")]
    NotAllowedToRevoke { user: String },
}

impl Refusal {
    /// The stable machine code, documented in docs/access.md.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::InvalidUser { .. } => "invalid_user",
            Refusal::UnknownRequester { .. } => "unknown_requester",
            Refusal::InvalidTarget { .. } => "invalid_target",
            Refusal::NotRequestable { .. } => "not_requestable",
            Refusal::UnknownEntry { .. } => "unknown_entry",
            Refusal::UnknownTarget { .. } => "unknown_target",
            Refusal::RequesterNotAllowed { .. } => "requester_not_allowed",
            Refusal::AlreadyHasAccess { .. } => "already_has_access",
            Refusal::DurationInvalid => "duration_invalid",
            Refusal::DurationOverMaximum { .. } => "duration_over_maximum",
            Refusal::ReasonRequired { .. } => "reason_required",
            Refusal::ReasonInvalid { .. } => "reason_invalid",
            Refusal::NoApprovers { .. } => "no_approvers",
            Refusal::SelfReview { .. } => "self_review",
            Refusal::NotAnApprover { .. } => "not_an_approver",
            Refusal::AlreadyReviewed { .. } => "already_reviewed",
            Refusal::AlreadyDecided { .. } => "already_decided",
            Refusal::NotAllowedToRevoke { .. } => "not_allowed_to_revoke",
        }
    }
}

/// What is wrong with a request's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReasonProblem {
    #[error("is longer than {max} characters")]
    TooLong { max: usize },
    #[error("contains control or bidirectional formatting characters")]
    ControlCharacters,
}
