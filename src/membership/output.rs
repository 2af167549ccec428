//! What one call into the membership produced: datagrams to send and events in delivery order.

use std::ops::Range;

use crate::ring::{Datagrams, Destination};
use crate::wire::packet::{RingId, ServiceLevel};

/// What the daemon above the membership sees, in the one order all members share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    Deliver {
        origin: u32,
        service: ServiceLevel,
        message: &'a [u8],
    },
    /// The members of the old configuration that move on together (EVS transitional
    /// configuration); the old configuration's remaining messages follow. Its id is its first
    /// member with the sequence of the regular configuration that follows.
    Transitional { ring: RingId, members: &'a [u32] },
    /// A new regular configuration; each member with the ring id of the regular configuration
    /// it comes from. A daemon's first configuration (itself alone, at start) names as its
    /// previous ring `RingId { rep: itself, seq: 0 }`, which no ring has.
    Regular {
        ring: RingId,
        members: &'a [(u32, RingId)],
    },
}

/// Where a delivered message was ordered: its ring and the sequence number of the packet that
/// completed it (for checking SAFE delivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub ring: RingId,
    pub seq: u64,
}

#[derive(Debug, Clone)]
enum Entry {
    Deliver {
        origin: u32,
        service: ServiceLevel,
        bytes: Range<usize>,
        at: Position,
    },
    Transitional {
        ring: RingId,
        members: Range<usize>,
    },
    Regular {
        ring: RingId,
        members: Range<usize>,
    },
}

/// Reused across calls: [`Outputs::clear`] keeps the buffers.
#[derive(Debug, Default)]
pub struct Outputs {
    datagrams: Datagrams<Destination>,
    message_bytes: Vec<u8>,
    ids: Vec<u32>,
    pairs: Vec<(u32, RingId)>,
    events: Vec<Entry>,
}

impl Outputs {
    pub fn new() -> Outputs {
        Outputs::default()
    }

    pub fn clear(&mut self) {
        self.datagrams.clear();
        self.message_bytes.clear();
        self.ids.clear();
        self.pairs.clear();
        self.events.clear();
    }

    /// Datagrams in the order they must be sent.
    pub fn sends(&self) -> impl Iterator<Item = (Destination, &[u8])> + '_ {
        self.datagrams.iter()
    }

    pub fn events(&self) -> impl Iterator<Item = Event<'_>> + '_ {
        self.positioned_events().map(|(event, _)| event)
    }

    /// Events with the position of each delivered message.
    pub fn positioned_events(&self) -> impl Iterator<Item = (Event<'_>, Option<Position>)> + '_ {
        self.events.iter().map(|e| match e {
            Entry::Deliver {
                origin,
                service,
                bytes,
                at,
            } => (
                Event::Deliver {
                    origin: *origin,
                    service: *service,
                    message: &self.message_bytes[bytes.clone()],
                },
                Some(*at),
            ),
            Entry::Transitional { ring, members } => (
                Event::Transitional {
                    ring: *ring,
                    members: &self.ids[members.clone()],
                },
                None,
            ),
            Entry::Regular { ring, members } => (
                Event::Regular {
                    ring: *ring,
                    members: &self.pairs[members.clone()],
                },
                None,
            ),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty() && self.events.is_empty()
    }

    pub(super) fn send(&mut self, to: Destination, bytes: &[u8]) {
        self.datagrams
            .push_with(to, |arena| arena.extend_from_slice(bytes));
    }

    /// Encodes a datagram with `write` and queues it to `to`.
    pub(super) fn send_with(&mut self, to: Destination, write: impl FnOnce(&mut Vec<u8>)) {
        self.datagrams.push_with(to, write);
    }

    pub(super) fn deliver(&mut self, origin: u32, service: ServiceLevel, message: &[u8], at: Position) {
        let start = self.message_bytes.len();
        self.message_bytes.extend_from_slice(message);
        self.events.push(Entry::Deliver {
            origin,
            service,
            bytes: start..self.message_bytes.len(),
            at,
        });
    }

    pub(super) fn transitional(&mut self, ring: RingId, members: &[u32]) {
        let start = self.ids.len();
        self.ids.extend_from_slice(members);
        self.events.push(Entry::Transitional {
            ring,
            members: start..self.ids.len(),
        });
    }

    pub(super) fn regular(&mut self, ring: RingId, members: &[(u32, RingId)]) {
        let start = self.pairs.len();
        self.pairs.extend_from_slice(members);
        self.events.push(Entry::Regular {
            ring,
            members: start..self.pairs.len(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sends_and_events_in_order() {
        let mut out = Outputs::new();
        let ring = RingId { rep: 1, seq: 2 };
        out.send(Destination::All, b"ab");
        out.send_with(Destination::Daemon(3), |v| v.extend_from_slice(b"c"));
        out.deliver(1, ServiceLevel::Safe, b"m", Position { ring, seq: 9 });
        out.transitional(ring, &[1, 2]);
        out.regular(ring, &[(1, ring)]);
        let sends: Vec<_> = out.sends().collect();
        assert_eq!(
            sends,
            vec![
                (Destination::All, &b"ab"[..]),
                (Destination::Daemon(3), &b"c"[..])
            ]
        );
        let events: Vec<_> = out.positioned_events().collect();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].1, Some(Position { ring, seq: 9 }));
        assert_eq!(
            events[1].0,
            Event::Transitional {
                ring,
                members: &[1, 2]
            }
        );
        assert!(matches!(
            events[2].0,
            Event::Regular {
                members: [(1, _)],
                ..
            }
        ));
        out.clear();
        assert!(out.is_empty());
    }
}
