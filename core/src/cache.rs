//! Verified-token cache (like jwt_authn's `jwt_cache_config`): a token seen before skips
//! parsing and signature verification, but its validity window is still checked.

use std::collections::HashMap;
use std::sync::Arc;

use crate::principal::Principal;
use crate::provider::Validity;

#[derive(Debug, Clone)]
pub struct CachedIdentity {
    pub provider: usize,
    pub source: usize,
    pub validity: Validity,
    pub principal: Arc<Principal>,
}

/// Bounded map from the exact token string to its verified identity. Keys are the
/// whole token, not a hash of it, so a collision can't hand out someone else's identity.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: HashMap<String, CachedIdentity>,
    capacity: usize,
}

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            entries: HashMap::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    pub fn get(&self, token: &str) -> Option<&CachedIdentity> {
        self.entries.get(token)
    }

    pub fn insert(&mut self, token: &str, identity: CachedIdentity, now: i64) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity {
            // Expired entries go first; if none, drop an arbitrary one. Cheap and bounded,
            // and a miss only costs one verification.
            self.entries.retain(|_, e| e.validity.expires > now);
            if self.entries.len() >= self.capacity {
                if let Some(victim) = self.entries.keys().next().cloned() {
                    self.entries.remove(&victim);
                }
            }
        }
        self.entries.insert(token.to_owned(), identity);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
