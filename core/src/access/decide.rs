//! The decisions over an [`AccessPolicy`]: [`assess`] a new request, [`review`] a pending
//! one, [`may_revoke`] a grant. Pure: what they need of the catalog comes through
//! [`AccessFacts`], what is stored comes in as arguments.

use super::policy::{AccessPolicy, ApproverSpec, AutoApprove, Requestable};
use super::{normalize_user, AccessFacts, AccessTarget, Refusal, RequestDraft};
use crate::identity::groupref::GroupName;

/// What becomes of a request that may be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// `condition` (an `auto_approve` name of `entry`) held: grant at once.
    AutoApproved { entry: String, condition: String },
    /// Wait for `approvals_needed` approvals from `approvers`.
    Pending {
        entry: String,
        approvers: Approvers,
        approvals_needed: u8,
    },
}

/// Who may approve a pending request, resolved when it was made (for notifications and
/// listings; [`review`] checks again against the catalog of the moment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approvers {
    /// The target's owners: members of these groups, and these users.
    Owners { owners: Vec<String> },
    /// Members of these groups.
    Groups { groups: Vec<String> },
}

/// A stored request that awaits reviews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    pub requester: String,
    pub target: AccessTarget,
    /// The requestable entry [`assess`] chose.
    pub entry: String,
    /// Users who approved so far.
    pub approvals: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewVerdict {
    Approve,
    Deny,
}

/// What a review does to a pending request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewOutcome {
    /// The threshold is reached with this approval: grant.
    Approved { approvals: usize },
    /// Counted; more approvals are needed.
    StillPending { approvals: usize, needed: u8 },
    /// One deny decides.
    Denied,
}

/// A grant, as far as revoking it is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRef {
    pub grantee: String,
    pub target: AccessTarget,
    /// The requestable entry it was granted under.
    pub entry: String,
}

/// Why an actor may revoke a grant (for the audit line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeRight {
    /// The grantee gives it up.
    Grantee,
    /// A member of an `admins` group.
    Admin,
    /// An approver of the entry the grant was made under.
    Approver,
    /// An owner of the target.
    Owner,
}

/// Decides whether `draft` may be made and how it is approved. Checks, in this order (the
/// first that fails is the refusal): refs well formed (`invalid_user`, `invalid_target`,
/// `reason_invalid`); the requester is a catalog user (`unknown_requester`); an entry covers
/// the target (`not_requestable`); the target is in the catalog (`unknown_target`); the
/// requester may ask (`requester_not_allowed`) and does not have it already
/// (`already_has_access`); the duration (`duration_invalid`, `duration_over_maximum`); the
/// reason (`reason_required`); someone can approve (`no_approvers`, unless auto-approved).
pub fn assess(
    policy: &AccessPolicy,
    draft: &RequestDraft,
    facts: &dyn AccessFacts,
) -> Result<Assessment, Refusal> {
    let draft = draft.normalized()?;
    let requester = draft.requester.as_str();
    let target = &draft.target;
    if !facts.user_exists(requester) {
        return Err(Refusal::UnknownRequester {
            user: requester.to_owned(),
        });
    }
    let entry = policy
        .entry_for(target)
        .ok_or_else(|| Refusal::NotRequestable {
            target: target.to_string(),
        })?;
    if !facts.exists(target) {
        return Err(Refusal::UnknownTarget {
            target: target.to_string(),
        });
    }
    let groups = facts.groups_of(requester);
    if let Some(requesters) = &entry.requesters {
        if !member_of_any(&groups, requesters) {
            return Err(Refusal::RequesterNotAllowed {
                user: requester.to_owned(),
                entry: entry.name.clone(),
            });
        }
    }
    let owners = owners(target, facts);
    let has_it = match target {
        AccessTarget::Group(group) => contains(&groups, group),
        AccessTarget::Resource { .. } => is_owner(requester, &groups, &owners),
    };
    if has_it {
        return Err(Refusal::AlreadyHasAccess {
            user: requester.to_owned(),
            target: target.to_string(),
        });
    }
    if draft.duration_s == 0 {
        return Err(Refusal::DurationInvalid);
    }
    if draft.duration_s > entry.max_duration_s {
        return Err(Refusal::DurationOverMaximum {
            requested_s: draft.duration_s,
            max_s: entry.max_duration_s,
            entry: entry.name.clone(),
        });
    }
    if entry.reason_required && draft.reason.is_none() {
        return Err(Refusal::ReasonRequired {
            entry: entry.name.clone(),
        });
    }
    let asked = Asked {
        requester,
        groups: &groups,
        target,
        owners: &owners,
        duration_s: draft.duration_s,
    };
    if let Some(rule) = entry
        .auto_approve
        .iter()
        .find(|rule| auto_approves(rule, &asked, facts))
    {
        return Ok(Assessment::AutoApproved {
            entry: entry.name.clone(),
            condition: rule.name.clone(),
        });
    }
    let approvers = match &entry.approvers {
        ApproverSpec::Owners if owners.is_empty() => {
            return Err(Refusal::NoApprovers {
                target: target.to_string(),
            })
        }
        ApproverSpec::Owners => Approvers::Owners { owners },
        ApproverSpec::Groups(groups) => Approvers::Groups {
            groups: groups.iter().map(|g| g.catalog_ref.clone()).collect(),
        },
    };
    Ok(Assessment::Pending {
        entry: entry.name.clone(),
        approvers,
        approvals_needed: entry.approvals,
    })
}

/// Records `reviewer`'s verdict on `pending`. Refused when the reviewer is the requester
/// (`self_review`), is not an approver of the entry now (`not_an_approver`; admins are not
/// implicit approvers), the approvals already reach the threshold (`already_decided`), or the
/// reviewer already approved (`already_reviewed`). One deny decides.
pub fn review(
    policy: &AccessPolicy,
    pending: &PendingRequest,
    reviewer: &str,
    facts: &dyn AccessFacts,
    verdict: ReviewVerdict,
) -> Result<ReviewOutcome, Refusal> {
    let reviewer = user(reviewer)?;
    let requester = user(&pending.requester)?;
    let (entry, target) = stored_entry(policy, &pending.entry, &pending.target)?;
    if reviewer == requester {
        return Err(Refusal::SelfReview { user: reviewer });
    }
    if !is_approver(entry, &target, &reviewer, facts) {
        return Err(Refusal::NotAnApprover {
            user: reviewer,
            entry: entry.name.clone(),
        });
    }
    let mut approved: Vec<String> = pending
        .approvals
        .iter()
        .filter_map(|approver| normalize_user(approver))
        .filter(|approver| *approver != requester)
        .collect();
    approved.sort();
    approved.dedup();
    if approved.len() >= usize::from(entry.approvals) {
        return Err(Refusal::AlreadyDecided {
            approvals: approved.len(),
        });
    }
    if approved.contains(&reviewer) {
        return Err(Refusal::AlreadyReviewed { user: reviewer });
    }
    Ok(match verdict {
        ReviewVerdict::Deny => ReviewOutcome::Denied,
        ReviewVerdict::Approve => {
            let approvals = approved.len().saturating_add(1);
            if approvals >= usize::from(entry.approvals) {
                ReviewOutcome::Approved { approvals }
            } else {
                ReviewOutcome::StillPending {
                    approvals,
                    needed: entry.approvals,
                }
            }
        }
    })
}

/// Whether `actor` may revoke `grant`: the grantee, an admin, an approver of the grant's
/// entry, or an owner of the target. Otherwise `not_allowed_to_revoke`.
pub fn may_revoke(
    policy: &AccessPolicy,
    grant: &GrantRef,
    actor: &str,
    facts: &dyn AccessFacts,
) -> Result<RevokeRight, Refusal> {
    let actor = user(actor)?;
    if normalize_user(&grant.grantee).as_deref() == Some(actor.as_str()) {
        return Ok(RevokeRight::Grantee);
    }
    if is_admin(policy, &actor, facts) {
        return Ok(RevokeRight::Admin);
    }
    let Some(target) = grant.target.normalized() else {
        return Err(Refusal::NotAllowedToRevoke { user: actor });
    };
    // The entry may have left the policy since; its target's owners can still revoke.
    if let Some(entry) = policy.entry(&grant.entry) {
        if entry.target.matches(&target) && is_approver(entry, &target, &actor, facts) {
            return Ok(RevokeRight::Approver);
        }
    }
    if is_owner(&actor, &facts.groups_of(&actor), &owners(&target, facts)) {
        return Ok(RevokeRight::Owner);
    }
    Err(Refusal::NotAllowedToRevoke { user: actor })
}

/// Whether `user` is a member of an `admins` group (may list and revoke everything).
pub fn is_admin(policy: &AccessPolicy, user: &str, facts: &dyn AccessFacts) -> bool {
    let Some(user) = normalize_user(user) else {
        return false;
    };
    !policy.admins.is_empty() && member_of_any(&facts.groups_of(&user), &policy.admins)
}

/// What the auto-approval conditions look at.
struct Asked<'a> {
    requester: &'a str,
    groups: &'a [String],
    target: &'a AccessTarget,
    owners: &'a [String],
    duration_s: u64,
}

/// Every condition the rule sets holds.
fn auto_approves(rule: &AutoApprove, asked: &Asked<'_>, facts: &dyn AccessFacts) -> bool {
    let short_enough = rule
        .max_duration_s
        .is_none_or(|max| asked.duration_s <= max);
    let in_group = rule
        .requester_in
        .as_ref()
        .is_none_or(|groups| member_of_any(asked.groups, groups));
    let near = !rule.requester_near_owner || near_owner(asked, facts);
    let unannotated = rule
        .unless_annotation
        .iter()
        .all(|(key, value)| facts.annotation(asked.target, key).as_deref() != Some(value.as_str()));
    short_enough && in_group && near && unannotated
}

/// A direct group of the requester is a parent, child or sibling (shares a parent) of an
/// owning group. Direct groups, not closed ones: every user is in the root's subtree, and
/// a closed list would make everyone near anything one level below a shared ancestor.
fn near_owner(asked: &Asked<'_>, facts: &dyn AccessFacts) -> bool {
    let owning: Vec<&String> = asked
        .owners
        .iter()
        .filter(|owner| !is_user_ref(owner))
        .collect();
    if owning.is_empty() {
        return false;
    }
    let direct = facts.direct_groups_of(asked.requester);
    owning.iter().any(|owner| {
        let owner_parents = facts.parents_of(owner);
        direct.iter().any(|group| {
            if group.eq_ignore_ascii_case(owner) {
                return false;
            }
            let parents = facts.parents_of(group);
            contains(&owner_parents, group)
                || contains(&parents, owner)
                || parents.iter().any(|p| contains(&owner_parents, p))
        })
    })
}

/// The target's owners; a group the catalog names no owners for is owned by itself (its
/// members approve requests to join it).
fn owners(target: &AccessTarget, facts: &dyn AccessFacts) -> Vec<String> {
    let owners = facts.owners_of(target);
    match target {
        AccessTarget::Group(group) if owners.is_empty() => vec![group.clone()],
        _ => owners,
    }
}

fn is_approver(
    entry: &Requestable,
    target: &AccessTarget,
    user: &str,
    facts: &dyn AccessFacts,
) -> bool {
    let groups = facts.groups_of(user);
    match &entry.approvers {
        ApproverSpec::Owners => is_owner(user, &groups, &owners(target, facts)),
        ApproverSpec::Groups(approvers) => member_of_any(&groups, approvers),
    }
}

/// The owning user, or a member (closed groups) of an owning group.
fn is_owner(user: &str, groups: &[String], owners: &[String]) -> bool {
    owners
        .iter()
        .any(|owner| owner.eq_ignore_ascii_case(user) || contains(groups, owner))
}

fn member_of_any(groups: &[String], wanted: &[GroupName]) -> bool {
    wanted
        .iter()
        .any(|group| contains(groups, &group.catalog_ref))
}

fn contains(refs: &[String], wanted: &str) -> bool {
    refs.iter().any(|r| r.eq_ignore_ascii_case(wanted))
}

fn is_user_ref(entity_ref: &str) -> bool {
    entity_ref
        .get(..5)
        .is_some_and(|kind| kind.eq_ignore_ascii_case("user:"))
}

fn user(user: &str) -> Result<String, Refusal> {
    normalize_user(user).ok_or_else(|| Refusal::InvalidUser {
        user: user.to_owned(),
    })
}

/// The entry a stored request or grant names, if it still covers the target.
fn stored_entry<'p>(
    policy: &'p AccessPolicy,
    name: &str,
    target: &AccessTarget,
) -> Result<(&'p Requestable, AccessTarget), Refusal> {
    let unknown = || Refusal::UnknownEntry {
        entry: name.to_owned(),
        target: target.to_string(),
    };
    let target = target.normalized().ok_or_else(unknown)?;
    let entry = policy
        .entry(name)
        .filter(|entry| entry.target.matches(&target))
        .ok_or_else(unknown)?;
    Ok((entry, target))
}
