//! Publish guards: a catalog read that looks wrong is not published. A failed volume mount or
//! a git-sync swap shows an empty directory, a half-written `org.yaml` can still be valid YAML
//! with fewer users, and a freshly started Backstage answers before it has processed its
//! catalog (no users, or groups whose members are not there yet). Each of these reads would
//! otherwise be signed and enforced at every edge.
//!
//! | Guard | Refuses a read when |
//! |---|---|
//! | `empty` | it has no users or no groups |
//! | `shrink` | users, groups or owned resources dropped by more than `max_shrink_fraction` against the last published snapshot (not on the first sync after start: there is none) |
//! | `dangling` | more than `max_dangling_fraction` of membership and hierarchy relations name users or groups the read does not hold |
//!
//! A refused read is retried (`retries`, with a backoff that doubles from `retry_backoff_ms`),
//! then the last good snapshot stays served and marked stale. An operator can publish past the
//! guards with `POST /v1/sync?force=true` or `meshgate snapshot build --force`.

use std::fmt;
use std::time::Duration;

use crate::catalog::RelationStats;

/// `guards.max_shrink_fraction` when not given.
pub const DEFAULT_MAX_SHRINK: Fraction = Fraction::from_millionths(100_000);
/// `guards.max_dangling_fraction` when not given.
pub const DEFAULT_MAX_DANGLING: Fraction = Fraction::from_millionths(10_000);
/// `guards.retries` when not given.
pub const DEFAULT_RETRIES: u32 = 2;
/// `guards.retry_backoff_ms` when not given.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// A fraction from 0 to 1, kept in millionths so configurations compare exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fraction(u32);

impl Fraction {
    pub const fn from_millionths(millionths: u32) -> Fraction {
        Fraction(millionths)
    }

    /// `value` rounded to millionths; `None` outside 0 to 1 or not a number.
    pub fn new(value: f64) -> Option<Fraction> {
        if !(0.0..=1.0).contains(&value) {
            return None;
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "0 ≤ value ≤ 1, so the product is 0 to 1,000,000"
        )]
        let millionths = (value * 1_000_000.0).round() as u32;
        Some(Fraction(millionths))
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1_000_000.0
    }
}

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", percent(self.as_f64()))
    }
}

/// The `guards:` section of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardConfig {
    pub max_shrink_fraction: Fraction,
    pub max_dangling_fraction: Fraction,
    /// Reads again after a refused (or, for the API, failed) read before giving up.
    pub retries: u32,
    /// Wait before the first retry; doubled for each next one.
    pub retry_backoff: Duration,
}

impl Default for GuardConfig {
    fn default() -> GuardConfig {
        GuardConfig {
            max_shrink_fraction: DEFAULT_MAX_SHRINK,
            max_dangling_fraction: DEFAULT_MAX_DANGLING,
            retries: DEFAULT_RETRIES,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
        }
    }
}

/// What the guards compare between reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatalogCounts {
    pub users: usize,
    pub groups: usize,
    pub owned: usize,
}

/// Why a read was not published.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardRefusal {
    #[error("guard `empty` refused the catalog read: {users} users, {groups} groups")]
    Empty { users: usize, groups: usize },
    #[error(
        "guard `shrink` refused the catalog read: {what} {before} → {after} (−{}%, more than {max})",
        percent(shrunk_by(*.before, *.after))
    )]
    Shrink {
        what: &'static str,
        before: usize,
        after: usize,
        max: Fraction,
    },
    #[error(
        "guard `dangling` refused the catalog read: {dangling} of {relations} membership relations name missing users or groups ({}%, more than {max})",
        percent(RelationStats { membership_relations: *.relations, dangling: *.dangling }.dangling_fraction())
    )]
    Dangling {
        dangling: usize,
        relations: usize,
        max: Fraction,
    },
}

impl GuardRefusal {
    /// Every guard name, so each refusal counter exists from the start.
    pub const GUARDS: [&'static str; 3] = ["empty", "shrink", "dangling"];

    /// The guard's name, the `guard` label of `meshgate_cp_guard_refusals_total`.
    pub fn guard(&self) -> &'static str {
        match self {
            GuardRefusal::Empty { .. } => "empty",
            GuardRefusal::Shrink { .. } => "shrink",
            GuardRefusal::Dangling { .. } => "dangling",
        }
    }
}

/// Checks one read against `previous` (the counts of the last published snapshot; `None` on
/// the first sync after start, which skips the shrink guard).
pub fn check(
    config: &GuardConfig,
    read: CatalogCounts,
    relations: RelationStats,
    previous: Option<CatalogCounts>,
) -> Result<(), GuardRefusal> {
    if read.users == 0 || read.groups == 0 {
        return Err(GuardRefusal::Empty {
            users: read.users,
            groups: read.groups,
        });
    }
    if relations.dangling_fraction() > config.max_dangling_fraction.as_f64() {
        return Err(GuardRefusal::Dangling {
            dangling: relations.dangling,
            relations: relations.membership_relations,
            max: config.max_dangling_fraction,
        });
    }
    if let Some(previous) = previous {
        for (what, before, after) in [
            ("users", previous.users, read.users),
            ("groups", previous.groups, read.groups),
            ("owned resources", previous.owned, read.owned),
        ] {
            if shrunk_by(before, after) > config.max_shrink_fraction.as_f64() {
                return Err(GuardRefusal::Shrink {
                    what,
                    before,
                    after,
                    max: config.max_shrink_fraction,
                });
            }
        }
    }
    Ok(())
}

/// The fraction lost going from `before` to `after`; 0 when nothing was lost.
fn shrunk_by(before: usize, after: usize) -> f64 {
    if after >= before || before == 0 {
        return 0.0;
    }
    #[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let fraction = (before - after) as f64 / before as f64;
    fraction
}

/// `fraction` as a percentage with one decimal.
fn percent(fraction: f64) -> String {
    format!("{:.1}", fraction * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(users: usize, groups: usize, owned: usize) -> CatalogCounts {
        CatalogCounts {
            users,
            groups,
            owned,
        }
    }

    fn relations(membership_relations: usize, dangling: usize) -> RelationStats {
        RelationStats {
            membership_relations,
            dangling,
        }
    }

    #[test]
    fn each_guard_refuses_what_it_should_and_nothing_else() {
        let config = GuardConfig::default();
        let clean = relations(100, 0);
        let before = Some(counts(100, 10, 50));
        let cases: Vec<(
            CatalogCounts,
            RelationStats,
            Option<CatalogCounts>,
            Option<&str>,
        )> = vec![
            (counts(100, 10, 50), clean, before, None),
            (counts(0, 10, 50), clean, before, Some("empty")),
            (counts(100, 0, 50), clean, None, Some("empty")),
            (counts(0, 0, 0), relations(0, 0), None, Some("empty")),
            // Exactly 10% smaller passes, more does not.
            (counts(90, 9, 45), clean, before, None),
            (counts(89, 10, 50), clean, before, Some("shrink")),
            (counts(100, 8, 50), clean, before, Some("shrink")),
            (counts(100, 10, 44), clean, before, Some("shrink")),
            // The first sync after start has nothing to shrink from.
            (counts(1, 1, 0), clean, None, None),
            // Growing is always fine.
            (counts(1000, 100, 500), clean, before, None),
            (counts(100, 10, 50), relations(100, 1), before, None),
            (
                counts(100, 10, 50),
                relations(100, 2),
                before,
                Some("dangling"),
            ),
            (
                counts(100, 10, 50),
                relations(100, 2),
                None,
                Some("dangling"),
            ),
        ];
        for (read, stats, previous, expected) in cases {
            let got = check(&config, read, stats, previous).err();
            assert_eq!(
                got.as_ref().map(GuardRefusal::guard),
                expected,
                "{read:?} {stats:?} {previous:?}: {got:?}"
            );
        }
    }

    #[test]
    fn refusals_name_the_guard_and_the_figures() {
        let config = GuardConfig::default();
        let shrink = check(
            &config,
            counts(19, 10, 5),
            relations(10, 0),
            Some(counts(51, 10, 5)),
        );
        assert_eq!(
            shrink.unwrap_err().to_string(),
            "guard `shrink` refused the catalog read: users 51 → 19 (−62.7%, more than 10.0%)"
        );
        let dangling = check(&config, counts(5, 2, 0), relations(300, 150), None);
        assert_eq!(
            dangling.unwrap_err().to_string(),
            "guard `dangling` refused the catalog read: 150 of 300 membership relations name missing users or groups (50.0%, more than 1.0%)"
        );
    }

    #[test]
    fn fractions_stay_between_zero_and_one() {
        assert_eq!(Fraction::new(0.1), Some(DEFAULT_MAX_SHRINK));
        assert_eq!(Fraction::new(1.0).map(Fraction::as_f64), Some(1.0));
        for bad in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            assert_eq!(Fraction::new(bad), None, "{bad}");
        }
    }
}
