//! Copies of one transmission arriving on several networks: the first is kept, the others are
//! duplicates. Remembers, with bounded memory, which networks each transmission came on, and
//! tells which expected copies never showed up.

use std::collections::VecDeque;
use std::time::Duration;

use super::keyhash::KeyMap;
use super::NetSet;
use crate::ring::Time;
use crate::wire::packet::{Kind, RingId};

/// What identifies one transmission of a ring packet (all its copies share it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum CopyKey {
    Data {
        sender: u32,
        ring: RingId,
        seq: u64,
    },
    Token {
        sender: u32,
        ring: RingId,
        rotation: u64,
        retrans: u8,
    },
    /// Hurry requests and membership packets: one key per kind, so a copy on a network that
    /// already brought one counts as the next transmission.
    Control {
        sender: u32,
        ring: RingId,
        kind: Kind,
    },
}

impl CopyKey {
    pub(super) fn sender(&self) -> u32 {
        match *self {
            CopyKey::Data { sender, .. }
            | CopyKey::Token { sender, .. }
            | CopyKey::Control { sender, .. } => sender,
        }
    }
}

#[derive(Debug)]
struct Group {
    /// Tells this group from an earlier one of the same key in the queues.
    generation: u64,
    seen: NetSet,
    expected: NetSet,
    accounted: bool,
}

/// Expected copies of one transmission that did not arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Missing {
    pub sender: u32,
    pub networks: NetSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arrival {
    /// The first copy of a transmission: for the ring. `missing` holds the networks the previous
    /// transmission of the same key never came on, if not yet accounted for.
    First { missing: Option<Missing> },
    /// Another copy of a transmission already passed up.
    Duplicate,
}

#[derive(Debug)]
pub(super) struct Copies {
    groups: KeyMap<CopyKey, Group>,
    /// Groups in order of their first copy, for forgetting them.
    order: VecDeque<(Time, u64, CopyKey)>,
    /// Groups whose copies are still awaited, oldest first.
    pending: VecDeque<(Time, u64, CopyKey)>,
    next_generation: u64,
    capacity: usize,
    window: Duration,
    grace: Duration,
}

impl Copies {
    pub(super) fn new(capacity: usize, window: Duration, grace: Duration) -> Copies {
        Copies {
            groups: KeyMap::default(),
            order: VecDeque::new(),
            pending: VecDeque::new(),
            next_generation: 0,
            capacity: capacity.max(1),
            window,
            grace,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether a copy of `key` arrived recently enough for its group to be remembered.
    pub(super) fn remembers(&self, key: &CopyKey) -> bool {
        self.groups.contains_key(key)
    }

    /// A copy of `key` arrived on `network`; `expected` are the networks its sender should have
    /// sent it on. A copy on a network that already brought this key is a new transmission
    /// (a retransmission or a resent token), not a copy.
    pub(super) fn arrive(&mut self, now: Time, key: CopyKey, network: u8, expected: NetSet) -> Arrival {
        let mut missing = None;
        if let Some(group) = self.groups.get_mut(&key) {
            if !group.seen.contains(network) {
                group.seen.insert(network);
                return Arrival::Duplicate;
            }
            if !group.accounted {
                missing = Some(Missing {
                    sender: key.sender(),
                    networks: group.expected.difference(group.seen),
                });
            }
        }
        while self.order.len() >= self.capacity {
            self.forget_oldest();
        }
        while self.pending.len() >= self.capacity {
            self.pending.pop_front();
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.groups.insert(
            key,
            Group {
                generation,
                seen: NetSet::single(network),
                expected,
                accounted: false,
            },
        );
        self.order.push_back((now, generation, key));
        self.pending.push_back((now, generation, key));
        Arrival::First { missing }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, generation, key)) = self.order.pop_front() {
            if self.groups.get(&key).is_some_and(|g| g.generation == generation) {
                self.groups.remove(&key);
            }
        }
    }

    /// Closes the groups whose grace time is over, appending what they missed to `missing`, and
    /// forgets groups older than the window.
    pub(super) fn expire(&mut self, now: Time, missing: &mut Vec<Missing>) {
        while let Some(&(first_at, generation, key)) = self.pending.front() {
            if first_at + self.grace > now {
                break;
            }
            self.pending.pop_front();
            if let Some(group) = self.groups.get_mut(&key) {
                if group.generation == generation && !group.accounted {
                    group.accounted = true;
                    let networks = group.expected.difference(group.seen);
                    if !networks.is_empty() {
                        missing.push(Missing {
                            sender: key.sender(),
                            networks,
                        });
                    }
                }
            }
        }
        while self
            .order
            .front()
            .is_some_and(|&(first_at, _, _)| first_at + self.window <= now)
        {
            self.forget_oldest();
        }
    }

    /// When [`Copies::expire`] has something to do.
    pub(super) fn next_deadline(&self) -> Option<Time> {
        let pending = self.pending.front().map(|&(t, _, _)| t + self.grace);
        let order = self.order.front().map(|&(t, _, _)| t + self.window);
        match (pending, order) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING: RingId = RingId { rep: 1, seq: 1 };

    fn ms(n: u64) -> Time {
        Time::from_micros(n * 1000)
    }

    fn data(seq: u64) -> CopyKey {
        CopyKey::Data {
            sender: 2,
            ring: RING,
            seq,
        }
    }

    fn copies() -> Copies {
        Copies::new(4, Duration::from_millis(500), Duration::from_millis(20))
    }

    #[test]
    fn first_copy_wins_and_misses_are_reported_after_grace() {
        let mut c = copies();
        let all = NetSet::first_n(3);
        assert_eq!(c.arrive(ms(0), data(1), 1, all), Arrival::First { missing: None });
        assert_eq!(c.arrive(ms(1), data(1), 0, all), Arrival::Duplicate);
        let mut missing = Vec::new();
        c.expire(ms(19), &mut missing);
        assert!(missing.is_empty());
        assert_eq!(c.next_deadline(), Some(ms(20)));
        c.expire(ms(20), &mut missing);
        assert_eq!(
            missing,
            vec![Missing {
                sender: 2,
                networks: NetSet::single(2)
            }]
        );
        // A copy after the grace time is still a duplicate, and is not counted twice.
        assert_eq!(c.arrive(ms(30), data(1), 2, all), Arrival::Duplicate);
        missing.clear();
        c.expire(ms(100), &mut missing);
        assert!(missing.is_empty());
    }

    #[test]
    fn same_network_again_is_a_new_transmission() {
        let mut c = copies();
        let two = NetSet::first_n(2);
        c.arrive(ms(0), data(1), 0, two);
        // Resent before the first one's grace ended: its missing copy on 1 is reported now.
        assert_eq!(
            c.arrive(ms(5), data(1), 0, two),
            Arrival::First {
                missing: Some(Missing {
                    sender: 2,
                    networks: NetSet::single(1)
                })
            }
        );
        assert_eq!(c.arrive(ms(6), data(1), 1, two), Arrival::Duplicate);
        let mut missing = Vec::new();
        c.expire(ms(100), &mut missing);
        assert!(missing.is_empty(), "{missing:?}");
    }

    #[test]
    fn memory_is_bounded_by_capacity_and_window() {
        let mut c = copies();
        let one = NetSet::single(0);
        for seq in 1..=100 {
            c.arrive(ms(seq), data(seq), 0, one);
            assert!(c.len() <= 4);
            assert!(c.order.len() <= 4 && c.pending.len() <= 4);
        }
        // The oldest were forgotten: a late copy of seq 1 passes as new.
        assert!(matches!(
            c.arrive(ms(101), data(1), 1, one),
            Arrival::First { .. }
        ));
        let mut missing = Vec::new();
        c.expire(ms(101) + Duration::from_millis(500), &mut missing);
        assert_eq!(c.len(), 0);
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn keys_tell_kinds_senders_and_tokens_apart() {
        let mut c = Copies::new(100, Duration::from_secs(1), Duration::from_millis(20));
        let all = NetSet::first_n(2);
        let token = |retrans| CopyKey::Token {
            sender: 3,
            ring: RING,
            rotation: 7,
            retrans,
        };
        for key in [
            data(1),
            CopyKey::Data {
                sender: 3,
                ring: RING,
                seq: 1,
            },
            token(0),
            token(1),
            CopyKey::Control {
                sender: 3,
                ring: RING,
                kind: Kind::Hurry,
            },
        ] {
            assert!(
                matches!(c.arrive(ms(0), key, 0, all), Arrival::First { .. }),
                "{key:?}"
            );
            assert_eq!(c.arrive(ms(0), key, 1, all), Arrival::Duplicate);
        }
    }
}
