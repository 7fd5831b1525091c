//! Primitives of the snapshot encoding: LEB128 varints, front-coded strings and delta-coded
//! index lists, written to a `Vec` and read back with every length and index checked.

use std::cmp::Ordering;

use super::err::{SnapshotError, Violation};

/// The longest LEB128 encoding of a `u64`.
const MAX_VARINT_BYTES: usize = 10;

/// Length of the longest common prefix of two byte strings.
pub(crate) fn shared_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Appends encoded values to a buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn varint(&mut self, mut value: u64) {
        loop {
            let low = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                self.buf.push(low);
                return;
            }
            self.buf.push(low | 0x80);
        }
    }

    pub fn len(&mut self, len: usize) {
        self.varint(len as u64);
    }

    /// `current` as the length of the prefix it shares with `previous`, then the rest
    /// (length and bytes). Sorted tables of refs such as `user:default/…` shrink to a few
    /// bytes per entry.
    pub fn front_coded(&mut self, previous: &[u8], current: &[u8]) {
        let shared = shared_prefix(previous, current);
        let suffix = current.get(shared..).unwrap_or_default();
        self.len(shared);
        self.len(suffix.len());
        self.buf.extend_from_slice(suffix);
    }

    /// A strictly increasing list: its length, the first value, then each gap minus one.
    pub fn indices(&mut self, indices: &[u32]) {
        self.len(indices.len());
        let mut previous: Option<u32> = None;
        for &index in indices {
            match previous {
                None => self.varint(u64::from(index)),
                Some(previous) => {
                    self.varint(u64::from(index).saturating_sub(u64::from(previous) + 1))
                }
            }
            previous = Some(index);
        }
    }

    /// A tagged section: tag, payload length, payload.
    pub fn section(&mut self, tag: u64, payload: &[u8]) {
        self.varint(tag);
        self.len(payload.len());
        self.buf.extend_from_slice(payload);
    }
}

/// Reads encoded values from a slice. `base` is the offset of the slice within the content, so
/// errors name the byte where the problem is.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], base: usize) -> Reader<'a> {
        Reader { data, pos: 0, base }
    }

    pub fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn fail(&self, violation: Violation) -> SnapshotError {
        SnapshotError::Malformed {
            offset: self.offset(),
            violation,
        }
    }

    pub fn take(&mut self, len: u64, what: &'static str) -> Result<&'a [u8], SnapshotError> {
        let bytes = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .and_then(|end| self.data.get(self.pos..end));
        match bytes {
            Some(bytes) => {
                self.pos = self.pos.saturating_add(bytes.len());
                Ok(bytes)
            }
            None => Err(self.fail(Violation::Truncated { what })),
        }
    }

    /// A minimal LEB128 `u64`: at most ten bytes, no redundant trailing zero group.
    pub fn varint(&mut self, what: &'static str) -> Result<u64, SnapshotError> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let mut value: u64 = 0;
        for (i, &byte) in rest.iter().take(MAX_VARINT_BYTES).enumerate() {
            let group = u64::from(byte & 0x7f);
            let last = byte & 0x80 == 0;
            // The tenth byte holds only the top bit of a u64 and must end the number; a zero
            // final byte after the first is a longer spelling of a shorter number.
            let overlong = i == MAX_VARINT_BYTES - 1 && (group > 1 || !last);
            if overlong || (last && byte == 0 && i > 0) {
                return Err(self.fail(Violation::BadVarint { what }));
            }
            value |= group << (7 * i);
            if last {
                self.pos = self.pos.saturating_add(i + 1);
                return Ok(value);
            }
        }
        Err(self.fail(Violation::Truncated { what }))
    }

    /// A count or index no larger than `max`.
    pub fn bounded(&mut self, what: &'static str, max: usize) -> Result<usize, SnapshotError> {
        let value = self.varint(what)?;
        match usize::try_from(value) {
            Ok(count) if count <= max => Ok(count),
            _ => Err(self.fail(Violation::TooMany {
                what,
                value,
                max: max as u64,
            })),
        }
    }

    /// Reads a front-coded string into `current`, which holds the previous string on entry,
    /// and returns how the new string compares with the previous one. The result is checked
    /// for length and emptiness, not for UTF-8 (see [`Reader::utf8`]).
    pub fn front_coded(
        &mut self,
        current: &mut Vec<u8>,
        what: &'static str,
        max_len: usize,
    ) -> Result<Ordering, SnapshotError> {
        let shared = self.varint(what)?;
        self.front_coded_rest(current, shared, what, max_len)
    }

    /// [`Reader::front_coded`] once the shared prefix length is known.
    pub fn front_coded_rest(
        &mut self,
        current: &mut Vec<u8>,
        shared: u64,
        what: &'static str,
        max_len: usize,
    ) -> Result<Ordering, SnapshotError> {
        let shared = match usize::try_from(shared) {
            Ok(shared) if shared <= current.len() => shared,
            _ => {
                return Err(self.fail(Violation::BadSharedPrefix {
                    what,
                    shared,
                    previous: current.len(),
                }))
            }
        };
        let suffix_len = self.varint(what)?;
        let total = (shared as u64).saturating_add(suffix_len);
        if total > max_len as u64 {
            return Err(self.fail(Violation::StringTooLong {
                what,
                len: total,
                max: max_len,
            }));
        }
        let suffix = self.take(suffix_len, what)?;
        // Both strings start with the shared prefix, so the rests decide the order.
        let order = suffix.cmp(current.get(shared..).unwrap_or_default());
        current.truncate(shared);
        current.extend_from_slice(suffix);
        if current.is_empty() {
            return Err(self.fail(Violation::EmptyString { what }));
        }
        Ok(order)
    }

    pub fn utf8<'b>(&self, bytes: &'b [u8], what: &'static str) -> Result<&'b str, SnapshotError> {
        std::str::from_utf8(bytes).map_err(|_| self.fail(Violation::InvalidUtf8 { what }))
    }

    /// A strictly increasing index list written by [`Writer::indices`], every index below
    /// `bound`, appended to `out`.
    pub fn indices_into(
        &mut self,
        out: &mut Vec<u32>,
        what: &'static str,
        bound: usize,
    ) -> Result<(), SnapshotError> {
        // Every index takes at least one byte, so a count beyond the bytes left is corrupt;
        // checking it first keeps a bad count from reserving memory.
        let count = self.bounded(what, self.remaining())?;
        out.reserve(count);
        let mut previous: Option<u64> = None;
        for _ in 0..count {
            let raw = self.varint(what)?;
            let index = match previous {
                None => Some(raw),
                Some(previous) => previous.checked_add(raw).and_then(|sum| sum.checked_add(1)),
            };
            let index = match index.and_then(|index| u32::try_from(index).ok()) {
                Some(index) if (index as usize) < bound => index,
                _ => {
                    return Err(self.fail(Violation::IndexOutOfRange {
                        what,
                        index: index.unwrap_or(u64::MAX),
                        len: bound,
                    }))
                }
            };
            out.push(index);
            previous = Some(u64::from(index));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: u64) -> Vec<u8> {
        let mut writer = Writer::default();
        writer.varint(value);
        writer.buf
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let bytes = encoded(value);
            let mut reader = Reader::new(&bytes, 0);
            assert_eq!(reader.varint("v").unwrap(), value);
            assert!(reader.is_empty());
        }
        assert_eq!(encoded(u64::MAX).len(), MAX_VARINT_BYTES);
    }

    #[test]
    fn bad_varints_are_refused() {
        let cases: [(&[u8], &str); 5] = [
            (&[0x80], "truncated"),
            (&[], "truncated"),
            (&[0x80, 0x00], "non-minimal"),
            (&[0xff; 11], "too long"),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                "over 64 bits",
            ),
        ];
        for (bytes, case) in cases {
            assert!(Reader::new(bytes, 0).varint("v").is_err(), "{case}");
        }
    }

    #[test]
    fn index_lists_round_trip_and_are_bounded() {
        let mut writer = Writer::default();
        writer.indices(&[0, 1, 5, 1000, 70_000]);
        let mut out = vec![9];
        let mut reader = Reader::new(&writer.buf, 0);
        reader.indices_into(&mut out, "g", 70_001).unwrap();
        assert_eq!(out, [9, 0, 1, 5, 1000, 70_000]);
        let mut reader = Reader::new(&writer.buf, 0);
        let err = reader.indices_into(&mut out, "g", 70_000).unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotError::Malformed {
                    violation: Violation::IndexOutOfRange { index: 70_000, .. },
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn front_coding_shares_prefixes() {
        let mut writer = Writer::default();
        writer.front_coded(b"user:default/alice", b"user:default/bob");
        assert_eq!(writer.buf, b"\x0d\x03bob");
        let mut current = b"user:default/alice".to_vec();
        let order = Reader::new(&writer.buf, 0)
            .front_coded(&mut current, "s", 100)
            .unwrap();
        assert_eq!(order, Ordering::Greater);
        assert_eq!(current, b"user:default/bob");
        let err = Reader::new(&writer.buf, 0)
            .front_coded(&mut b"user".to_vec(), "s", 100)
            .unwrap_err();
        assert!(err.to_string().contains("shares 13 bytes"), "{err}");
    }
}
