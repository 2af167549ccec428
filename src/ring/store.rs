//! Received and sent data packets by sequence number, from the last discarded one on.

use std::collections::VecDeque;

/// Packets `first..` kept as encoded datagrams. Buffers of discarded packets are pooled and
/// reused for new ones.
#[derive(Debug)]
pub(super) struct Store {
    /// Sequence number of `slots[0]`; everything below it was discarded (all daemons had it).
    first: u64,
    slots: VecDeque<Option<Vec<u8>>>,
    pool: Vec<Vec<u8>>,
}

impl Store {
    pub(super) fn new() -> Store {
        Store {
            first: 1,
            slots: VecDeque::new(),
            pool: Vec::new(),
        }
    }

    /// Highest sequence number discarded so far.
    pub(super) fn last_discarded(&self) -> u64 {
        self.first - 1
    }

    pub(super) fn get(&self, seq: u64) -> Option<&[u8]> {
        let index = seq.checked_sub(self.first)?;
        self.slots.get(usize::try_from(index).ok()?)?.as_deref()
    }

    pub(super) fn contains(&self, seq: u64) -> bool {
        self.get(seq).is_some()
    }

    /// Keeps a copy of `packet` as `seq`; false if it is already here or was discarded.
    /// The caller bounds `seq` (see [`super::Ring`]), since slots up to it are created.
    pub(super) fn insert(&mut self, seq: u64, packet: &[u8]) -> bool {
        let Some(index) = seq.checked_sub(self.first) else {
            return false;
        };
        let index = index as usize;
        if index >= self.slots.len() {
            self.slots.resize_with(index + 1, || None);
        }
        if self.slots[index].is_some() {
            return false;
        }
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(packet);
        self.slots[index] = Some(buf);
        true
    }

    /// Drops every packet up to `seq`.
    pub(super) fn discard_through(&mut self, seq: u64) {
        if seq < self.first {
            return;
        }
        let count = (seq - self.first + 1).min(self.slots.len() as u64) as usize;
        self.pool.extend(self.slots.drain(..count).flatten());
        self.first = seq + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_discards_and_reuses() {
        let mut s = Store::new();
        assert!(s.insert(3, b"three"));
        assert!(!s.insert(3, b"again"));
        assert!(s.insert(1, b"one"));
        assert_eq!(s.get(3), Some(&b"three"[..]));
        assert!(!s.contains(2));
        assert!(!s.contains(0));
        s.discard_through(2);
        assert_eq!(s.last_discarded(), 2);
        assert!(!s.contains(1));
        assert!(!s.insert(1, b"late"));
        assert_eq!(s.pool.len(), 1);
        assert!(s.insert(4, b"four"));
        assert!(s.pool.is_empty());
        assert_eq!(s.get(4), Some(&b"four"[..]));
        s.discard_through(10);
        assert_eq!(s.last_discarded(), 10);
        assert_eq!(s.pool.len(), 2);
    }
}
