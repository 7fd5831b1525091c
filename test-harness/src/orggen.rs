//! An organisation-scale Backstage catalog, generated deterministically from a seed, with an
//! independent reference answer, for proving the catalog → edge pipeline at scale.
//!
//! [`Org::generate`] builds users (1–3 direct groups each, emails), groups nested either
//! `shallow` (at most 8 levels) or `deep` (each group's parent among the 50 groups before it,
//! so chains reach hundreds of levels) and owned entities carrying the ownership annotations
//! the control plane reads. It adds the content real catalogs have and a pipeline must
//! survive: a parent cycle, dangling references, duplicate definitions, mixed-case references
//! and, optionally, one huge group whose members do not exist.
//!
//! Outputs: a directory of multi-document descriptor YAML ([`Org::write_dir`]) and the
//! processed entities a real Backstage's `by-query` answers ([`Org::write_backstage_json`]).
//! [`Reference`] computes each user's closed groups and each resource's owners with its own
//! simple code, and [`check_snapshot`] compares a decoded snapshot against it.
//! [`Org::move_out`] / [`Org::move_in`] change one user and [`Org::rewrite_files`] writes the
//! touched files the way git-sync does (temporary file, then rename).
//!
//! # How the adversarial content must resolve
//!
//! These are the rules the reference applies, chosen from the control plane's documented
//! behaviour and `/work/shared/design.md` (fail closed, order independent):
//! - **Mixed case**: references compare case-insensitively; every ref is lowercased
//!   (`Group:Default/Data-Eng` is `group:default/data-eng`), emails are lowercased.
//! - **Cycle** (`loop-a` → `loop-b` → `loop-c` → `loop-a`, and `data-eng` lists `loop-a` as a
//!   child): the groups of a cycle are one group: each has every other as ancestor, plus
//!   everything above any of them (`data-eng`). Nothing is dropped and nothing loops.
//! - **Dangling refs**: a `memberOf` a missing group, a group member naming a missing user and
//!   an owner that does not exist are ignored: no user, group or owner is invented. A resource
//!   whose only owner is missing has no owners (absent from the snapshot or published with
//!   none: both deny).
//! - **Duplicates**: identical copies of an entity (one user and one component defined in two
//!   files) are one entity. A *differing* copy (the stray parentless copy of a group) must not
//!   grant more than either definition, and the outcome must not depend on file order: the
//!   stray copy wins, so that group loses its parent (and anything only its original definition
//!   listed); memberships users declare on their side still count.
//! - **Huge group**: its members do not exist; it adds one group with no members.

mod check;
mod generate;
mod json;
mod mutate;
mod reference;
mod yaml;

use std::path::PathBuf;

pub use check::{check_snapshot, CheckReport, Mismatch};
pub use generate::{Org, GROUP_RULE_GROUPS, ROOT_GROUPS};
pub use reference::Reference;
pub use yaml::CatalogFile;

/// How groups nest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// At most 8 levels.
    Shallow,
    /// Each group's parent among the 50 groups before it: chains of hundreds of levels.
    Deep,
}

impl std::str::FromStr for Nesting {
    type Err = OrgGenError;

    fn from_str(text: &str) -> Result<Nesting, OrgGenError> {
        match text {
            "shallow" => Ok(Nesting::Shallow),
            "deep" => Ok(Nesting::Deep),
            other => Err(OrgGenError::UnknownNesting {
                value: other.to_owned(),
            }),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSpec {
    /// Every user, the adversarial ones included.
    pub users: usize,
    /// Every group, the three groups of the cycle included (not the huge group).
    pub groups: usize,
    /// Owned entities (components and resources with an ownership annotation).
    pub entities: usize,
    pub nesting: Nesting,
    pub seed: u64,
    /// Members of the huge group, none of which exist; 0 leaves the group out.
    pub huge_group_members: usize,
}

impl OrgSpec {
    /// The huge group's size when it is asked for without a size.
    pub const HUGE_GROUP_MEMBERS: usize = 300_000;
    /// The smallest catalog that still holds every adversarial case.
    pub const MIN_USERS: usize = 50;
    pub const MIN_GROUPS: usize = 16;
    pub const MIN_ENTITIES: usize = 8;

    /// The scale: 100,001 users, 10,004 groups, 50,000 owned entities, deep nesting.
    pub fn organisation() -> OrgSpec {
        OrgSpec {
            users: 100_001,
            groups: 10_004,
            entities: 50_000,
            nesting: Nesting::Deep,
            seed: 20_260_901,
            huge_group_members: 0,
        }
    }

    /// A tenth of the scale, for a fast check.
    pub fn quick() -> OrgSpec {
        OrgSpec {
            users: 10_001,
            groups: 1_004,
            entities: 5_000,
            ..OrgSpec::organisation()
        }
    }

    fn check(&self) -> Result<(), OrgGenError> {
        let small = [
            ("users", self.users, OrgSpec::MIN_USERS),
            ("groups", self.groups, OrgSpec::MIN_GROUPS),
            ("entities", self.entities, OrgSpec::MIN_ENTITIES),
        ];
        for (what, value, min) in small {
            if value < min {
                return Err(OrgGenError::TooSmall { what, value, min });
            }
        }
        if self.users > u32::MAX as usize || self.groups > u32::MAX as usize {
            return Err(OrgGenError::TooLarge);
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OrgGenError {
    #[error("nesting `{value}` is neither `shallow` nor `deep`")]
    UnknownNesting { value: String },
    #[error("{what}: {value} is fewer than the {min} the adversarial cases need")]
    TooSmall {
        what: &'static str,
        value: usize,
        min: usize,
    },
    #[error("more users or groups than 32-bit indices hold")]
    TooLarge,
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write JSON to `{path}`: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("no user {user} in this organisation")]
    UnknownUser { user: usize },
    #[error("no group {group} in this organisation")]
    UnknownGroup { group: usize },
    #[error("user {user} is not a direct member of group {group}")]
    NotAMember { user: usize, group: usize },
    #[error("user {user} is already a direct member of group {group}")]
    AlreadyAMember { user: usize, group: usize },
}
