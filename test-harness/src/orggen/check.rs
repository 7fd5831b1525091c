//! A decoded snapshot against the reference: every user's closed groups (the user's groups
//! unioned with each one's `ancestors_of`, right whether the snapshot stores closed or direct
//! memberships), every user's email, and every resource's owners.

use std::collections::BTreeMap;

use meshgate_core::snapshot::Snapshot;

use super::generate::Org;
use super::reference::Reference;

/// Samples kept per report; the count covers all.
const MAX_SAMPLES: usize = 20;
/// Groups named per side in one user sample.
const MAX_NAMED: usize = 5;

/// One difference between the snapshot and the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// `user groups`, `user email`, `user missing`, `owners`, `count`.
    pub kind: &'static str,
    /// The user ref, resource `kind/id`, or counted table.
    pub subject: String,
    pub detail: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}`: {}", self.kind, self.subject, self.detail)
    }
}

/// What [`check_snapshot`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub users_checked: usize,
    pub owned_checked: usize,
    /// Every mismatch, by kind.
    pub mismatches: BTreeMap<&'static str, usize>,
    /// The first few.
    pub samples: Vec<Mismatch>,
}

impl CheckReport {
    pub fn total(&self) -> usize {
        self.mismatches.values().sum()
    }

    fn record(&mut self, mismatch: Mismatch) {
        *self.mismatches.entry(mismatch.kind).or_default() += 1;
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(mismatch);
        }
    }
}

/// Compares `snapshot` with `reference` for every user and every owned resource of `org`.
pub fn check_snapshot(snapshot: &Snapshot, org: &Org, reference: &Reference) -> CheckReport {
    let mut report = CheckReport::default();
    check_users(snapshot, org, reference, &mut report);
    check_owned(snapshot, reference, &mut report);
    report
}

/// A user's groups in the snapshot, closed through `ancestors_of`, as snapshot indices.
fn closed_in_snapshot(snapshot: &Snapshot, direct: &[u32]) -> Vec<u32> {
    let mut closed: Vec<u32> = direct.to_vec();
    for group in direct {
        closed.extend(snapshot.ancestors_of(*group).indices());
    }
    closed.sort_unstable();
    closed.dedup();
    closed
}

fn check_users(snapshot: &Snapshot, org: &Org, reference: &Reference, report: &mut CheckReport) {
    // Org group index → snapshot group index; `None` when the snapshot lacks the group.
    let to_snapshot: Vec<Option<u32>> = (0..org.group_count())
        .map(|group| {
            org.group_ref(group)
                .and_then(|group_ref| snapshot.group_index(&group_ref))
        })
        .collect();
    let users = Reference::users(org);
    if snapshot.user_count() != users.len() {
        report.record(Mismatch {
            kind: "count",
            subject: "users".into(),
            detail: format!(
                "snapshot has {}, catalog has {}",
                snapshot.user_count(),
                users.len()
            ),
        });
    }
    for (index, (user_ref, email)) in users.iter().enumerate() {
        report.users_checked += 1;
        let Some(view) = snapshot.user(user_ref) else {
            report.record(Mismatch {
                kind: "user missing",
                subject: user_ref.clone(),
                detail: "not in the snapshot".into(),
            });
            continue;
        };
        let expected_org = reference.user_group_indices(org, index);
        let mut expected: Vec<u32> = expected_org
            .iter()
            .filter_map(|group| to_snapshot.get(*group as usize).copied().flatten())
            .collect();
        expected.sort_unstable();
        let found = closed_in_snapshot(snapshot, &view.groups.indices());
        if expected.len() != expected_org.len() || found != expected {
            let name = |group: &u32| snapshot.group_ref(*group).unwrap_or("?").to_owned();
            let missing: Vec<String> = expected_org
                .iter()
                .filter(|group| {
                    to_snapshot
                        .get(**group as usize)
                        .copied()
                        .flatten()
                        .is_none_or(|g| found.binary_search(&g).is_err())
                })
                .take(MAX_NAMED)
                .filter_map(|group| org.group_ref(*group as usize))
                .collect();
            let extra: Vec<String> = found
                .iter()
                .filter(|group| expected.binary_search(group).is_err())
                .take(MAX_NAMED)
                .map(name)
                .collect();
            report.record(Mismatch {
                kind: "user groups",
                subject: user_ref.clone(),
                detail: format!(
                    "{} expected, {} found; missing {missing:?}, extra {extra:?}",
                    expected_org.len(),
                    found.len()
                ),
            });
        }
        let by_email = snapshot.user_by_email(email).map(|v| v.entity_ref);
        if by_email != Some(user_ref.as_str()) {
            report.record(Mismatch {
                kind: "user email",
                subject: user_ref.clone(),
                detail: format!("`{email}` maps to {by_email:?}"),
            });
        }
    }
}

fn check_owned(snapshot: &Snapshot, reference: &Reference, report: &mut CheckReport) {
    let owned = reference.owned();
    let with_owners = owned.values().filter(|owners| !owners.is_empty()).count();
    if snapshot.owned_count() < with_owners || snapshot.owned_count() > owned.len() {
        report.record(Mismatch {
            kind: "count",
            subject: "owned".into(),
            detail: format!(
                "snapshot has {}, catalog has {with_owners} owned resources (+{} without owners)",
                snapshot.owned_count(),
                owned.len() - with_owners
            ),
        });
    }
    for ((kind, id), owners) in owned {
        report.owned_checked += 1;
        let found: Vec<String> = snapshot
            .owners_of(kind, id)
            .map(|set| set.iter().map(str::to_owned).collect())
            .unwrap_or_default();
        let mut found = found;
        found.sort();
        if &found != owners {
            report.record(Mismatch {
                kind: "owners",
                subject: format!("{kind}/{id}"),
                detail: format!("expected {owners:?}, found {found:?}"),
            });
        }
    }
}
