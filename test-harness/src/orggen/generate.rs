//! The organisation itself: groups, users and owned entities as written in the catalog, and
//! the seeded generation of them.

use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};

use super::{Nesting, OrgGenError, OrgSpec};
use crate::text::uuid_v4;

/// The root groups, in this order at the front of the group list. The demo rules allow
/// `GET /api/v1/dags` to `data-eng` and `data-analysts`.
pub const ROOT_GROUPS: [&str; 4] = ["data-eng", "data-analysts", "platform-team", "ci"];
/// The groups the demo's `airflow-read` rule names.
pub const GROUP_RULE_GROUPS: [&str; 2] = ["data-eng", "data-analysts"];
/// Deep nesting: a group's parent is one of this many groups before it.
const DEEP_WINDOW: usize = 50;
/// Shallow nesting: depth 0 (roots) to this, so at most 8 levels.
const SHALLOW_MAX_DEPTH: usize = 7;
/// The cycle's groups, at the end of the group list; `data-eng` lists the first as a child.
pub(crate) const CYCLE: [&str; 3] = ["loop-a", "loop-b", "loop-c"];
/// Users with a `memberOf` naming a group that does not exist.
const DANGLING_MEMBER_OF: usize = 20;
/// Groups listing a member that does not exist.
const DANGLING_MEMBERS: usize = 10;
/// Users put into a group of the cycle.
const CYCLE_USERS: usize = 30;

/// Which entity writes a relation down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// `User.spec.memberOf`, or the child's `Group.spec.parent`.
    Own,
    /// `Group.spec.members`, or the parent's `Group.spec.children`.
    Other,
}

/// How a reference to a group is spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spelling {
    /// The bare name: `team-x` (kind and namespace implied).
    Plain,
    /// Full, with other letter case: `Group:Default/Team-X`.
    MixedCase,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    /// `metadata.name` as written (some with capitals).
    pub name: String,
    pub parent: Option<usize>,
    /// Which side writes the parent relation down.
    pub parent_side: Side,
    pub parent_spelling: Spelling,
    /// Extra `spec.children` entries not mirrored by the child's own `spec.parent`.
    pub extra_children: Vec<usize>,
    /// `spec.members` entries naming users that do not exist.
    pub ghost_members: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Membership {
    pub group: usize,
    pub side: Side,
    pub spelling: Spelling,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    /// `metadata.name` as written (some with capitals).
    pub name: String,
    /// `spec.profile.email` as written (some with capitals).
    pub email: String,
    pub memberships: Vec<Membership>,
    /// `memberOf` entries naming groups that do not exist.
    pub ghost_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    Group(usize, Spelling),
    User(usize),
    /// A group that does not exist.
    Missing(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnedEntity {
    /// `Component` or `Resource`.
    pub kind: &'static str,
    pub name: String,
    /// The annotation key and its value as written.
    pub annotation: &'static str,
    pub value: String,
    /// The (kind, id) the control plane must publish for it.
    pub resource: (String, String),
    pub owner: Owner,
}

/// What makes the catalog adversarial, beyond mixed case and dangling refs kept on entities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Adversarial {
    /// Indices of the cycle's groups.
    pub cycle: [usize; 3],
    /// The group with a stray parentless copy in another file.
    pub stray_copy_of: usize,
    /// A user defined identically in two files.
    pub duplicated_user: usize,
    /// An owned entity defined identically in two files.
    pub duplicated_entity: usize,
    /// Members of the huge group (none exist); 0: no huge group.
    pub huge_group_members: usize,
}

/// A generated organisation, as written in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub(crate) spec: OrgSpec,
    pub(crate) groups: Vec<Group>,
    pub(crate) users: Vec<User>,
    pub(crate) owned: Vec<OwnedEntity>,
    pub(crate) adversarial: Adversarial,
}

impl Org {
    /// Generates the organisation `spec` describes; the same spec gives the same organisation.
    pub fn generate(spec: &OrgSpec) -> Result<Org, OrgGenError> {
        spec.check()?;
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let mut groups = generate_groups(spec, &mut rng);
        let mut users = generate_users(spec, groups.len(), &mut rng);
        let owned = generate_owned(spec, &users, groups.len(), &mut rng);
        let adversarial = add_adversarial(spec, &mut groups, &mut users, &mut rng);
        Ok(Org {
            spec: spec.clone(),
            groups,
            users,
            owned,
            adversarial,
        })
    }

    pub fn spec(&self) -> &OrgSpec {
        &self.spec
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn owned_count(&self) -> usize {
        self.owned.len()
    }

    /// The user's entity ref, lowercased (`user:default/ann.lee12`).
    pub fn user_ref(&self, user: usize) -> Option<String> {
        self.users.get(user).map(|u| user_ref(&u.name))
    }

    /// The user's email as written in the catalog.
    pub fn user_email(&self, user: usize) -> Option<&str> {
        self.users.get(user).map(|u| u.email.as_str())
    }

    /// The group's entity ref, lowercased.
    pub fn group_ref(&self, group: usize) -> Option<String> {
        self.groups.get(group).map(|g| group_ref(&g.name))
    }

    /// The index of the group whose ref is `group_ref` (any letter case).
    pub fn group_index(&self, group_ref: &str) -> Option<usize> {
        let wanted = group_ref.to_lowercase();
        self.groups
            .iter()
            .position(|g| self::group_ref(&g.name) == wanted)
    }

    /// The groups the user is a direct member of, as written (dangling ones aside).
    pub fn direct_groups(&self, user: usize) -> Vec<usize> {
        self.users
            .get(user)
            .map(|u| u.memberships.iter().map(|m| m.group).collect())
            .unwrap_or_default()
    }

    /// The longest parent chain, in levels (a root alone is 1); cycles count once.
    pub fn depth(&self) -> usize {
        let mut longest = 0;
        for start in 0..self.groups.len() {
            let mut seen = vec![false; self.groups.len()];
            let mut levels = 0;
            let mut at = Some(start);
            while let Some(group) = at {
                match seen.get_mut(group) {
                    Some(visited) if !*visited => *visited = true,
                    _ => break,
                }
                levels += 1;
                at = self.groups.get(group).and_then(|g| g.parent);
            }
            longest = longest.max(levels);
        }
        longest
    }
}

pub(crate) fn user_ref(name: &str) -> String {
    format!("user:default/{}", name.to_lowercase())
}

pub(crate) fn group_ref(name: &str) -> String {
    format!("group:default/{}", name.to_lowercase())
}

/// A lowercase word of `min..=max` letters.
fn word(rng: &mut StdRng, min: usize, max: usize) -> String {
    let len = rng.gen_range(min..=max);
    (0..len)
        .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
        .collect()
}

/// The first letter and every letter after a `-` or `.` in capitals.
pub(crate) fn capitalized(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = matches!(c, '-' | '.');
    }
    out
}

fn spelling(rng: &mut StdRng, mixed_percent: u32) -> Spelling {
    if rng.gen_ratio(mixed_percent, 100) {
        Spelling::MixedCase
    } else {
        Spelling::Plain
    }
}

/// Regular groups first (roots at the front), the cycle's groups last.
fn generate_groups(spec: &OrgSpec, rng: &mut StdRng) -> Vec<Group> {
    let regular = spec.groups.saturating_sub(CYCLE.len());
    let mut groups: Vec<Group> = Vec::with_capacity(spec.groups);
    let mut depth: Vec<usize> = Vec::with_capacity(regular);
    for index in 0..regular {
        let name = match ROOT_GROUPS.get(index) {
            Some(root) => (*root).to_owned(),
            None => {
                let name = format!("team-{}-{index}", word(rng, 3, 9));
                if rng.gen_ratio(3, 100) {
                    capitalized(&name)
                } else {
                    name
                }
            }
        };
        let parent = (index >= ROOT_GROUPS.len()).then(|| match spec.nesting {
            Nesting::Deep => rng.gen_range(index.saturating_sub(DEEP_WINDOW)..index),
            Nesting::Shallow => {
                let mut parent = rng.gen_range(0..index);
                while depth.get(parent).is_some_and(|d| *d >= SHALLOW_MAX_DEPTH) {
                    parent = groups.get(parent).and_then(|g| g.parent).unwrap_or(0);
                }
                parent
            }
        });
        depth.push(parent.map_or(0, |p| depth.get(p).map_or(0, |d| d + 1)));
        let parent_side = if rng.gen_ratio(5, 100) {
            Side::Other
        } else {
            Side::Own
        };
        groups.push(Group {
            name,
            parent,
            parent_side,
            parent_spelling: spelling(rng, 5),
            extra_children: Vec::new(),
            ghost_members: Vec::new(),
        });
    }
    // The cycle: loop-a's parent is loop-b, loop-b's loop-c, loop-c's loop-a.
    for (offset, name) in CYCLE.iter().enumerate() {
        let next = regular + (offset + 1) % CYCLE.len();
        groups.push(Group {
            name: (*name).to_owned(),
            parent: Some(next),
            parent_side: Side::Own,
            parent_spelling: Spelling::Plain,
            extra_children: Vec::new(),
            ghost_members: Vec::new(),
        });
    }
    // data-eng names loop-a as a child: the cycle hangs below a rule group.
    if let Some(data_eng) = groups.first_mut() {
        data_eng.extra_children.push(regular);
    }
    groups
}

/// Users in 1–3 distinct regular groups each.
fn generate_users(spec: &OrgSpec, group_count: usize, rng: &mut StdRng) -> Vec<User> {
    let regular = group_count.saturating_sub(CYCLE.len()).max(1);
    (0..spec.users)
        .map(|index| {
            let base = format!("{}.{}{index}", word(rng, 3, 8), word(rng, 3, 10));
            let name = if rng.gen_ratio(2, 100) {
                capitalized(&base)
            } else {
                base.clone()
            };
            let email = if rng.gen_ratio(3, 100) {
                capitalized(&format!("{base}@example.com"))
            } else {
                format!("{base}@example.com")
            };
            let count = rng.gen_range(1..=3);
            let mut chosen: Vec<usize> = Vec::with_capacity(count);
            while chosen.len() < count {
                let group = rng.gen_range(0..regular);
                if !chosen.contains(&group) {
                    chosen.push(group);
                }
            }
            let memberships = chosen
                .into_iter()
                .map(|group| Membership {
                    group,
                    side: if rng.gen_ratio(10, 100) {
                        Side::Other
                    } else {
                        Side::Own
                    },
                    spelling: spelling(rng, 5),
                })
                .collect();
            User {
                name,
                email,
                memberships,
                ghost_groups: Vec::new(),
            }
        })
        .collect()
}

/// Components and resources, each with one ownership annotation and one owner.
fn generate_owned(
    spec: &OrgSpec,
    users: &[User],
    group_count: usize,
    rng: &mut StdRng,
) -> Vec<OwnedEntity> {
    let regular = group_count.saturating_sub(CYCLE.len()).max(1);
    (0..spec.entities)
        .map(|index| {
            let stem = word(rng, 4, 10);
            let (annotation, value, resource) = match index % 4 {
                0 => {
                    // DAG ids keep their case.
                    let id = if rng.gen_ratio(5, 100) {
                        format!("Dag_{stem}_{index}")
                    } else {
                        format!("dag_{stem}_{index}")
                    };
                    ("meshgate.io/airflow-dag", id.clone(), ("airflow.dag", id))
                }
                1 => {
                    let slug = format!("acme/{stem}-{index}");
                    let value = if rng.gen_ratio(5, 100) {
                        capitalized(&slug)
                    } else {
                        slug.clone()
                    };
                    (
                        "buildkite.com/pipeline-slug",
                        value,
                        ("buildkite.pipeline", slug),
                    )
                }
                2 => {
                    // Random bits, then the index: unique for every index below 2^48.
                    let bits: u64 = rng.gen();
                    let id = uuid_v4(
                        ((u128::from(bits >> 16) << 80)
                            | (u128::from((bits >> 4) & 0xfff) << 64)
                            | (u128::from(bits & 0xfff) << 48)
                            | (index as u128 & 0xffff_ffff_ffff))
                            .to_be_bytes(),
                    );
                    let value = if rng.gen_ratio(5, 100) {
                        id.to_ascii_uppercase()
                    } else {
                        id.clone()
                    };
                    (
                        "meshgate.io/airbyte-connection",
                        value,
                        ("airbyte.connection", id),
                    )
                }
                _ => {
                    let host = format!("{stem}-{index}.svc.internal");
                    let value = match rng.gen_range(0..20) {
                        0 => format!("{host}."),
                        1 => capitalized(&host),
                        _ => host.clone(),
                    };
                    ("meshgate.io/service-host", value, ("service.host", host))
                }
            };
            let roll = rng.gen_range(0..1000);
            let owner = if roll < 5 {
                Owner::Missing(format!("ghost-owner-{index}"))
            } else if roll < 55 && !users.is_empty() {
                Owner::User(rng.gen_range(0..users.len()))
            } else {
                Owner::Group(rng.gen_range(0..regular), spelling(rng, 5))
            };
            OwnedEntity {
                kind: if index % 2 == 0 {
                    "Component"
                } else {
                    "Resource"
                },
                name: format!("{stem}-{index}"),
                annotation,
                value,
                resource: (resource.0.to_owned(), resource.1),
                owner,
            }
        })
        .collect()
}

/// Dangling refs, cycle members, the duplicated entities and the stray copy.
fn add_adversarial(
    spec: &OrgSpec,
    groups: &mut [Group],
    users: &mut [User],
    rng: &mut StdRng,
) -> Adversarial {
    let regular = groups.len().saturating_sub(CYCLE.len());
    let cycle = [regular, regular + 1, regular + 2];
    let mut picks: Vec<usize> = (0..users.len()).collect();
    picks.shuffle(rng);
    let mut picks = picks.into_iter();
    for (n, user) in picks.by_ref().take(DANGLING_MEMBER_OF).enumerate() {
        if let Some(user) = users.get_mut(user) {
            user.ghost_groups.push(format!("ghost-team-{n}"));
        }
    }
    for (n, user) in picks.by_ref().take(CYCLE_USERS).enumerate() {
        if let (Some(user), Some(group)) = (users.get_mut(user), cycle.get(n % CYCLE.len())) {
            user.memberships.push(Membership {
                group: *group,
                side: if n % 4 == 3 { Side::Other } else { Side::Own },
                spelling: Spelling::Plain,
            });
        }
    }
    for n in 0..DANGLING_MEMBERS {
        let group = rng.gen_range(0..regular.max(1));
        if let Some(group) = groups.get_mut(group) {
            group.ghost_members.push(format!("ghost-user-{n}"));
        }
    }
    // The stray copy: a nested group (not a root, so it has a parent to lose).
    let stray_copy_of = rng.gen_range(ROOT_GROUPS.len()..regular.max(ROOT_GROUPS.len() + 1));
    Adversarial {
        cycle,
        stray_copy_of,
        duplicated_user: picks.next().unwrap_or(0),
        duplicated_entity: rng.gen_range(0..spec.entities.max(1)),
        huge_group_members: spec.huge_group_members,
    }
}
