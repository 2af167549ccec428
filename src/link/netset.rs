//! A set of network ids (0 to 7), the link layer's answer to "which networks".

use std::fmt;

use crate::config::MAX_NETWORKS;

/// Networks as bits: bit `n` is network `n`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NetSet(u8);

impl NetSet {
    pub const EMPTY: NetSet = NetSet(0);

    /// Networks `0..count` (at most [`MAX_NETWORKS`]).
    pub fn first_n(count: usize) -> NetSet {
        NetSet(((1u16 << count.min(MAX_NETWORKS)) - 1) as u8)
    }

    /// The set of one network; ids past the last network give the empty set.
    pub fn single(network: u8) -> NetSet {
        NetSet(1u8.checked_shl(u32::from(network)).unwrap_or(0))
    }

    pub fn contains(self, network: u8) -> bool {
        self.0 & NetSet::single(network).0 != 0
    }

    pub fn insert(&mut self, network: u8) {
        self.0 |= NetSet::single(network).0;
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn union(self, other: NetSet) -> NetSet {
        NetSet(self.0 | other.0)
    }

    pub fn intersection(self, other: NetSet) -> NetSet {
        NetSet(self.0 & other.0)
    }

    pub fn difference(self, other: NetSet) -> NetSet {
        NetSet(self.0 & !other.0)
    }

    /// Network ids in increasing order.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0..MAX_NETWORKS as u8).filter(move |&n| self.contains(n))
    }

    /// The lowest network id.
    pub fn first(self) -> Option<u8> {
        self.iter().next()
    }

    /// The first network from `start` on, wrapping around.
    pub fn next_from(self, start: u8) -> Option<u8> {
        self.iter().find(|&n| n >= start).or_else(|| self.first())
    }
}

impl fmt::Debug for NetSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<u8> for NetSet {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> NetSet {
        let mut set = NetSet::EMPTY;
        for n in iter {
            set.insert(n);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let s: NetSet = [0, 2, 5].into_iter().collect();
        assert_eq!(s.len(), 3);
        assert!(s.contains(2) && !s.contains(1) && !s.contains(200));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 2, 5]);
        assert_eq!(s.next_from(2), Some(2));
        assert_eq!(s.next_from(3), Some(5));
        assert_eq!(s.next_from(6), Some(0));
        assert_eq!(NetSet::single(3).next_from(4), Some(3));
        assert_eq!(NetSet::EMPTY.next_from(3), None);
        assert_eq!(NetSet::first_n(3), [0, 1, 2].into_iter().collect());
        assert_eq!(NetSet::first_n(8).len(), 8);
        assert!(NetSet::single(8).is_empty());
        assert_eq!(s.difference(NetSet::single(0)).first(), Some(2));
        assert_eq!(s.intersection(NetSet::first_n(3)).len(), 2);
        assert_eq!(format!("{s:?}"), "{0, 2, 5}");
    }
}
