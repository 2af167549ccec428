//! Datagrams queued for sending, each with where it goes: the bytes of all of them share one
//! arena whose capacity survives [`Datagrams::clear`], so steady traffic allocates nothing.
//! The ring, the membership and the link layer each queue theirs in one.

use std::ops::Range;

#[derive(Debug)]
pub struct Datagrams<To> {
    bytes: Vec<u8>,
    sends: Vec<(To, Range<usize>)>,
}

impl<To> Default for Datagrams<To> {
    fn default() -> Self {
        Datagrams {
            bytes: Vec::new(),
            sends: Vec::new(),
        }
    }
}

impl<To: Copy> Datagrams<To> {
    /// Forgets every datagram, keeping the buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.sends.clear();
    }

    /// (destination, datagram), in sending order.
    pub fn iter(&self) -> impl Iterator<Item = (To, &[u8])> + '_ {
        self.sends
            .iter()
            .map(|(to, range)| (*to, &self.bytes[range.clone()]))
    }

    pub fn is_empty(&self) -> bool {
        self.sends.is_empty()
    }

    /// Encodes a datagram with `write` and queues it to `to`.
    pub fn push_with(&mut self, to: To, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        write(&mut self.bytes);
        self.sends.push((to, start..self.bytes.len()));
    }

    /// The arena to encode into directly; what is written there is sent once queued by
    /// [`Datagrams::queue`] (the same bytes may be queued to several destinations).
    pub fn arena(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    pub fn get(&self, range: Range<usize>) -> &[u8] {
        &self.bytes[range]
    }

    pub fn get_mut(&mut self, range: Range<usize>) -> &mut [u8] {
        &mut self.bytes[range]
    }

    pub fn queue(&mut self, to: To, range: Range<usize>) {
        self.sends.push((to, range));
    }
}
