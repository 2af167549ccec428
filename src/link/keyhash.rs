//! A cheap hasher for the link layer's maps of recent transmissions, whose keys are a few
//! small integers (daemon id, ring id, sequence or rotation number). SipHash, the standard
//! maps' default, costs more than the rest of the work on a packet there.
//!
//! It is not keyed: a sender could pick keys that collide. Only packets from configured peers
//! with this configuration's hash reach these maps, the maps hold at most
//! [`LinkParams::dedup_capacity`](super::LinkParams::dedup_capacity) entries, and whoever
//! can send as a peer can already stop the ring outright (a forged token), so colliding keys
//! would give an attacker nothing more.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative mixing of each word written (as FxHash does), with the high half folded
/// into the low one at the end: the maps index their buckets by the low bits.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct KeyHasher(u64);

/// An odd constant with well spread bits (from FxHash).
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

/// A map with [`KeyHasher`].
pub(super) type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::{BuildHasher, Hash};

    fn hash(key: impl Hash) -> u64 {
        BuildHasherDefault::<KeyHasher>::default().hash_one(key)
    }

    #[test]
    fn consecutive_keys_spread_over_the_low_bits() {
        // Sequence numbers of one sender and ring, as the copy maps see them: the bucket
        // index (low bits) of 4096 of them must hardly collide.
        let buckets: HashSet<u64> = (0..4096u64)
            .map(|seq| hash((7u32, 1u32, 3u64, seq)) & 8191)
            .collect();
        assert!(buckets.len() > 3000, "{} distinct buckets of 4096", buckets.len());
    }

    #[test]
    fn every_field_counts() {
        let base = hash((1u32, 2u64, 3u8));
        assert_ne!(base, hash((9u32, 2u64, 3u8)));
        assert_ne!(base, hash((1u32, 9u64, 3u8)));
        assert_ne!(base, hash((1u32, 2u64, 9u8)));
        assert_ne!(hash([1u8, 2, 3].as_slice()), hash([1u8, 2, 4].as_slice()));
    }
}
