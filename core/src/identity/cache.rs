//! Verified-token cache (like jwt_authn's `jwt_cache_config`): a token seen before skips
//! parsing and signature verification, but its validity window is still checked.
//!
//! - Bounded, with CLOCK eviction: a hit sets the entry's reference bit; the hand evicts the
//!   first entry that is expired or was not referenced since the hand last passed.
//! - Admission: when the cache is full, a token gets in only on its second miss within a
//!   short window (a "doorkeeper" of recent misses). A flood of one-off tokens, or a mix of
//!   tokens larger than the cache, then costs one hash per miss and never evicts the hot
//!   set. Envoy's own cache loses throughput in that case; this one must never hurt.
//! - Entries are found by a keyed hash of the whole token and then compared with it, so a
//!   hash collision can't hand out someone else's identity.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::identity::principal::Principal;
use crate::identity::provider::Validity;

#[derive(Debug, Clone)]
pub struct CachedIdentity {
    pub provider: usize,
    pub source: usize,
    pub validity: Validity,
    pub principal: Arc<Principal>,
    /// The provider's key generation when the token was verified ([`crate::KeyStore`]).
    pub key_generation: u64,
}

#[derive(Debug)]
struct Slot {
    token: Box<str>,
    hash: u64,
    identity: CachedIdentity,
    referenced: bool,
}

#[derive(Debug)]
pub struct TokenCache {
    slots: Vec<Slot>,
    /// Token hash → slot.
    index: HashMap<u64, usize>,
    /// Recent misses not admitted, direct-mapped by hash (0: empty).
    doorkeeper: Box<[u64]>,
    hand: usize,
    capacity: usize,
    hasher: RandomState,
}

impl Default for TokenCache {
    fn default() -> TokenCache {
        TokenCache::new(0)
    }
}

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            slots: Vec::with_capacity(capacity.min(4096)),
            index: HashMap::with_capacity(capacity.min(4096)),
            doorkeeper: vec![0; capacity].into_boxed_slice(),
            hand: 0,
            capacity,
            hasher: RandomState::new(),
        }
    }

    fn hash(&self, token: &str) -> u64 {
        // 0 marks an empty doorkeeper cell.
        self.hasher.hash_one(token).max(1)
    }

    /// The identity cached for exactly this token; marks it recently used.
    pub fn get(&mut self, token: &str) -> Option<&CachedIdentity> {
        if self.capacity == 0 {
            return None;
        }
        let hash = self.hash(token);
        let &at = self.index.get(&hash)?;
        let slot = self.slots.get_mut(at)?;
        if &*slot.token != token {
            return None;
        }
        slot.referenced = true;
        Some(&slot.identity)
    }

    pub fn insert(&mut self, token: &str, identity: CachedIdentity, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let hash = self.hash(token);
        if let Some(slot) = self.index.get(&hash).and_then(|&at| self.slots.get_mut(at)) {
            // Same hash: the same token re-verified, or a collision; the newest wins.
            *slot = Slot {
                token: token.into(),
                hash,
                identity,
                referenced: false,
            };
            return;
        }
        let slot = Slot {
            token: token.into(),
            hash,
            identity,
            referenced: false,
        };
        if self.slots.len() < self.capacity {
            self.index.insert(hash, self.slots.len());
            self.slots.push(slot);
            return;
        }
        if !self.admit(hash) {
            return;
        }
        let victim = self.victim(now);
        if let Some(old) = self.slots.get_mut(victim) {
            self.index.remove(&old.hash);
            *old = slot;
            self.index.insert(hash, victim);
        }
    }

    /// A full cache takes a token on its second miss while the doorkeeper remembers it.
    fn admit(&mut self, hash: u64) -> bool {
        let len = self.doorkeeper.len() as u64;
        let Some(cell) = self
            .doorkeeper
            .get_mut(usize::try_from(hash % len.max(1)).unwrap_or(0))
        else {
            return true;
        };
        if *cell == hash {
            *cell = 0;
            true
        } else {
            *cell = hash;
            false
        }
    }

    /// CLOCK: the first expired or unreferenced slot from the hand; two sweeps at most.
    fn victim(&mut self, now: i64) -> usize {
        let len = self.slots.len();
        for _ in 0..len.saturating_mul(2) {
            let at = self.hand;
            self.hand = (self.hand + 1) % len.max(1);
            match self.slots.get_mut(at) {
                Some(slot) if slot.identity.validity.expires <= now || !slot.referenced => {
                    return at;
                }
                Some(slot) => slot.referenced = false,
                None => return 0,
            }
        }
        self.hand
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Drops everything (the key set changed).
    pub fn clear(&mut self) {
        self.slots.clear();
        self.index.clear();
        self.doorkeeper.fill(0);
        self.hand = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(expires: i64) -> CachedIdentity {
        CachedIdentity {
            provider: 0,
            source: 0,
            validity: Validity {
                not_before: 0,
                expires,
            },
            principal: Arc::new(Principal {
                provider: "p".into(),
                subject: None,
                email: None,
                username: None,
                groups: Vec::new(),
                group_refs: Vec::new(),
                catalog_keys: Vec::new(),
                groups_overage: false,
                user_ref: None,
                claims: serde_json::Map::new(),
                groups_case_insensitive: false,
            }),
            key_generation: 0,
        }
    }

    fn hot_hit_rate(capacity: usize, flood: usize, rounds: usize) -> f64 {
        let mut cache = TokenCache::new(capacity);
        let hot: Vec<String> = (0..capacity / 2).map(|i| format!("hot-{i}")).collect();
        let (mut hits, mut lookups) = (0, 0);
        let mut one_off = 0;
        for _ in 0..rounds {
            for token in &hot {
                lookups += 1;
                if cache.get(token).is_some() {
                    hits += 1;
                } else {
                    cache.insert(token, identity(100), 0);
                }
            }
            // A flood of tokens seen once each.
            for _ in 0..flood {
                one_off += 1;
                let token = format!("flood-{one_off}");
                if cache.get(&token).is_none() {
                    cache.insert(&token, identity(100), 0);
                }
            }
        }
        f64::from(hits) / f64::from(lookups)
    }

    #[test]
    fn a_flood_of_one_off_tokens_does_not_evict_the_hot_set() {
        // After the first round every hot token stays cached despite 10× as many one-offs.
        let rate = hot_hit_rate(64, 640, 20);
        assert!(rate > 0.9, "hot hit rate {rate}");
    }

    #[test]
    fn hits_need_the_exact_token_and_capacity_is_kept() {
        let mut cache = TokenCache::new(4);
        for i in 0..4 {
            cache.insert(&format!("t{i}"), identity(100), 0);
        }
        assert_eq!(cache.len(), 4);
        assert!(cache.get("t1").is_some());
        assert!(cache.get("t1x").is_none());
        // Full: a new token needs a second miss to get in, and then replaces one entry.
        cache.insert("new", identity(100), 0);
        assert!(cache.get("new").is_none(), "admitted on its first miss");
        cache.insert("new", identity(100), 0);
        assert!(cache.get("new").is_some());
        assert_eq!(cache.len(), 4);
        // The referenced entry survived the eviction.
        assert!(cache.get("t1").is_some());
    }

    #[test]
    fn expired_entries_are_evicted_first_and_zero_capacity_caches_nothing() {
        let mut cache = TokenCache::new(2);
        cache.insert("old", identity(10), 0);
        cache.insert("live", identity(1000), 0);
        assert!(cache.get("live").is_some());
        assert!(cache.get("old").is_some());
        cache.insert("next", identity(1000), 50);
        cache.insert("next", identity(1000), 50);
        assert!(cache.get("next").is_some());
        assert!(cache.get("old").is_none(), "the expired entry stayed");
        assert!(cache.get("live").is_some());

        let mut off = TokenCache::new(0);
        off.insert("t", identity(100), 0);
        assert!(off.get("t").is_none());
        assert!(off.is_empty());
    }
}
