//! The compact in-memory form of a decoded snapshot: one string arena, one arena of group
//! indices, records that point into them by [`Span`], and open-addressing tables of record
//! positions for constant-time lookups. A few large allocations instead of hundreds of
//! thousands of small ones: less memory per Wasm VM and a faster decode.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};

/// A range of an arena.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Option<Span> {
        let start_32 = u32::try_from(start).ok()?;
        let len = u32::try_from(end.checked_sub(start)?).ok()?;
        start_32.checked_add(len)?;
        Some(Span {
            start: start_32,
            len,
        })
    }

    pub fn range(self) -> std::ops::Range<usize> {
        let start = self.start as usize;
        start..start.saturating_add(self.len as usize)
    }
}

/// The string at `span`; spans are only made for whole strings pushed into the arena, so the
/// empty fallback is never taken.
pub(crate) fn text_at(text: &str, span: Span) -> &str {
    text.get(span.range()).unwrap_or_default()
}

/// Record positions keyed by a hash of each record's key, probed linearly and kept at most
/// half full. A lookup compares each candidate's real key, so a hash collision costs a
/// comparison and never a wrong answer. The hash is keyed per snapshot ([`RandomState`]), so
/// catalog contents cannot be chosen to collide.
#[derive(Debug, Clone)]
pub(crate) struct PositionTable {
    /// Position + 1; 0 is an empty slot.
    slots: Box<[u32]>,
    hasher: RandomState,
}

impl PositionTable {
    /// A table for up to `entries` records.
    pub fn new(entries: usize, hasher: RandomState) -> PositionTable {
        let size = entries
            .saturating_mul(2)
            .max(2)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX / 2 + 1);
        PositionTable {
            slots: vec![0; size].into_boxed_slice(),
            hasher,
        }
    }

    pub fn hash<K: Hash + ?Sized>(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The position of the record for which `is_key` holds, among those stored under `hash`.
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        match self.probe(hash, &mut is_key) {
            Probe::Found(position) => Some(position),
            Probe::Empty(_) | Probe::Full => None,
        }
    }

    /// Stores `position` under `hash`, unless a record for which `is_key` holds is already
    /// there: then that record's position is returned instead. `false` when the table is full,
    /// which the caller's sizing rules out.
    pub fn insert(
        &mut self,
        hash: u64,
        position: u32,
        mut is_key: impl FnMut(u32) -> bool,
    ) -> Result<Option<u32>, TableFull> {
        match self.probe(hash, &mut is_key) {
            Probe::Found(existing) => Ok(Some(existing)),
            Probe::Full => Err(TableFull),
            Probe::Empty(slot) => match (self.slots.get_mut(slot), position.checked_add(1)) {
                (Some(slot), Some(stored)) => {
                    *slot = stored;
                    Ok(None)
                }
                _ => Err(TableFull),
            },
        }
    }

    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    fn probe(&self, hash: u64, is_key: &mut impl FnMut(u32) -> bool) -> Probe {
        let mask = self.slots.len().saturating_sub(1);
        // Truncating the hash to the table size is the point.
        let mut slot = (hash as usize) & mask;
        for _ in 0..self.slots.len() {
            match self.slots.get(slot).copied() {
                Some(0) | None => return Probe::Empty(slot),
                Some(stored) => {
                    let position = stored.saturating_sub(1);
                    if is_key(position) {
                        return Probe::Found(position);
                    }
                }
            }
            slot = slot.wrapping_add(1) & mask;
        }
        Probe::Full
    }
}

enum Probe {
    Found(u32),
    Empty(usize),
    Full,
}

/// A [`PositionTable`] had no free slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableFull;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_hashes_still_find_the_right_record() {
        let keys = ["a", "b", "c", "d", "e"];
        let mut table = PositionTable::new(keys.len(), RandomState::new());
        // Every key under the same hash: the worst case.
        for (position, _) in keys.iter().enumerate() {
            let position = position as u32;
            let existing = table
                .insert(7, position, |other| {
                    keys[other as usize] == keys[position as usize]
                })
                .unwrap();
            assert_eq!(existing, None);
        }
        for (position, key) in keys.iter().enumerate() {
            assert_eq!(
                table.find(7, |other| keys[other as usize] == *key),
                Some(position as u32)
            );
        }
        assert_eq!(table.find(7, |_| false), None);
        // Nothing stored from slot 3 on: the probe stops at the first empty slot.
        assert_eq!(table.find(3, |_| true), None);
        // A second insert of an existing key returns the first position.
        assert_eq!(table.insert(7, 9, |other| other == 2), Ok(Some(2)));
    }

    #[test]
    fn a_full_table_is_an_error_not_a_loop() {
        let mut table = PositionTable::new(1, RandomState::new());
        assert_eq!(table.insert(0, 0, |_| false), Ok(None));
        assert_eq!(table.insert(0, 1, |_| false), Ok(None));
        assert_eq!(table.insert(0, 2, |_| false), Err(TableFull));
        assert_eq!(table.find(0, |_| false), None);
    }

    #[test]
    fn spans_are_bounded() {
        assert_eq!(Span::new(2, 5).unwrap().range(), 2..5);
        assert!(Span::new(5, 2).is_none());
        #[cfg(target_pointer_width = "64")]
        assert!(Span::new(0, u32::MAX as usize + 1).is_none());
        assert_eq!(text_at("hello", Span::new(1, 3).unwrap()), "el");
        assert_eq!(text_at("hi", Span::new(1, 9).unwrap()), "");
    }
}
