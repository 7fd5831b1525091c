//! Synthetic organisations for tests and measurements.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{GroupInput, OwnedInput, SnapshotInput, UserInput};

/// The shape of a synthetic organisation.
pub(crate) struct Org {
    pub users: usize,
    pub groups: usize,
    /// Each group after the first has one parent among the `parent_window` groups before it
    /// (so chains reach `groups / (parent_window / 2)` levels); 0 for no hierarchy.
    pub parent_window: usize,
    /// Each user is a direct member of 1 to this many groups.
    pub max_direct: usize,
    pub owned: usize,
    pub seed: u64,
}

impl Org {
    pub fn build(&self) -> SnapshotInput {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let refs: Vec<String> = (0..self.groups)
            .map(|i| format!("group:default/{}-{i}", word(&mut rng, 4, 10)))
            .collect();
        // Closed ancestors, as indices: a parent's list plus the parent.
        let mut above: Vec<Vec<usize>> = Vec::with_capacity(self.groups);
        for i in 0..self.groups {
            let list = if self.parent_window == 0 || i == 0 {
                Vec::new()
            } else {
                let parent = rng.gen_range(i.saturating_sub(self.parent_window)..i);
                let mut list = above[parent].clone();
                list.push(parent);
                list
            };
            above.push(list);
        }
        let groups = above
            .iter()
            .enumerate()
            .filter(|(_, list)| !list.is_empty())
            .map(|(i, list)| GroupInput {
                entity_ref: refs[i].clone(),
                ancestors: list.iter().map(|&a| refs[a].clone()).collect(),
            })
            .collect();
        let users = (0..self.users)
            .map(|i| {
                let name = format!("{}.{}{i}", word(&mut rng, 3, 8), word(&mut rng, 4, 10));
                let email = match rng.gen_range(0..10) {
                    0..=6 => Some(format!("{name}@example.com")),
                    7 => Some(format!("{}@corp.example.org", word(&mut rng, 5, 12))),
                    8 => Some(format!(
                        "{}.{}@example.com",
                        word(&mut rng, 3, 8),
                        word(&mut rng, 4, 10)
                    )),
                    _ => None,
                };
                UserInput {
                    entity_ref: format!("user:default/{name}"),
                    email,
                    groups: (0..rng.gen_range(1..=self.max_direct))
                        .map(|_| refs[rng.gen_range(0..self.groups)].clone())
                        .collect(),
                }
            })
            .collect::<Vec<_>>();
        let kinds = [
            "airflow.dag",
            "buildkite.pipeline",
            "airbyte.connection",
            "service.host",
        ];
        let owned = (0..self.owned)
            .map(|i| OwnedInput {
                kind: kinds[i % kinds.len()].into(),
                id: format!("{}_{}_{i}", word(&mut rng, 3, 8), word(&mut rng, 3, 8)),
                owners: (0..rng.gen_range(1..=2))
                    .map(|_| refs[rng.gen_range(0..self.groups)].clone())
                    .collect(),
            })
            .collect();
        SnapshotInput {
            users,
            owned,
            groups,
            rules: None,
        }
    }
}

pub(crate) fn word(rng: &mut StdRng, min: usize, max: usize) -> String {
    let len = rng.gen_range(min..=max);
    (0..len)
        .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
        .collect()
}
