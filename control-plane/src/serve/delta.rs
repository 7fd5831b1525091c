//! Deltas for pollers that are a few versions behind: when a snapshot is published, the sync
//! thread signs one delta from each of the last few published versions to it, so the HTTP
//! workers only look them up (no signing key there, and no thundering herd when every sidecar
//! asks for the same delta in the same second).
//!
//! A sidecar polls with `If-None-Match: <its ETag>` and `A-IM: meshgate-delta`; if a delta from
//! that ETag is kept, it gets `226 IM Used` with the delta (RFC 3229), otherwise the whole
//! snapshot. A delta that would not be smaller than the snapshot is not kept.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use meshgate_core::snapshot::{encode_delta, EncodeError, SigningKey, Snapshot};

/// Versions a delta is kept from, by default: sidecars polling every second are at most one
/// or two versions behind; older ones take the whole snapshot.
pub const DEFAULT_DELTA_HISTORY: usize = 4;

/// Signed deltas to one published snapshot, by the ETag of the snapshot each applies to.
pub type Deltas = BTreeMap<String, Arc<[u8]>>;

/// The last published snapshots of one name, decoded, to compute deltas from.
pub struct DeltaHistory {
    kept: VecDeque<(String, Arc<Snapshot>)>,
    capacity: usize,
}

impl DeltaHistory {
    /// Keeps `capacity` versions (0: no deltas at all).
    pub fn new(capacity: usize) -> DeltaHistory {
        DeltaHistory {
            kept: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Signs a delta from each kept version to `target` (newest first, none larger than
    /// `target_len` bytes), then keeps `target` as the newest version.
    pub fn publish(
        &mut self,
        target_etag: &str,
        target: Arc<Snapshot>,
        target_len: usize,
        key: &SigningKey,
    ) -> Result<Deltas, EncodeError> {
        let mut deltas = Deltas::new();
        if self.capacity == 0 {
            return Ok(deltas);
        }
        let bases: Vec<&(String, Arc<Snapshot>)> = self
            .kept
            .iter()
            .rev()
            .filter(|(etag, base)| {
                etag != target_etag && base.content_hash() != target.content_hash()
            })
            .collect();
        // One thread per base: each delta is a merge of two images, independent of the others.
        let signed: Vec<(&String, Result<Vec<u8>, EncodeError>)> = std::thread::scope(|scope| {
            let running: Vec<_> = bases
                .iter()
                .map(|(etag, base)| {
                    let sign = || encode_delta(base, &target, key);
                    let thread = std::thread::Builder::new()
                        .name("meshgate-delta".into())
                        .spawn_scoped(scope, sign);
                    (etag, thread)
                })
                .collect();
            running
                .into_iter()
                .zip(&bases)
                .map(|((etag, thread), (_, base))| {
                    let delta = match thread {
                        Ok(thread) => thread
                            .join()
                            .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                        // No thread to be had: sign it here.
                        Err(_) => encode_delta(base, &target, key),
                    };
                    (etag, delta)
                })
                .collect()
        });
        for (etag, delta) in signed {
            let delta = delta?;
            if delta.len() < target_len {
                deltas.insert(etag.clone(), Arc::from(delta));
            }
        }
        self.kept.retain(|(etag, _)| etag != target_etag);
        if self.kept.len() >= self.capacity {
            self.kept.pop_front();
        }
        self.kept.push_back((target_etag.to_owned(), target));
        Ok(deltas)
    }

    /// The ETags deltas are kept from, oldest first.
    pub fn etags(&self) -> impl Iterator<Item = &str> {
        self.kept.iter().map(|(etag, _)| etag.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshgate_core::snapshot::{encode, DecodeLimits, SnapshotInput, UserInput};

    fn key() -> SigningKey {
        SigningKey::from_seed("cp-test", [3; 32]).unwrap()
    }

    /// `users` users, user 0 in the groups given.
    fn version(v: u64, users: usize, first_groups: &[&str]) -> (Vec<u8>, Arc<Snapshot>) {
        let input = SnapshotInput {
            users: (0..users)
                .map(|i| UserInput {
                    entity_ref: format!("user:default/u{i}"),
                    email: None,
                    groups: if i == 0 {
                        first_groups.iter().map(|g| (*g).to_owned()).collect()
                    } else {
                        vec![format!("group:default/g{}", i % 7)]
                    },
                })
                .collect(),
            ..SnapshotInput::default()
        };
        let bytes = encode(&input, v, 0, &key()).unwrap();
        let snapshot =
            Snapshot::decode(&bytes, &[key().trusted_key()], &DecodeLimits::default()).unwrap();
        (bytes, Arc::new(snapshot))
    }

    #[test]
    fn deltas_from_each_kept_version_apply_to_that_version() {
        let mut history = DeltaHistory::new(2);
        let versions: Vec<_> = (1..=4)
            .map(|v| version(v, 500, &[&format!("group:default/g{v}")]))
            .collect();
        let mut all = Vec::new();
        for (i, (bytes, snapshot)) in versions.iter().enumerate() {
            let deltas = history
                .publish(&format!("e{i}"), Arc::clone(snapshot), bytes.len(), &key())
                .unwrap();
            all.push(deltas);
        }
        assert!(all[0].is_empty(), "nothing to start from");
        assert_eq!(all[1].keys().collect::<Vec<_>>(), ["e0"]);
        assert_eq!(
            all[3].keys().collect::<Vec<_>>(),
            ["e1", "e2"],
            "capacity 2"
        );
        assert_eq!(history.etags().collect::<Vec<_>>(), ["e2", "e3"]);
        for (base, delta) in &all[3] {
            let index: usize = base[1..].parse().unwrap();
            let applied = versions[index]
                .1
                .apply_delta(delta, &[key().trusted_key()], &DecodeLimits::default())
                .unwrap();
            assert_eq!(applied.image(), versions[3].1.image(), "from {base}");
            assert!(delta.len() < versions[3].0.len());
        }
    }

    #[test]
    fn no_history_no_deltas_and_republishing_is_not_a_delta() {
        let (bytes, snapshot) = version(1, 50, &[]);
        let mut none = DeltaHistory::new(0);
        assert!(none
            .publish("a", Arc::clone(&snapshot), bytes.len(), &key())
            .unwrap()
            .is_empty());
        let mut history = DeltaHistory::new(3);
        history
            .publish("a", Arc::clone(&snapshot), bytes.len(), &key())
            .unwrap();
        let again = history
            .publish("a", Arc::clone(&snapshot), bytes.len(), &key())
            .unwrap();
        assert!(again.is_empty());
        assert_eq!(history.etags().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn a_delta_not_smaller_than_the_snapshot_is_not_kept() {
        // Every user changes: the delta carries everything.
        let (b1, s1) = version(1, 3, &["group:default/x"]);
        let (b2, s2) = version(2, 3, &["group:default/y"]);
        let mut history = DeltaHistory::new(2);
        history.publish("a", s1, b1.len(), &key()).unwrap();
        let tiny_limit = 10;
        assert!(history
            .publish("b", s2, tiny_limit.min(b2.len()), &key())
            .unwrap()
            .is_empty());
    }
}
