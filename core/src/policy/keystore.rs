//! The current key set of every provider: local ones from config, remote ones as the
//! filter fetches them. Verification reads it; only the fetch path writes it.

use std::sync::Arc;

use crate::identity::provider::KeySource;
use crate::policy::config::Policy;
use crate::token::jwks::KeySet;

#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    sets: Vec<Option<Arc<KeySet>>>,
    /// Per provider, bumped whenever its keys change, so cached verifications made with
    /// keys that are gone are made again.
    generations: Vec<u64>,
}

impl KeyStore {
    pub fn new(policy: &Policy) -> KeyStore {
        KeyStore {
            sets: policy
                .providers
                .iter()
                .map(|p| match &p.keys {
                    KeySource::Local(set) => Some(Arc::clone(set)),
                    KeySource::Remote(_) => None,
                })
                .collect(),
            generations: vec![0; policy.providers.len()],
        }
    }

    /// Changes whenever the provider's key set changes.
    pub fn generation(&self, provider: usize) -> u64 {
        self.generations.get(provider).copied().unwrap_or(0)
    }

    pub fn get(&self, provider: usize) -> Option<&KeySet> {
        self.sets.get(provider).and_then(|s| s.as_deref())
    }

    /// Replaces a provider's keys. Callers only pass sets that parsed with at least one
    /// usable key, so a bad fetch never replaces good keys.
    pub fn set(&mut self, provider: usize, keys: Arc<KeySet>) {
        if let Some(slot) = self.sets.get_mut(provider) {
            let changed = slot
                .as_ref()
                .is_none_or(|old| old.fingerprint != keys.fingerprint);
            *slot = Some(keys);
            if let (true, Some(generation)) = (changed, self.generations.get_mut(provider)) {
                *generation = generation.wrapping_add(1);
            }
        }
    }

    pub fn has_keys(&self, provider: usize) -> bool {
        self.get(provider).is_some()
    }
}
