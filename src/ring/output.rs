//! What one call into the ring produced: datagrams to send and messages to deliver.
//!
//! The caller owns one `Outputs` and reuses it: the ring appends into byte arenas whose capacity
//! survives [`Outputs::clear`], so steady-state traffic allocates nothing here.

use std::ops::Range;

use super::datagrams::Datagrams;
use crate::wire::packet::ServiceLevel;

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Every daemon of the ring (broadcast or multicast on the segment).
    All,
    /// One daemon (the token to the next one, a hurry request to the leader).
    Daemon(u32),
}

/// A message handed up in the ring's total order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// Sequence number of the packet that completed the message.
    pub seq: u64,
    /// The daemon that sent it.
    pub origin: u32,
    pub service: ServiceLevel,
    pub message: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct DeliveryEntry {
    seq: u64,
    origin: u32,
    service: ServiceLevel,
    range: Range<usize>,
}

#[derive(Debug, Default)]
pub struct Outputs {
    datagrams: Datagrams<Destination>,
    message_bytes: Vec<u8>,
    deliveries: Vec<DeliveryEntry>,
    token_lost: bool,
}

impl Outputs {
    pub fn new() -> Outputs {
        Outputs::default()
    }

    /// Forgets everything, keeping the buffers.
    pub fn clear(&mut self) {
        self.datagrams.clear();
        self.message_bytes.clear();
        self.deliveries.clear();
        self.token_lost = false;
    }

    /// Datagrams in the order they must be sent.
    pub fn sends(&self) -> impl Iterator<Item = (Destination, &[u8])> + '_ {
        self.datagrams.iter()
    }

    /// Messages in delivery order.
    pub fn deliveries(&self) -> impl Iterator<Item = Delivery<'_>> + '_ {
        self.deliveries.iter().map(|d| Delivery {
            seq: d.seq,
            origin: d.origin,
            service: d.service,
            message: &self.message_bytes[d.range.clone()],
        })
    }

    /// True when the token loss timeout expired during the call (reported once per ring).
    pub fn token_lost(&self) -> bool {
        self.token_lost
    }

    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty() && self.deliveries.is_empty() && !self.token_lost
    }

    /// The arena the ring encodes a datagram into; it is queued by [`Outputs::queue_send`].
    pub(super) fn datagram_arena(&mut self) -> &mut Vec<u8> {
        self.datagrams.arena()
    }

    pub(super) fn datagram(&self, range: Range<usize>) -> &[u8] {
        self.datagrams.get(range)
    }

    pub(super) fn datagram_mut(&mut self, range: Range<usize>) -> &mut [u8] {
        self.datagrams.get_mut(range)
    }

    pub(super) fn queue_send(&mut self, to: Destination, range: Range<usize>) {
        self.datagrams.queue(to, range);
    }

    /// Appends a delivery whose bytes are written by `write` into the message arena.
    pub(super) fn deliver(
        &mut self,
        seq: u64,
        origin: u32,
        service: ServiceLevel,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let start = self.message_bytes.len();
        write(&mut self.message_bytes);
        let range = start..self.message_bytes.len();
        self.deliveries.push(DeliveryEntry {
            seq,
            origin,
            service,
            range,
        });
    }

    pub(super) fn set_token_lost(&mut self) {
        self.token_lost = true;
    }
}
